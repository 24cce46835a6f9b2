import PgBoss from 'pg-boss';
import { AppError } from '../../shared/errors.ts';
import { logger } from '../../shared/logger.ts';
import { decodeEnvelope, type Envelope, encodeEnvelope, errorMessage } from './envelope.ts';
import { ConsumerSet, type Lease, type LeaseDriver, sleep } from './lease-consumer.ts';
import { validatePolicy } from './policy.ts';
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
  type SqlTransaction,
} from './port.ts';

export interface PgBossQueueOptions {
  connectionString: string;
  /** Postgres schema owned by pg-boss, next to the app's tables in the same database. */
  schema?: string;
  /** Queue name; the dead-letter queue is `${queueName}__dlq`. */
  queueName?: string;
  policy?: Partial<QueuePolicy>;
  /** Pause between empty fetches (pg-boss has no long poll). pg-boss' minimum is 500 ms. */
  pollIntervalMs?: number;
  /**
   * How often expired leases are detected (pg-boss "maintenance"). Re-delivery after a crash
   * takes visibility timeout + up to this long. Only one instance runs it at a time.
   */
  maintenanceIntervalSeconds?: number;
  /** Connections in pg-boss' pool. */
  poolMax?: number;
}

interface PgLease<P> extends Lease<P> {
  /**
   * pg-boss bumps retry_count on every re-fetch, so (id, retry_count) names one delivery. It
   * fences heartbeats and releases: a consumer whose lease expired cannot extend or release
   * the copy another consumer is running now.
   */
  retryCount: number;
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * The Postgres queue on pg-boss 10 (pg-boss' own schema in the application database).
 *
 * Mapping: visibility timeout -> pg-boss `expireInSeconds` (an active job past it is failed by
 * maintenance and retried); retries/backoff/dead letter -> pg-boss `retryLimit` (= maxAttempts
 * - 1), `retryDelay`, `retryBackoff`, `deadLetter`. pg-boss 10 has no API to extend a running
 * job's expiry, so heartbeat() updates the job row's `expire_in` so that it ends one lease (the
 * visibility timeout, or the shorter one of setLease) from now, fenced on (id, state='active', retry_count); release() puts the row back
 * into 'retry' with start_after = now(). These two statements depend on the pg-boss 10 table
 * layout (pinned in package.json); the contract tests catch a change. The alternative, a
 * generous expireInSeconds plus our own heartbeat table, would delay crash recovery to that
 * generous bound, which is what the visibility timeout exists to avoid.
 */
export class PgBossQueue<P> implements JobQueue<P> {
  readonly #boss: PgBoss;
  readonly #schema: string;
  readonly #name: string;
  readonly #dlq: string;
  readonly #policy: QueuePolicy;
  readonly #pollIntervalMs: number;
  readonly #consumers = new ConsumerSet();
  #started: Promise<void> | undefined;

  constructor(options: PgBossQueueOptions) {
    this.#schema = options.schema ?? 'pgboss';
    if (!SCHEMA_NAME.test(this.#schema)) {
      throw new AppError(
        'BAD_CONFIG',
        `pg-boss schema "${this.#schema}" must be a lower-case SQL identifier.`,
      );
    }
    this.#name = options.queueName ?? 'harmon-jobs';
    this.#dlq = `${this.#name}__dlq`;
    this.#policy = { ...DEFAULT_QUEUE_POLICY, ...options.policy };
    validatePolicy(this.#policy);
    this.#pollIntervalMs = Math.max(500, options.pollIntervalMs ?? 1000);
    this.#boss = new PgBoss({
      connectionString: options.connectionString,
      schema: this.#schema,
      max: options.poolMax ?? 4,
      supervise: true,
      schedule: false, // no cron jobs: keeps the clock monitor and its timers off
      maintenanceIntervalSeconds: options.maintenanceIntervalSeconds ?? 15,
    });
    // pg-boss reports maintenance failures as 'error' events; an unhandled one would crash us.
    this.#boss.on('error', (error) => logger.warn({ err: error, queue: this.#name }, 'pg-boss error'));
  }

  start(): Promise<void> {
    this.#started ??= (async () => {
      await this.#boss.start();
      const p = this.#policy;
      await this.#boss.createQueue(this.#dlq, { name: this.#dlq, retryLimit: 0 });
      const queue = {
        name: this.#name,
        retryLimit: p.maxAttempts - 1,
        retryDelay: p.retryDelaySeconds,
        retryBackoff: p.retryBackoff,
        expireInSeconds: p.visibilityTimeoutSeconds,
        deadLetter: this.#dlq,
      };
      // createQueue keeps an existing queue's settings; updateQueue applies a changed policy.
      await this.#boss.createQueue(this.#name, queue);
      await this.#boss.updateQueue(this.#name, queue);
    })();
    return this.#started;
  }

  send(payload: P, options: SendOptions = {}): Promise<string> {
    return this.#insert(payload, options);
  }

  /**
   * The message row is inserted through the caller's transaction (pg-boss 10's `db` send
   * option routes its one INSERT through any `executeSql`), so it exists exactly when the
   * caller's rows commit. A consumer cannot fetch it earlier: it is an uncommitted row.
   */
  sendInTransaction(tx: SqlTransaction, payload: P, options: SendOptions = {}): Promise<string> {
    return this.#insert(payload, options, {
      executeSql: async (text, values) => ({ rows: await tx.query(text, values) }),
    });
  }

  async #insert(payload: P, options: SendOptions, db?: PgBoss.Db): Promise<string> {
    await this.start();
    const id = await this.#boss.send(this.#name, encodeEnvelope(payload, options.key), {
      startAfter: options.delaySeconds && options.delaySeconds > 0 ? options.delaySeconds : undefined,
      ...(db ? { db } : {}),
    });
    if (!id)
      throw new AppError('DATABASE_ERROR', `pg-boss did not accept a message for queue ${this.#name}.`);
    return id;
  }

  consume(handler: Handler<P>, options: ConsumeOptions<P> = {}): Consumer {
    return this.#consumers.start(this.#driver(), handler, options, this.#policy.visibilityTimeoutSeconds);
  }

  async stats(): Promise<QueueStats> {
    await this.start();
    const { rows } = await this.#db().executeSql(
      `SELECT name, state, count(*)::int AS n FROM ${this.#schema}.job
       WHERE name = ANY($1::text[]) AND state < 'completed' GROUP BY name, state`,
      [[this.#name, this.#dlq]],
    );
    const stats: QueueStats = { waiting: 0, inFlight: 0, deadLettered: 0 };
    for (const row of rows as { name: string; state: string; n: number }[]) {
      if (row.name === this.#dlq) stats.deadLettered += row.n;
      else if (row.state === 'active') stats.inFlight += row.n;
      else stats.waiting += row.n;
    }
    return stats;
  }

  async listDeadLetters(max = 100): Promise<DeadLetter<P>[]> {
    await this.start();
    const { rows } = await this.#db().executeSql(
      `SELECT id, data, output FROM ${this.#schema}.job
       WHERE name = $1 AND state < 'completed' ORDER BY created_on, id LIMIT $2`,
      [this.#dlq, max],
    );
    return (rows as { id: string; data: unknown; output: unknown }[]).map((row) => {
      const env = decodeEnvelope<P>(row.data, row.id);
      return { messageId: row.id, key: env.k ?? row.id, payload: env.p, error: outputMessage(row.output) };
    });
  }

  async drainDeadLetters(handle: (letter: DeadLetter<P>) => Promise<void>, max = 100): Promise<number> {
    let removed = 0;
    for (const letter of await this.listDeadLetters(max)) {
      try {
        await handle(letter);
      } catch (e) {
        logger.warn(
          { err: e, messageId: letter.messageId },
          'dead letter not handled; kept for the next drain',
        );
        continue;
      }
      // Kept as a completed row (history until pg-boss archives it), out of every live count.
      await this.#db().executeSql(
        `UPDATE ${this.#schema}.job SET state = 'completed', completed_on = now()
         WHERE name = $1 AND id = $2 AND state < 'completed'`,
        [this.#dlq, letter.messageId],
      );
      removed++;
    }
    return removed;
  }

  async countLive(keys: string[]): Promise<Map<string, number>> {
    await this.start();
    if (keys.length === 0) return new Map();
    const { rows } = await this.#db().executeSql(
      `SELECT data->>'k' AS k, count(*)::int AS n FROM ${this.#schema}.job
       WHERE name = $1 AND state < 'completed' AND data->>'k' = ANY($2::text[]) GROUP BY 1`,
      [this.#name, keys],
    );
    return new Map((rows as { k: string; n: number }[]).map((r) => [r.k, r.n]));
  }

  async close(): Promise<void> {
    await this.#consumers.releaseAll();
    if (this.#started) await this.#started.catch(() => undefined);
    await this.#boss.stop({ graceful: false, wait: true });
  }

  #db(): PgBoss.Db {
    return this.#boss.getDb();
  }

  #driver(): LeaseDriver<P, PgLease<P>> {
    const name = this.#name;
    const boss = this.#boss;
    const db = () => this.#db();
    const schema = this.#schema;
    return {
      receive: async (max, signal) => {
        await this.start();
        const jobs = await boss.fetch<unknown>(name, { batchSize: max, includeMetadata: true });
        if (jobs.length === 0) {
          await sleep(this.#pollIntervalMs, signal);
          return [];
        }
        const leases: PgLease<P>[] = [];
        for (const job of jobs) {
          let env: Envelope<P>;
          try {
            env = decodeEnvelope<P>(job.data, job.id);
          } catch (e) {
            // A foreign message: fail it through the normal path so it ends in the DLQ.
            await boss.fail(name, job.id, { message: errorMessage(e) });
            continue;
          }
          leases.push({
            delivery: {
              messageId: job.id,
              key: env.k ?? job.id,
              payload: env.p,
              attempt: job.retryCount + 1,
            },
            retryCount: job.retryCount,
          });
        }
        return leases;
      },
      ack: async (lease) => {
        await boss.complete(name, lease.delivery.messageId);
      },
      fail: async (lease, error) => {
        // pg-boss re-queues with its backoff, or marks failed and copies to the DLQ at the limit.
        await boss.fail(name, lease.delivery.messageId, { message: errorMessage(error) });
      },
      extend: async (lease, seconds) => {
        const { rows } = await db().executeSql(
          `UPDATE ${schema}.job SET expire_in = (now() - started_on) + make_interval(secs => $4)
           WHERE name = $1 AND id = $2 AND state = 'active' AND retry_count = $3 RETURNING 1`,
          [name, lease.delivery.messageId, lease.retryCount, seconds],
        );
        return rows.length === 1;
      },
      release: async (lease) => {
        await db().executeSql(
          `UPDATE ${schema}.job SET state = 'retry', start_after = now()
           WHERE name = $1 AND id = $2 AND state = 'active' AND retry_count = $3`,
          [name, lease.delivery.messageId, lease.retryCount],
        );
      },
    };
  }
}

function outputMessage(output: unknown): string | undefined {
  if (output === null || typeof output !== 'object') return undefined;
  const o = output as { message?: unknown; value?: { message?: unknown } };
  const message = o.message ?? o.value?.message;
  return typeof message === 'string' ? message : undefined;
}
