// Every error response carries a code (issue 13, finding 7: 405, 431 and some SSE 400s had
// none), and SSE bodies are bounded like POST /graphql (finding 8: SSE accepted 50 MB).
// Real server; raw sockets where fetch cannot send the request.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { connect } from 'node:net';
import { after, before, test } from 'node:test';
import { type ApiHarness, startApi } from './harness.ts';

let h: ApiHarness;
let key: string;
before(async () => {
  h = await startApi();
  const t = await h.newTenant('error-responses');
  key = t.key;
  await h.db.prisma.tenant.update({ where: { id: t.tenantId }, data: { ratePerMinute: 100_000 } });
});
after(() => h.close());

type Reply = { status: number; type: string; body: string };

async function call(path: string, init: RequestInit & { auth?: boolean } = {}): Promise<Reply> {
  const headers = new Headers(init.headers);
  if (init.auth !== false) headers.set('authorization', `Bearer ${key}`);
  const r = await fetch(`${h.url}${path}`, { ...init, headers });
  return { status: r.status, type: r.headers.get('content-type') ?? '', body: await r.text() };
}

/** A raw HTTP/1.1 exchange, for requests fetch refuses to send. */
function rawHttp(text: string): Promise<Reply> {
  const url = new URL(h.url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname, () => socket.end(text));
    let data = '';
    socket.on('data', (c) => {
      data += c;
    });
    socket.on('error', reject);
    socket.on('close', () => {
      const [head, ...rest] = data.split('\r\n\r\n');
      const status = Number(/^HTTP\/1\.1 (\d+)/.exec(head)?.[1] ?? 0);
      const type = /content-type: ([^\r\n]+)/i.exec(head)?.[1] ?? '';
      resolve({ status, type, body: rest.join('\r\n\r\n') });
    });
  });
}

/**
 * The codes of a JSON error body: GraphQL `errors[].extensions.code` or the router's
 * `error.code`; empty when any error lacks one.
 */
function codesOf(r: Reply): string[] {
  const body = JSON.parse(r.body) as {
    errors?: { extensions?: { code?: unknown } }[];
    error?: { code?: unknown };
  };
  const codes = body.error ? [body.error.code] : (body.errors ?? []).map((e) => e.extensions?.code);
  return codes.every((c) => typeof c === 'string') ? (codes as string[]) : [];
}

const json = { 'content-type': 'application/json' };
const sse = { ...json, accept: 'text/event-stream' };
const models = JSON.stringify({ query: '{ models { id } }' });

test('every error response from every route is JSON with a code', async () => {
  const bigHeader = `x-pad: ${'a'.repeat(64 * 1024)}`;
  const cases: [string, () => Promise<Reply>, number][] = [
    ['PUT /graphql', () => call('/graphql', { method: 'PUT', headers: json, body: models }), 405],
    ['no key', () => call('/graphql', { method: 'POST', headers: json, body: models, auth: false }), 401],
    ['text/plain POST (CSRF)', () => call('/graphql', { method: 'POST', body: models }), 400],
    ['GET without the preflight header (CSRF)', () => call('/graphql?query=%7Bmodels%7Bid%7D%7D'), 400],
    ['POST without a query', () => call('/graphql', { method: 'POST', headers: json, body: '{}' }), 400],
    [
      'variables that are not an object',
      () =>
        call('/graphql', {
          method: 'POST',
          headers: json,
          body: JSON.stringify({ query: '{ models { id } }', variables: 5 }),
        }),
      400,
    ],
    [
      'a mutation over GET',
      () =>
        call(`/graphql?query=${encodeURIComponent('mutation { cancelJob(id: "x") { id } }')}`, {
          headers: { 'apollo-require-preflight': '1' },
        }),
      405,
    ],
    ['invalid JSON', () => call('/graphql', { method: 'POST', headers: json, body: '{"query": ' }), 400],
    [
      'PUT /graphql/stream',
      () => call('/graphql/stream', { method: 'PUT', headers: sse, body: models }),
      405,
    ],
    [
      'SSE without Accept',
      () => call('/graphql/stream', { method: 'POST', headers: json, body: models }),
      406,
    ],
    [
      'SSE with a text/plain body',
      () =>
        call('/graphql/stream', {
          method: 'POST',
          headers: { accept: 'text/event-stream', 'content-type': 'text/plain' },
          body: models,
        }),
      415,
    ],
    ['SSE without a query', () => call('/graphql/stream', { method: 'POST', headers: sse, body: '{}' }), 400],
    [
      'SSE with a non-string query',
      () => call('/graphql/stream', { method: 'POST', headers: sse, body: '{"query": 5}' }),
      400,
    ],
    [
      'SSE mutation over GET',
      () =>
        call(`/graphql/stream?query=${encodeURIComponent('mutation { cancelJob(id: "x") { id } }')}`, {
          headers: { accept: 'text/event-stream' },
        }),
      405,
    ],
    [
      'SSE with two operations and no operationName',
      () =>
        call('/graphql/stream', {
          method: 'POST',
          headers: sse,
          body: JSON.stringify({ query: 'query A { models { id } } query B { models { id } }' }),
        }),
      400,
    ],
    [
      'SSE without a key',
      () => call('/graphql/stream', { method: 'POST', headers: sse, body: models, auth: false }),
      401,
    ],
    ['POST /metrics', () => call('/metrics', { method: 'POST' }), 405],
    ['POST /healthz', () => call('/healthz', { method: 'POST' }), 405],
    ['an unknown path', () => call('/nope'), 404],
    [
      'headers over the server limit',
      () => rawHttp(`GET /graphql HTTP/1.1\r\nHost: x\r\n${bigHeader}\r\n\r\n`),
      431,
    ],
    ['a malformed request line', () => rawHttp('BREW /pot HTCPCP/1.0 nonsense\r\n\r\n'), 400],
  ];
  const problems: string[] = [];
  for (const [name, send, want] of cases) {
    const r = await send();
    if (r.status !== want)
      problems.push(`${name}: status ${r.status}, expected ${want} (${r.body.slice(0, 120)})`);
    else if (!/application\/json/.test(r.type))
      problems.push(`${name}: content-type "${r.type}" (${r.body.slice(0, 80)})`);
    else {
      let codes: string[] = [];
      try {
        codes = codesOf(r);
      } catch {
        // not JSON
      }
      if (codes.length === 0) problems.push(`${name}: no code in ${r.body.slice(0, 160)}`);
    }
  }
  assert.deepEqual(problems, []);
});

/** POSTs `bytes` of body to `path`, tolerating the server closing before it is all sent. */
function postBig(path: string, body: string, headers: Record<string, string>) {
  const url = new URL(`${h.url}${path}`);
  return new Promise<{ status: number; connection?: string; body: string }>((resolve, reject) => {
    const req = request(
      { host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers },
      (r) => {
        let text = '';
        r.on('data', (c) => {
          text += c;
        });
        r.on('end', () =>
          resolve({ status: r.statusCode ?? 0, connection: r.headers.connection, body: text }),
        );
      },
    );
    req.on('error', (e) => (/EPIPE|ECONNRESET/.test(String(e)) ? null : reject(e)));
    req.end(body);
  });
}

test('SSE bodies are bounded like POST /graphql: 400 BAD_USER_INPUT and the connection closed', async () => {
  const huge = JSON.stringify({
    query: '{ models { id } }',
    variables: { pad: 'x'.repeat(8 * 1024 * 1024) },
  });
  const r = await postBig('/graphql/stream', huge, { ...sse, authorization: `Bearer ${key}` });
  assert.equal(r.status, 400, r.body.slice(0, 200));
  assert.equal(r.connection, 'close');
  assert.equal(JSON.parse(r.body).errors[0].extensions.code, 'BAD_USER_INPUT');
  // Within the limit the same stream is served.
  const ok = await call('/graphql/stream', { method: 'POST', headers: sse, body: models });
  assert.equal(ok.status, 200);
  assert.match(ok.body, /harmon-tiny-demo/);
});
