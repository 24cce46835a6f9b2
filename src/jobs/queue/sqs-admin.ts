import { CreateQueueCommand, GetQueueAttributesCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { AppError } from '../../shared/errors.ts';

export interface SqsQueuePair {
  queueUrl: string;
  dlqUrl: string;
}

/**
 * Creates a work queue and its DLQ with the redrive policy infra/ deploys (maxReceiveCount =
 * maxAttempts). For local SQS servers and tests; in AWS the CDK stateful stack owns the queues.
 * CreateQueue is idempotent for identical attributes, so calling this at every start is fine.
 */
export async function createSqsQueuePair(
  client: SQSClient,
  name: string,
  options: { maxAttempts: number; visibilityTimeoutSeconds: number },
): Promise<SqsQueuePair> {
  const dlq = await client.send(
    new CreateQueueCommand({ QueueName: `${name}-dlq`, Attributes: { MessageRetentionPeriod: '1209600' } }),
  );
  if (!dlq.QueueUrl) throw new AppError('INTERNAL', `SQS did not return a URL for ${name}-dlq.`);
  const attrs = await client.send(
    new GetQueueAttributesCommand({ QueueUrl: dlq.QueueUrl, AttributeNames: ['QueueArn'] }),
  );
  const dlqArn = attrs.Attributes?.QueueArn;
  if (!dlqArn) throw new AppError('INTERNAL', `SQS did not return an ARN for ${name}-dlq.`);
  const queue = await client.send(
    new CreateQueueCommand({
      QueueName: name,
      Attributes: {
        VisibilityTimeout: String(options.visibilityTimeoutSeconds),
        RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount: options.maxAttempts }),
      },
    }),
  );
  if (!queue.QueueUrl) throw new AppError('INTERNAL', `SQS did not return a URL for ${name}.`);
  return { queueUrl: queue.QueueUrl, dlqUrl: dlq.QueueUrl };
}
