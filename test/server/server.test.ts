// In-process server on real Postgres (fresh schema) and s3rver: health, mounting, failure reporting.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { loadConfig } from '../../src/config/config.ts';
import { sendJson } from '../../src/server/app.ts';
import { type ServerHandle, startServer, VERSION } from '../../src/server/server.ts';
import { type FreshDatabase, freshDatabase } from '../helpers/pg.ts';
import { startS3, type TestS3 } from '../helpers/s3.ts';

let db: FreshDatabase;
let s3: TestS3;
let server: ServerHandle;
let setupSawPrisma = false;

before(async () => {
  db = await freshDatabase({ migrate: false });
  s3 = await startS3('server-test');
  const config = loadConfig({
    PORT: '0',
    DATABASE_URL: db.url,
    S3_ENDPOINT: s3.endpoint,
    S3_BUCKET: 'server-test',
    S3_ACCESS_KEY_ID: 'S3RVER',
    S3_SECRET_ACCESS_KEY: 'S3RVER',
    HARMON_HOME: '/nonexistent/never-created',
  });
  server = await startServer(config, {
    setup: [
      async (ctx) => {
        setupSawPrisma = (await ctx.prisma.tenant.count()) === 0;
        ctx.app.mount('/echo', (req, res) => sendJson(res, 200, { path: req.url }));
        ctx.app.mount('/boom', () => {
          throw new Error('secret detail');
        });
      },
    ],
  });
});
after(async () => {
  await server?.close();
  await s3.stop();
  await db.drop();
});

test('startServer migrates the configured database and runs setup hooks with a live client', async () => {
  assert.ok(setupSawPrisma);
  const rows = await db.prisma.$queryRawUnsafe<{ n: bigint }[]>(
    `SELECT count(*) AS n FROM "${db.schema}"._harmon_migrations`,
  );
  assert.ok(Number(rows[0].n) >= 1);
});

test('GET /healthz answers 200 with database and storage ok', async () => {
  const r = await fetch(`${server.url}/healthz`);
  assert.equal(r.status, 200);
  assert.deepEqual(await r.json(), { status: 'ok', database: 'ok', storage: 'ok', version: VERSION });
});

test('mounted routes are reached by prefix; unknown paths 404; errors are masked', async () => {
  const r = await fetch(`${server.url}/echo/x?y=1`);
  assert.deepEqual(await r.json(), { path: '/echo/x?y=1' });
  assert.equal((await fetch(`${server.url}/echoes`)).status, 404);
  const boom = await fetch(`${server.url}/boom`);
  assert.equal(boom.status, 500);
  assert.ok(!(await boom.text()).includes('secret detail'));
});

test('healthz reports 503 naming storage when S3 is down', async () => {
  await s3.stop();
  const r = await fetch(`${server.url}/healthz`);
  assert.equal(r.status, 503);
  const body = (await r.json()) as { database: string; storage: string };
  assert.equal(body.database, 'ok');
  assert.match(body.storage, /^error/);
  s3 = { ...s3, stop: async () => {} };
});
