/**
 * POST (and GET) /graphql through Apollo Server 5 on the plain node:http server, without a web
 * framework: authenticate + rate-limit first (401/429 before any parsing work), then hand the
 * request to `executeHTTPGraphQLRequest` with the tenant context. Apollo's CSRF prevention stays
 * on (a GET or a "simple" POST without a preflight-forcing header is refused).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApolloServer, HeaderMap } from '@apollo/server';
import { ApolloServerPluginCacheControlDisabled } from '@apollo/server/plugin/disabled';
import type { GraphQLSchema } from 'graphql';
import { AppError } from '../../shared/errors.ts';
import { formatApiError, serviceUnavailableStatus } from '../errors.ts';
import type { ApiContext, ApiDeps } from '../types.ts';
import { admit, authenticate, contextFor } from '../use-auth.ts';
import { limitsRule } from '../use-limits.ts';
import { type RequestScope, readBody, requestIdFrom, requestScope, sendErrors } from './request-scope.ts';

export async function createApollo(schema: GraphQLSchema, deps: ApiDeps): Promise<ApolloServer<ApiContext>> {
  const apollo = newApollo(schema, deps);
  await apollo.start();
  return apollo;
}

/**
 * The API's Apollo Server, not yet started: the Lambda integration starts it itself
 * (`startServerAndCreateLambdaHandler`), so it shares these rules without a second start.
 */
export function newApollo(schema: GraphQLSchema, deps: ApiDeps): ApolloServer<ApiContext> {
  return new ApolloServer<ApiContext>({
    schema,
    validationRules: [limitsRule()],
    csrfPrevention: true,
    // The schema sets no cache hints and responses are per tenant; the default cache-control
    // plugin would still wrap every field resolver (willResolveField) on every request.
    plugins: [ApolloServerPluginCacheControlDisabled(), serviceUnavailableStatus],
    // `harmon serve` owns shutdown (drain the worker, close the database, then exit 0); Apollo's
    // own SIGTERM handler would stop only itself and re-raise the signal, killing the process
    // mid-drain with exit code 130.
    stopOnTerminationSignals: false,
    includeStacktraceInErrorResponses: false,
    // Introspection helps client codegen; it is cheap and covered by the same auth.
    introspection: true,
    formatError: (formatted, error) =>
      formatApiError(
        error,
        requestScope.getStore() ?? { requestId: 'unknown', log: deps.log },
        formatted.extensions?.code,
      ),
  });
}

export function graphqlHttpHandler(apollo: ApolloServer<ApiContext>, deps: ApiDeps) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const started = process.hrtime.bigint();
    const requestId = requestIdFrom(req.headers['x-request-id']);
    let log: RequestScope['log'] | undefined;
    // Only error paths log; the child logger is built on first use.
    const scope: RequestScope = {
      requestId,
      get log() {
        log ??= deps.log.child({ requestId });
        return log;
      },
    };
    let status = 500;
    res.setHeader('x-request-id', requestId);
    try {
      status = await requestScope.run(scope, async () => {
        if (req.method !== 'POST' && req.method !== 'GET') {
          res.writeHead(405, { allow: 'GET, POST' }).end();
          return 405;
        }
        let ctx: ApiContext;
        try {
          const principal = await authenticate(deps, req.headers.authorization);
          await admit(deps, principal);
          ctx = contextFor(deps, principal, requestId);
        } catch (e) {
          return sendErrors(res, e, scope);
        }
        const url = new URL(req.url ?? '/', 'http://localhost');
        let body: unknown;
        if (req.method === 'POST') {
          let raw: Buffer | null;
          try {
            raw = await readBody(req);
          } catch {
            // The client went away mid-body (load generators do this at the end of a run).
            return 499;
          }
          if (raw === null)
            return sendErrors(
              res,
              new AppError(
                'BAD_USER_INPUT',
                'The request body is larger than 2 MiB; upload big images with createUpload.',
              ),
              scope,
              // The rest of the body is left unread, so this connection cannot carry another request.
              { connection: 'close' },
            );
          const type = String(req.headers['content-type'] ?? '');
          if (/^application\/(graphql-response\+)?json/i.test(type) && raw.length > 0) {
            try {
              body = JSON.parse(raw.toString('utf8'));
            } catch {
              return sendErrors(
                res,
                new AppError('BAD_USER_INPUT', 'The request body is not valid JSON.'),
                scope,
              );
            }
          } else body = raw.toString('utf8');
        }
        const headers = new HeaderMap();
        for (const [k, v] of Object.entries(req.headers))
          if (v !== undefined) headers.set(k, Array.isArray(v) ? v.join(', ') : v);
        const result = await apollo.executeHTTPGraphQLRequest({
          httpGraphQLRequest: { method: req.method ?? 'POST', headers, search: url.search, body },
          context: async () => ctx,
        });
        const out: Record<string, string> = {};
        for (const [k, v] of result.headers) out[k] = v;
        const code = result.status ?? 200;
        res.writeHead(code, out);
        if (result.body.kind === 'complete') res.end(result.body.string);
        else {
          for await (const chunk of result.body.asyncIterator) res.write(chunk);
          res.end();
        }
        return code;
      });
    } finally {
      deps.metrics.observeRequest('http', status, Number(process.hrtime.bigint() - started) / 1e9);
    }
  };
}
