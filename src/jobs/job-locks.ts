/**
 * "Only one worker runs a job at a time", enforced by Postgres session advisory locks on one
 * dedicated connection per worker process. A worker that dies (SIGKILL, lost network) loses its
 * connection and with it the lock, so the re-delivered message can claim the job at once; a
 * duplicate message (sweeper re-send, at-least-once delivery) finds the lock taken and backs off
 * instead of running the same job twice in parallel.
 */
import pg from 'pg';
import { type Logger, logger as rootLogger } from '../shared/logger.ts';

export class JobLocks {
  readonly #url: string;
  readonly #log: Logger;
  #client: Promise<pg.Client> | undefined;

  constructor(databaseUrl: string, log: Logger = rootLogger) {
    this.#url = databaseUrl;
    this.#log = log;
  }

  #connection(): Promise<pg.Client> {
    this.#client ??= (async () => {
      const client = new pg.Client({ connectionString: this.#url, application_name: 'harmon-worker-locks' });
      client.on('error', (e) => {
        // Locks died with the connection; the next call reconnects. A job running now keeps
        // running; its queue lease (heartbeats) still fences it.
        this.#log.warn({ err: e }, 'job lock connection lost');
        this.#client = undefined;
      });
      await client.connect();
      return client;
    })();
    this.#client.catch(() => {
      this.#client = undefined;
    });
    return this.#client;
  }

  /** True when this process now holds the job's lock. */
  async tryLock(jobId: string): Promise<boolean> {
    const c = await this.#connection();
    const r = await c.query<{ ok: boolean }>('SELECT pg_try_advisory_lock(hashtextextended($1, 7)) AS ok', [
      `harmon-job:${jobId}`,
    ]);
    return r.rows[0]?.ok === true;
  }

  async unlock(jobId: string): Promise<void> {
    try {
      const c = await this.#connection();
      await c.query('SELECT pg_advisory_unlock(hashtextextended($1, 7))', [`harmon-job:${jobId}`]);
    } catch (e) {
      this.#log.warn({ err: e, jobId }, 'job unlock failed (released when the connection closes)');
    }
  }

  async close(): Promise<void> {
    const c = this.#client;
    this.#client = undefined;
    if (c) await (await c.catch(() => undefined))?.end().catch(() => {});
  }
}
