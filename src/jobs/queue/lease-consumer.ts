import {
  type ConsumeOptions,
  type Consumer,
  type Delivery,
  type Handler,
  LeaseLostError,
  type StopOptions,
} from './port.ts';

/**
 * One received message as a backend driver sees it: the delivery handed to the handler plus
 * whatever the backend needs to ack/extend/release it (receipt handle, started_on fence...).
 */
export interface Lease<P> {
  delivery: Delivery<P>;
}

/**
 * The backend half of a consumer. The receive loop, concurrency, heartbeats, idempotency and
 * shutdown live in LeaseConsumer once, so Postgres and SQS cannot drift apart in semantics.
 */
export interface LeaseDriver<P, L extends Lease<P>> {
  /** Returns up to `max` leases; may wait (long poll or one poll interval), returns [] on abort. */
  receive(max: number, signal: AbortSignal): Promise<L[]>;
  ack(lease: L): Promise<void>;
  /** Handler failed: schedule a retry with backoff, or dead-letter after the last attempt. */
  fail(lease: L, error: unknown): Promise<void>;
  /** Makes the lease end `seconds` from now; false when it is no longer ours. */
  extend(lease: L, seconds: number): Promise<boolean>;
  /** Makes the message visible again at once without recording a failure. */
  release(lease: L): Promise<void>;
}

interface Running {
  abort: AbortController;
  done: Promise<void>;
  /** Set when stop() gave up waiting and released the message behind the handler's back. */
  forceReleased: boolean;
  leaseLost: boolean;
  /** The lease length each heartbeat renews (the visibility timeout unless setLease shortened it). */
  leaseSeconds: number;
  /** The automatic heartbeat: every third of leaseSeconds. */
  timer?: NodeJS.Timeout;
}

/** Grace period for aborted handlers to unwind before their messages are force-released. */
const ABORT_GRACE_MS = 2000;
/** Pause after a backend error in the receive loop so a dead database is not hammered. */
const ERROR_BACKOFF_MS = 1000;

export class LeaseConsumer<P, L extends Lease<P>> implements Consumer {
  readonly #driver: LeaseDriver<P, L>;
  readonly #handler: Handler<P>;
  readonly #options: ConsumeOptions<P>;
  readonly #visibilitySeconds: number;
  readonly #running = new Map<L, Running>();
  readonly #pollAbort = new AbortController();
  #stopping = false;
  #stopped: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  readonly #loop: Promise<void>;

  constructor(
    driver: LeaseDriver<P, L>,
    handler: Handler<P>,
    options: ConsumeOptions<P>,
    visibilityTimeoutSeconds: number,
  ) {
    this.#driver = driver;
    this.#handler = handler;
    this.#options = options;
    this.#visibilitySeconds = visibilityTimeoutSeconds;
    this.#loop = this.#run();
  }

  get inFlight(): number {
    return this.#running.size;
  }

  stop(options: StopOptions = {}): Promise<void> {
    this.#stopped ??= this.#shutdown(options.mode ?? 'finish', options.timeoutMs ?? 30_000);
    return this.#stopped;
  }

  async #shutdown(mode: 'finish' | 'release', timeoutMs: number): Promise<void> {
    this.#stopping = true;
    this.#pollAbort.abort();
    this.#wake?.();
    await this.#loop;
    if (mode === 'finish') await this.#waitForHandlers(timeoutMs);
    for (const r of this.#running.values()) r.abort.abort(new Error('consumer stopping: job released'));
    await this.#waitForHandlers(mode === 'release' ? timeoutMs : ABORT_GRACE_MS);
    // Handlers that ignore their AbortSignal: give the message back anyway so another worker can
    // run it now instead of after the visibility timeout. The handler's later outcome is ignored.
    await Promise.all(
      [...this.#running].map(async ([lease, r]) => {
        r.forceReleased = true;
        await this.#safe(() => this.#driver.release(lease), lease.delivery);
      }),
    );
  }

  async #waitForHandlers(timeoutMs: number): Promise<void> {
    if (this.#running.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    await Promise.race([Promise.all([...this.#running.values()].map((r) => r.done)), timeout]);
    clearTimeout(timer);
  }

  async #run(): Promise<void> {
    const concurrency = Math.max(1, this.#options.concurrency ?? 1);
    while (!this.#stopping) {
      const free = concurrency - this.#running.size;
      if (free <= 0) {
        await new Promise<void>((resolve) => {
          this.#wake = resolve;
        });
        continue;
      }
      let leases: L[];
      try {
        leases = await this.#driver.receive(free, this.#pollAbort.signal);
      } catch (e) {
        if (this.#stopping) break;
        this.#report(e);
        await sleep(ERROR_BACKOFF_MS, this.#pollAbort.signal);
        continue;
      }
      if (this.#stopping) {
        // Received while stop() was called: hand them straight back.
        await Promise.all(leases.map((l) => this.#safe(() => this.#driver.release(l), l.delivery)));
        break;
      }
      for (const lease of leases) this.#start(lease);
    }
  }

  #start(lease: L): void {
    const entry: Running = {
      abort: new AbortController(),
      done: Promise.resolve(),
      forceReleased: false,
      leaseLost: false,
      leaseSeconds: this.#visibilitySeconds,
    };
    this.#running.set(lease, entry);
    entry.done = this.#handle(lease, entry).finally(() => {
      this.#running.delete(lease);
      this.#wake?.();
    });
  }

  async #handle(lease: L, entry: Running): Promise<void> {
    const delivery = lease.delivery;
    let alreadyDone = false;
    try {
      alreadyDone = (await this.#options.isAlreadyDone?.(delivery)) ?? false;
    } catch (e) {
      // Cannot tell whether the work was done (e.g. database down): count it as a failed attempt
      // rather than risk a second result.
      this.#report(e, delivery);
      await this.#safe(() => this.#driver.fail(lease, e), delivery);
      return;
    }
    if (alreadyDone) {
      await this.#safe(() => this.#driver.ack(lease), delivery);
      return;
    }

    const heartbeat = async (): Promise<boolean> => {
      if (entry.leaseLost || entry.forceReleased) return false;
      let ok: boolean;
      try {
        ok = await this.#driver.extend(lease, entry.leaseSeconds);
      } catch (e) {
        // A transient error is not proof that the lease is gone; the next beat may succeed.
        this.#report(e, delivery);
        return false;
      }
      if (!ok) {
        entry.leaseLost = true;
        entry.abort.abort(new LeaseLostError());
      }
      return ok;
    };
    const beatEveryThird = () => {
      clearInterval(entry.timer);
      // A third of the lease leaves two chances to extend before it runs out.
      if (this.#options.autoHeartbeat !== false)
        entry.timer = setInterval(() => void heartbeat(), Math.max(200, (entry.leaseSeconds * 1000) / 3));
    };
    const setLease = (seconds?: number): Promise<boolean> => {
      const wanted = seconds === undefined ? this.#visibilitySeconds : Math.max(1, Math.ceil(seconds));
      entry.leaseSeconds = Math.min(wanted, this.#visibilitySeconds);
      beatEveryThird();
      return heartbeat();
    };
    beatEveryThird();

    let failure: { error: unknown } | undefined;
    try {
      await this.#handler(delivery, { signal: entry.abort.signal, heartbeat, setLease });
    } catch (e) {
      failure = { error: e };
    } finally {
      clearInterval(entry.timer);
    }

    if (entry.forceReleased || entry.leaseLost) return; // someone else owns the message now
    if (!failure) {
      await this.#safe(() => this.#driver.ack(lease), delivery);
    } else if (this.#stopping && entry.abort.signal.aborted) {
      await this.#safe(() => this.#driver.release(lease), delivery);
    } else {
      this.#report(failure.error, delivery);
      await this.#safe(() => this.#driver.fail(lease, failure.error), delivery);
    }
  }

  async #safe(op: () => Promise<void>, delivery: Delivery<P>): Promise<void> {
    try {
      await op();
    } catch (e) {
      // The message stays leased and re-appears after the visibility timeout: at-least-once holds.
      this.#report(e, delivery);
    }
  }

  #report(error: unknown, delivery?: Delivery<P>): void {
    try {
      this.#options.onError?.(error, delivery);
    } catch {
      // A broken error callback must not kill the receive loop.
    }
  }
}

/**
 * The consumers one queue has started. Both backends hand out consumers the same way and on
 * close() release whatever those still hold, so the bookkeeping lives here once.
 */
export class ConsumerSet {
  readonly #consumers = new Set<Consumer>();

  start<P, L extends Lease<P>>(
    driver: LeaseDriver<P, L>,
    handler: Handler<P>,
    options: ConsumeOptions<P>,
    visibilityTimeoutSeconds: number,
  ): Consumer {
    const consumer = new LeaseConsumer(driver, handler, options, visibilityTimeoutSeconds);
    this.#consumers.add(consumer);
    return {
      get inFlight() {
        return consumer.inFlight;
      },
      stop: async (stopOptions) => {
        await consumer.stop(stopOptions);
        this.#consumers.delete(consumer);
      },
    };
  }

  /** On close: running jobs go back to the queue at once rather than after the lease runs out. */
  async releaseAll(): Promise<void> {
    await Promise.all([...this.#consumers].map((c) => c.stop({ mode: 'release', timeoutMs: 5000 })));
    this.#consumers.clear();
  }
}

/** Resolves after `ms`, or early when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
