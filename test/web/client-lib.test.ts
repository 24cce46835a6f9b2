// Unit tests of the playground's DOM-free modules: error mapping, job state, session, hash routes.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  ApiError,
  describeError,
  fieldName,
  fromGraphQLErrors,
  toApiError,
} from '../../src/web/lib/api-error.ts';
import { applyEvent, fraction, isTerminal, viewFromJob } from '../../src/web/lib/job-state.ts';
import type { Job } from '../../src/web/lib/operations.ts';
import { createSession, hashFor, parseHash } from '../../src/web/lib/session.ts';
import { job as baseJob, ev } from './job-fixtures.ts';

// A job a quarter done, of 8 steps.
const job = (over: Partial<Job> = {}) => baseJob({ progress: 0.25, params: { steps: 8 }, ...over });

describe('api errors', () => {
  test('GraphQL errors keep code, fields, retryAfter and requestId', () => {
    const e = fromGraphQLErrors([
      {
        message: 'bad',
        extensions: {
          code: 'BAD_USER_INPUT',
          fields: [{ path: 'input.steps', message: 'too big' }],
          retryAfter: 3,
          requestId: 'r1',
        },
      },
    ]);
    assert.equal(e.code, 'BAD_USER_INPUT');
    assert.deepEqual(e.fields, [{ path: 'input.steps', message: 'too big' }]);
    assert.equal(e.retryAfter, 3);
    assert.equal(e.requestId, 'r1');
    assert.equal(fromGraphQLErrors([{ message: 'x' }]).code, 'INTERNAL');
  });

  test('socket closes map to codes: 4401 with the server reason is UNAUTHENTICATED', () => {
    const e = toApiError({ code: 4401, reason: 'UNAUTHENTICATED: unknown API key' });
    assert.equal(e.code, 'UNAUTHENTICATED');
    assert.equal(e.message, 'unknown API key');
    assert.equal(toApiError({ code: 4401, reason: '' }).code, 'UNAUTHENTICATED');
    assert.equal(toApiError({ code: 1006, reason: '' }).code, 'NETWORK');
    assert.equal(toApiError(new Error('boom')).code, 'NETWORK');
    assert.equal(toApiError([{ message: 'gone', extensions: { code: 'NOT_FOUND' } }]).code, 'NOT_FOUND');
    const same = new ApiError('CONFLICT', 'x');
    assert.equal(toApiError(same), same);
  });

  test('field paths reduce to the form field name', () => {
    assert.equal(fieldName('input.steps'), 'steps');
    assert.equal(fieldName('prompt'), 'prompt');
    assert.equal(fieldName('input.items.0'), 'items');
    assert.equal(fieldName(''), '');
  });

  test('describeError gives a title per code, the fields by name and the retry delay', () => {
    const v = describeError(
      new ApiError('BAD_USER_INPUT', 'Invalid input', {
        fields: [
          { path: 'input.size', message: 'multiple of 16' },
          { path: 'input.size', message: 'second message ignored' },
        ],
      }),
    );
    assert.match(v.title, /fix the highlighted fields/);
    assert.deepEqual(v.fields, { size: 'multiple of 16' });
    const r = describeError(new ApiError('RATE_LIMITED', 'slow down', { retryAfter: 7 }));
    assert.equal(r.retryAfter, 7);
    assert.match(r.title, /Rate limit/);
    assert.match(describeError(new ApiError('QUOTA_EXCEEDED', 'q')).title, /quota/);
    assert.match(describeError(new ApiError('UNAUTHENTICATED', 'k')).title, /API key/);
    assert.match(
      describeError(new ApiError('INTERNAL', 'Internal error', { requestId: 'abc' })).detail,
      /abc/,
    );
  });
});

describe('job state', () => {
  test('snapshot: step from progress x params.steps', () => {
    const v = viewFromJob(job(), 3);
    assert.equal(v.step, 2);
    assert.equal(v.totalSteps, 8);
    assert.equal(v.seq, 3);
    assert.equal(fraction(v), 0.25);
  });

  test('events apply in order, once: replays and other jobs are ignored', () => {
    let v = viewFromJob(job({ progress: 0 }));
    v = applyEvent(v, ev(1, { step: 1, totalSteps: 8 }));
    v = applyEvent(v, ev(2, { type: 'PREVIEW', step: 1, totalSteps: 8, previewUrl: 'http://s3/p1.png' }));
    const before = v;
    assert.equal(applyEvent(v, ev(2, { step: 5 })), before, 'replayed seq is a no-op');
    assert.equal(applyEvent(v, ev(3, { jobId: 'other', step: 5 })), before, 'other job is a no-op');
    assert.equal(v.previewUrl, 'http://s3/p1.png');
    assert.equal(v.seq, 2);
    v = applyEvent(v, ev(3, { type: 'STATUS', status: 'SUCCEEDED' }));
    assert.ok(isTerminal(v));
    assert.equal(fraction(v), 1);
    assert.equal(v.step, 8);
  });

  test('text deltas append once; RESULT text wins; ERROR keeps the code', () => {
    let v = viewFromJob(job({ kind: 'DESCRIBE', progress: 0, params: {} }));
    v = applyEvent(v, ev(1, { type: 'TEXT_DELTA', textDelta: 'A ' }));
    v = applyEvent(v, ev(1, { type: 'TEXT_DELTA', textDelta: 'A ' }));
    v = applyEvent(v, ev(2, { type: 'TEXT_DELTA', textDelta: 'cat' }));
    assert.equal(v.text, 'A cat');
    v = applyEvent(v, ev(3, { type: 'RESULT', text: 'A cat.' }));
    assert.equal(v.text, 'A cat.');
    v = applyEvent(v, ev(4, { type: 'ERROR', status: 'FAILED', error: { code: 'INTERNAL', message: 'x' } }));
    assert.equal(v.error?.code, 'INTERNAL');
    assert.equal(v.status, 'FAILED');
  });
});

describe('session and routes', () => {
  const memory = () => {
    const m = new Map<string, string>();
    return {
      getItem: (k: string) => m.get(k) ?? null,
      setItem: (k: string, v: string) => void m.set(k, v),
      removeItem: (k: string) => void m.delete(k),
    };
  };

  test('API key and saved job round trip; a saved job answers only for its id', () => {
    const s = createSession(memory());
    assert.equal(s.apiKey(), '');
    s.setApiKey('hk_1');
    assert.equal(s.apiKey(), 'hk_1');
    s.setApiKey('');
    assert.equal(s.apiKey(), '');
    s.saveJob('generate', { id: 'a', seq: 4, previewUrl: 'u' });
    assert.deepEqual(s.savedJob('generate', 'a'), { id: 'a', seq: 4, previewUrl: 'u' });
    assert.equal(s.savedJob('generate', 'b'), undefined);
    assert.equal(s.savedJob('describe', 'a'), undefined);
    assert.equal(s.lastJobId('generate'), 'a');
  });

  test('corrupt storage is ignored rather than breaking the page', () => {
    const store = memory();
    store.setItem('harmon.job.generate', '{not json');
    const s = createSession(store);
    assert.equal(s.savedJob('generate', 'a'), undefined);
    assert.equal(s.lastJobId('generate'), undefined);
  });

  test('hash routes', () => {
    assert.deepEqual(parseHash('#/describe/abc-123'), { tab: 'describe', jobId: 'abc-123' });
    assert.deepEqual(parseHash('#/generate'), { tab: 'generate', jobId: undefined });
    assert.deepEqual(parseHash('#/history/x'), { tab: 'history' });
    assert.deepEqual(parseHash('#/generate/<script>'), { tab: 'generate' });
    assert.deepEqual(parseHash(''), { tab: 'generate' });
    assert.equal(hashFor('generate', 'j'), '#/generate/j');
    assert.equal(hashFor('history'), '#/history');
  });
});
