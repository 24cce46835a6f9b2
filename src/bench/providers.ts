/**
 * The benchmarks owned by other parts of the project (generate pipeline, API), adapted to the
 * provider shapes run-bench.ts consumes. Kept apart so run-bench.ts (and its tests) never load
 * the API stack or Postgres unless a real bench asks for them.
 */
import type { ApiBenchFn, PipelineBenchFn } from './run-bench.ts';

export interface Providers {
  pipeline: PipelineBenchFn | null;
  api: ApiBenchFn | null;
  absentReason: { pipeline?: string; api?: string };
}

export async function loadProviders(): Promise<Providers> {
  return {
    pipeline: null,
    api: null,
    absentReason: {
      pipeline: 'the generate pipeline benchmark (src/bench/pipeline-bench.ts) has not landed yet',
      api: 'the API benchmark (src/bench/api-bench.ts) has not landed yet',
    },
  };
}
