/**
 * The process environment, parsed once with zod. Every default is the embedded mode: with no
 * environment at all the server runs on PGlite + s3rver under HARMON_HOME.
 */
import { resolve } from 'node:path';
import { z } from 'zod';
import { AppError } from '../shared/errors.ts';
import { IMAGE_BYTES } from '../shared/images.ts';

const emptyToUndefined = (v: unknown) => (typeof v === 'string' && v.trim() === '' ? undefined : v);
const optionalString = z.preprocess(emptyToUndefined, z.string().optional());
const url = (protocols: string[]) =>
  z.preprocess(
    emptyToUndefined,
    z
      .string()
      .refine((s) => URL.canParse(s) && protocols.includes(new URL(s).protocol), {
        message: `must be a URL (${protocols.map((p) => `${p}//`).join(' or ')})`,
      })
      .optional(),
  );
const int = (def: number, min: number, max: number) =>
  z.preprocess(emptyToUndefined, z.coerce.number().int().min(min).max(max).default(def));
const bool = z.preprocess(
  emptyToUndefined,
  z
    .enum(['true', 'false', '1', '0'], { message: 'must be true or false' })
    .transform((s) => s === 'true' || s === '1')
    .optional(),
);

const schema = z.object({
  PORT: int(4000, 0, 65535),
  HOST: z.preprocess(emptyToUndefined, z.string().default('127.0.0.1')),
  HARMON_HOME: z.preprocess(emptyToUndefined, z.string().default('./.harmon')),
  /** Unset → embedded PGlite under $HARMON_HOME/pgdata. */
  DATABASE_URL: url(['postgres:', 'postgresql:']),
  /** Unset (with S3_BUCKET) → embedded s3rver under $HARMON_HOME/s3. */
  S3_ENDPOINT: url(['http:', 'https:']),
  S3_BUCKET: optionalString,
  S3_REGION: z.preprocess(emptyToUndefined, z.string().default('us-east-1')),
  S3_ACCESS_KEY_ID: optionalString,
  S3_SECRET_ACCESS_KEY: optionalString,
  S3_FORCE_PATH_STYLE: bool,
  /** Model directory; a comma-separated list serves several models. */
  HARMON_MODEL: optionalString,
  QUEUE_BACKEND: z.preprocess(emptyToUndefined, z.enum(['postgres', 'sqs']).default('postgres')),
  SQS_QUEUE_URL: url(['http:', 'https:']),
  SQS_DLQ_URL: url(['http:', 'https:']),
  SQS_ENDPOINT: url(['http:', 'https:']),
  LOG_LEVEL: z.preprocess(
    emptyToUndefined,
    z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  ),
  /** Lifetime of presigned upload/download URLs. */
  PRESIGN_TTL_SECONDS: int(900, 1, 7 * 24 * 3600),
  /** Largest input image from any source (upload, URL, worker); at most the pipeline's ceiling. */
  MAX_UPLOAD_BYTES: int(IMAGE_BYTES.default, 1, IMAGE_BYTES.ceiling),
  /**
   * Bearer token for GET /metrics. Unset: /metrics is open but carries no per-tenant series
   * (tenant ids and their GPU usage are served only to a caller presenting this token).
   */
  METRICS_TOKEN: z.preprocess(
    emptyToUndefined,
    z.string().min(16, { message: 'must be at least 16 characters' }).optional(),
  ),
  /**
   * Reverse proxies in front of the API that append to X-Forwarded-For (the AWS ALB: 1). The
   * client address (failed-auth throttling) is the entry this many hops from the right; 0 uses
   * the TCP peer and ignores the header, which a client could forge.
   */
  TRUSTED_PROXY_HOPS: int(0, 0, 10),
  /**
   * Generate jobs one worker runs together in one MAR loop (jobs/batch-gatherer.ts); 1 turns
   * batching off. Unset: 8 when EXECUTION_PROVIDERS lists cuda, else CPU_MAX_BATCH.
   */
  WORKER_MAX_BATCH: z.preprocess(emptyToUndefined, z.coerce.number().int().min(1).max(64).optional()),
  /** Ordered onnxruntime execution providers, e.g. `cuda,cpu`. */
  EXECUTION_PROVIDERS: z.preprocess(
    emptyToUndefined,
    z
      .string()
      .default('cpu')
      .transform((s) =>
        s
          .split(',')
          .map((p) => p.trim())
          .filter(Boolean),
      ),
  ),
});

type Env = z.infer<typeof schema>;

/**
 * WORKER_MAX_BATCH defaults. A GPU leaves most of the device idle at batch 1–2, so 8 jobs share a
 * MAR loop there (the issue's target; not measured here, no GPU). On CPU a batch measured no
 * faster than the same jobs one at a time (0.92–1.08× at 2, 4 and 8 jobs, docs/performance.md,
 * "Cross-job batching") while every job waits for the whole batch: batching is off.
 */
export const GPU_MAX_BATCH = 8;
export const CPU_MAX_BATCH = 1;

export type S3Config = {
  endpoint?: string;
  bucket: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  forcePathStyle: boolean;
};

export type Config = {
  port: number;
  host: string;
  /** Absolute path of the embedded-mode data directory. */
  harmonHome: string;
  /** Undefined → embedded PGlite. */
  databaseUrl?: string;
  /** Undefined → embedded s3rver. */
  s3?: S3Config;
  modelDirs: string[];
  queue: { backend: 'postgres' | 'sqs'; sqsQueueUrl?: string; sqsDlqUrl?: string; sqsEndpoint?: string };
  logLevel: Env['LOG_LEVEL'];
  presignTtlSeconds: number;
  maxUploadBytes: number;
  metricsToken?: string;
  trustedProxyHops: number;
  executionProviders: string[];
  /** Generate jobs batched into one MAR loop by a worker (1: no batching). */
  workerMaxBatch: number;
};

/** Parses `env`; throws AppError('BAD_CONFIG') naming every bad variable in one sentence. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = schema.safeParse(env);
  const problems: string[] = [];
  if (!parsed.success) {
    for (const issue of parsed.error.issues) problems.push(`${String(issue.path[0])} ${issue.message}`);
  }
  const e = parsed.success ? parsed.data : undefined;
  if (e) {
    // Cross-variable rules: a real S3 needs a bucket; SQS needs its queue.
    if (e.S3_ENDPOINT && !e.S3_BUCKET) problems.push('S3_BUCKET is required when S3_ENDPOINT is set');
    if (e.QUEUE_BACKEND === 'sqs' && !e.SQS_QUEUE_URL)
      problems.push('SQS_QUEUE_URL is required when QUEUE_BACKEND=sqs');
  }
  if (problems.length > 0 || !e) {
    const names = [...new Set(problems.map((p) => p.split(' ')[0]))];
    throw new AppError('BAD_CONFIG', `invalid environment: ${problems.join('; ')}`, {
      details: { variables: names },
    });
  }
  return {
    port: e.PORT,
    host: e.HOST,
    harmonHome: resolve(e.HARMON_HOME),
    databaseUrl: e.DATABASE_URL,
    s3: e.S3_BUCKET
      ? {
          endpoint: e.S3_ENDPOINT,
          bucket: e.S3_BUCKET,
          region: e.S3_REGION,
          // Empty credentials fall through to the SDK's default chain (IAM role) via blob-store.
          accessKeyId: e.S3_ACCESS_KEY_ID ?? '',
          secretAccessKey: e.S3_SECRET_ACCESS_KEY ?? '',
          forcePathStyle: e.S3_FORCE_PATH_STYLE ?? Boolean(e.S3_ENDPOINT),
        }
      : undefined,
    modelDirs: (e.HARMON_MODEL ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    queue: {
      backend: e.QUEUE_BACKEND,
      sqsQueueUrl: e.SQS_QUEUE_URL,
      sqsDlqUrl: e.SQS_DLQ_URL,
      sqsEndpoint: e.SQS_ENDPOINT,
    },
    logLevel: e.LOG_LEVEL,
    presignTtlSeconds: e.PRESIGN_TTL_SECONDS,
    maxUploadBytes: e.MAX_UPLOAD_BYTES,
    metricsToken: e.METRICS_TOKEN,
    trustedProxyHops: e.TRUSTED_PROXY_HOPS,
    executionProviders: e.EXECUTION_PROVIDERS,
    workerMaxBatch:
      e.WORKER_MAX_BATCH ?? (e.EXECUTION_PROVIDERS.includes('cuda') ? GPU_MAX_BATCH : CPU_MAX_BATCH),
  };
}
