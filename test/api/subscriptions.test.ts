// Subscriptions over real graphql-ws and graphql-sse, with events written through the real event
// log (recordEvent -> JobEvent row + NOTIFY) and fanned out by the real EventBus.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createClient as createSseClient } from 'graphql-sse';
import type { JobEventType } from '../../src/events/job-events.ts';
import type { JobStatus } from '../../src/generated/prisma/client.ts';
import { recordEvent } from '../../src/jobs/job-lifecycle.ts';
import { type ApiHarness, collect, startApi } from './harness.ts';

let h: ApiHarness;
let a: { key: string; tenantId: string };
let b: { key: string; tenantId: string };

before(async () => {
  h = await startApi();
  a = await h.newTenant('sub-a');
  b = await h.newTenant('sub-b');
  await h.db.prisma.tenant.updateMany({ data: { ratePerMinute: 100_000 } });
});
after(() => h.close());

const EVENTS =
  'subscription($id: ID!, $after: Int) { jobEvents(jobId: $id, afterSeq: $after) { jobId seq type status step totalSteps error { code } } }';
type Ev = { jobEvents: { jobId: string; seq: number; type: string; status: string; step: number | null } };

async function newJob(key: string): Promise<string> {
  const r = await h.gql<{ generate: { id: string } }>(
    key,
    'mutation { generate(input: { prompt: "a fox", size: 64, steps: 3 }) { id } }',
  );
  assert.ok(r.body.data, JSON.stringify(r.body));
  return r.body.data.generate.id;
}

async function emit(
  tenantId: string,
  jobId: string,
  type: JobEventType,
  status: JobStatus,
  payload: Record<string, unknown> = {},
) {
  await recordEvent(h.db.prisma, jobId, tenantId, { type, status, payload });
}

/** seq 2..7 after the QUEUED event: RUNNING, 3 x PROGRESS, RESULT, SUCCEEDED. */
async function runToEnd(tenantId: string, jobId: string, fromSeq = 2) {
  const script: [JobEventType, JobStatus, Record<string, unknown>][] = [
    ['STATUS', 'RUNNING', {}],
    ['PROGRESS', 'RUNNING', { step: 1, totalSteps: 3 }],
    ['PROGRESS', 'RUNNING', { step: 2, totalSteps: 3 }],
    ['PROGRESS', 'RUNNING', { step: 3, totalSteps: 3 }],
    ['RESULT', 'RUNNING', {}],
    ['STATUS', 'SUCCEEDED', {}],
  ];
  for (const [type, status, payload] of script.slice(fromSeq - 2))
    await emit(tenantId, jobId, type, status, payload);
}

test('graphql-ws: replay + live events in order, then the stream completes after SUCCEEDED', async () => {
  const jobId = await newJob(a.key);
  const client = h.ws(a.key);
  const got = collect<Ev>(client, EVENTS, { id: jobId });
  await new Promise((r) => setTimeout(r, 300));
  await runToEnd(a.tenantId, jobId);
  const { data, errors } = await got;
  assert.deepEqual(errors, []);
  assert.deepEqual(
    data.map((d) => d.jobEvents.seq),
    [1, 2, 3, 4, 5, 6, 7],
  );
  assert.deepEqual(
    data.map((d) => d.jobEvents.status),
    ['QUEUED', 'RUNNING', 'RUNNING', 'RUNNING', 'RUNNING', 'RUNNING', 'SUCCEEDED'],
  );
  assert.deepEqual(
    data.filter((d) => d.jobEvents.type === 'PROGRESS').map((d) => d.jobEvents.step),
    [1, 2, 3],
  );
});

test('reconnect: drop after event 3, resubscribe with afterSeq 3 -> exactly the remaining events', async () => {
  const jobId = await newJob(a.key);
  await runToEnd(a.tenantId, jobId, 2);
  // Re-created job with only part of the script: first subscriber sees 1..3 and drops.
  const jobId2 = await newJob(a.key);
  await emit(a.tenantId, jobId2, 'STATUS', 'RUNNING');
  await emit(a.tenantId, jobId2, 'PROGRESS', 'RUNNING', { step: 1, totalSteps: 3 });
  const first = await collect<Ev>(h.ws(a.key), EVENTS, { id: jobId2 }, 3);
  assert.deepEqual(
    first.data.map((d) => d.jobEvents.seq),
    [1, 2, 3],
  );
  const rest = collect<Ev>(h.ws(a.key), EVENTS, { id: jobId2, after: 3 });
  await new Promise((r) => setTimeout(r, 200));
  await runToEnd(a.tenantId, jobId2, 4);
  const second = await rest;
  assert.deepEqual(second.errors, []);
  assert.deepEqual(
    second.data.map((d) => d.jobEvents.seq),
    [4, 5, 6, 7],
  );
  // A finished job replays from afterSeq and completes at once.
  const replay = await collect<Ev>(h.ws(a.key), EVENTS, { id: jobId, after: 5 });
  assert.deepEqual(
    replay.data.map((d) => d.jobEvents.seq),
    [6, 7],
  );
});

test('graphql-sse: the same stream over /graphql/stream with a Bearer header', async () => {
  const jobId = await newJob(a.key);
  await runToEnd(a.tenantId, jobId);
  const client = createSseClient({
    url: `${h.url}/graphql/stream`,
    headers: { authorization: `Bearer ${a.key}` },
    retryAttempts: 0,
  });
  const seqs: number[] = [];
  for await (const r of client.iterate<Ev>({ query: EVENTS, variables: { id: jobId, after: 2 } })) {
    assert.equal(r.errors, undefined);
    seqs.push((r.data as Ev).jobEvents.seq);
  }
  client.dispose();
  assert.deepEqual(seqs, [3, 4, 5, 6, 7]);
});

test('Subscription.jobs streams the tenant’s own jobs only', async () => {
  const mine = h.ws(a.key);
  const theirs = h.ws(b.key);
  const aGot = collect<{ jobs: { jobId: string; seq: number } }>(
    mine,
    'subscription { jobs { jobId seq } }',
    {},
    1,
  );
  const bGot = collect<{ jobs: { jobId: string } }>(theirs, 'subscription { jobs { jobId seq } }', {}, 1);
  await new Promise((r) => setTimeout(r, 300));
  const jobId = await newJob(a.key);
  const got = await aGot;
  assert.equal(got.data[0]?.jobs.jobId, jobId);
  const bJob = await newJob(b.key);
  const bData = await bGot;
  // B's first event is its own job, never A's.
  assert.equal(bData.data[0]?.jobs.jobId, bJob);
});

test('isolation: tenant B cannot subscribe to tenant A’s job (ws and sse) and gets no event', async () => {
  const jobId = await newJob(a.key);
  const ws = await collect<Ev>(h.ws(b.key), EVENTS, { id: jobId });
  assert.deepEqual(ws.data, []);
  assert.equal((ws.errors[0] as { extensions?: { code?: string } }).extensions?.code, 'NOT_FOUND');
  const sse = createSseClient({
    url: `${h.url}/graphql/stream`,
    headers: { authorization: `Bearer ${b.key}` },
    retryAttempts: 0,
  });
  const results: { data?: unknown; errors?: readonly { extensions?: Record<string, unknown> }[] }[] = [];
  for await (const r of sse.iterate({ query: EVENTS, variables: { id: jobId } })) results.push(r as never);
  sse.dispose();
  assert.equal(results.length, 1);
  assert.equal(results[0].data ?? null, null);
  assert.equal(results[0].errors?.[0]?.extensions?.code, 'NOT_FOUND');
});

test('graphql-ws without a key (or with a bad key) is closed with 4401 before any operation', async () => {
  for (const key of [undefined, 'hmn_000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA']) {
    const { data, errors } = await collect(h.ws(key), 'subscription { jobs { seq } }', {});
    assert.deepEqual(data, []);
    const e = errors[0] as { code?: number; reason?: string };
    assert.equal(e.code, 4401, String(e.reason));
    assert.match(String(e.reason), /UNAUTHENTICATED/);
  }
});

test('SSE without a key is a 401 with a coded error', async () => {
  const r = await fetch(`${h.url}/graphql/stream`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
    body: JSON.stringify({ query: 'subscription { jobs { seq } }' }),
  });
  assert.equal(r.status, 401);
  const body = (await r.json()) as { errors: { extensions: { code: string } }[] };
  assert.equal(body.errors[0].extensions.code, 'UNAUTHENTICATED');
});

test('afterSeq -1 is BAD_USER_INPUT over ws', async () => {
  const jobId = await newJob(a.key);
  const r = await collect<Ev>(h.ws(a.key), EVENTS, { id: jobId, after: -1 });
  assert.equal((r.errors[0] as { extensions?: { code?: string } }).extensions?.code, 'BAD_USER_INPUT');
});
