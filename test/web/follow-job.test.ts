// followJob against a scripted client: snapshot -> subscribe(afterSeq) -> final snapshot, with
// resume after a reload and after a dropped connection, and coded errors passed through.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { ApiError } from '../../src/web/lib/api-error.ts';
import { followJob } from '../../src/web/lib/follow-job.ts';
import { createGraphQLClient, type GraphQLClient, type Sink } from '../../src/web/lib/graphql-client.ts';
import type { JobView } from '../../src/web/lib/job-state.ts';
import type { Job, JobEvent } from '../../src/web/lib/operations.ts';
import { ev as baseEv, job } from './job-fixtures.ts';

// Progress events of a 4-step job carry their step.
const ev = (seq: number, over: Partial<JobEvent> = {}) => baseEv(seq, { step: seq, totalSteps: 4, ...over });

/** A client whose subscriptions are driven by the test; records every afterSeq asked for. */
function scripted(snapshots: Job[]) {
  const subs: { afterSeq: number; sink: Sink<{ jobEvents: JobEvent }> }[] = [];
  let unsubscribed = 0;
  const client: GraphQLClient = {
    async request<T>(): Promise<T> {
      const next = snapshots.length > 1 ? snapshots.shift() : snapshots[0];
      return { job: next } as T;
    },
    subscribe<T>(_q: string, vars: Record<string, unknown>, sink: Sink<T>) {
      subs.push({
        afterSeq: vars.afterSeq as number,
        sink: sink as unknown as Sink<{ jobEvents: JobEvent }>,
      });
      return () => {
        unsubscribed += 1;
      };
    },
    reset() {},
  };
  return { client, subs, unsubscribed: () => unsubscribed };
}

const tick = () => new Promise((r) => setTimeout(r, 5));

describe('followJob', () => {
  test('fresh job: subscribes from 0, applies events, fetches outputs at the end', async () => {
    const done = job({
      status: 'SUCCEEDED',
      progress: 1,
      images: [{ id: 'i', url: 'http://s3/i.png', contentType: 'image/png', bytes: 9 }],
    });
    const s = scripted([job(), done]);
    const views: JobView[] = [];
    const f = followJob(s.client, 'j1', {
      onView: (v) => views.push(v),
      onError: (e) => assert.fail(e.message),
    });
    await tick();
    assert.equal(s.subs.length, 1);
    assert.equal(s.subs[0].afterSeq, 0);
    s.subs[0].sink.next({ jobEvents: ev(1) });
    s.subs[0].sink.next({ jobEvents: ev(2, { type: 'PREVIEW', previewUrl: 'http://s3/p.png' }) });
    s.subs[0].sink.next({ jobEvents: ev(3, { type: 'STATUS', status: 'SUCCEEDED' }) });
    s.subs[0].sink.complete();
    const last = await f.done;
    assert.equal(last?.status, 'SUCCEEDED');
    assert.equal(last?.images[0].url, 'http://s3/i.png');
    assert.ok(views.some((v) => v.previewUrl === 'http://s3/p.png'));
  });

  test('reload: resumes after the saved seq and shows the saved preview at once', async () => {
    const s = scripted([job({ progress: 0.5 })]);
    const views: JobView[] = [];
    const f = followJob(s.client, 'j1', {
      resume: { seq: 5, previewUrl: 'http://s3/p5.png' },
      onView: (v) => views.push(v),
      onError: () => {},
    });
    await tick();
    assert.equal(s.subs[0].afterSeq, 5);
    assert.equal(views[0].previewUrl, 'http://s3/p5.png');
    assert.equal(views[0].step, 2);
    f.stop();
    assert.equal(s.unsubscribed(), 1);
  });

  test('a dropped connection resubscribes from the last seen seq', async () => {
    const s = scripted([job()]);
    const f = followJob(s.client, 'j1', {
      retryDelayMs: 1,
      onView: () => {},
      onError: (e) => assert.fail(e.message),
    });
    await tick();
    s.subs[0].sink.next({ jobEvents: ev(1) });
    s.subs[0].sink.next({ jobEvents: ev(2) });
    s.subs[0].sink.error(new ApiError('NETWORK', 'closed'));
    await tick();
    assert.equal(s.subs.length, 2);
    assert.equal(s.subs[1].afterSeq, 2);
    f.stop();
  });

  test('coded errors end the follow and reach onError; a terminal snapshot never subscribes', async () => {
    const s = scripted([job()]);
    let got: ApiError | undefined;
    followJob(s.client, 'j1', { onView: () => {}, onError: (e) => (got = e) });
    await tick();
    s.subs[0].sink.error(new ApiError('UNAUTHENTICATED', 'bad key'));
    assert.equal(got?.code, 'UNAUTHENTICATED');

    const t = scripted([job({ status: 'FAILED', error: { code: 'INTERNAL', message: 'x' } })]);
    const v = await followJob(t.client, 'j1', { onView: () => {}, onError: () => {} }).done;
    assert.equal(v?.status, 'FAILED');
    assert.equal(t.subs.length, 0);
  });
});

describe('GraphQL client over HTTP', () => {
  test('sends the bearer key, returns data, and turns coded errors into ApiError', async () => {
    const seen: string[] = [];
    const server = createServer((req, res) => {
      seen.push(String(req.headers.authorization));
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        const { query } = JSON.parse(body) as { query: string };
        res.setHeader('content-type', 'application/json');
        if (query.includes('fail')) {
          res.statusCode = 429;
          res.end(
            JSON.stringify({
              errors: [{ message: 'slow', extensions: { code: 'RATE_LIMITED', retryAfter: 2 } }],
            }),
          );
        } else if (query.includes('html')) res.end('<html>');
        else res.end(JSON.stringify({ data: { ok: true } }));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`;
    try {
      const c = createGraphQLClient({
        httpUrl: url,
        wsUrl: url.replace('http', 'ws'),
        getKey: () => 'hk_test',
      });
      assert.deepEqual(await c.request('{ ok }'), { ok: true });
      assert.equal(seen[0], 'Bearer hk_test');
      await assert.rejects(
        c.request('{ fail }'),
        (e: ApiError) => e.code === 'RATE_LIMITED' && e.retryAfter === 2,
      );
      await assert.rejects(c.request('{ html }'), (e: ApiError) => e.code === 'BAD_RESPONSE');
      const dead = createGraphQLClient({
        httpUrl: 'http://127.0.0.1:1/graphql',
        wsUrl: 'ws://127.0.0.1:1',
        getKey: () => '',
      });
      await assert.rejects(dead.request('{ ok }'), (e: ApiError) => e.code === 'NETWORK');
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
