/**
 * fauxqs on loopback for SQS-backed tests. fauxqs speaks the SQS JSON protocol (visibility
 * timeouts, ChangeMessageVisibility, receive counts, RedrivePolicy); its startFauxqs() binds
 * 0.0.0.0, so the app is built and bound to 127.0.0.1 here instead.
 */
import { SQSClient } from '@aws-sdk/client-sqs';
import { buildApp } from 'fauxqs';
import type { QueuePolicy } from '../../src/jobs/queue/port.ts';
import { createSqsQueuePair } from '../../src/jobs/queue/sqs-admin.ts';
import type { SqsQueueOptions } from '../../src/jobs/queue/sqs-queue.ts';

export interface Fauxqs {
  endpoint: string;
  /** A client for direct SQS calls (receive, attributes). */
  admin: SQSClient;
  /**
   * Creates a queue + dead-letter pair (redrive after `pair.maxAttempts`, visibility timeout) and
   * the options an SqsQueue with `policy` needs for it (1 s long poll).
   */
  queueOptions(
    name: string,
    pair: { maxAttempts: number; visibilityTimeoutSeconds: number },
    policy?: Partial<QueuePolicy>,
  ): Promise<SqsQueueOptions>;
  close(): Promise<void>;
}

export async function startFauxqs(): Promise<Fauxqs> {
  const app = buildApp({ logger: false });
  const endpoint = await app.listen({ port: 0, host: '127.0.0.1' });
  const credentials = { accessKeyId: 'test', secretAccessKey: 'test' };
  const admin = new SQSClient({ endpoint, region: 'us-east-1', credentials });
  return {
    endpoint,
    admin,
    async queueOptions(name, pair, policy = pair) {
      const urls = await createSqsQueuePair(admin, name, pair);
      return { ...urls, endpoint, region: 'us-east-1', credentials, policy, waitTimeSeconds: 1 };
    },
    async close() {
      admin.destroy();
      await app.close();
    },
  };
}
