/**
 * Deployment parameters, read once from CDK context (`cdk.json` or `-c key=value`) and
 * validated, so a typo fails `cdk synth` instead of a half-deployed stack. That includes the
 * memory fit: a GPU instance that cannot load or serve the configured model (memory.ts) fails
 * synth with the numbers, instead of a worker that is OOM-killed at every start.
 */
import { fitOn, variantOf } from './memory.ts';

export interface InfraConfig {
  /**
   * GPU instance for workers. g6e.xlarge (L40S 48 GB, 32 GiB RAM) holds Harmon-1.5B with room
   * (an estimated 18.2 GiB of GPU memory, infra/README.md "Memory"). By the same estimate 1.5B
   * also fits the 22.4 GiB of a 24 GB L4/A10G (g6.xlarge, g5.xlarge) in fp32 storage, but the
   * estimate is not measured on a GPU yet, so the default keeps the room. 0.5B fits g6.xlarge.
   */
  gpuInstanceType: string;
  /** Upper bound of GPU tasks (= instances: one GPU task per single-GPU instance). */
  maxWorkers: number;
  /**
   * Model directory name served by workers: `harmon-<size>` optionally followed by `-anything`
   * (`harmon-1.5b`, `harmon-0.5b-fp16`, ...); the size gives the shapes for the memory check.
   */
  modelVariant: string;
  /**
   * Storage dtype of the exported model (`harmon convert --dtype`): download and disk size, and
   * the host RAM peak while loading (fp16 is widened to fp32 at load). Not the GPU memory: the
   * weights are fp32 on the GPU either way.
   */
  modelDtype: 'fp16' | 'fp32';
  /** Where the exported ONNX model lives; unset -> s3://<bucket>/models/<modelVariant>/. */
  weightsS3Uri?: string;
  /** Queued-plus-running jobs one GPU task is expected to carry before another is added. */
  backlogPerTask: number;
  /** Keep stopped, pre-initialised GPU instances (EBS cost only) to cut the cold start. */
  warmPool: boolean;
  /** ACM certificate for HTTPS on the ALB; unset -> plain HTTP (development only). */
  certificateArn?: string;
  /** Email subscribed to the alarm topic. */
  alarmEmail?: string;
  /** Also route /lambda/graphql on the ALB to an HTTP-only GraphQL Lambda (src/lambda.ts). */
  graphqlLambda: boolean;
  /** Prebuilt image URIs (CI pushes them); unset -> built from infra/docker/* at deploy. */
  apiImage?: string;
  workerImage?: string;
  /** NAT gateways for private subnets (1 is the cheapest setup that can pull images). */
  natGateways: number;
  /** Aurora Serverless v2 capacity in ACU; 0 lets the cluster auto-pause when idle. */
  dbMinAcu: number;
  dbMaxAcu: number;
  /** Object lifetimes offered to tenants; objects carry the tag `harmon-retention=<days>d`. */
  retentionDays: number[];
  /** Deliveries before a job goes to the DLQ (mirrors the queue port's maxAttempts). */
  maxAttempts: number;
  /** Lease length of a job message (queue port visibilityTimeoutSeconds). */
  visibilityTimeoutSeconds: number;
  /** Age of the oldest queued job that raises the job-latency alarm. */
  jobLatencyAlarmSeconds: number;
  /** Browser origins allowed to PUT uploads to presigned URLs. */
  corsOrigins: string[];
}

export const DEFAULTS: InfraConfig = {
  gpuInstanceType: 'g6e.xlarge',
  maxWorkers: 4,
  modelVariant: 'harmon-1.5b',
  modelDtype: 'fp16',
  backlogPerTask: 4,
  warmPool: false,
  graphqlLambda: false,
  natGateways: 1,
  dbMinAcu: 0,
  dbMaxAcu: 4,
  retentionDays: [1, 7, 30, 90, 365],
  maxAttempts: 3,
  visibilityTimeoutSeconds: 120,
  jobLatencyAlarmSeconds: 600,
  corsOrigins: ['*'],
};

type Context = (key: string) => unknown;

/** Context values arrive as strings from `-c key=value` and as JSON types from cdk.json. */
export function readConfig(context: Context): InfraConfig {
  const str = (k: keyof InfraConfig) => {
    const v = context(k);
    return v === undefined || v === null || v === '' ? undefined : String(v);
  };
  const num = (k: keyof InfraConfig, def: number, min: number, max: number, integer = true) => {
    const raw = str(k);
    if (raw === undefined) return def;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
      throw new Error(
        `context ${k}=${raw}: expected ${integer ? 'an integer' : 'a number'} in [${min}, ${max}]`,
      );
    }
    return n;
  };
  const bool = (k: keyof InfraConfig, def: boolean) => {
    const raw = str(k);
    if (raw === undefined) return def;
    if (raw !== 'true' && raw !== 'false') throw new Error(`context ${k}=${raw}: expected true or false`);
    return raw === 'true';
  };
  const list = (k: keyof InfraConfig): string[] | undefined => {
    const v = context(k);
    if (v === undefined || v === null || v === '') return undefined;
    if (Array.isArray(v)) return v.map(String);
    const s = String(v).trim();
    return s.startsWith('[') ? (JSON.parse(s) as unknown[]).map(String) : s.split(',').map((x) => x.trim());
  };

  const gpuInstanceType = str('gpuInstanceType') ?? DEFAULTS.gpuInstanceType;
  // Single-GPU NVIDIA sizes only: the worker requests exactly one GPU per task.
  if (!/^(g5|g6|g6e)\.(xlarge|2xlarge|4xlarge|8xlarge|16xlarge)$/.test(gpuInstanceType)) {
    throw new Error(`context gpuInstanceType=${gpuInstanceType}: expected a single-GPU g5/g6/g6e size`);
  }
  const modelVariant = str('modelVariant') ?? DEFAULTS.modelVariant;
  if (!/^[a-z0-9][a-z0-9._-]*$/.test(modelVariant))
    throw new Error(`context modelVariant=${modelVariant}: bad name`);
  const size = variantOf(modelVariant);
  if (!size)
    throw new Error(
      `context modelVariant=${modelVariant}: must start with harmon-<size> (0.5b, 1.5b, small, tiny) so the memory check knows its shapes`,
    );
  const modelDtype = str('modelDtype') ?? DEFAULTS.modelDtype;
  if (modelDtype !== 'fp16' && modelDtype !== 'fp32')
    throw new Error(`context modelDtype=${modelDtype}: expected fp16 or fp32`);
  const fit = fitOn(gpuInstanceType, size, modelDtype === 'fp16' ? 'float16' : 'float32');
  if (fit.problems.length)
    throw new Error(
      `context gpuInstanceType=${gpuInstanceType} cannot serve ${modelVariant} (${modelDtype}): ${fit.problems.join('; ')} (see infra/README.md, "Memory")`,
    );
  const weightsS3Uri = str('weightsS3Uri');
  if (weightsS3Uri !== undefined && !/^s3:\/\/[a-z0-9.-]{3,63}\/.+/.test(weightsS3Uri)) {
    throw new Error(`context weightsS3Uri=${weightsS3Uri}: expected s3://bucket/prefix/`);
  }
  const retentionDays = (list('retentionDays') ?? DEFAULTS.retentionDays.map(String)).map(Number);
  if (retentionDays.some((d) => !Number.isInteger(d) || d < 1 || d > 3650)) {
    throw new Error(`context retentionDays: expected whole days in [1, 3650], got ${retentionDays}`);
  }
  const dbMinAcu = num('dbMinAcu', DEFAULTS.dbMinAcu, 0, 256, false);
  const dbMaxAcu = num('dbMaxAcu', DEFAULTS.dbMaxAcu, 1, 256, false);
  if (dbMaxAcu < dbMinAcu) throw new Error('context dbMaxAcu must be >= dbMinAcu');

  return {
    gpuInstanceType,
    maxWorkers: num('maxWorkers', DEFAULTS.maxWorkers, 1, 100),
    modelVariant,
    modelDtype,
    weightsS3Uri,
    backlogPerTask: num('backlogPerTask', DEFAULTS.backlogPerTask, 1, 1000),
    warmPool: bool('warmPool', DEFAULTS.warmPool),
    certificateArn: str('certificateArn'),
    alarmEmail: str('alarmEmail'),
    graphqlLambda: bool('graphqlLambda', DEFAULTS.graphqlLambda),
    apiImage: str('apiImage'),
    workerImage: str('workerImage'),
    natGateways: num('natGateways', DEFAULTS.natGateways, 1, 3),
    dbMinAcu,
    dbMaxAcu,
    retentionDays: [...new Set(retentionDays)].sort((a, b) => a - b),
    maxAttempts: num('maxAttempts', DEFAULTS.maxAttempts, 1, 1000),
    visibilityTimeoutSeconds: num('visibilityTimeoutSeconds', DEFAULTS.visibilityTimeoutSeconds, 30, 43_200),
    jobLatencyAlarmSeconds: num('jobLatencyAlarmSeconds', DEFAULTS.jobLatencyAlarmSeconds, 60, 86_400),
    corsOrigins: list('corsOrigins') ?? DEFAULTS.corsOrigins,
  };
}
