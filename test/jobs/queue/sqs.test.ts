import { randomBytes } from 'node:crypto';
import { after, before } from 'node:test';
import { SqsQueue } from '../../../src/jobs/queue/sqs-queue.ts';
import { type Fauxqs, startFauxqs } from '../../helpers/fauxqs.ts';
import { runQueueContract, type TestPayload } from './contract.ts';

let fauxqs: Fauxqs;
const prefix = `contract-${randomBytes(3).toString('hex')}`;
let counter = 0;

before(async () => {
  fauxqs = await startFauxqs();
});

after(() => fauxqs.close());

runQueueContract('sqs (fauxqs on loopback)', {
  slackMs: 1200, // the long poll (1 s) returns before a consumer sees the expired lease
  async create(policy) {
    const full = { maxAttempts: 3, visibilityTimeoutSeconds: 30, ...policy };
    const options = await fauxqs.queueOptions(`${prefix}-${++counter}`, full, policy);
    return { queue: new SqsQueue<TestPayload>(options), options: { backend: 'sqs', ...options } };
  },
});
