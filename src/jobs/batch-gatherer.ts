/**
 * Gathers queue deliveries into cross-job batches (issue #14). The worker consumes up to twice
 * WORKER_MAX_BATCH messages at once (per batch it runs in parallel); every delivery of a live job
 * waits here, oldest job first (by enqueue time: deliveries of one fetch finish their database
 * checks in any order), until a batch takes it. Jobs whose
 * keys are equal (same model, image size and MAR step count: `JobRunner.batchKey`) may share one
 * MAR loop; a null key (describe, or a job that must run alone) is a batch of one.
 *
 * Composition policy (fairness):
 * - the LEADER is the oldest waiting job (enqueued first), whatever its tenant or key: nothing waits behind
 *   younger work, and a key no one shares still runs within one gather window;
 * - once a run slot is free, the leader waits GATHER_MS from its own arrival for companions
 *   (a leader that already waited that long, say behind a running batch, goes at once), and
 *   also while deliveries this worker has already received are still being checked (`arriving`;
 *   at most ARRIVAL_WAIT x GATHER_MS): a message in hand is deliverable, however slow the
 *   database is that day, so the composition sees it;
 * - companions are the waiting deliveries with the leader's key, taken ROUND-ROBIN BY TENANT
 *   (tenants in the order of their oldest waiting delivery, the leader's own tenant last in each
 *   round, each tenant's deliveries oldest first) until the batch has maxBatch jobs. One tenant
 *   with many queued jobs therefore cannot fill a batch while another tenant's job of the same
 *   key waits here; the rest stay for the next batch, keeping their age.
 * "Waiting here" is what the queue has delivered to this worker: the look-ahead is the extra
 * maxBatch messages it holds beyond a running batch. The tenant concurrency limit is applied
 * after composition, by each job's own claim (a job without a free slot drops out of its batch).
 */

/** How long a batch's leader waits for companions: short next to any generation. */
export const GATHER_MS = 50;
/** The longest a leader waits for received deliveries still being checked, in gather windows. */
const ARRIVAL_WAIT = 20;

export interface Gatherable {
  /** Equal keys may share a batch; null: always a batch of one. */
  key: string | null;
  tenantId: string;
  /** When the job was enqueued (ms): the pool's order. Absent: when it arrived here. */
  enqueuedAt?: number;
}

/** Thrown to deliveries still waiting when the gatherer closes (the worker is stopping). */
export class GathererClosedError extends Error {
  constructor() {
    super('the worker stopped before this job was picked for a batch');
    this.name = 'GathererClosedError';
  }
}

/**
 * The batch led by `pool[0]` (pool oldest job first): the policy above, as a pure function.
 * Returns the chosen entries, leader first.
 */
export function composeBatch<E extends Gatherable>(pool: readonly E[], maxBatch: number): E[] {
  const leader = pool[0];
  if (!leader) return [];
  if (leader.key === null || maxBatch <= 1) return [leader];
  const byTenant = new Map<string, E[]>();
  for (const e of pool.slice(1)) {
    if (e.key !== leader.key) continue;
    const list = byTenant.get(e.tenantId) ?? [];
    list.push(e);
    byTenant.set(e.tenantId, list);
  }
  // The leader's tenant already has a row in this round: it comes last in every round.
  const tenants = [...byTenant.keys()].filter((t) => t !== leader.tenantId);
  if (byTenant.has(leader.tenantId)) tenants.push(leader.tenantId);
  const picked = [leader];
  while (picked.length < maxBatch) {
    let took = false;
    for (const t of tenants) {
      const next = byTenant.get(t)?.shift();
      if (!next) continue;
      picked.push(next);
      took = true;
      if (picked.length >= maxBatch) break;
    }
    if (!took) break;
  }
  return picked;
}

export interface GathererOptions<T> {
  maxBatch: number;
  gatherMs?: number;
  /** Batches running at once (the worker's --concurrency). */
  parallel?: number;
  /**
   * Runs one batch: one settled outcome per item, in order. `engineFree` says the device is free
   * for the next batch (the jobs may still be uploading and writing their endings).
   */
  run(items: T[], key: string | null, engineFree: () => void): Promise<PromiseSettledResult<void>[]>;
}

interface Waiting<T> extends Gatherable {
  item: T;
  arrival: number;
  signal: AbortSignal;
  onAbort: () => void;
  resolve: () => void;
  reject: (e: unknown) => void;
}

export class BatchGatherer<T> {
  readonly #o: Required<Omit<GathererOptions<T>, 'run'>> & Pick<GathererOptions<T>, 'run'>;
  readonly #pool: Waiting<T>[] = [];
  /** Start times of deliveries received but not yet submitted (or found to have nothing to run). */
  readonly #arriving = new Set<{ since: number }>();
  #busy = 0;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: GathererOptions<T>) {
    this.#o = { gatherMs: GATHER_MS, parallel: 1, ...options };
  }

  get waiting(): number {
    return this.#pool.length;
  }

  /**
   * Says a delivery has been received and is being checked: batches wait for it (bounded). The
   * returned function ends the wait; `submit` takes it and ends it as the delivery joins.
   */
  arriving(): () => void {
    const token = { since: Date.now() };
    this.#arriving.add(token);
    return () => {
      if (this.#arriving.delete(token)) this.#pump();
    };
  }

  /**
   * Waits for a batch to take `item` and run it; settles with the item's own outcome. Rejects
   * with the signal's reason if it aborts while waiting, or GathererClosedError on close.
   */
  submit(entry: Gatherable & { item: T; signal: AbortSignal; arrived?: () => void }): Promise<void> {
    if (this.#closed || entry.signal.aborted) {
      entry.arrived?.();
      return Promise.reject(this.#closed ? new GathererClosedError() : entry.signal.reason);
    }
    return new Promise<void>((resolve, reject) => {
      const w: Waiting<T> = {
        ...entry,
        arrival: Date.now(),
        resolve,
        reject,
        onAbort: () => {
          const i = this.#pool.indexOf(w);
          if (i < 0) return;
          this.#pool.splice(i, 1);
          reject(entry.signal.reason);
          this.#pump();
        },
      };
      entry.signal.addEventListener('abort', w.onAbort, { once: true });
      // Oldest job first; equal ages keep their arrival order.
      const age = (x: Waiting<T>) => x.enqueuedAt ?? x.arrival;
      const at = this.#pool.findIndex((x) => age(x) > age(w));
      this.#pool.splice(at < 0 ? this.#pool.length : at, 0, w);
      entry.arrived?.(); // pumps, with this delivery already in the pool
      this.#pump();
    });
  }

  /** Every waiting delivery (and any later one) rejects with GathererClosedError. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    for (const w of this.#pool.splice(0)) {
      w.signal.removeEventListener('abort', w.onAbort);
      w.reject(new GathererClosedError());
    }
  }

  #pump(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    while (!this.#closed && this.#busy < this.#o.parallel && this.#pool.length > 0) {
      const leader = this.#pool[0];
      const now = Date.now();
      let wait = leader.arrival + this.#o.gatherMs - now;
      for (const a of this.#arriving) wait = Math.max(wait, a.since + this.#o.gatherMs * ARRIVAL_WAIT - now);
      if (leader.key !== null && this.#o.maxBatch > 1 && wait > 0) {
        // Woken by the timer, or earlier by an arrival ending (its submit pumps).
        this.#timer = setTimeout(() => this.#pump(), wait);
        return;
      }
      const group = composeBatch(this.#pool, this.#o.maxBatch);
      for (const w of group) {
        this.#pool.splice(this.#pool.indexOf(w), 1);
        w.signal.removeEventListener('abort', w.onAbort);
      }
      this.#launch(group, leader.key);
    }
  }

  #launch(group: Waiting<T>[], key: string | null): void {
    this.#busy++;
    let freed = false;
    const free = () => {
      if (freed) return;
      freed = true;
      this.#busy--;
      this.#pump();
    };
    Promise.resolve()
      .then(() =>
        this.#o.run(
          group.map((w) => w.item),
          key,
          free,
        ),
      )
      .then(
        (results) =>
          group.forEach((w, i) => {
            const r = results[i];
            if (r?.status === 'fulfilled') w.resolve();
            else w.reject(r ? r.reason : new Error('the batch gave no outcome for this job'));
          }),
        (e: unknown) => {
          for (const w of group) w.reject(e);
        },
      )
      .finally(free);
  }
}
