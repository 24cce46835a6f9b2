/** GENERATE jobs: run the pipeline, upload every PNG (role OUTPUT) under the tenant prefix. */

import { AppError } from '../../shared/errors.ts';
import { generateInputSchema } from '../../shared/job-inputs.ts';
import { type AssetDraft, type HandlerContext, type JobOutcome, uploadPng } from './context.ts';

export async function runGenerate(ctx: HandlerContext): Promise<JobOutcome> {
  const { job } = ctx;
  const parsed = generateInputSchema.safeParse(job.input);
  if (!parsed.success) {
    throw new AppError(
      'BAD_USER_INPUT',
      `stored generate input is invalid: ${parsed.error.issues.map((i) => i.message).join('; ')}`,
    );
  }
  const result = await ctx.runner.generate(job.modelId, parsed.data, {
    signal: ctx.signal,
    onEvent: ctx.onEvent,
  });
  const assets: AssetDraft[] = [];
  for (const [i, image] of result.images.entries()) {
    assets.push(await uploadPng(ctx, 'outputs', `${job.id}-${i}.png`, image, 'OUTPUT'));
  }
  return {
    assets,
    usage: { images: result.images.length, tokens: 0, gpuMs: Math.round(result.meta.totalMs) },
    stageMs: result.meta.stageMs,
  };
}
