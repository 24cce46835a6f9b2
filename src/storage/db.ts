/**
 * Prisma client factory. Every database access in the platform goes through a client made here,
 * over @prisma/adapter-pg (Prisma 7 has no bundled query engine).
 *
 * Every wait on the database is bounded, so a database that refuses or stops answering turns
 * into an error within seconds instead of a request that hangs for the whole outage:
 * - connecting (and waiting for a free pooled connection): `connectTimeoutMs`;
 * - each statement: `statement_timeout` on the server (a slow query is cancelled there and the
 *   connection stays usable) and a client-side read timeout a little later (the server is silent:
 *   the connection is then dropped, not reused, since its stream is stuck);
 * - interactive transactions: waiting to start and running, via Prisma's transaction options.
 * `isDatabaseUnavailable` recognises the resulting errors, for a retryable answer to clients.
 */
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { PrismaClient } from '../generated/prisma/client.ts';

export type Prisma = PrismaClient;
export { PrismaClient };

/** Defaults; a URL's `connect_timeout` / `socket_timeout` (seconds, Prisma's names) override them. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
export const DEFAULT_STATEMENT_TIMEOUT_MS = 10_000;
/** How much later than the server's statement timeout the client gives up on a silent server. */
const CLIENT_READ_GRACE_MS = 2_000;

export type CreatePrismaOptions = {
  /** Postgres schema holding the tables (tests use a fresh one per file). Default: public. */
  schema?: string;
  /** Pool size. Keep it small on PGlite: its socket server accepts few connections. */
  max?: number;
  /** Connecting, or waiting for a pooled connection. */
  connectTimeoutMs?: number;
  /** One statement (server-side statement_timeout; the client waits CLIENT_READ_GRACE_MS longer). */
  statementTimeoutMs?: number;
};

/**
 * The schema a connection string names: Prisma's `?schema=x`, else the first entry of
 * `?options=-c search_path=x`. Undefined means public.
 */
export function schemaFromUrl(databaseUrl: string): string | undefined {
  if (!URL.canParse(databaseUrl)) return undefined;
  const params = new URL(databaseUrl).searchParams;
  const explicit = params.get('schema');
  if (explicit) return explicit;
  const m = /search_path\s*=\s*"?([^",\s]+)/.exec(params.get('options') ?? '');
  return m?.[1];
}

/** A timeout in seconds from the URL's query (`connect_timeout=5`), as milliseconds. */
function secondsParam(databaseUrl: string, name: string): number | undefined {
  if (!URL.canParse(databaseUrl)) return undefined;
  const v = Number(new URL(databaseUrl).searchParams.get(name) ?? Number.NaN);
  return Number.isFinite(v) && v > 0 ? v * 1000 : undefined;
}

/**
 * A pg client that drops its connection when a statement outlives the client-side read timeout.
 * pg reports the timeout to the caller but keeps the connection, with the unanswered statement
 * still in flight; pooled again, every later statement on it would wait behind that one. Ending
 * the stream makes the pool discard the client when it is released.
 */
class DroppingClient extends pg.Client {
  // biome-ignore lint/suspicious/noExplicitAny: pg's query has a dozen overloads; this passes them through.
  override query(...args: any[]): any {
    // biome-ignore lint/suspicious/noExplicitAny: see above.
    const r = (super.query as (...a: any[]) => any)(...args);
    if (r && typeof r.then === 'function') {
      r.then(undefined, (e: unknown) => {
        if ((e as Error)?.message === 'Query read timeout') {
          (this as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
        }
      });
    }
    return r;
  }
}

export function createPrisma(databaseUrl: string, options: CreatePrismaOptions = {}): PrismaClient {
  // Prisma qualifies every table with the adapter's schema ("public" by default) and ignores the
  // session search_path, so a schema named in the URL must be passed on explicitly.
  const {
    schema = schemaFromUrl(databaseUrl),
    max = 10,
    connectTimeoutMs = secondsParam(databaseUrl, 'connect_timeout') ?? DEFAULT_CONNECT_TIMEOUT_MS,
    statementTimeoutMs = secondsParam(databaseUrl, 'socket_timeout') ?? DEFAULT_STATEMENT_TIMEOUT_MS,
  } = options;
  const adapter = new PrismaPg(
    {
      connectionString: databaseUrl,
      max,
      Client: DroppingClient,
      connectionTimeoutMillis: connectTimeoutMs,
      statement_timeout: statementTimeoutMs,
      query_timeout: statementTimeoutMs + CLIENT_READ_GRACE_MS,
      // Raw SQL ($queryRaw) is not schema-qualified by Prisma, so the session search_path must
      // point at the schema too.
      ...(schema ? { options: `-c search_path="${schema}"` } : {}),
    },
    schema ? { schema } : undefined,
  );
  return new PrismaClient({
    adapter,
    transactionOptions: {
      // Waiting for a connection to start on is bounded by the pool's own connect timeout too.
      maxWait: connectTimeoutMs,
      timeout: 2 * statementTimeoutMs,
    },
  });
}

/** Postgres SQLSTATEs that mean "not now, try again": connection trouble, shutdown, overload. */
const RETRYABLE_SQLSTATE = /^(08...|57P0[1-3]|53300|57014)$/;
/** Socket error codes and adapter error kinds of an unreachable or vanished database. */
const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'DatabaseNotReachable',
  'ConnectionClosed',
  'SocketTimeout',
  'TooManyConnections',
]);
/** Prisma's codes for the same: can't reach, timed out, closed, pool or transaction wait expired. */
const PRISMA_UNAVAILABLE = new Set(['P1001', 'P1002', 'P1008', 'P1017', 'P2024', 'P2028']);
/** pg's own errors without a code (pool wait, connect and read timeouts, a dropped stream). */
const PG_MESSAGES =
  /timeout exceeded when trying to connect|Connection terminated|Query read timeout|Client has encountered a connection error|not queryable|Unable to start a transaction in the given time|Transaction already closed/i;

/**
 * True when `e` (or anything in its cause chain, including Prisma's wrapped adapter error) says
 * the database could not be reached or did not answer in time: a condition worth retrying, not
 * a bug. False for errors the database returned about the statement itself.
 */
export function isDatabaseUnavailable(e: unknown): boolean {
  const seen = new Set<unknown>();
  const queue: unknown[] = [e];
  while (queue.length > 0) {
    const x = queue.shift();
    if (x === null || typeof x !== 'object' || seen.has(x)) continue;
    seen.add(x);
    const o = x as {
      code?: unknown;
      kind?: unknown;
      originalCode?: unknown;
      message?: unknown;
      cause?: unknown;
      meta?: { driverAdapterError?: unknown };
      errors?: unknown;
    };
    for (const c of [o.code, o.kind, o.originalCode]) {
      if (typeof c !== 'string') continue;
      if (UNREACHABLE.has(c) || PRISMA_UNAVAILABLE.has(c) || RETRYABLE_SQLSTATE.test(c)) return true;
    }
    if (typeof o.message === 'string' && PG_MESSAGES.test(o.message)) return true;
    queue.push(o.cause, o.meta?.driverAdapterError);
    if (Array.isArray(o.errors)) queue.push(...o.errors); // AggregateError (e.g. IPv4 + IPv6 refused)
  }
  return false;
}
