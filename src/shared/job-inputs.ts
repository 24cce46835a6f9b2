/**
 * The options a client may pass to `generate` and `describe`: zod schemas plus their limits, the
 * single source of truth for the CLI, the GraphQL API, the job worker and the pipeline. Limits that
 * depend on the loaded model (largest image size, steps ≤ image tokens) cannot live in a static
 * schema; `resolveGenerateOptions` / `resolveDescribeOptions` apply them once the model is known.
 *
 * Field semantics follow harmon-inference.md §2.1 and §4.4; defaults are the reference script's
 * where the tiny model allows them.
 */
import { z } from 'zod';
import { AppError } from './errors.ts';
import { IMAGE_BYTES } from './images.ts';
import { unstorableText } from './storable.ts';

export const LIMITS = {
  promptMaxChars: 2000,
  stepsMax: 256,
  cfgMin: 1,
  cfgMax: 20,
  temperatureMin: 0.01,
  temperatureMax: 5,
  /** Smallest image side: 4×4 = 16 tokens; below that the mask schedule has almost nothing to do. */
  sizeMin: 64,
  /** Absolute ceiling of any model's `maxImageSize` (config.ts); the model's own limit applies too. */
  sizeMax: 1024,
  countMax: 4,
  maxTokensMax: 1024,
  seedMax: Number.MAX_SAFE_INTEGER,
  repetitionPenaltyMax: 2,
  /** Largest encoded describe input any configuration accepts (the decoder also checks pixels). */
  imageMaxBytes: IMAGE_BYTES.ceiling,
  idempotencyKeyMaxChars: 200,
} as const;

export const DEFAULTS = {
  cfg: 3.0,
  cfgSchedule: 'constant' as const,
  temperature: 1.0,
  /** Reference default 512, capped by the model's maxImageSize. */
  size: 512,
  /** Reference num_iter 64, capped by the token count N of the chosen size. */
  steps: 64,
  count: 1,
  maxTokens: 1024,
  /** Inherited from the Qwen2.5-Instruct generation config (spec §4.4). */
  repetitionPenalty: 1.1,
  topP: 1,
};

/** Text that ends up in a database column (storable.ts: no NUL, no unpaired surrogate). */
const storable = (what: string) =>
  z.string().superRefine((s, ctx) => {
    const why = unstorableText(s);
    if (why) ctx.addIssue({ code: 'custom', message: `${what} ${why}` });
  });

const nonBlank = (what: string, max: number) =>
  storable(what)
    .max(max, { message: `${what} must be at most ${max} characters` })
    .refine((s) => s.trim().length > 0, { message: `${what} must not be empty or blank` });

/** Same key + same input returns the same job (src/jobs/enqueue.ts). */
export const idempotencyKeySchema = storable('idempotencyKey')
  .min(1, { message: 'idempotencyKey must not be empty' })
  .max(LIMITS.idempotencyKeyMaxChars, {
    message: `idempotencyKey must be at most ${LIMITS.idempotencyKeyMaxChars} characters`,
  });

/** An optional idempotency key, or BAD_USER_INPUT naming the field (the API and enqueueJob). */
export function checkIdempotencyKey(key: string | null | undefined): string | undefined {
  if (key === undefined || key === null) return undefined;
  const r = idempotencyKeySchema.safeParse(key);
  if (r.success) return r.data;
  const message = r.error.issues.map((i) => i.message).join('; ');
  throw new AppError('BAD_USER_INPUT', `Invalid input: ${message}.`, {
    details: { fields: [{ path: 'idempotencyKey', message }] },
  });
}

const sizeField = z
  .number()
  .int({ message: 'size must be an integer number of pixels' })
  .min(LIMITS.sizeMin, { message: `size must be at least ${LIMITS.sizeMin}` })
  .max(LIMITS.sizeMax, { message: `size must be at most ${LIMITS.sizeMax}` })
  .refine((v) => v % 16 === 0, { message: 'size must be a multiple of 16' });

const seedField = z
  .number()
  .int({ message: 'seed must be an integer' })
  .min(0, { message: 'seed must be non-negative' })
  .max(LIMITS.seedMax, { message: 'seed must be below 2^53' });

export const generateInputSchema = z.strictObject({
  prompt: nonBlank('prompt', LIMITS.promptMaxChars),
  /** The unconditional ("negative") prompt of classifier-free guidance; default "Generate an image.". */
  cfgPrompt: nonBlank('cfgPrompt', LIMITS.promptMaxChars).optional(),
  seed: seedField.optional(),
  steps: z.number().int().min(1, { message: 'steps must be at least 1' }).max(LIMITS.stepsMax).optional(),
  cfg: z.number().min(LIMITS.cfgMin).max(LIMITS.cfgMax).optional(),
  cfgSchedule: z.enum(['constant', 'linear']).optional(),
  temperature: z.number().min(LIMITS.temperatureMin).max(LIMITS.temperatureMax).optional(),
  size: sizeField.optional(),
  count: z.number().int().min(1).max(LIMITS.countMax).optional(),
});
export type GenerateInput = z.infer<typeof generateInputSchema>;

export const describeInputSchema = z.strictObject({
  /** The question; default "Describe the image in detail.". */
  prompt: nonBlank('prompt', LIMITS.promptMaxChars).optional(),
  maxTokens: z.number().int().min(1).max(LIMITS.maxTokensMax).optional(),
  /** Image side fed to the model; default 512 capped by the model's maxImageSize. */
  size: sizeField.optional(),
  /** Absent or 0 = greedy (the reference); otherwise sampling with this temperature. */
  temperature: z.number().min(0).max(LIMITS.temperatureMax).optional(),
  topP: z.number().gt(0).max(1).optional(),
  repetitionPenalty: z.number().min(1).max(LIMITS.repetitionPenaltyMax).optional(),
  /** Seed for sampling (unused when greedy). */
  seed: seedField.optional(),
});
export type DescribeInput = z.infer<typeof describeInputSchema>;

/** Generate options with every default filled in and the model's limits checked. */
export interface ResolvedGenerateOptions {
  prompt: string;
  cfgPrompt?: string;
  seed: number;
  steps: number;
  cfg: number;
  cfgSchedule: 'constant' | 'linear';
  temperature: number;
  size: number;
  count: number;
}

export interface ResolvedDescribeOptions {
  prompt?: string;
  maxTokens: number;
  size: number;
  temperature: number;
  topP: number;
  repetitionPenalty: number;
  seed: number;
}

/** What the model allows beyond the static schema. */
export interface ModelLimits {
  maxImageSize: number;
}

function parseOrThrow<T>(schema: z.ZodType<T>, input: unknown, what: string): T {
  const r = schema.safeParse(input);
  if (r.success) return r.data;
  const issues = r.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
  const sentence = issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ');
  throw new AppError('BAD_USER_INPUT', `Invalid ${what} options: ${sentence}.`, { details: { issues } });
}

function checkSize(size: number, limits: ModelLimits): void {
  if (size > limits.maxImageSize) {
    throw new AppError(
      'BAD_USER_INPUT',
      `size ${size} is above this model's limit of ${limits.maxImageSize} pixels; choose a smaller multiple of 16.`,
      { details: { issues: [{ path: 'size', message: `must be at most ${limits.maxImageSize}` }] } },
    );
  }
}

/** Static checks only (no model limits): for edges that want to refuse bad input before queueing. */
export function validateGenerateInput(input: unknown): GenerateInput {
  return parseOrThrow(generateInputSchema, input, 'generate');
}

export function validateDescribeInput(input: unknown): DescribeInput {
  return parseOrThrow(describeInputSchema, input, 'describe');
}

/** A seed when the caller gives none: random, but reported back so the run can be repeated. */
export function randomSeed(): number {
  return Math.floor(Math.random() * 2 ** 31);
}

export function resolveGenerateOptions(input: unknown, limits: ModelLimits): ResolvedGenerateOptions {
  const o = parseOrThrow(generateInputSchema, input, 'generate');
  const size = o.size ?? Math.min(DEFAULTS.size, limits.maxImageSize);
  checkSize(size, limits);
  const tokens = (size / 16) ** 2;
  if (o.steps !== undefined && o.steps > tokens) {
    throw new AppError(
      'BAD_USER_INPUT',
      `steps ${o.steps} is more than the ${tokens} image tokens of a ${size}×${size} image; use at most ${tokens} steps or a larger size.`,
      { details: { issues: [{ path: 'steps', message: `must be at most ${tokens}` }] } },
    );
  }
  return {
    prompt: o.prompt,
    cfgPrompt: o.cfgPrompt,
    seed: o.seed ?? randomSeed(),
    steps: o.steps ?? Math.min(DEFAULTS.steps, tokens),
    cfg: o.cfg ?? DEFAULTS.cfg,
    cfgSchedule: o.cfgSchedule ?? DEFAULTS.cfgSchedule,
    temperature: o.temperature ?? DEFAULTS.temperature,
    size,
    count: o.count ?? DEFAULTS.count,
  };
}

export function resolveDescribeOptions(input: unknown, limits: ModelLimits): ResolvedDescribeOptions {
  const o = parseOrThrow(describeInputSchema, input, 'describe');
  const size = o.size ?? Math.min(DEFAULTS.size, limits.maxImageSize);
  checkSize(size, limits);
  return {
    prompt: o.prompt,
    maxTokens: o.maxTokens ?? DEFAULTS.maxTokens,
    size,
    temperature: o.temperature ?? 0,
    topP: o.topP ?? DEFAULTS.topP,
    repetitionPenalty: o.repetitionPenalty ?? DEFAULTS.repetitionPenalty,
    seed: o.seed ?? randomSeed(),
  };
}
