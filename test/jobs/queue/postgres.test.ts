import { randomBytes } from 'node:crypto';
import { after } from 'node:test';
import pg from 'pg';
import { PgBossQueue, type PgBossQueueOptions } from '../../../src/jobs/queue/pg-boss-queue.ts';
import { runQueueContract, type TestPayload } from './contract.ts';

// A fresh pg-boss schema for this file in the local test server, dropped afterwards.
const connectionString = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const schema = `qtest_${randomBytes(4).toString('hex')}`;
let counter = 0;

after(async () => {
  const client = new pg.Client({ connectionString });
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await client.end();
});

runQueueContract('postgres (pg-boss)', {
  slackMs: 1500, // maintenanceIntervalSeconds 1 + one poll interval
  async create(policy) {
    const options: PgBossQueueOptions = {
      connectionString,
      schema,
      queueName: `contract-${++counter}`,
      policy,
      pollIntervalMs: 500,
      maintenanceIntervalSeconds: 1,
      poolMax: 3,
    };
    return { queue: new PgBossQueue<TestPayload>(options), options: { backend: 'postgres', ...options } };
  },
});
