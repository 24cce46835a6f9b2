/**
 * "Only one worker runs a job at a time", enforced by Postgres session advisory locks on one
 * dedicated connection per worker process. A worker that dies (SIGKILL, lost network) loses its
 * connection and with it the lock, which is how its death is noticed at once: the reconciler
 * (reconcile.ts) gives a RUNNING job whose lock nobody holds a new queue message, and the next
 * worker claims it. A live worker keeps its connection however busy its CPU is, so it is never
 * mistaken for dead. A worker that is alive but frozen (SIGSTOP, a hung host) keeps the lock;
 * once its heartbeat is older than the lease, `seize` ends its lock session so another worker can
 * take the job over (the frozen one is fenced out by the job lifecycle when it wakes).
 */
import pg from 'pg';
import { type Logger, logger as rootLogger } from '../shared/logger.ts';

const APPLICATION_NAME = 'harmon-worker-locks';

/** The advisory lock key text of a job (hashed with hashtextextended(key, 7) by every user). */
export const jobLockKey = (jobId: string) => `harmon-job:${jobId}`;

/**
 * SQL condition on `pg_locks l`: "l is a granted lock on the job whose id is the uuid expression
 * `idSql`" (pg_locks shows a bigint advisory key as classid = high 32 bits, objid = low 32 bits).
 */
export function jobLockRowSql(idSql: string): string {
  const h = `hashtextextended('harmon-job:' || ${idSql}::text, 7)`;
  return `l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
    AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
    AND l.classid::bigint = ((${h} >> 32) & 4294967295) AND l.objid::bigint = (${h} & 4294967295)`;
}

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
      const client = new pg.Client({ connectionString: this.#url, application_name: APPLICATION_NAME });
      client.on('error', (e) => {
        // Locks died with the connection; the next call reconnects. A job running now keeps
        // running until the reconciler hands it on; the lifecycle's fence then stops this attempt.
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
      jobLockKey(jobId),
    ]);
    return r.rows[0]?.ok === true;
  }

  /**
   * Ends the worker lock session holding the job's lock (a stalled worker's) and takes the lock.
   * Only sessions of this class are ended, never a transaction that holds the key briefly (the
   * reconciler's). False when the lock could not be taken (no privilege to end the session, or
   * the holder was not a worker lock session).
   */
  async seize(jobId: string): Promise<boolean> {
    const c = await this.#connection();
    await c.query(
      `SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a
       WHERE a.pid <> pg_backend_pid() AND a.application_name = $2
         AND a.pid IN (SELECT l.pid FROM pg_locks l WHERE ${jobLockRowSql('$1::uuid')})`,
      [jobId, APPLICATION_NAME],
    );
    for (let i = 0; i < 30; i++) {
      if (await this.tryLock(jobId)) return true;
      await new Promise((r) => setTimeout(r, 100));
    }
    return false;
  }

  async unlock(jobId: string): Promise<void> {
    try {
      const c = await this.#connection();
      await c.query('SELECT pg_advisory_unlock(hashtextextended($1, 7))', [jobLockKey(jobId)]);
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
