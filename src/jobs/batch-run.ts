/**
 * Runs one cross-job batch (issue #14): the jobs the gatherer composed, each taken and claimed on
 * its own, in composition order (its advisory lock, its tenant slot, its fence), then ONE `JobRunner.generateBatch`
 * call for those claimed, then each job's outputs and ending written by its own attempt
 * (job-attempt.ts), exactly as if it had run alone. A job's cancel, loss or failure aborts only
 * its own item (its own AbortSignal); a job that could not be claimed simply is not in the call.
 */
import type { GenerateResult } from '../harmon/events.ts';
import type { GenerateInput } from '../shared/job-inputs.ts';
import type { Logger } from '../shared/logger.ts';
import { generateOutcome, parseGenerateInput } from './handlers/generate.ts';
import {
  type Attempt,
  acquireJob,
  beginAttempt,
  type Message,
  releaseJob,
  type WorkerDeps,
} from './job-attempt.ts';
import type { Run } from './job-lifecycle.ts';
import type { JobLocks } from './job-locks.ts';
import type { Delivery, HandlerContext, HarmonJobPayload } from './queue/port.ts';
import type { BatchItem } from './runner.ts';

/** One delivery in a batch: its message, its queue lease context, the model it names. */
export interface Member {
  delivery: Delivery<HarmonJobPayload>;
  qctx: HandlerContext;
  modelId: string;
}

export interface WorkerCore {
  deps: WorkerDeps;
  locks: JobLocks;
  /** Jobs this process holds (locked and claimed or being claimed). */
  held: Set<string>;
  log: Logger;
}

const messageOf = (m: Member): Message => ({ ...m.delivery.payload, key: m.delivery.key });
/** A promise's outcome as Promise.allSettled reports it. */
export const settled = <T>(p: Promise<T>): Promise<PromiseSettledResult<T>> =>
  p.then(
    (value) => ({ status: 'fulfilled' as const, value }),
    (reason: unknown) => ({ status: 'rejected' as const, reason }),
  );

/** One outcome per member, in order: fulfilled when its delivery is done with (ack). */
export async function runBatch(
  core: WorkerCore,
  members: Member[],
  engineFree: () => void,
): Promise<PromiseSettledResult<void>[]> {
  const { deps, locks, held } = core;
  const logs = members.map((m) =>
    core.log.child({ jobId: m.delivery.payload.jobId, delivery: m.delivery.attempt }),
  );
  // One claim after another: claims of one tenant serialize on its row lock anyway, and a batch
  // must not hold a pool connection per job while they wait (heartbeats need connections too).
  const runs: PromiseSettledResult<Run | undefined>[] = [];
  for (const [i, m] of members.entries())
    runs.push(await settled(acquireJob(deps, locks, messageOf(m), logs[i], held)));
  const out: Promise<PromiseSettledResult<void>>[] = runs.map((r) =>
    Promise.resolve(r.status === 'rejected' ? r : { status: 'fulfilled' as const, value: undefined }),
  );
  const attempts: { index: number; attempt: Attempt; input: GenerateInput }[] = [];
  const early: { index: number; attempt: Attempt; error: unknown }[] = [];
  try {
    for (const [index, r] of runs.entries()) {
      if (r.status !== 'fulfilled' || !r.value) continue;
      const run = r.value;
      let attempt: Attempt;
      try {
        attempt = await beginAttempt(deps, run, members[index].qctx, logs[index]);
      } catch (e) {
        out[index] = releaseJob(locks, held, run.job.id).then(() => ({ status: 'rejected', reason: e }));
        continue;
      }
      try {
        attempts.push({ index, attempt, input: parseGenerateInput(run.job) });
      } catch (error) {
        early.push({ index, attempt, error });
      }
    }
    const results = await generateAll(deps, members[0].modelId, attempts);
    engineFree();
    const finish = async (attempt: Attempt, r: PromiseSettledResult<GenerateResult>) => {
      try {
        let outcome: Awaited<ReturnType<typeof generateOutcome>> | undefined;
        let failure: unknown;
        try {
          if (r.status === 'rejected') throw r.reason;
          outcome = await generateOutcome(attempt.handlerContext, r.value);
        } catch (e) {
          failure = e;
        }
        await attempt.finish(outcome, failure);
      } finally {
        await releaseJob(locks, held, attempt.run.job.id);
      }
    };
    for (const [i, a] of attempts.entries()) out[a.index] = settled(finish(a.attempt, results[i]));
    for (const e of early) out[e.index] = settled(finish(e.attempt, { status: 'rejected', reason: e.error }));
  } finally {
    engineFree();
  }
  return Promise.all(out);
}

/** The pipeline for the claimed jobs: one generateBatch call (a lone job runs as today). */
async function generateAll(
  deps: WorkerDeps,
  modelId: string,
  jobs: { attempt: Attempt; input: GenerateInput }[],
): Promise<PromiseSettledResult<GenerateResult>[]> {
  const items: BatchItem[] = jobs.map((j) => ({
    input: j.input,
    options: { signal: j.attempt.signal, onEvent: j.attempt.onEvent },
  }));
  if (items.length === 0) return [];
  if (items.length === 1 || !deps.runner.generateBatch)
    return Promise.all(items.map((it) => settled(deps.runner.generate(modelId, it.input, it.options))));
  try {
    const results = await deps.runner.generateBatch(modelId, items);
    if (results.length !== items.length)
      throw new Error(`generateBatch returned ${results.length} outcomes for ${items.length} jobs`);
    const batch = results.find((r) => r.status === 'fulfilled')?.value.meta;
    jobs[0]?.attempt.log.debug({ jobs: items.length, batch }, 'batch ran');
    return results;
  } catch (reason) {
    // The whole call failed: every job of it failed the same way (each retried on its own).
    return items.map(() => ({ status: 'rejected' as const, reason }));
  }
}
