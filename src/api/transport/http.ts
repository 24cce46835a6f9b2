/**
 * POST (and GET) /graphql through Apollo Server 5 on the plain node:http server, without a web
 * framework: the admission path first (401/429 before any parsing work), then
 * `executeHTTPGraphQLRequest` with the tenant context; Apollo's plugin hook runs the admission's
 * operation checks once the document is parsed and validated. Apollo's CSRF prevention stays on
 * (a GET or a "simple" POST without a preflight-forcing header is refused).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  ApolloServer,
  type ApolloServerPlugin,
  type GraphQLRequestListener,
  HeaderMap,
} from '@apollo/server';
import { ApolloServerPluginCacheControlDisabled } from '@apollo/server/plugin/disabled';
import { GraphQLError, type GraphQLSchema } from 'graphql';
import { AppError, isAppError } from '../../shared/errors.ts';
import { formatApiError, httpStatusFor, serviceUnavailableStatus } from '../errors.ts';
import type { Admission } from '../plugins.ts';
import type { ApiContext, ApiDeps } from '../types.ts';
import {
  bodyTooLarge,
  lazyScope,
  operationAdmission,
  readBody,
  requestIdFrom,
  requestScope,
  sendErrors,
} from './request-scope.ts';

export async function createApollo(
  schema: GraphQLSchema,
  deps: ApiDeps,
  admission: Admission,
): Promise<ApolloServer<ApiContext>> {
  const apollo = newApollo(schema, deps, admission);
  await apollo.start();
  return apollo;
}

/** A refusal from the operation checks, with the HTTP status (and Retry-After) Apollo should send. */
function refusal(e: unknown): GraphQLError {
  const code = isAppError(e) ? e.code : 'INTERNAL';
  const headers = new HeaderMap();
  const retryAfter = isAppError(e) ? e.details?.retryAfter : undefined;
  if (typeof retryAfter === 'number') headers.set('retry-after', String(retryAfter));
  return new GraphQLError(e instanceof Error ? e.message : String(e), {
    originalError: e instanceof Error ? e : undefined,
    extensions: { http: { status: httpStatusFor(code), headers } },
  });
}

/** The admission's operation checks as an Apollo plugin (one listener object for every request). */
function operationChecks(admission: Admission): ApolloServerPlugin<ApiContext> {
  const listener: GraphQLRequestListener<ApiContext> = {
    async didResolveOperation(rc) {
      try {
        await admission.checkOperation(rc.contextValue, rc.document, rc.operationName);
      } catch (e) {
        throw refusal(e);
      }
    },
  };
  return { requestDidStart: async () => listener };
}

/**
 * The API's Apollo Server, not yet started: the Lambda integration starts it itself
 * (`startServerAndCreateLambdaHandler`), so it shares these rules without a second start.
 */
export function newApollo(
  schema: GraphQLSchema,
  deps: ApiDeps,
  admission: Admission,
): ApolloServer<ApiContext> {
  return new ApolloServer<ApiContext>({
    schema,
    validationRules: [...admission.validationRules],
    csrfPrevention: true,
    // The schema sets no cache hints and responses are per tenant; the default cache-control
    // plugin would still wrap every field resolver (willResolveField) on every request.
    plugins: [ApolloServerPluginCacheControlDisabled(), operationChecks(admission), serviceUnavailableStatus],
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

export function graphqlHttpHandler(apollo: ApolloServer<ApiContext>, deps: ApiDeps, admission: Admission) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const started = process.hrtime.bigint();
    const requestId = requestIdFrom(req.headers['x-request-id']);
    const scope = lazyScope(requestId, deps.log);
    let status = 500;
    res.setHeader('x-request-id', requestId);
    try {
      status = await requestScope.run(scope, async () => {
        if (req.method !== 'POST' && req.method !== 'GET')
          return sendErrors(
            res,
            new AppError(
              'BAD_USER_INPUT',
              `${req.method} is not served here; use POST (or GET for queries).`,
            ),
            scope,
            { allow: 'GET, POST' },
            405,
          );
        let ctx: ApiContext;
        try {
          ctx = await admission.admit(
            operationAdmission(req, 'http', requestId, deps.config.trustedProxyHops),
          );
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
          // The rest of the body is left unread, so this connection cannot carry another request.
          if (raw === null) return sendErrors(res, bodyTooLarge(), scope, { connection: 'close' });
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
