/**
 * Webhooks end to end on the real API (HTTP, Postgres, pg-boss), the real CLI and a real loopback
 * receiver: private, loopback and metadata targets are refused when the job is enqueued; a
 * tenant's signing secret is set and rotated through the API (`rotateWebhookSecret`) and the CLI
 * (`harmon tenants webhook-secret`), shown once; a delivered webhook verifies with the secret
 * that was returned, and no longer with the one it replaced. Delivering to loopback needs the
 * test-only FetchPolicy, which only in-process code can pass.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { enqueueJob } from '../../src/jobs/enqueue.ts';
import { requestCancel } from '../../src/jobs/job-lifecycle.ts';
import { deliverDueWebhooks, verifyWebhookSignature } from '../../src/jobs/webhooks.ts';
import { isAppError } from '../../src/shared/errors.ts';
import { type ApiHarness, GEN, gen, startApi } from '../api/harness.ts';
import { runHarmon } from '../helpers/cli-process.ts';

const TEST_ONLY = { allowLoopback: true, allowHttp: true };
/** DNS for the test: names in the table, nothing else resolves. */
const dns: Record<string, string[]> = {
  'hooks.example.com': ['93.184.216.34'],
  'rebind.example.com': ['93.184.216.34', '10.1.2.3'],
  'internal.example.com': ['192.168.1.20'],
};
const lookup = async (host: string) => {
  const a = dns[host];
  if (!a) throw new Error(`ENOTFOUND ${host}`);
  return a;
};

let h: ApiHarness;
let tenant: { key: string; tenantId: string };
let receiver: Server;
let hookUrl: string;
const received: { body: string; signature: string }[] = [];

before(async () => {
  h = await startApi({ lookup });
  tenant = await h.newTenant('hooks');
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      received.push({ body, signature: String(req.headers['harmon-signature'] ?? '') });
      res.end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
});
after(async () => {
  receiver?.close();
  await h?.close();
});

test('webhook URLs to loopback, private, link-local or metadata addresses are refused at enqueue (BAD_USER_INPUT, webhookUrl), nothing stored', async () => {
  const refused = [
    'https://127.0.0.1/hook',
    'https://[::1]/hook',
    'https://169.254.169.254/latest/meta-data/',
    'https://10.0.0.5/hook',
    'https://[::ffff:192.168.0.1]/hook',
    'https://localhost/hook',
    'https://metadata.google.internal/computeMetadata/v1/',
    'https://internal.example.com/hook',
    'https://rebind.example.com/hook',
    'https://nowhere.example.com/hook',
    'http://hooks.example.com/hook',
  ];
  const before = await h.db.prisma.job.count();
  for (const url of refused) {
    const r = await h.gql(tenant.key, GEN, gen({ webhookUrl: url }));
    const e = r.body.errors?.[0];
    assert.equal(e?.extensions?.code, 'BAD_USER_INPUT', `${url}: ${JSON.stringify(r.body)}`);
    assert.deepEqual(
      (e?.extensions?.fields as { path: string }[] | undefined)?.map((f) => f.path),
      ['webhookUrl'],
      url,
    );
  }
  assert.equal(await h.db.prisma.job.count(), before, 'no job was created');
  // A public host is accepted.
  const ok = await h.gql<{ generate: { id: string } }>(
    tenant.key,
    GEN,
    gen({ webhookUrl: 'https://hooks.example.com/hook' }),
  );
  assert.ok(ok.body.data?.generate.id, JSON.stringify(ok.body));
  // The same rule without the API in front (enqueueJob is the one producer).
  await assert.rejects(
    enqueueJob(
      { prisma: h.db.prisma, queue: h.api.queue },
      {
        tenantId: tenant.tenantId,
        kind: 'GENERATE',
        modelId: 'm',
        input: { prompt: 'x' },
        webhookUrl: hookUrl,
      },
    ),
    (e: unknown) => isAppError(e) && e.code === 'BAD_USER_INPUT' && /webhook URL was refused/.test(e.message),
  );
});

/** A job of the tenant that ends at once (canceled while QUEUED), with a webhook to our receiver. */
async function endedJobWithWebhook(): Promise<string> {
  const job = await enqueueJob(
    { prisma: h.db.prisma, queue: h.api.queue, urlPolicy: TEST_ONLY },
    {
      tenantId: tenant.tenantId,
      kind: 'GENERATE',
      modelId: 'm',
      input: { prompt: 'hook' },
      webhookUrl: hookUrl,
    },
  );
  await requestCancel(h.db.prisma, tenant.tenantId, job.id);
  return job.id;
}

async function deliver(jobId: string): Promise<{ body: string; signature: string }> {
  const from = received.length;
  assert.equal(await deliverDueWebhooks(h.db.prisma, { fetchPolicy: TEST_ONLY }), 1);
  assert.equal(received.length, from + 1);
  const got = received[from];
  assert.equal(JSON.parse(got.body).job.id, jobId);
  return got;
}

const ROTATE = 'mutation { rotateWebhookSecret { secret createdAt } }';

test('rotateWebhookSecret returns a new secret once; a delivered webhook verifies with it, not with the old one', async () => {
  // Without a secret, nothing can be signed: the delivery is given up, not sent unsigned.
  const unsigned = await endedJobWithWebhook();
  assert.equal(await deliverDueWebhooks(h.db.prisma, { fetchPolicy: TEST_ONLY }), 0);
  const row = await h.db.prisma.webhookDelivery.findFirstOrThrow({ where: { jobId: unsigned } });
  assert.match(row.lastError ?? '', /no webhookSecret/);

  const first = await h.gql<{ rotateWebhookSecret: { secret: string; createdAt: string } }>(
    tenant.key,
    ROTATE,
  );
  const s1 = first.body.data?.rotateWebhookSecret.secret ?? '';
  assert.match(s1, /^whsec_[A-Za-z0-9_-]{43}$/, JSON.stringify(first.body));
  const d1 = await deliver(await endedJobWithWebhook());
  assert.equal(verifyWebhookSignature(s1, d1.signature, d1.body), true);

  const second = await h.gql<{ rotateWebhookSecret: { secret: string } }>(tenant.key, ROTATE);
  const s2 = second.body.data?.rotateWebhookSecret.secret ?? '';
  assert.notEqual(s2, s1);
  const d2 = await deliver(await endedJobWithWebhook());
  assert.equal(verifyWebhookSignature(s2, d2.signature, d2.body), true);
  assert.equal(verifyWebhookSignature(s1, d2.signature, d2.body), false, 'the old secret is retired');

  // Only keys with the webhooks:write scope (or "*") may rotate it.
  const reader = await h.newTenant('hooks-reader', ['jobs:write']);
  const denied = await h.gql(reader.key, ROTATE);
  assert.equal(denied.body.errors?.[0]?.extensions?.code, 'FORBIDDEN');
});

const cli = (args: string[]) =>
  runHarmon(args, {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '',
    DATABASE_URL: h.db.url,
    LOG_LEVEL: 'warn',
  });

test('harmon tenants webhook-secret rotates the secret and prints it once; deliveries verify with it', async () => {
  const r = await cli(['tenants', 'webhook-secret', '--tenant', 'hooks']);
  assert.equal(r.code, 0, r.stderr);
  const secret = r.stdout.trim().split('\n').at(-1) ?? '';
  assert.match(secret, /^whsec_[A-Za-z0-9_-]{43}$/);
  const d = await deliver(await endedJobWithWebhook());
  assert.equal(verifyWebhookSignature(secret, d.signature, d.body), true);

  const missing = await cli(['tenants', 'webhook-secret', '--tenant', 'no-such-tenant']);
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /NOT_FOUND: tenant no-such-tenant was not found/);
});
