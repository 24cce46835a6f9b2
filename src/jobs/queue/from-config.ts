/**
 * The queue backend for a config: pg-boss in the application database (its own schema next to
 * the app schema, so a test's fresh schema gets a fresh queue) or SQS. API and worker must use
 * the same options; the process wiring (src/cli, src/lambda.ts) builds them here and hands them
 * to the API and the worker, so neither builds a queue from config on its own.
 */
import type { Config } from '../../config/config.ts';
import { AppError } from '../../shared/errors.ts';
import { schemaFromUrl } from '../../storage/db.ts';
import type { QueueBackendOptions } from './create-queue.ts';

export function queueOptionsFromConfig(config: Config, databaseUrl: string): QueueBackendOptions {
  if (config.queue.backend === 'sqs') {
    const { sqsQueueUrl, sqsDlqUrl, sqsEndpoint } = config.queue;
    if (!sqsQueueUrl || !sqsDlqUrl)
      throw new AppError('BAD_CONFIG', 'QUEUE_BACKEND=sqs needs SQS_QUEUE_URL and SQS_DLQ_URL');
    return {
      backend: 'sqs',
      queueUrl: sqsQueueUrl,
      dlqUrl: sqsDlqUrl,
      endpoint: sqsEndpoint,
      region: config.s3?.region,
    };
  }
  const appSchema = schemaFromUrl(databaseUrl);
  return {
    backend: 'postgres',
    connectionString: databaseUrl,
    schema: appSchema ? `${appSchema}_boss`.toLowerCase() : 'pgboss',
  };
}
