/**
 * Messages between HarmonEngine (main thread) and engine-worker.ts. Structured-clone data only;
 * cancellation travels as a SharedArrayBuffer flag so the worker sees it between MAR steps even
 * while its own event loop is busy inside session runs.
 */
import type { LoadStats, RuntimeOptions } from '../runtime/sessions.ts';
import type { ErrorCode } from '../shared/errors.ts';
import type { DescribeInput, GenerateInput } from '../shared/job-inputs.ts';
import type { DescribeResult, GenerateResult, PipelineEvent, StepDebugInfo } from './events.ts';

export interface WorkerInit {
  modelDir: string;
  runtime: RuntimeOptions;
}

export interface ModelInfo {
  dir: string;
  modelId: string;
  variant: string;
  demo: boolean;
  maxImageSize: number;
  executionProvider: string;
  /** What loading cost (verify + per-graph session creation): the worker's cold start. */
  load: LoadStats;
}

/** One generate request; in a batch each has its own id (events, result) and cancel flag. */
export interface GenerateMsg {
  id: number;
  input: GenerateInput;
  previewEvery?: number;
  debug: boolean;
  returnLatents: boolean;
  cancel: SharedArrayBuffer;
}

export type ToWorker =
  | ({ kind: 'generate' } & GenerateMsg)
  /** Requests sharing one MAR loop (issue #14); each settles with its own result or error message. */
  | { kind: 'generate-batch'; items: GenerateMsg[] }
  | { kind: 'describe'; id: number; image: Uint8Array; input: DescribeInput; cancel: SharedArrayBuffer }
  | { kind: 'close' };

export interface WireError {
  code: ErrorCode;
  message: string;
  details?: Record<string, unknown>;
}

export type FromWorker =
  | { kind: 'ready'; info: ModelInfo }
  | { kind: 'load-error'; error: WireError }
  | { kind: 'event'; id: number; event: PipelineEvent }
  | { kind: 'debug'; id: number; info: StepDebugInfo }
  | { kind: 'result'; id: number; result: GenerateResult | DescribeResult }
  | { kind: 'error'; id: number; error: WireError }
  | { kind: 'closed' };
