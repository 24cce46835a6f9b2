/**
 * TypeScript shapes of schema.graphql (hand-written, kept in this one file) and the context every
 * resolver receives. Field resolvers return Prisma rows for object types and the mapping to the
 * GraphQL shape happens in resolvers/job-fields.ts, so the SDL stays the single source of truth.
 */
import type { Config } from '../config/config.ts';
import type { JobEventRecord } from '../events/job-events.ts';
import type { JobKind, JobStatus } from '../generated/prisma/client.ts';
import type { HarmonJobPayload, JobQueue } from '../jobs/queue/port.ts';
import type { Logger } from '../shared/logger.ts';
import type { BlobStore } from '../storage/blob-store.ts';
import type { Prisma } from '../storage/db.ts';
import type { TenantScope } from '../storage/tenant-scope.ts';
import type { ApiKeyCache } from '../tenancy/key-cache.ts';
import type { RateLimiter } from '../tenancy/rate-limit.ts';
import type { ApiMetrics } from './metrics.ts';
import type { ModelInfo } from './models.ts';

// ---- GraphQL input types -------------------------------------------------------------------

export type CfgScheduleGql = 'CONSTANT' | 'LINEAR';

export type GenerateInputGql = {
  prompt: string;
  negativePrompt?: string | null;
  seed?: number | null;
  steps?: number | null;
  cfg?: number | null;
  cfgSchedule?: CfgScheduleGql | null;
  temperature?: number | null;
  size?: number | null;
  count?: number | null;
  model?: string | null;
  idempotencyKey?: string | null;
  webhookUrl?: string | null;
};

export type DescribeInputGql = {
  uploadId?: string | null;
  imageUrl?: string | null;
  imageBase64?: string | null;
  prompt?: string | null;
  maxTokens?: number | null;
  model?: string | null;
  idempotencyKey?: string | null;
  webhookUrl?: string | null;
};

export type JobFilterGql = { kind?: JobKind | null; status?: JobStatus | null; createdAfter?: Date | null };

export type JobsArgs = { first?: number | null; after?: string | null; filter?: JobFilterGql | null };

// ---- GraphQL output types (those not backed by a Prisma row) --------------------------------

export type JobErrorGql = { code: string; message: string };

export type ImageGql = {
  id: string;
  url: string;
  expiresAt: Date;
  width: number | null;
  height: number | null;
  contentType: string;
  bytes: number;
};

export type JobEventGql = {
  jobId: string;
  seq: number;
  type: string;
  status: JobStatus;
  at: Date;
  step?: number | null;
  totalSteps?: number | null;
  stage?: string | null;
  previewUrl?: string | null;
  textDelta?: string | null;
  text?: string | null;
  error?: JobErrorGql | null;
};

export type UploadGql = {
  id: string;
  uploadUrl: string;
  contentType: string;
  maxBytes: number;
  expiresAt: Date;
};

// ---- Context --------------------------------------------------------------------------------

/** Where subscriptions read events from: satisfied by src/jobs/event-bus.ts `EventBus`. */
export interface JobEventSource {
  subscribeJob(tenantId: string, jobId: string, afterSeq: number): AsyncIterable<JobEventRecord>;
  subscribeTenant(tenantId: string): AsyncIterable<JobEventRecord>;
}

/** Everything the API needs, built once per server. */
export type ApiDeps = {
  config: Pick<Config, 'presignTtlSeconds' | 'maxUploadBytes' | 'trustedProxyHops'>;
  prisma: Prisma;
  blobStore: BlobStore;
  queue: Pick<JobQueue<HarmonJobPayload>, 'send'>;
  events: JobEventSource;
  rateLimiter: RateLimiter;
  models: ModelInfo[];
  metrics: ApiMetrics;
  log: Logger;
  /** Resolves a hostname to addresses (tests may inject; default dns.lookup). */
  lookup?: (host: string) => Promise<string[]>;
  /** The API-key cache (default: the process-wide one that revokeApiKey invalidates). */
  keyCache?: ApiKeyCache;
};

/** Per operation: the authenticated tenant plus the tenant-scoped data layer. */
export type ApiContext = {
  deps: ApiDeps;
  /** The transport serving the operation (use-operation-kinds refuses streams over plain HTTP). */
  transport: Transport;
  tenantId: string;
  keyId: string;
  scopes: string[];
  /** The tenant's request limit (use-rate-limit counts extra mutation fields against it). */
  ratePerMinute: number;
  db: TenantScope;
  requestId: string;
  log: Logger;
};

export type Transport = 'http' | 'ws' | 'sse' | 'lambda';
