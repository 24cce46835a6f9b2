/**
 * The floors the API benchmark compares the full stack with: bare Apollo Servers over the same
 * schema, behind a minimal node:http handler, with none of our admission (auth, rate limit,
 * tenancy), validation, quota or event log.
 *
 * - `startFloorServer`: the same work with nothing around it. `job` does the same one-row read
 *   through the same driver (the API's own Prisma client: adapter-pg, same pool); `generate`
 *   inserts one Job row and sends the pg-boss message in one transaction, on the same database
 *   and the same pg-boss queue.
 * - `startConstantServer`: `job` returns a constant (no database at all), the older comparison.
 *
 * Both turn off Apollo's cache-control plugin as the API does, so the ratio is our overhead, not
 * a plugin the API already avoids.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApolloServer, HeaderMap } from '@apollo/server';
import { ApolloServerPluginCacheControlDisabled } from '@apollo/server/plugin/disabled';
import { typeDefs } from '../api/schema.ts';
import type { Prisma as P } from '../generated/prisma/client.ts';
import type { HarmonJobPayload, JobQueue } from '../jobs/queue/port.ts';
import { prismaSqlTransaction } from '../jobs/queue/prisma-transaction.ts';
import type { Prisma } from '../storage/db.ts';

export type BareServer = { url: string; close(): Promise<void> };

function readAll(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

async function serve(resolvers: Record<string, Record<string, unknown>>): Promise<BareServer> {
  const apollo = new ApolloServer({
    typeDefs,
    resolvers,
    plugins: [ApolloServerPluginCacheControlDisabled()],
  });
  await apollo.start();
  const server = createServer(async (req, res) => {
    const raw = await readAll(req);
    const headers = new HeaderMap();
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers.set(k, v);
    const r = await apollo.executeHTTPGraphQLRequest({
      httpGraphQLRequest: {
        method: req.method ?? 'POST',
        headers,
        search: '',
        body: JSON.parse(raw.toString() || '{}'),
      },
      context: async () => ({}),
    });
    res.writeHead(r.status ?? 200, Object.fromEntries(r.headers));
    res.end(r.body.kind === 'complete' ? r.body.string : '');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await apollo.stop();
    },
  };
}

type Row = { modelId: string; input: unknown };
const jobFields = { model: (j: Row) => j.modelId, params: (j: Row) => j.input };

export function startFloorServer(deps: {
  prisma: Prisma;
  queue: Pick<JobQueue<HarmonJobPayload>, 'sendInTransaction'>;
  /** The tenant whose rows the floor reads and writes. */
  tenantId: string;
  modelId: string;
}): Promise<BareServer> {
  const { prisma, queue, tenantId, modelId } = deps;
  const send = queue.sendInTransaction;
  if (!send) throw new Error('the enqueue floor needs a queue with transactional send (pg-boss)');
  return serve({
    Query: {
      job: (_: unknown, args: { id: string }) => prisma.job.findFirst({ where: { id: args.id, tenantId } }),
    },
    Mutation: {
      generate: (_: unknown, args: { input: Record<string, unknown> }) =>
        prisma.$transaction(async (tx) => {
          const job = await tx.job.create({
            data: { tenantId, kind: 'GENERATE', modelId, input: args.input as P.InputJsonValue },
          });
          await send.call(queue, prismaSqlTransaction(tx), { jobId: job.id, tenantId }, { key: job.id });
          return job;
        }),
    },
    Job: jobFields,
  });
}

export function startConstantServer(): Promise<BareServer> {
  const job = {
    id: '00000000-0000-4000-8000-000000000000',
    kind: 'GENERATE',
    status: 'QUEUED',
    progress: 0,
    modelId: 'm',
    input: {},
    createdAt: new Date().toISOString(),
  };
  return serve({ Query: { job: () => job }, Job: jobFields });
}
