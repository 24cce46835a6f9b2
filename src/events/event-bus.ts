/**
 * Live job events across processes: Postgres LISTEN/NOTIFY on ONE dedicated connection per
 * process, fanned out in memory to any number of subscribers.
 *
 * NOTIFY is only a doorbell ({jobId, tenantId, seq}); the events themselves always come from the
 * durable log. Per job there is one in-memory hub holding the job's whole log (seq 1..n, a few
 * hundred small rows at most): the first subscriber makes the hub read the log, each doorbell
 * makes it read what is new (one query per job, however many subscribers), and every subscriber
 * takes the events after its own `afterSeq` from the hub. Because LISTEN is established before a
 * hub's first read and every read continues from the last seq it holds, no event is skipped or
 * repeated; a missed NOTIFY (listener reconnecting, PGlite without notifications) is covered by
 * re-reading all hubs after a reconnect and by a slow safety poll.
 */
import pg from 'pg';
import { AppError } from '../shared/errors.ts';
import { type Logger, logger as rootLogger } from '../shared/logger.ts';
import type { Prisma } from '../storage/db.ts';
import { readEvents } from './event-log.ts';
import { Feed } from './feed.ts';
import {
  isTerminalEvent,
  JOB_EVENTS_CHANNEL,
  type JobEventNotice,
  type JobEventRecord,
} from './job-events.ts';

export interface EventBusOptions {
  prisma: Prisma;
  /** Connection string for the dedicated LISTEN connection. */
  databaseUrl: string;
  /** Safety poll for missed notifications (default 2000 ms). */
  pollIntervalMs?: number;
  log?: Logger;
}

interface JobSub {
  feed: Feed<JobEventRecord>;
  last: number;
}

class JobHub {
  /** events[i] has seq i + 1: the job's log, contiguous from the start. */
  readonly events: JobEventRecord[] = [];
  readonly subs = new Set<JobSub>();
  #reading: Promise<void> | undefined;
  #again = false;
  loaded = false;

  constructor(
    readonly tenantId: string,
    readonly jobId: string,
    private readonly prisma: Prisma,
    private readonly log: Logger,
  ) {}

  get finished(): boolean {
    const lastEvent = this.events.at(-1);
    return lastEvent !== undefined && isTerminalEvent(lastEvent);
  }

  /** Reads new log rows; concurrent calls coalesce into at most one extra read. */
  refresh(): Promise<void> {
    if (this.#reading) {
      this.#again = true;
      return this.#reading;
    }
    this.#reading = (async () => {
      try {
        do {
          this.#again = false;
          const rows = await readEvents(this.prisma, this.tenantId, this.jobId, this.events.length);
          for (const row of rows) {
            // A seq that does not continue the log means rows we cannot see yet: stop and re-read.
            if (row.seq !== this.events.length + 1) {
              this.#again = true;
              break;
            }
            this.events.push(row);
          }
          this.loaded = true;
          this.#dispatch();
        } while (this.#again && !this.finished && this.subs.size > 0);
      } catch (e) {
        this.log.warn(
          { err: e, jobId: this.jobId },
          'event log read failed; the next notification or poll retries',
        );
      } finally {
        this.#reading = undefined;
      }
    })();
    return this.#reading;
  }

  #dispatch(): void {
    if (this.events.length === 0) {
      // Every job has seq 1 from the transaction that created it: no rows = not this tenant's job.
      for (const sub of this.subs)
        sub.feed.fail(new AppError('NOT_FOUND', `job ${this.jobId} was not found`));
      return;
    }
    for (const sub of this.subs) this.deliver(sub);
  }

  deliver(sub: JobSub): void {
    while (sub.last < this.events.length) {
      const e = this.events[sub.last];
      sub.last += 1;
      sub.feed.push(e);
      if (isTerminalEvent(e)) {
        sub.feed.end();
        return;
      }
    }
    // Resumed after the terminal event (afterSeq >= last seq of a finished job): nothing more comes.
    if (this.finished) sub.feed.end();
  }
}

interface TenantSub {
  feed: Feed<JobEventRecord>;
}

export class EventBus {
  readonly #prisma: Prisma;
  readonly #url: string;
  readonly #pollMs: number;
  readonly #log: Logger;
  readonly #hubs = new Map<string, JobHub>();
  readonly #tenantSubs = new Map<string, Set<TenantSub>>();
  /** Per tenant stream: last seq forwarded per job, so a doorbell reads only what is new. */
  readonly #tenantSeen = new Map<string, Map<string, number>>();
  #client: pg.Client | undefined;
  #ready: Promise<void> | undefined;
  #closed = false;
  #pollTimer: NodeJS.Timeout | undefined;
  #reconnectDelay = 100;

  constructor(options: EventBusOptions) {
    this.#prisma = options.prisma;
    this.#url = options.databaseUrl;
    this.#pollMs = options.pollIntervalMs ?? 2000;
    this.#log = options.log ?? rootLogger;
  }

  /** Connects the LISTEN client (called lazily by the first subscription). */
  start(): Promise<void> {
    this.#ready ??= this.#connect().finally(() => {
      this.#pollTimer ??= setInterval(() => void this.#poll(), this.#pollMs);
      this.#pollTimer.unref();
    });
    return this.#ready;
  }

  /** Number of live job subscriptions (tests and metrics). */
  get subscriberCount(): number {
    let n = 0;
    for (const hub of this.#hubs.values()) n += hub.subs.size;
    return n;
  }

  /**
   * Events of one job with seq > afterSeq: first the stored ones, then live ones, completing
   * after the terminal STATUS event. Fails with NOT_FOUND when the job is not the tenant's.
   */
  subscribeJob(tenantId: string, jobId: string, afterSeq = 0): AsyncIterableIterator<JobEventRecord> {
    if (this.#closed) throw new AppError('INTERNAL', 'event bus is closed');
    const key = `${tenantId}:${jobId}`;
    let hub = this.#hubs.get(key);
    if (!hub) {
      hub = new JobHub(tenantId, jobId, this.#prisma, this.#log);
      this.#hubs.set(key, hub);
    }
    const h = hub;
    const sub: JobSub = {
      last: Math.max(0, Math.floor(afterSeq)),
      feed: new Feed<JobEventRecord>(() => {
        h.subs.delete(sub);
        if (h.subs.size === 0 && this.#hubs.get(key) === h) this.#hubs.delete(key);
      }),
    };
    h.subs.add(sub);
    if (h.loaded) h.deliver(sub);
    // LISTEN first, then read: a doorbell for an event committed after this read is not lost.
    void this.start().then(() => h.refresh());
    return sub.feed;
  }

  /** Live events of all the tenant's jobs from now on (no replay). */
  subscribeTenant(tenantId: string): AsyncIterableIterator<JobEventRecord> {
    if (this.#closed) throw new AppError('INTERNAL', 'event bus is closed');
    let set = this.#tenantSubs.get(tenantId);
    if (!set) {
      set = new Set();
      this.#tenantSubs.set(tenantId, set);
      this.#tenantSeen.set(tenantId, new Map());
    }
    const s = set;
    const sub: TenantSub = {
      feed: new Feed<JobEventRecord>(() => {
        s.delete(sub);
        if (s.size === 0 && this.#tenantSubs.get(tenantId) === s) {
          this.#tenantSubs.delete(tenantId);
          this.#tenantSeen.delete(tenantId);
        }
      }),
    };
    s.add(sub);
    void this.start();
    return sub.feed;
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#pollTimer);
    for (const hub of this.#hubs.values()) for (const sub of hub.subs) sub.feed.end();
    for (const set of this.#tenantSubs.values()) for (const sub of set) sub.feed.end();
    this.#hubs.clear();
    this.#tenantSubs.clear();
    const client = this.#client;
    this.#client = undefined;
    await client?.end().catch(() => {});
  }

  async #connect(): Promise<void> {
    if (this.#closed) return;
    const client = new pg.Client({ connectionString: this.#url });
    client.on('notification', (msg) => {
      if (msg.channel !== JOB_EVENTS_CHANNEL || !msg.payload) return;
      try {
        this.#onNotice(JSON.parse(msg.payload) as JobEventNotice);
      } catch (e) {
        this.#log.warn({ err: e }, 'bad job event notification');
      }
    });
    const lost = (err?: unknown) => {
      if (this.#client !== client) return;
      this.#client = undefined;
      if (this.#closed) return;
      this.#log.warn({ err }, 'event bus LISTEN connection lost; reconnecting');
      const delay = this.#reconnectDelay;
      this.#reconnectDelay = Math.min(5000, delay * 2);
      setTimeout(() => void this.#connect(), delay).unref();
    };
    client.on('error', lost);
    client.on('end', () => lost());
    try {
      await client.connect();
      await client.query(`LISTEN ${JOB_EVENTS_CHANNEL}`);
      this.#client = client;
      this.#reconnectDelay = 100;
      // Anything committed while we were not listening is in the log: re-read every hub.
      for (const hub of this.#hubs.values()) void hub.refresh();
    } catch (e) {
      await client.end().catch(() => {});
      if (this.#closed) return;
      this.#log.warn({ err: e }, 'event bus could not LISTEN; retrying (polling meanwhile)');
      const delay = this.#reconnectDelay;
      this.#reconnectDelay = Math.min(5000, delay * 2);
      setTimeout(() => void this.#connect(), delay).unref();
    }
  }

  #onNotice(n: JobEventNotice): void {
    const hub = this.#hubs.get(`${n.tenantId}:${n.jobId}`);
    if (hub && n.seq > hub.events.length) void hub.refresh();
    if (this.#tenantSubs.has(n.tenantId)) void this.#forwardTenant(n.tenantId, n.jobId, n.seq);
  }

  async #forwardTenant(tenantId: string, jobId: string, seq: number): Promise<void> {
    const seen = this.#tenantSeen.get(tenantId);
    if (!seen) return;
    const after = seen.get(jobId) ?? seq - 1;
    if (seq <= after) return;
    seen.set(jobId, seq); // claim the range first so concurrent doorbells do not read it twice
    const rows = await readEvents(this.#prisma, tenantId, jobId, after).catch((e: unknown) => {
      this.#log.warn({ err: e, jobId }, 'tenant event read failed');
      return [];
    });
    const subs = this.#tenantSubs.get(tenantId);
    if (!subs) return;
    for (const row of rows) {
      if (row.seq > seq) break; // later rows come with their own doorbell
      for (const sub of subs) sub.feed.push(row);
    }
  }

  /** Safety net for lost notifications: one batched max(seq) query for all open hubs. */
  async #poll(): Promise<void> {
    const open = [...this.#hubs.values()].filter((h) => h.loaded && !h.finished);
    if (open.length === 0 || this.#closed) return;
    try {
      const ids = open.map((h) => h.jobId);
      const rows = await this.#prisma.jobEvent.groupBy({
        by: ['jobId'],
        where: { jobId: { in: ids } },
        _max: { seq: true },
      });
      const max = new Map(rows.map((r) => [r.jobId, r._max.seq ?? 0]));
      for (const hub of open) if ((max.get(hub.jobId) ?? 0) > hub.events.length) void hub.refresh();
    } catch (e) {
      this.#log.warn({ err: e }, 'event bus poll failed');
    }
  }
}
