/**
 * "Only one worker runs a job at a time", enforced by Postgres session advisory locks on one
 * dedicated connection per worker process. A worker that dies (SIGKILL, lost network) loses its
 * connection and with it the lock, which is how its death is noticed at once: the reconciler
 * (reconcile.ts) gives a RUNNING job whose lock nobody holds a new queue message, and the next
 * worker claims it. A live worker keeps its connection however busy its CPU is, so it is never
 * mistaken for dead. A worker that is alive but frozen (SIGSTOP, a hung host) keeps the lock;
 * once its heartbeat is older than the lease, `seize` ends its database sessions so another
 * worker can take the job over (the frozen one is fenced out by the job lifecycle when it wakes).
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { type Logger, logger as rootLogger } from '../shared/logger.ts';

const SESSION_PREFIX = 'harmon-worker:';

/**
 * The database URL for every connection of one worker process (Prisma, pg-boss, the lock
 * connection): all its sessions carry one application_name, so `seize` can end them together.
 * Ending only the lock session is not enough: a worker frozen inside a transaction holds the Job
 * row lock there, and the taking-over claim would wait on it until the frozen worker wakes up.
 */
export function workerSessionUrl(databaseUrl: string): string {
  const u = new URL(databaseUrl);
  u.searchParams.set('application_name', `${SESSION_PREFIX}${process.pid}-${randomBytes(4).toString('hex')}`);
  return u.toString();
}

/** The advisory lock key text of a job (hashed with hashtextextended(key, 7) by every user). */
export const jobLockKey = (jobId: string) => `harmon-job:${jobId}`;

/** SQL condition on `pg_locks l`: a granted bigint advisory lock in this database. */
const HELD_ADVISORY = `l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`;

/**
 * SQL condition: the advisory key split into `hi`/`lo` (pg_locks shows a bigint key as classid =
 * high 32 bits, objid = low 32 bits) is the lock of the job whose id is the uuid expression `idSql`.
 */
function jobKeyIs(hi: string, lo: string, idSql: string): string {
  const h = `hashtextextended('harmon-job:' || ${idSql}::text, 7)`;
  return `${hi}::bigint = ((${h} >> 32) & 4294967295) AND ${lo}::bigint = (${h} & 4294967295)`;
}

/** SQL condition on `pg_locks l`: l is a granted lock on the job with id `idSql`. */
export const jobLockRowSql = (idSql: string) =>
  `${HELD_ADVISORY} AND ${jobKeyIs('l.classid', 'l.objid', idSql)}`;

/**
 * A query for up to $1 RUNNING jobs whose lock no session holds (their worker is gone); pg_locks
 * is read once, not once per job.
 */
export const UNLOCKED_RUNNING_JOBS_SQL = `
  WITH held AS MATERIALIZED (SELECT l.classid AS hi, l.objid AS lo FROM pg_locks l WHERE ${HELD_ADVISORY})
  SELECT j.id::text AS id FROM "Job" j
  WHERE j.status = 'RUNNING' AND NOT EXISTS (SELECT 1 FROM held h WHERE ${jobKeyIs('h.hi', 'h.lo', 'j.id')})
  ORDER BY j."heartbeatAt" NULLS FIRST LIMIT $1`;

export class JobLocks {
  readonly #url: string;
  readonly #log: Logger;
  #client: Promise<pg.Client> | undefined;
  /** One statement at a time on the connection (a batch takes several jobs' locks at once). */
  #turn: Promise<unknown> = Promise.resolve();

  constructor(databaseUrl: string, log: Logger = rootLogger) {
    this.#url = databaseUrl;
    this.#log = log;
  }

  #connection(): Promise<pg.Client> {
    this.#client ??= (async () => {
      const client = new pg.Client({ connectionString: this.#url });
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

  #query<R extends pg.QueryResultRow>(text: string, values: unknown[]): Promise<pg.QueryResult<R>> {
    const run = this.#turn.then(async () => (await this.#connection()).query<R>(text, values));
    this.#turn = run.catch(() => undefined);
    return run;
  }

  /** True when this process now holds the job's lock. */
  async tryLock(jobId: string): Promise<boolean> {
    const r = await this.#query<{ ok: boolean }>(
      'SELECT pg_try_advisory_lock(hashtextextended($1, 7)) AS ok',
      [jobLockKey(jobId)],
    );
    return r.rows[0]?.ok === true;
  }

  /**
   * Ends every database session of the worker process holding the job's lock (a frozen worker's,
   * tagged by workerSessionUrl) and takes the lock. Never ends an untagged session, such as the
   * reconciler's transaction that holds the key for a moment. False when the lock could not be
   * taken (the holder is untagged, or ending sessions is not permitted).
   */
  async seize(jobId: string): Promise<boolean> {
    await this.#query(
      `WITH holder AS (
         SELECT a.application_name AS name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE ${jobLockRowSql('$1::uuid')} AND a.pid <> pg_backend_pid())
       SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a JOIN holder h ON a.application_name = h.name
       WHERE h.name LIKE $2 AND a.pid <> pg_backend_pid()`,
      [jobId, `${SESSION_PREFIX}%`],
    );
    for (let i = 0; i < 30; i++) {
      if (await this.tryLock(jobId)) return true;
      await new Promise((r) => setTimeout(r, 100));
    }
    return false;
  }

  async unlock(jobId: string): Promise<void> {
    try {
      await this.#query('SELECT pg_advisory_unlock(hashtextextended($1, 7))', [jobLockKey(jobId)]);
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
