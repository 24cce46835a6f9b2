/**
 * Progress events of the Harmon pipelines and the result types that cross the worker boundary.
 * Plain data only (structured-clone safe), so the engine can forward them from its worker thread
 * unchanged and the job worker can persist them as JobEvents.
 */

export type GenerateStage = 'tokenize' | 'prefill' | 'mar' | 'vae_decode' | 'encode';
/** `prefill` includes the MAR encoding of the image (one lm run, src/onnx/builders/lm.ts). */
export type DescribeStage = 'decode_image' | 'vae_encode' | 'prefill' | 'decode';
export type Stage = GenerateStage | DescribeStage;

export interface EncodedImage {
  /** PNG bytes. */
  data: Uint8Array;
  width: number;
  height: number;
  contentType: 'image/png';
}

export type PipelineEvent =
  | { type: 'stage'; stage: Stage }
  /**
   * A MAR step finished: `step` is 1-based (1..totalSteps); `predicted` tokens per image; `at` is
   * the wall-clock time (ms) it finished, in the thread that ran it (events cross threads late).
   */
  | { type: 'step'; step: number; totalSteps: number; predicted: number; at: number }
  /** VAE decode of the tokens known after `step` (unknown tokens are zero latents). */
  | { type: 'preview'; step: number; totalSteps: number; images: EncodedImage[] }
  /** A describe token: `text` is the stable text delta it completed (may be ''). */
  | { type: 'token'; index: number; id: number; text: string };

export type EventSink = (event: PipelineEvent) => void;

/** Per-step facts for the spec-level tests (spec §2.4–§2.8); cheap, off unless a hook is given. */
export interface StepDebugInfo {
  step: number; // 0-based k
  /** Rows fed to the MAR/LLM passes: 2G with CFG, G without. */
  batchRows: number;
  /** Visible tokens V at the start of the step. */
  visible: number;
  /** Ascending token indices predicted per batch row (twins share them). */
  predIdx: number[][];
  /** Position ids of the image pass per batch row. */
  positionIds: number[][];
  /** Length of the text KV cache fed to the image pass (must stay L). */
  textCacheLength: number;
  /** Guidance scale of this step. */
  cfgScale: number;
  /** Whether the sampler's rows carried the unconditional half (CFG) or the conditional rows only. */
  guided: boolean;
  /** Rows of the condition tensor handed to the sampler. */
  conditionRows: number;
}

/** Minimal cancellation interface; an AbortSignal satisfies it, so does the worker's shared flag. */
export interface CancelSignal {
  readonly aborted: boolean;
}

export interface SessionCounts {
  runs: number;
  runsByGraph: Record<string, number>;
  msByGraph: Record<string, number>;
}

export interface RunMetadata {
  modelId: string;
  variant: string;
  /** True for a random-weight model: the outputs are noise, not a real Harmon result. */
  demo: boolean;
  /** Milliseconds per pipeline stage (wall time around the stage's work). */
  stageMs: Record<string, number>;
  totalMs: number;
  /** Session runs made by this request. */
  sessions: SessionCounts;
  /** Sum of session run time; (totalMs − sessionMs)/totalMs is the JS orchestration share. */
  sessionMs: number;
  /**
   * Generate only: the batch this request ran in (a solo request is a batch of one). Then
   * `totalMs`, `stageMs` and `sessionMs` are this job's shares of the batch's wall and session
   * time (by rows, src/harmon/batch-meter.ts), while `sessions` counts the batch's runs.
   */
  batch?: BatchInfo;
}

/** Who shared a generate request's MAR loop (issue #14). */
export interface BatchInfo {
  /** Jobs that started the batch together (this one included). */
  jobs: number;
  /** This job's rows: 2·count with CFG, count without. */
  rows: number;
  /** Rows of all jobs at the start. */
  totalRows: number;
  /** Wall time from the batch's start to this job's result. */
  wallMs: number;
}

export interface GenerateResult {
  images: EncodedImage[];
  seed: number;
  steps: number;
  size: number;
  meta: RunMetadata;
  /** Latents per image [N,16] (only when requested, for the reference tests). */
  latents?: Float32Array[];
}

export interface DescribeResult {
  text: string;
  tokenIds: number[];
  tokenCount: number;
  stopReason: 'stop_token' | 'max_tokens';
  meta: RunMetadata;
}

export const DEMO_NOTICE =
  'NOTE: this is a random-weight demo model; its outputs are noise, not real Harmon images or text.';
