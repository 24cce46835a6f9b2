/**
 * GraphQL inputs -> the job input stored in Job.input, validated with the pipeline's zod schemas
 * (src/shared/job-inputs.ts, the single source of truth for option limits). Only the renames
 * between the public API and the pipeline live here (negativePrompt -> cfgPrompt, CONSTANT ->
 * 'constant'); model limits (size <= the model's maxImageSize) are checked here too so a bad
 * request fails before a job exists.
 *
 * Stored shapes (read by the worker):
 *   GENERATE: the generate options object (generateInputSchema).
 *   DESCRIBE: the describe options plus `image`, exactly one of
 *             { uploadId } | { url } | { base64 } (the worker strips `image` before
 *             resolveDescribeOptions).
 */
import type { z } from 'zod';
import { AppError } from '../shared/errors.ts';
import { decodeImageBase64, IMAGE_BYTES } from '../shared/images.ts';
import { describeInputSchema, generateInputSchema, LIMITS } from '../shared/job-inputs.ts';
import { unstorableText } from '../shared/storable.ts';
import type { ModelInfo } from './models.ts';
import type { DescribeInputGql, GenerateInputGql } from './types.ts';

export type DescribeImageRef = { uploadId: string } | { url: string } | { base64: string };

const defined = <T extends Record<string, unknown>>(o: T): Partial<T> =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && v !== null)) as Partial<T>;

function parse<S extends z.ZodType>(
  schema: S,
  value: unknown,
  rename: Record<string, string> = {},
): z.infer<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const fields = r.error.issues.map((i) => {
    const path = i.path.map(String).join('.');
    return { path: rename[path] ?? path, message: i.message };
  });
  const sentence = fields.map((f) => (f.path ? `${f.path}: ${f.message}` : f.message)).join('; ');
  throw new AppError('BAD_USER_INPUT', `Invalid input: ${sentence}.`, { details: { fields } });
}

function checkModelSize(size: number | undefined, model: ModelInfo): void {
  if (size !== undefined && model.maxImageSize !== undefined && size > model.maxImageSize) {
    throw new AppError(
      'BAD_USER_INPUT',
      `size ${size} is above model ${model.id}'s limit of ${model.maxImageSize} pixels; choose a smaller multiple of 16.`,
      {
        details: { fields: [{ path: 'size', message: `must be at most ${model.maxImageSize}` }] },
      },
    );
  }
}

/** Optional URL of webhooks: https only (the worker re-checks the address before delivering). */
export function checkWebhookUrl(url: string | null | undefined): string | undefined {
  if (url === undefined || url === null) return undefined;
  const why = unstorableText(url);
  if (why)
    throw new AppError('BAD_USER_INPUT', `webhookUrl ${why}`, {
      details: { fields: [{ path: 'webhookUrl', message: why }] },
    });
  const ok = url.length <= 2048 && URL.canParse(url) && new URL(url).protocol === 'https:';
  if (!ok)
    throw new AppError('BAD_USER_INPUT', 'webhookUrl must be an https:// URL of at most 2048 characters', {
      details: { fields: [{ path: 'webhookUrl', message: 'must be an https URL' }] },
    });
  return url;
}

export function toGenerateInput(
  input: GenerateInputGql,
  model: ModelInfo,
): z.infer<typeof generateInputSchema> {
  const raw = defined({
    prompt: input.prompt,
    cfgPrompt: input.negativePrompt,
    seed: input.seed,
    steps: input.steps,
    cfg: input.cfg,
    cfgSchedule: input.cfgSchedule ? input.cfgSchedule.toLowerCase() : undefined,
    temperature: input.temperature,
    size: input.size,
    count: input.count,
  });
  const parsed = parse(generateInputSchema, raw, { cfgPrompt: 'negativePrompt' });
  checkModelSize(parsed.size, model);
  const size = parsed.size ?? Math.min(512, model.maxImageSize ?? 512);
  const tokens = (size / 16) ** 2;
  if (parsed.steps !== undefined && parsed.steps > tokens) {
    throw new AppError(
      'BAD_USER_INPUT',
      `steps ${parsed.steps} is more than the ${tokens} image tokens of a ${size}x${size} image; use at most ${tokens}.`,
      {
        details: { fields: [{ path: 'steps', message: `must be at most ${tokens}` }] },
      },
    );
  }
  return parsed;
}

/** Inline base64 images are small (IMAGE_BYTES.inline), so the whole request stays small. */
export function decodeInlineImage(b64: string): Buffer {
  return decodeImageBase64(b64, IMAGE_BYTES.inline);
}

export function toDescribeOptions(input: DescribeInputGql): z.infer<typeof describeInputSchema> {
  return parse(describeInputSchema, defined({ prompt: input.prompt, maxTokens: input.maxTokens }));
}

/** Exactly one image source, or BAD_USER_INPUT naming the fields. */
export function imageSourceOf(
  input: DescribeInputGql,
): { kind: 'upload'; uploadId: string } | { kind: 'url'; url: string } | { kind: 'base64'; data: string } {
  const given = (['uploadId', 'imageUrl', 'imageBase64'] as const).filter(
    (k) => input[k] !== undefined && input[k] !== null,
  );
  if (given.length !== 1) {
    throw new AppError(
      'BAD_USER_INPUT',
      `give exactly one of uploadId, imageUrl, imageBase64 (got ${given.length === 0 ? 'none' : given.join(', ')})`,
      {
        details: { fields: [{ path: given[1] ?? 'uploadId', message: 'exactly one image source' }] },
      },
    );
  }
  if (input.uploadId) return { kind: 'upload', uploadId: input.uploadId };
  if (input.imageUrl) return { kind: 'url', url: input.imageUrl };
  return { kind: 'base64', data: input.imageBase64 as string };
}

export { LIMITS };
