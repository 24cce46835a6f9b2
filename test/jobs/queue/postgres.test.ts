import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, test } from 'node:test';
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

test('pg-boss countLive counts waiting, delayed and leased messages per key; handled ones drop out', async () => {
  const queue = new PgBossQueue<TestPayload>({
    connectionString,
    schema,
    queueName: `count-${++counter}`,
    pollIntervalMs: 500,
    poolMax: 2,
  });
  try {
    await queue.start();
    await queue.send({ n: 1 }, { key: 'a' });
    await queue.send({ n: 2 }, { key: 'a', delaySeconds: 60 });
    await queue.send({ n: 3 }, { key: 'b' });
    assert.deepEqual(Object.fromEntries(await queue.countLive(['a', 'b', 'c'])), { a: 2, b: 1 });
    const done: number[] = [];
    let leased!: () => void;
    const holding = new Promise<void>((r) => {
      leased = r;
    });
    let release!: () => void;
    const hold = new Promise<void>((r) => {
      release = r;
    });
    const consumer = queue.consume(
      async (d) => {
        done.push(d.payload.n);
        if (d.payload.n === 3) {
          leased();
          await hold;
        }
      },
      { concurrency: 2 },
    );
    await holding;
    // n = 3 is leased right now, and still live.
    assert.equal((await queue.countLive(['b'])).get('b'), 1);
    release();
    const until = Date.now() + 8000;
    while (done.length < 2 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    await consumer.stop();
    assert.deepEqual(Object.fromEntries(await queue.countLive(['a', 'b'])), { a: 1 });
  } finally {
    await queue.close();
  }
});
