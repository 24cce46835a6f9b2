/**
 * What the worker needs from the Harmon pipeline. `HarmonEngine` (src/harmon/engine.ts) satisfies
 * it through `engineRunner`; unit tests may pass a small fake, integration tests use the real
 * tiny model.
 */
import type { DescribeResult, EventSink, GenerateResult } from '../harmon/events.ts';
import type { DescribeInput, GenerateInput } from '../shared/job-inputs.ts';

export interface RunOptions {
  /** Aborted on cancel requests, lost leases and SIGTERM; the pipeline stops between steps. */
  signal: AbortSignal;
  onEvent: EventSink;
}

/** One generate job of a cross-job batch (issue #14): its input and its own signal and events. */
export interface BatchItem {
  input: GenerateInput;
  options: RunOptions;
}

export interface JobRunner {
  /** Model ids this runner serves; the first is the default. */
  models(): string[];
  generate(modelId: string, input: GenerateInput, options: RunOptions): Promise<GenerateResult>;
  /**
   * Generate jobs whose keys are equal may share one MAR loop (same model, image size, MAR
   * steps); null: this job always runs alone. Absent: the runner never batches.
   */
  batchKey?(modelId: string, input: GenerateInput): string | null;
  /**
   * Runs jobs of one batch key together. One settled outcome per item, in item order; an item
   * whose signal aborts (or whose rows fail) rejects alone and the others go on.
   */
  generateBatch?(modelId: string, items: BatchItem[]): Promise<PromiseSettledResult<GenerateResult>[]>;
  describe(
    modelId: string,
    image: Uint8Array,
    input: DescribeInput,
    options: RunOptions,
  ): Promise<DescribeResult>;
}

/**
 * Where a describe job's image comes from, stored in `Job.input.image` next to the describe
 * options: an Upload row of the same tenant, an https URL fetched by the worker (SSRF-checked),
 * or small inline base64.
 */
export type ImageSource = { uploadId: string } | { url: string } | { base64: string };

/** Job.input of a DESCRIBE job as the API stores it. */
export type StoredDescribeInput = DescribeInput & { image: ImageSource };
/** Job.input of a GENERATE job. */
export type StoredGenerateInput = GenerateInput;
