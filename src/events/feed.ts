/**
 * A push-driven async iterator: producers `push`, one consumer iterates. Unlike an async
 * generator, `return()` takes effect at once even while the consumer awaits `next()` — a GraphQL
 * subscription that ends must release its bus registration now, not at the next event.
 */
export class Feed<T> implements AsyncIterableIterator<T> {
  readonly #buffer: T[] = [];
  #waiter: { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void } | undefined;
  #ended = false;
  #closed = false;
  #error: unknown;
  readonly #onClose: () => void;

  constructor(onClose: () => void = () => {}) {
    this.#onClose = onClose;
  }

  get closed(): boolean {
    return this.#closed || this.#ended;
  }

  push(value: T): void {
    if (this.#closed || this.#ended) return;
    if (this.#waiter) {
      const w = this.#waiter;
      this.#waiter = undefined;
      w.resolve({ value, done: false });
    } else {
      this.#buffer.push(value);
    }
  }

  /** No more values: the consumer drains the buffer, then sees done. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    if (this.#waiter && this.#buffer.length === 0) {
      const w = this.#waiter;
      this.#waiter = undefined;
      w.resolve({ value: undefined, done: true });
      this.#close();
    }
  }

  /** Ends with an error, delivered after the buffered values. */
  fail(error: unknown): void {
    if (this.#ended) return;
    this.#error = error;
    this.#ended = true;
    if (this.#waiter && this.#buffer.length === 0) {
      const w = this.#waiter;
      this.#waiter = undefined;
      w.reject(error);
      this.#close();
    }
  }

  next(): Promise<IteratorResult<T>> {
    if (this.#buffer.length > 0) return Promise.resolve({ value: this.#buffer.shift() as T, done: false });
    if (this.#ended || this.#closed) {
      this.#close();
      if (this.#error !== undefined) {
        const e = this.#error;
        this.#error = undefined;
        return Promise.reject(e);
      }
      return Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
  }

  return(): Promise<IteratorResult<T>> {
    this.#buffer.length = 0;
    this.#ended = true;
    this.#error = undefined;
    if (this.#waiter) {
      const w = this.#waiter;
      this.#waiter = undefined;
      w.resolve({ value: undefined, done: true });
    }
    this.#close();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#onClose();
  }
}
