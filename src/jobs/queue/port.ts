/**
 * The job queue port: the only thing the API (producer) and the worker (consumer) know about
 * queuing. Two implementations share these semantics and one contract test suite
 * (test/jobs/queue/contract.ts): Postgres via pg-boss (default, embedded and single-box) and
 * Amazon SQS (the AWS deployment in infra/).
 *
 * Semantics, identical for both backends:
 * - At-least-once delivery. A message is leased to one consumer for `visibilityTimeoutSeconds`;
 *   if the lease is neither acked nor extended in time (consumer crashed, hung, lost its
 *   connection) the message becomes visible again and is re-delivered with `attempt + 1`.
 * - Handler resolves -> the message is acked (deleted). Handler throws -> retried after
 *   `retryDelaySeconds` (doubled per attempt with jitter when `retryBackoff`), and after
 *   `maxAttempts` deliveries it goes to the dead-letter queue instead.
 * - Leases are extended with `heartbeat()` (manual) and, unless turned off, automatically every
 *   third of the visibility timeout while the handler's promise is pending. Note that a
 *   synchronous native call that blocks the event loop also blocks the automatic heartbeat, so
 *   the visibility timeout must exceed the longest single blocking call.
 * - Idempotency: at-least-once means a handler can see a message whose work already finished
 *   (crash between "result stored" and "ack"). `isAlreadyDone` is asked before every delivery;
 *   when it says yes the message is acked without running the handler. The worker answers it
 *   from the durable Job row (status terminal), keyed by `Delivery.key` (= the jobId).
 * - Graceful shutdown (`Consumer.stop`): stop receiving, let in-flight handlers finish (or abort
 *   them) and make every message that did not finish visible again immediately, so another
 *   worker picks it up without waiting for the lease to run out.
 */

/** What the Harmon worker queues: the rest lives in the Job row. */
export interface HarmonJobPayload {
  jobId: string;
  tenantId: string;
}

export interface SendOptions {
  /**
   * Idempotency key carried with the message and handed to `isAlreadyDone` (use the jobId).
   * Defaults to the backend's message id. Sending the same key twice enqueues two messages:
   * de-duplication happens at handling time, which also covers re-deliveries.
   */
  key?: string;
  /** Keep the message invisible this long before its first delivery (SQS caps this at 900). */
  delaySeconds?: number;
}

export interface Delivery<P> {
  /** Backend message id (pg-boss job uuid / SQS MessageId); new for a dead-lettered copy. */
  messageId: string;
  /** `SendOptions.key`, or `messageId` when none was given. */
  key: string;
  payload: P;
  /** 1 on first delivery; counts every delivery, including those after a crash or a release. */
  attempt: number;
}

/** The abort reason of a handler whose lease was found lost (see HandlerContext.signal). */
export class LeaseLostError extends Error {
  constructor() {
    super('lease lost: the message was re-delivered to another consumer');
    this.name = 'LeaseLostError';
  }
}

export interface HandlerContext {
  /**
   * Aborted when the consumer is stopped in 'release' mode, when a 'finish' stop runs out of
   * time, or when the lease is found lost (a heartbeat failed because the message was already
   * re-delivered elsewhere; the reason is then a LeaseLostError, and the handler's outcome is
   * no longer acked or retried by this consumer). Long handlers must check it between steps.
   */
  signal: AbortSignal;
  /** Extends the lease by another visibility timeout. Resolves false when the lease is lost. */
  heartbeat(): Promise<boolean>;
  /**
   * Sets this delivery's lease to `seconds` from now (at most the visibility timeout) and keeps
   * renewing it by that much, every third of it, until called again; no argument restores the
   * visibility timeout. A message a worker holds but has not started (waiting for a batch) keeps
   * a short lease, so that if the worker dies it is delivered again soon rather than after a
   * whole visibility timeout. Resolves false when the lease is lost.
   */
  setLease(seconds?: number): Promise<boolean>;
}

export type Handler<P> = (delivery: Delivery<P>, ctx: HandlerContext) => Promise<void>;

export interface ConsumeOptions<P> {
  /** Messages handled at the same time by this consumer (a GPU worker uses 1). */
  concurrency?: number;
  /** Automatic lease extension while the handler runs (default true). */
  autoHeartbeat?: boolean;
  /** Asked before each delivery; true -> ack without running the handler. */
  isAlreadyDone?: (delivery: Delivery<P>) => Promise<boolean>;
  /** Called for handler failures and backend errors (logging, metrics); never throws into the loop. */
  onError?: (error: unknown, delivery?: Delivery<P>) => void;
}

export interface StopOptions {
  /**
   * 'finish' (default): wait up to `timeoutMs` for in-flight handlers, then abort and release
   * the rest. 'release': abort in-flight handlers now and release their messages.
   */
  mode?: 'finish' | 'release';
  /** Upper bound for waiting on handlers (default 30 s; ECS gives a task 30 s after SIGTERM). */
  timeoutMs?: number;
}

export interface Consumer {
  stop(options?: StopOptions): Promise<void>;
  /** Messages currently leased by this consumer. */
  readonly inFlight: number;
}

export interface QueueStats {
  /** Visible or waiting for a retry/delay to pass. Approximate on SQS. */
  waiting: number;
  /** Leased by some consumer right now. */
  inFlight: number;
  deadLettered: number;
}

export interface DeadLetter<P> {
  messageId: string;
  key: string;
  payload: P;
  /** The last handler error, when the backend recorded one (not for SQS redrive after crashes). */
  error?: string;
}

/**
 * A transaction the caller holds open on the database the queue itself lives in (the app
 * database for pg-boss). `query` runs one parameterised statement ($1, $2, …) inside it and
 * resolves to the returned rows.
 */
export interface SqlTransaction {
  query(text: string, values: unknown[]): Promise<unknown[]>;
}

export interface JobQueue<P> {
  /** Creates what the backend needs (pg-boss schema and queues); safe to call more than once. */
  start(): Promise<void>;
  /** Enqueues a message and returns its backend message id. */
  send(payload: P, options?: SendOptions): Promise<string>;
  /**
   * Optional capability of a queue stored in the application database (pg-boss): writes the
   * message inside the caller's transaction, so it commits or rolls back together with the
   * caller's rows and is invisible to consumers until then. `start()` must have resolved.
   * Only valid when `tx` is on the same database as the queue (the pg-boss tables are reached
   * by schema-qualified name; on another database the insert fails and the caller rolls back).
   * Backends without it (SQS) are sent to after the caller commits.
   */
  sendInTransaction?(tx: SqlTransaction, payload: P, options?: SendOptions): Promise<string>;
  /** Starts a receive loop; several consumers (in one or many processes) may run at once. */
  consume(handler: Handler<P>, options?: ConsumeOptions<P>): Consumer;
  stats(): Promise<QueueStats>;
  /** Reads (without removing, as far as the backend allows) up to `max` dead letters. */
  listDeadLetters(max?: number): Promise<DeadLetter<P>[]>;
  /**
   * Hands up to `max` dead letters to `handle` and removes each one it resolved for (pg-boss:
   * marked completed, SQS: deleted); one it rejected for stays for the next drain. Resolves to the
   * number removed. Two drains running at once may hand the same letter to both: `handle` must be
   * idempotent.
   */
  drainDeadLetters(handle: (letter: DeadLetter<P>) => Promise<void>, max?: number): Promise<number>;
  /**
   * Optional capability of a queue that can look at its own messages (pg-boss): how many live
   * (waiting, delayed or leased) messages carry each of `keys`. Keys with none are absent.
   * Backends that cannot count (SQS) leave it out.
   */
  countLive?(keys: string[]): Promise<Map<string, number>>;
  /** Stops every consumer of this instance in 'release' mode and closes connections. */
  close(): Promise<void>;
}

/** Delivery and retry policy shared by both backends; all durations in seconds. */
export interface QueuePolicy {
  /** Lease length; re-delivery happens this long after a consumer dies. */
  visibilityTimeoutSeconds: number;
  /** Deliveries before a message is dead-lettered (1 = no retry). */
  maxAttempts: number;
  /** Delay before the first retry after a handler error. */
  retryDelaySeconds: number;
  /** Double the delay per attempt (with jitter) instead of keeping it constant. */
  retryBackoff: boolean;
}

export const DEFAULT_QUEUE_POLICY: QueuePolicy = {
  // Long enough for the longest blocking ONNX call (a VAE decode at 1024px on a slow GPU) plus
  // slack; heartbeats keep longer jobs alive. For the worker it bounds only how soon a FROZEN
  // worker's job is taken over: a dead one's is handed on within seconds (jobs/reconcile.ts).
  visibilityTimeoutSeconds: 120,
  maxAttempts: 3,
  retryDelaySeconds: 10,
  retryBackoff: true,
};
