/**
 * HarmonEngine: the main-thread handle on a model loaded in a worker thread (engine-worker.ts).
 * Loads once, serialises requests (one inference at a time per model: the sessions already use
 * every core; a batch of generate requests sharing one MAR loop counts as one), forwards progress events, and turns an AbortSignal into the worker's shared
 * cancel flag, which the pipelines check between MAR steps / decoded tokens. Errors come back as
 * AppError with their original code.
 *
 * The worker is TypeScript: it is started from a tiny eval'd bootstrap that registers tsx in the
 * worker before importing engine-worker.ts (a `--import tsx` execArgv alone does not make
 * `new Worker(file.ts)` load on Node 20).
 */
import { Worker } from 'node:worker_threads';
import type { RuntimeOptions } from '../runtime/sessions.ts';
import { AppError } from '../shared/errors.ts';
import { type DescribeInput, type GenerateInput, resolveGenerateOptions } from '../shared/job-inputs.ts';
import type {
  FromWorker,
  GenerateMsg,
  ModelInfo,
  ToWorker,
  WireError,
  WorkerInit,
} from './engine-protocol.ts';
import type { DescribeResult, EventSink, GenerateResult, StepDebugInfo } from './events.ts';

export type { ModelInfo } from './engine-protocol.ts';

export interface EngineOptions {
  modelDir: string;
  runtime?: RuntimeOptions;
}

export interface GenerateRequestOptions {
  onEvent?: EventSink;
  signal?: AbortSignal;
  previewEvery?: number;
  onStepDebug?: (info: StepDebugInfo) => void;
  returnLatents?: boolean;
}

/** One request of `generateBatch`: its input and its own signal, events and hooks. */
export interface EngineBatchItem {
  input: GenerateInput;
  options?: GenerateRequestOptions;
}

export interface DescribeRequestOptions {
  onEvent?: EventSink;
  signal?: AbortSignal;
}

interface Pending {
  resolve: (v: GenerateResult | DescribeResult) => void;
  reject: (e: Error) => void;
  onEvent?: EventSink;
  onStepDebug?: (info: StepDebugInfo) => void;
}

const fromWire = (e: WireError) => new AppError(e.code, e.message, { details: e.details });

function spawnWorker(init: WorkerInit): Worker {
  const api = import.meta.resolve('tsx/esm/api');
  const entry = new URL('./engine-worker.ts', import.meta.url).href;
  const boot = `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); });`;
  return new Worker(boot, { eval: true, workerData: init });
}

export class HarmonEngine {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private queue: Promise<unknown> = Promise.resolve();
  private dead: AppError | null = null;
  private closing: Promise<void> | null = null;

  private constructor(
    private readonly worker: Worker,
    readonly info: ModelInfo,
  ) {
    worker.on('message', (msg: FromWorker) => this.onMessage(msg));
    worker.on('error', (e) =>
      this.fail(new AppError('INTERNAL', `The inference worker crashed: ${e.message}`, { cause: e })),
    );
    worker.on('exit', (code) => {
      if (!this.closing)
        this.fail(new AppError('INTERNAL', `The inference worker exited unexpectedly (code ${code}).`));
    });
  }

  /** Starts the worker and loads the model; rejects with the load error's code (e.g. MODEL_INVALID). */
  static start(opts: EngineOptions): Promise<HarmonEngine> {
    const worker = spawnWorker({ modelDir: opts.modelDir, runtime: opts.runtime ?? {} });
    return new Promise((resolve, reject) => {
      const onMessage = (msg: FromWorker) => {
        if (msg.kind === 'ready') {
          cleanup();
          resolve(new HarmonEngine(worker, msg.info));
        } else if (msg.kind === 'load-error') {
          cleanup();
          void worker.terminate();
          reject(fromWire(msg.error));
        }
      };
      const onError = (e: Error) => {
        cleanup();
        void worker.terminate();
        reject(
          new AppError('MODEL_LOAD_FAILED', `The inference worker failed to start: ${e.message}`, {
            cause: e,
          }),
        );
      };
      // The worker exits after posting 'load-error'; messages are delivered before 'exit', so an
      // exit seen here means it died without saying why.
      const onExit = (code: number) => {
        cleanup();
        reject(
          new AppError('MODEL_LOAD_FAILED', `The inference worker exited during model load (code ${code}).`),
        );
      };
      const cleanup = () => {
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
      };
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
    });
  }

  /**
   * Jobs with equal keys can share one MAR loop: same image size and MAR step count (everything
   * else — prompts, seeds, cfg, temperature, count — may differ per job). Invalid input: null,
   * so the job runs alone and fails with its own coded error.
   */
  batchKey(input: GenerateInput): string | null {
    try {
      const o = resolveGenerateOptions(input, { maxImageSize: this.info.maxImageSize });
      return `${o.size}px/${o.steps}steps`;
    } catch {
      return null;
    }
  }

  generate(input: GenerateInput, opts: GenerateRequestOptions = {}): Promise<GenerateResult> {
    return this.enqueue(opts.signal, (id, cancel) => ({
      msg: {
        kind: 'generate',
        id,
        input,
        previewEvery: opts.previewEvery,
        debug: Boolean(opts.onStepDebug),
        returnLatents: Boolean(opts.returnLatents),
        cancel,
      },
      pending: { onEvent: opts.onEvent, onStepDebug: opts.onStepDebug },
    })) as Promise<GenerateResult>;
  }

  /**
   * Generate requests of one batch key in one MAR loop (src/harmon/generate.ts): one settled
   * outcome per item, in order. Each item has its own cancel flag and events; an item canceled
   * (before or during the batch) rejects with CANCELED alone and the others go on.
   */
  generateBatch(items: EngineBatchItem[]): Promise<PromiseSettledResult<GenerateResult>[]> {
    const task = this.queue.then(() => {
      const closed = this.unavailable();
      const msgs: GenerateMsg[] = [];
      const outcomes = items.map(({ input, options: o = {} }) => {
        if (closed) return Promise.reject(closed);
        if (o.signal?.aborted)
          return Promise.reject(new AppError('CANCELED', 'The request was canceled before it started.'));
        const t = this.track(o.signal);
        msgs.push({
          id: t.id,
          input,
          previewEvery: o.previewEvery,
          debug: Boolean(o.onStepDebug),
          returnLatents: Boolean(o.returnLatents),
          cancel: t.cancel,
        });
        return t.listen({ onEvent: o.onEvent, onStepDebug: o.onStepDebug }) as Promise<GenerateResult>;
      });
      if (msgs.length > 0)
        this.worker.postMessage({ kind: 'generate-batch', items: msgs } satisfies ToWorker);
      return Promise.allSettled(outcomes);
    });
    this.queue = task.catch(() => {});
    return task;
  }

  describe(
    image: Uint8Array,
    input: DescribeInput,
    opts: DescribeRequestOptions = {},
  ): Promise<DescribeResult> {
    return this.enqueue(opts.signal, (id, cancel) => ({
      msg: { kind: 'describe', id, image, input, cancel },
      pending: { onEvent: opts.onEvent },
    })) as Promise<DescribeResult>;
  }

  /** Waits for the running request, releases the sessions and ends the worker. */
  close(): Promise<void> {
    if (!this.closing) {
      this.closing = this.queue
        .catch(() => {})
        .then(async () => {
          if (this.dead) return;
          const closed = new Promise<void>((resolve) => {
            this.worker.once('exit', () => resolve());
          });
          this.worker.postMessage({ kind: 'close' } satisfies ToWorker);
          await closed;
        });
    }
    return this.closing;
  }

  private enqueue(
    signal: AbortSignal | undefined,
    build: (
      id: number,
      cancel: SharedArrayBuffer,
    ) => { msg: ToWorker; pending: Omit<Pending, 'resolve' | 'reject'> },
  ): Promise<GenerateResult | DescribeResult> {
    const task = this.queue.then(() => {
      const closed = this.unavailable();
      if (closed) return Promise.reject(closed);
      if (signal?.aborted)
        return Promise.reject(new AppError('CANCELED', 'The request was canceled before it started.'));
      const t = this.track(signal);
      const { msg, pending } = build(t.id, t.cancel);
      const promise = t.listen(pending);
      this.worker.postMessage(msg);
      return promise;
    });
    this.queue = task.catch(() => {});
    return task;
  }

  /** Why no request can start now (dead worker, closing engine), or null. */
  private unavailable(): AppError | null {
    if (this.dead) return this.dead;
    if (this.closing) return new AppError('INTERNAL', 'The engine is closed.');
    return null;
  }

  /**
   * A new request id with its shared cancel flag (set when `signal` aborts); `listen` registers
   * the request's handlers and returns the promise its result or error message settles.
   */
  private track(signal: AbortSignal | undefined) {
    const id = this.nextId++;
    const cancel = new SharedArrayBuffer(4);
    const flag = new Int32Array(cancel);
    const onAbort = () => Atomics.store(flag, 0, 1);
    signal?.addEventListener('abort', onAbort, { once: true });
    const done = () => signal?.removeEventListener('abort', onAbort);
    const listen = (handlers: Omit<Pending, 'resolve' | 'reject'>) =>
      new Promise<GenerateResult | DescribeResult>((resolve, reject) => {
        this.pending.set(id, {
          ...handlers,
          resolve: (v) => {
            done();
            resolve(v);
          },
          reject: (e) => {
            done();
            reject(e);
          },
        });
      });
    return { id, cancel, listen };
  }

  private onMessage(msg: FromWorker): void {
    if (msg.kind === 'ready' || msg.kind === 'load-error' || msg.kind === 'closed') return;
    const p = this.pending.get(msg.id);
    if (!p) return;
    if (msg.kind === 'event') p.onEvent?.(msg.event);
    else if (msg.kind === 'debug') p.onStepDebug?.(msg.info);
    else {
      this.pending.delete(msg.id);
      if (msg.kind === 'result') p.resolve(msg.result);
      else p.reject(fromWire(msg.error));
    }
  }

  private fail(e: AppError): void {
    if (this.dead) return;
    this.dead = e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }
}
