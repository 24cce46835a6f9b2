/**
 * Who may run batches against PGlite's single backend right now. A holder keeps the lock across
 * batches while its session state (open transaction, unfinished extended sequence) lives in that
 * backend; others wait in arrival order, so no connection can starve another.
 */
export class SessionLock<T> {
  #owner: T | null = null;
  readonly #waiters: Array<{ who: T; grant: () => void }> = [];

  get owner(): T | null {
    return this.#owner;
  }

  /** Resolves once `who` holds the lock (at once if it already does or nobody does). */
  acquire(who: T): Promise<void> {
    if (this.#owner === who) return Promise.resolve();
    if (this.#owner === null) {
      this.#owner = who;
      return Promise.resolve();
    }
    return new Promise((grant) => this.#waiters.push({ who, grant }));
  }

  /** Hands the lock to the longest waiter; a no-op for anyone but the owner. */
  release(who: T): void {
    if (this.#owner !== who) return;
    const next = this.#waiters.shift();
    this.#owner = next ? next.who : null;
    next?.grant();
  }

  get waiting(): number {
    return this.#waiters.length;
  }
}
