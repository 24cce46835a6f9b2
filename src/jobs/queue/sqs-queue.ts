import {
  ChangeMessageVisibilityCommand,
  DeleteMessageCommand,
  GetQueueAttributesCommand,
  type Message,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { AppError } from '../../shared/errors.ts';
import { logger } from '../../shared/logger.ts';
import { decodeEnvelope, type Envelope, encodeEnvelope, errorMessage } from './envelope.ts';
import { ConsumerSet, type Lease, type LeaseDriver } from './lease-consumer.ts';
import { retryDelaySeconds, validatePolicy } from './policy.ts';
import {
  type ConsumeOptions,
  type Consumer,
  DEFAULT_QUEUE_POLICY,
  type DeadLetter,
  type Handler,
  type JobQueue,
  type QueuePolicy,
  type QueueStats,
  type SendOptions,
} from './port.ts';

export interface SqsQueueOptions {
  queueUrl: string;
  /** The queue's dead-letter queue (also set as its RedrivePolicy target by infra/). */
  dlqUrl: string;
  region?: string;
  /** Custom endpoint (LocalStack, fauxqs); unset -> the regional AWS endpoint. */
  endpoint?: string;
  /** Static credentials for local servers; unset -> the SDK's default chain (ECS task role). */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  policy?: Partial<QueuePolicy>;
  /** Long-poll length (max 20). Also how long a stop() may wait for an aborted poll to return. */
  waitTimeSeconds?: number;
}

interface SqsLease<P> extends Lease<P> {
  receiptHandle: string;
  body: Envelope<P>;
}

/** Error names SQS uses for "this receipt handle no longer leases the message". */
const LEASE_LOST = /MessageNotInflight|ReceiptHandleIsInvalid/;

/**
 * The SQS queue. Visibility timeout -> ReceiveMessage `VisibilityTimeout`; heartbeat ->
 * ChangeMessageVisibility; release -> visibility 0; retry with backoff -> visibility set to the
 * retry delay (the message stays in the queue, its receive count grows). Dead-lettering is
 * explicit: the last failed attempt is sent to the DLQ with its error and deleted, and a
 * message that arrives with a receive count above maxAttempts (its consumers kept crashing) is
 * moved the same way. The queue's RedrivePolicy (maxReceiveCount = maxAttempts, set in infra/)
 * is a safety net doing the same thing inside SQS. A crash between "sent to DLQ" and "deleted"
 * can leave a copy in both: at-least-once, and handlers are idempotent.
 */
export class SqsQueue<P> implements JobQueue<P> {
  readonly #client: SQSClient;
  readonly #queueUrl: string;
  readonly #dlqUrl: string;
  readonly #policy: QueuePolicy;
  readonly #waitTimeSeconds: number;
  readonly #consumers = new ConsumerSet();

  constructor(options: SqsQueueOptions) {
    this.#queueUrl = options.queueUrl;
    this.#dlqUrl = options.dlqUrl;
    this.#policy = { ...DEFAULT_QUEUE_POLICY, ...options.policy };
    validatePolicy(this.#policy);
    this.#waitTimeSeconds = Math.min(20, Math.max(0, options.waitTimeSeconds ?? 20));
    this.#client = new SQSClient({
      region: options.region ?? 'us-east-1',
      endpoint: options.endpoint,
      credentials: options.credentials,
    });
  }

  /** Fails fast with a clear message when a queue URL is wrong or unreachable. */
  async start(): Promise<void> {
    for (const url of [this.#queueUrl, this.#dlqUrl]) {
      try {
        await this.#client.send(
          new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['QueueArn'] }),
        );
      } catch (cause) {
        throw new AppError('BAD_CONFIG', `SQS queue ${url} is not reachable: ${errorMessage(cause)}`, {
          cause,
        });
      }
    }
  }

  async send(payload: P, options: SendOptions = {}): Promise<string> {
    const out = await this.#client.send(
      new SendMessageCommand({
        QueueUrl: this.#queueUrl,
        MessageBody: JSON.stringify(encodeEnvelope(payload, options.key)),
        DelaySeconds: options.delaySeconds ? Math.min(900, Math.ceil(options.delaySeconds)) : undefined,
      }),
    );
    if (!out.MessageId) throw new AppError('INTERNAL', 'SQS SendMessage returned no MessageId.');
    return out.MessageId;
  }

  consume(handler: Handler<P>, options: ConsumeOptions<P> = {}): Consumer {
    return this.#consumers.start(this.#driver(), handler, options, this.#policy.visibilityTimeoutSeconds);
  }

  async stats(): Promise<QueueStats> {
    const [main, dlq] = await Promise.all([this.#attributes(this.#queueUrl), this.#attributes(this.#dlqUrl)]);
    return {
      waiting: main.ApproximateNumberOfMessages + main.ApproximateNumberOfMessagesDelayed,
      inFlight: main.ApproximateNumberOfMessagesNotVisible,
      deadLettered: dlq.ApproximateNumberOfMessages + dlq.ApproximateNumberOfMessagesNotVisible,
    };
  }

  /**
   * Peeks at the DLQ: receives with visibility 0 so the messages stay available. SQS has no
   * real peek, so this bumps their receive counts and may miss some on a busy queue.
   */
  async listDeadLetters(max = 100): Promise<DeadLetter<P>[]> {
    const seen = new Map<string, DeadLetter<P>>();
    for (let round = 0; round < Math.ceil(max / 10) + 1 && seen.size < max; round++) {
      const out = await this.#client.send(
        new ReceiveMessageCommand({
          QueueUrl: this.#dlqUrl,
          MaxNumberOfMessages: 10,
          VisibilityTimeout: 0,
          WaitTimeSeconds: 0,
        }),
      );
      const messages = out.Messages ?? [];
      if (messages.length === 0) break;
      for (const m of messages) {
        if (!m.MessageId || seen.has(m.MessageId)) continue;
        const env = decodeEnvelope<P>(m.Body ?? '', m.MessageId);
        seen.set(m.MessageId, {
          messageId: m.MessageId,
          key: env.k ?? m.MessageId,
          payload: env.p,
          error: env.e,
        });
      }
    }
    return [...seen.values()].slice(0, max);
  }

  /**
   * Receives dead letters with a short visibility timeout (a drain that dies leaves them hidden
   * only that long); a handled one is deleted, an unhandled one made visible again at once.
   */
  async drainDeadLetters(handle: (letter: DeadLetter<P>) => Promise<void>, max = 100): Promise<number> {
    let removed = 0;
    for (let seen = 0; seen < max; ) {
      const out = await this.#client.send(
        new ReceiveMessageCommand({
          QueueUrl: this.#dlqUrl,
          MaxNumberOfMessages: Math.min(10, max - seen),
          VisibilityTimeout: 60,
          WaitTimeSeconds: 0,
        }),
      );
      const messages = out.Messages ?? [];
      if (messages.length === 0) break;
      seen += messages.length;
      for (const m of messages) {
        const messageId = m.MessageId ?? '';
        try {
          const env = decodeEnvelope<P>(m.Body ?? '', messageId);
          await handle({ messageId, key: env.k ?? messageId, payload: env.p, error: env.e });
        } catch (e) {
          logger.warn({ err: e, messageId }, 'dead letter not handled; kept for the next drain');
          await this.#client.send(
            new ChangeMessageVisibilityCommand({
              QueueUrl: this.#dlqUrl,
              ReceiptHandle: m.ReceiptHandle,
              VisibilityTimeout: 0,
            }),
          );
          continue;
        }
        await this.#client.send(
          new DeleteMessageCommand({ QueueUrl: this.#dlqUrl, ReceiptHandle: m.ReceiptHandle }),
        );
        removed++;
      }
    }
    return removed;
  }

  async close(): Promise<void> {
    await this.#consumers.releaseAll();
    this.#client.destroy();
  }

  async #attributes(url: string): Promise<Record<string, number>> {
    const out = await this.#client.send(
      new GetQueueAttributesCommand({
        QueueUrl: url,
        AttributeNames: [
          'ApproximateNumberOfMessages',
          'ApproximateNumberOfMessagesNotVisible',
          'ApproximateNumberOfMessagesDelayed',
        ],
      }),
    );
    const attrs: Record<string, number> = {};
    for (const [k, v] of Object.entries(out.Attributes ?? {})) attrs[k] = Number(v ?? 0);
    attrs.ApproximateNumberOfMessages ??= 0;
    attrs.ApproximateNumberOfMessagesNotVisible ??= 0;
    attrs.ApproximateNumberOfMessagesDelayed ??= 0;
    return attrs;
  }

  async #deadLetter(lease: SqsLease<P>, error: string): Promise<void> {
    await this.#client.send(
      new SendMessageCommand({
        QueueUrl: this.#dlqUrl,
        MessageBody: JSON.stringify(
          encodeEnvelope(lease.body.p, lease.body.k ?? lease.delivery.messageId, error),
        ),
      }),
    );
    await this.#client.send(
      new DeleteMessageCommand({ QueueUrl: this.#queueUrl, ReceiptHandle: lease.receiptHandle }),
    );
  }

  async #setVisibility(lease: SqsLease<P>, seconds: number): Promise<void> {
    await this.#client.send(
      new ChangeMessageVisibilityCommand({
        QueueUrl: this.#queueUrl,
        ReceiptHandle: lease.receiptHandle,
        VisibilityTimeout: seconds,
      }),
    );
  }

  #toLease(m: Message): SqsLease<P> | { invalid: SqsLease<unknown>; error: unknown } {
    const messageId = m.MessageId ?? '';
    const attempt = Number(m.Attributes?.ApproximateReceiveCount ?? '1');
    const receiptHandle = m.ReceiptHandle ?? '';
    try {
      const body = decodeEnvelope<P>(m.Body ?? '', messageId);
      return {
        delivery: { messageId, key: body.k ?? messageId, payload: body.p, attempt },
        receiptHandle,
        body,
      };
    } catch (error) {
      const body: Envelope<unknown> = { p: m.Body };
      return {
        invalid: { delivery: { messageId, key: messageId, payload: m.Body, attempt }, receiptHandle, body },
        error,
      };
    }
  }

  #driver(): LeaseDriver<P, SqsLease<P>> {
    const policy = this.#policy;
    return {
      receive: async (max, signal) => {
        let messages: Message[];
        try {
          const out = await this.#client.send(
            new ReceiveMessageCommand({
              QueueUrl: this.#queueUrl,
              MaxNumberOfMessages: Math.min(10, max),
              WaitTimeSeconds: this.#waitTimeSeconds,
              VisibilityTimeout: policy.visibilityTimeoutSeconds,
              MessageSystemAttributeNames: ['ApproximateReceiveCount'],
            }),
            { abortSignal: signal },
          );
          messages = out.Messages ?? [];
        } catch (e) {
          // Stopping aborts the long poll; anything SQS leased to that poll reappears after the
          // visibility timeout, so nothing is lost.
          if (signal.aborted) return [];
          throw e;
        }
        const leases: SqsLease<P>[] = [];
        for (const m of messages) {
          const lease = this.#toLease(m);
          if ('invalid' in lease) {
            await this.#deadLetter(lease.invalid as SqsLease<P>, errorMessage(lease.error));
          } else if (lease.delivery.attempt > policy.maxAttempts) {
            await this.#deadLetter(lease, `gave up after ${policy.maxAttempts} deliveries without an ack`);
          } else {
            leases.push(lease);
          }
        }
        return leases;
      },
      ack: async (lease) => {
        await this.#client.send(
          new DeleteMessageCommand({ QueueUrl: this.#queueUrl, ReceiptHandle: lease.receiptHandle }),
        );
      },
      fail: async (lease, error) => {
        if (lease.delivery.attempt >= policy.maxAttempts) {
          await this.#deadLetter(lease, errorMessage(error));
        } else {
          await this.#setVisibility(lease, retryDelaySeconds(policy, lease.delivery.attempt));
        }
      },
      extend: async (lease, seconds) => {
        try {
          await this.#setVisibility(lease, seconds);
          return true;
        } catch (e) {
          if (e instanceof Error && LEASE_LOST.test(e.name)) return false;
          throw e;
        }
      },
      release: async (lease) => {
        await this.#setVisibility(lease, 0);
      },
    };
  }
}
