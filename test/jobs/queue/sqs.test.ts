import { randomBytes } from 'node:crypto';
import { after, before } from 'node:test';
import { SQSClient } from '@aws-sdk/client-sqs';
import { buildApp } from 'fauxqs';
import { createSqsQueuePair } from '../../../src/jobs/queue/sqs-admin.ts';
import { SqsQueue, type SqsQueueOptions } from '../../../src/jobs/queue/sqs-queue.ts';
import { runQueueContract, type TestPayload } from './contract.ts';

// fauxqs speaks the SQS JSON protocol (visibility timeouts, ChangeMessageVisibility, receive
// counts, RedrivePolicy). Its startFauxqs() binds 0.0.0.0, so the app is built and bound to
// loopback here instead.
const app = buildApp({ logger: false });
let endpoint = '';
let admin: SQSClient;
const credentials = { accessKeyId: 'test', secretAccessKey: 'test' };
const prefix = `contract-${randomBytes(3).toString('hex')}`;
let counter = 0;

before(async () => {
  endpoint = await app.listen({ port: 0, host: '127.0.0.1' });
  admin = new SQSClient({ endpoint, region: 'us-east-1', credentials });
});

after(async () => {
  admin.destroy();
  await app.close();
});

runQueueContract('sqs (fauxqs on loopback)', {
  slackMs: 1200, // the long poll (1 s) returns before a consumer sees the expired lease
  async create(policy) {
    const full = { maxAttempts: 3, visibilityTimeoutSeconds: 30, ...policy };
    const pair = await createSqsQueuePair(admin, `${prefix}-${++counter}`, full);
    const options: SqsQueueOptions = {
      ...pair,
      endpoint,
      region: 'us-east-1',
      credentials,
      policy,
      waitTimeSeconds: 1,
    };
    return { queue: new SqsQueue<TestPayload>(options), options: { backend: 'sqs', ...options } };
  },
});
