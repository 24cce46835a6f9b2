/**
 * Webhooks: terminal job events delivered from the durable log to the job's webhookUrl.
 *
 * The job's ending (job-lifecycle.ts) writes a WebhookDelivery row in its final transaction; the
 * dispatcher here claims due rows (SKIP LOCKED, so several workers never send the same row at once), reads the
 * event from the log, signs `${timestamp}.${body}` with HMAC-SHA256 under the tenant's
 * webhookSecret (header `Harmon-Signature: t=<unix seconds>,v1=<hex>`), POSTs it through the
 * SSRF-safe fetch, and on failure (non-2xx, timeout, refused) schedules a retry with exponential
 * backoff until `maxAttempts`. Receivers must check the timestamp too (replay window). The URL
 * rule is checked when the job is enqueued too (enqueue.ts), so a refused target fails the request.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { toEventRecord } from '../events/job-events.ts';
import { type FetchPolicy, safeFetch } from '../net/safe-fetch.ts';
import { AppError } from '../shared/errors.ts';
import { type Logger, logger as rootLogger } from '../shared/logger.ts';
import type { Prisma } from '../storage/db.ts';

export const SIGNATURE_HEADER = 'Harmon-Signature';

export function signWebhook(secret: string, timestamp: number, body: string): string {
  const mac = createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
  return `t=${timestamp},v1=${mac}`;
}

/** Receiver side (and tests): valid signature and timestamp within `toleranceSeconds` of now. */
export function verifyWebhookSignature(
  secret: string,
  header: string,
  body: string,
  options: { toleranceSeconds?: number; now?: number } = {},
): boolean {
  const parts = Object.fromEntries(
    header.split(',').map((kv) => kv.trim().split('=', 2) as [string, string]),
  );
  const t = Number(parts.t);
  if (!Number.isInteger(t) || !parts.v1) return false;
  const now = options.now ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - t) > (options.toleranceSeconds ?? 300)) return false;
  const expected = Buffer.from(signWebhook(secret, t, body).split('v1=')[1], 'hex');
  const given = Buffer.from(parts.v1, 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

export interface WebhookOptions {
  fetchPolicy?: FetchPolicy;
  maxAttempts?: number;
  /** First retry delay; doubled per attempt, capped at one hour. */
  baseDelayMs?: number;
  timeoutMs?: number;
  batch?: number;
  log?: Logger;
}

interface Claimed {
  id: string;
  tenantId: string;
  jobId: string;
  eventSeq: number;
  url: string;
  attempts: number;
}

/** Sends every due delivery once; returns how many were delivered (2xx). */
export async function deliverDueWebhooks(prisma: Prisma, options: WebhookOptions = {}): Promise<number> {
  const log = options.log ?? rootLogger;
  const maxAttempts = options.maxAttempts ?? 8;
  const timeoutMs = options.timeoutMs ?? 10_000;
  // The claim pushes nextAttemptAt past the request's timeout: a crashed sender's rows come back.
  const leaseSeconds = Math.ceil(timeoutMs / 1000) + 30;
  const claimed = await prisma.$queryRaw<Claimed[]>`
    UPDATE "WebhookDelivery" SET "nextAttemptAt" = now() + make_interval(secs => ${leaseSeconds})
    WHERE id IN (
      SELECT id FROM "WebhookDelivery"
      WHERE "deliveredAt" IS NULL AND "nextAttemptAt" <= now() AND attempts < ${maxAttempts}
      ORDER BY "nextAttemptAt" LIMIT ${options.batch ?? 20} FOR UPDATE SKIP LOCKED)
    RETURNING id, "tenantId", "jobId", "eventSeq", url, attempts`;
  let delivered = 0;
  for (const d of claimed) {
    try {
      await send(prisma, d, options, timeoutMs);
      await prisma.webhookDelivery.update({
        where: { id: d.id },
        data: { deliveredAt: new Date(), attempts: d.attempts + 1, lastError: null },
      });
      delivered++;
    } catch (e) {
      const attempts = d.attempts + 1;
      const delay = Math.min((options.baseDelayMs ?? 10_000) * 2 ** (attempts - 1), 3_600_000);
      const lastError = (e instanceof Error ? e.message : String(e)).slice(0, 500);
      await prisma.webhookDelivery.update({
        where: { id: d.id },
        data: {
          attempts: e instanceof AppError && e.details?.final ? maxAttempts : attempts,
          nextAttemptAt: new Date(Date.now() + delay),
          lastError,
        },
      });
      log.warn({ jobId: d.jobId, attempts, err: lastError }, 'webhook delivery failed');
    }
  }
  return delivered;
}

async function send(prisma: Prisma, d: Claimed, options: WebhookOptions, timeoutMs: number): Promise<void> {
  const [tenant, event, job] = await Promise.all([
    prisma.tenant.findUnique({ where: { id: d.tenantId }, select: { webhookSecret: true } }),
    prisma.jobEvent.findFirst({ where: { jobId: d.jobId, tenantId: d.tenantId, seq: d.eventSeq } }),
    prisma.job.findFirst({ where: { id: d.jobId, tenantId: d.tenantId } }),
  ]);
  if (!event || !job)
    throw new AppError('NOT_FOUND', 'the job or event no longer exists', { details: { final: true } });
  if (!tenant?.webhookSecret) {
    throw new AppError('BAD_CONFIG', 'the tenant has no webhookSecret; deliveries cannot be signed', {
      details: { final: true },
    });
  }
  const e = toEventRecord(event);
  const body = JSON.stringify({
    deliveryId: d.id,
    type: `job.${e.payload.status.toLowerCase()}`,
    job: {
      id: job.id,
      kind: job.kind,
      status: job.status,
      errorCode: job.errorCode,
      errorMessage: job.errorMessage,
      text: job.text,
      finishedAt: job.finishedAt,
    },
    event: { seq: e.seq, type: e.type, status: e.payload.status, at: e.createdAt, payload: e.payload },
  });
  const timestamp = Math.floor(Date.now() / 1000);
  const res = await safeFetch(d.url, {
    ...options.fetchPolicy,
    what: 'webhook URL',
    method: 'POST',
    body,
    headers: {
      'content-type': 'application/json',
      [SIGNATURE_HEADER]: signWebhook(tenant.webhookSecret, timestamp, body),
      'Harmon-Delivery': d.id,
      'user-agent': 'harmon-webhooks/1',
    },
    maxBytes: 64 * 1024,
    timeoutMs,
  });
  if (res.status < 200 || res.status >= 300) throw new Error(`receiver answered HTTP ${res.status}`);
}

/** Polls for due deliveries every `intervalMs` until stopped. */
export function startWebhookDispatcher(
  prisma: Prisma,
  options: WebhookOptions & { intervalMs?: number } = {},
): { stop(): Promise<void> } {
  let running: Promise<unknown> = Promise.resolve();
  let stopped = false;
  const timer = setInterval(() => {
    running = running.then(() =>
      stopped
        ? 0
        : deliverDueWebhooks(prisma, options).catch((e: unknown) =>
            (options.log ?? rootLogger).warn({ err: e }, 'webhook dispatch failed'),
          ),
    );
  }, options.intervalMs ?? 2000);
  timer.unref();
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
