import { AppError } from '../../shared/errors.ts';
import { PgBossQueue, type PgBossQueueOptions } from './pg-boss-queue.ts';
import type { JobQueue } from './port.ts';
import { SqsQueue, type SqsQueueOptions } from './sqs-queue.ts';

/**
 * Plain, serialisable backend selection: config (QUEUE_BACKEND=postgres|sqs) maps onto this,
 * and tests pass it to child processes as JSON.
 */
export type QueueBackendOptions =
  | ({ backend: 'postgres' } & PgBossQueueOptions)
  | ({ backend: 'sqs' } & SqsQueueOptions);

export function createJobQueue<P>(options: QueueBackendOptions): JobQueue<P> {
  switch (options.backend) {
    case 'postgres':
      return new PgBossQueue<P>(options);
    case 'sqs':
      return new SqsQueue<P>(options);
    default:
      throw new AppError(
        'BAD_CONFIG',
        `Unknown queue backend "${(options as { backend: string }).backend}" (postgres|sqs).`,
      );
  }
}
