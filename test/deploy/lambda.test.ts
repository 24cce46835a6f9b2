/**
 * The GraphQL Lambda (src/lambda.ts) invoked in-process with synthetic ALB events against real
 * Postgres (fresh schema), s3rver and the pg-boss producer; and its cold-start secret reading
 * through the real AWS SDK against a Secrets Manager-speaking server on loopback.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { ALBEvent, ALBResult, Context } from 'aws-lambda';
import { envFromSecrets } from '../../src/config/secrets-env.ts';
import { createGraphqlLambda, type GraphqlLambda } from '../../src/lambda.ts';
import { isAppError } from '../../src/shared/errors.ts';
import { createApiKey } from '../../src/tenancy/api-keys.ts';
import { dropSchema, type FreshDatabase, freshDatabase } from '../helpers/pg.ts';
import { startS3, type TestS3 } from '../helpers/s3.ts';

let db: FreshDatabase;
let s3: TestS3;
let lambda: GraphqlLambda;
let key: string;
let tenantId: string;

before(async () => {
  db = await freshDatabase();
  s3 = await startS3('lambda-test');
  lambda = await createGraphqlLambda({
    DATABASE_URL: db.url,
    S3_ENDPOINT: s3.endpoint,
    S3_BUCKET: 'lambda-test',
    S3_ACCESS_KEY_ID: 'S3RVER',
    S3_SECRET_ACCESS_KEY: 'S3RVER',
    LOG_LEVEL: 'silent',
  });
  ({ key, tenantId } = await createApiKey(db.prisma, 'lambda-tenant'));
});

after(async () => {
  await lambda?.close();
  await dropSchema(`${db.schema}_boss`);
  await db?.drop();
  await s3?.stop();
});

const context = { awsRequestId: 'test', functionName: 'graphql' } as Context;

/** An ALB target-group event as ALB sends it for POST /lambda/graphql. */
function albEvent(body: unknown, headers: Record<string, string> = {}, base64 = false): ALBEvent {
  const text = JSON.stringify(body);
  return {
    requestContext: { elb: { targetGroupArn: 'arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/g/1' } },
    httpMethod: 'POST',
    path: '/lambda/graphql',
    queryStringParameters: {},
    headers: { 'content-type': 'application/json', host: 'alb.example', ...headers },
    body: base64 ? Buffer.from(text).toString('base64') : text,
    isBase64Encoded: base64,
  };
}

type GqlBody = {
  data?: Record<string, unknown> | null;
  errors?: { message: string; extensions?: { code?: string } }[];
};

async function invoke(event: ALBEvent): Promise<{ result: ALBResult; body: GqlBody }> {
  const result = await lambda.handler(event, context);
  return { result, body: JSON.parse(result.body ?? '') as GqlBody };
}

describe('GraphQL Lambda (ALB events)', () => {
  test('viewer with a valid key -> 200 and the tenant (base64 body too)', async () => {
    for (const base64 of [false, true]) {
      const { result, body } = await invoke(
        albEvent(
          { query: '{ viewer { tenant { id name } limits { ratePerMinute } } }' },
          { authorization: `Bearer ${key}` },
          base64,
        ),
      );
      assert.equal(result.statusCode, 200, JSON.stringify(body));
      assert.deepEqual((body.data?.viewer as { tenant: unknown } | undefined)?.tenant, {
        id: tenantId,
        name: 'lambda-tenant',
      });
      assert.match(String(result.headers?.['x-request-id']), /^[0-9a-f-]{36}$/);
    }
  });

  test('missing or unknown key -> 401 UNAUTHENTICATED, no data', async () => {
    for (const headers of [{}, { Authorization: 'Bearer hmn_000000000000_nope' }] as Record<
      string,
      string
    >[]) {
      const { result, body } = await invoke(albEvent({ query: '{ viewer { tenant { id } } }' }, headers));
      assert.equal(result.statusCode, 401);
      assert.equal(body.errors?.[0]?.extensions?.code, 'UNAUTHENTICATED');
      assert.equal(body.data, undefined);
      assert.equal(result.headers?.['www-authenticate'], 'Bearer');
    }
  });

  test('generate -> a QUEUED job row for the tenant; its id is readable through the Lambda', async () => {
    const { result, body } = await invoke(
      albEvent(
        { query: 'mutation { generate(input: { prompt: "a lambda", size: 64, steps: 2 }) { id status } }' },
        { authorization: `Bearer ${key}`, 'x-request-id': 'req-lambda-1' },
      ),
    );
    assert.equal(result.statusCode, 200, JSON.stringify(body));
    assert.equal(result.headers?.['x-request-id'], 'req-lambda-1');
    const job = body.data?.generate as { id: string; status: string };
    assert.equal(job.status, 'QUEUED');
    const row = await db.prisma.job.findUniqueOrThrow({ where: { id: job.id } });
    assert.deepEqual([row.tenantId, row.status, row.kind], [tenantId, 'QUEUED', 'GENERATE']);
    const read = await invoke(
      albEvent({ query: `{ job(id: "${job.id}") { id status } }` }, { authorization: `Bearer ${key}` }),
    );
    assert.deepEqual(read.body.data?.job, { id: job.id, status: 'QUEUED' });
  });

  test('bad input -> BAD_USER_INPUT (the API error policy), nothing written', async () => {
    const { body } = await invoke(
      albEvent(
        { query: 'mutation { generate(input: { prompt: "", size: 17 }) { id } }' },
        { authorization: `Bearer ${key}` },
      ),
    );
    assert.equal(body.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT');
    assert.equal(await db.prisma.job.count({ where: { tenantId } }), 1, 'nothing written');
  });

  test('CSRF prevention stays on: a "simple" text/plain POST is refused', async () => {
    const { result } = await invoke(
      albEvent(
        { query: '{ viewer { tenant { id } } }' },
        { authorization: `Bearer ${key}`, 'content-type': 'text/plain' },
      ),
    );
    assert.equal(result.statusCode, 400);
    assert.match(String(result.body), /CSRF/);
  });
});

describe('cold-start secrets (Secrets Manager protocol on loopback)', () => {
  let server: Server;
  let client: SecretsManagerClient;
  const requests: string[] = [];
  const secrets: Record<string, string> = {
    'arn:db': JSON.stringify({
      host: 'db.internal',
      port: 5432,
      username: 'harmon',
      password: 'p@ss/w:rd',
      dbname: 'harmon',
    }),
    'arn:text': 'not json',
  };

  before(async () => {
    server = createServer((req, res) => {
      let raw = '';
      req.on('data', (d) => (raw += d));
      req.on('end', () => {
        const id = (JSON.parse(raw) as { SecretId: string }).SecretId;
        requests.push(`${req.headers['x-amz-target']} ${id}`);
        res.setHeader('content-type', 'application/x-amz-json-1.1');
        if (!(id in secrets)) {
          res
            .writeHead(400)
            .end(JSON.stringify({ __type: 'ResourceNotFoundException', message: 'no such secret' }));
          return;
        }
        res.end(JSON.stringify({ ARN: id, Name: id, SecretString: secrets[id] }));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    client = new SecretsManagerClient({
      endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      region: 'us-east-1',
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    });
  });
  after(() => {
    client?.destroy();
    server?.close();
  });

  test('DATABASE_URL (TLS verified, fields encoded) from the database secret', async () => {
    const env = await envFromSecrets({ DATABASE_SECRET_ARN: 'arn:db' }, client);
    assert.equal(
      env.DATABASE_URL,
      'postgres://harmon:p%40ss%2Fw%3Ard@db.internal:5432/harmon?sslmode=verify-full',
    );
    assert.equal(new URL(env.DATABASE_URL).password, 'p%40ss%2Fw%3Ard');
    assert.deepEqual(requests.splice(0), ['secretsmanager.GetSecretValue arn:db']);
  });

  test('an explicit DATABASE_URL wins: nothing is fetched', async () => {
    const env = await envFromSecrets(
      { DATABASE_URL: 'postgres://x@h/db', DATABASE_SECRET_ARN: 'arn:db' },
      client,
    );
    assert.deepEqual(env, {});
    assert.deepEqual(requests.splice(0), []);
  });

  test('an unreadable or non-JSON secret -> BAD_CONFIG naming the secret, never its value', async () => {
    for (const arn of ['arn:missing', 'arn:text']) {
      await assert.rejects(envFromSecrets({ DATABASE_SECRET_ARN: arn }, client), (e: unknown) => {
        assert.ok(isAppError(e) && e.code === 'BAD_CONFIG');
        assert.match(e.message, new RegExp(arn));
        assert.doesNotMatch(e.message, /not json/);
        return true;
      });
    }
  });
});
