/** DESCRIBE jobs: load the image from its source, run the pipeline; the text is the result. */
import { AppError } from '../../shared/errors.ts';
import { describeInputSchema } from '../../shared/job-inputs.ts';
import { loadImage } from '../image-source.ts';
import type { StoredDescribeInput } from '../runner.ts';
import type { HandlerContext, JobOutcome } from './context.ts';

export async function runDescribe(ctx: HandlerContext): Promise<JobOutcome> {
  const { job } = ctx;
  const { image: source, ...options } = (job.input ?? {}) as StoredDescribeInput;
  const parsed = describeInputSchema.safeParse(options);
  if (!parsed.success) {
    throw new AppError(
      'BAD_USER_INPUT',
      `stored describe input is invalid: ${parsed.error.issues.map((i) => i.message).join('; ')}`,
    );
  }
  const bytes = await loadImage(
    { ...ctx.images, prisma: ctx.prisma, blobStore: ctx.blobStore },
    job.tenantId,
    source,
  );
  const result = await ctx.runner.describe(job.modelId, bytes, parsed.data, {
    signal: ctx.signal,
    onEvent: ctx.onEvent,
  });
  return {
    assets: [],
    text: result.text,
    usage: { images: 0, tokens: result.tokenCount, gpuMs: Math.round(result.meta.totalMs) },
    stageMs: result.meta.stageMs,
  };
}
