/**
 * The benchmarks owned by other parts of the project (generate pipeline, API), adapted to the
 * provider shapes run-bench.ts consumes. Loaded lazily so run-bench.ts (and its tests) never load
 * the generate pipeline or the API stack (Postgres, S3, Apollo) unless a real bench asks for them.
 */
import type { ApiBenchFn, PipelineBenchFn } from './run-bench.ts';

export interface Providers {
  pipeline: PipelineBenchFn | null;
  api: ApiBenchFn | null;
  absentReason: { pipeline?: string; api?: string };
}

export async function loadProviders(): Promise<Providers> {
  const { pipelineBenchProvider } = await import('./pipeline-bench.ts');
  const { apiBenchProvider } = await import('./api-bench.ts');
  return { pipeline: pipelineBenchProvider, api: apiBenchProvider, absentReason: {} };
}
