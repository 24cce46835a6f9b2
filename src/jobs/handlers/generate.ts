/** GENERATE jobs: run the pipeline, upload every PNG (role OUTPUT) under the tenant prefix. */

import type { Job } from '../../generated/prisma/client.ts';
import type { GenerateResult } from '../../harmon/events.ts';
import { AppError } from '../../shared/errors.ts';
import { type GenerateInput, generateInputSchema } from '../../shared/job-inputs.ts';
import { type AssetDraft, type HandlerContext, type JobOutcome, uploadPng } from './context.ts';

/** The job's stored input, validated again (it may predate a rule change). */
export function parseGenerateInput(job: Pick<Job, 'input'>): GenerateInput {
  const parsed = generateInputSchema.safeParse(job.input);
  if (!parsed.success) {
    throw new AppError(
      'BAD_USER_INPUT',
      `stored generate input is invalid: ${parsed.error.issues.map((i) => i.message).join('; ')}`,
    );
  }
  return parsed.data;
}

/**
 * Uploads the result's PNGs and states the job's usage. `meta.totalMs` is the job's own share of
 * the device time (a batched job's share is proportional to its rows), so gpuMs is right alone
 * or batched.
 */
export async function generateOutcome(
  ctx: Pick<HandlerContext, 'prisma' | 'blobStore' | 'job'>,
  result: GenerateResult,
): Promise<JobOutcome> {
  const assets: AssetDraft[] = [];
  for (const [i, image] of result.images.entries()) {
    assets.push(await uploadPng(ctx, 'outputs', `${ctx.job.id}-${i}.png`, image, 'OUTPUT'));
  }
  return {
    assets,
    usage: { images: result.images.length, tokens: 0, gpuMs: Math.round(result.meta.totalMs) },
    stageMs: result.meta.stageMs,
  };
}

export async function runGenerate(ctx: HandlerContext): Promise<JobOutcome> {
  const input = parseGenerateInput(ctx.job);
  const result = await ctx.runner.generate(ctx.job.modelId, input, {
    signal: ctx.signal,
    onEvent: ctx.onEvent,
  });
  return generateOutcome(ctx, result);
}
