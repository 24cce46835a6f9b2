/**
 * graphql-ws at /graphql (WebSocket upgrade on the same http.Server). The API key arrives in the
 * connection_init payload ({ authorization: 'Bearer <key>' }); a missing or bad key closes the
 * socket with 4401 before any operation runs. Every subscribe message is rate-limited, parsed
 * and validated with the same depth/cost rules as HTTP, and every error is formatted by the
 * shared error policy (masked when unexpected).
 */
import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import { GraphQLError, type GraphQLSchema } from 'graphql';
import type { Context } from 'graphql-ws';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import { isAppError } from '../../shared/errors.ts';
import { formatApiError } from '../errors.ts';
import type { ApiContext, ApiDeps } from '../types.ts';
import { admit, authenticate, contextFor, type Principal } from '../use-auth.ts';
import { documentCache } from '../use-limits.ts';

export const WS_UNAUTHENTICATED = 4401;

type WsContext = Context<Record<string, unknown> | undefined, unknown>;

export function attachGraphqlWs(httpServer: Server, schema: GraphQLSchema, deps: ApiDeps, path = '/graphql') {
  const wss = new WebSocketServer({ server: httpServer, path });
  const principals = new WeakMap<object, Principal>();
  const contexts = new Map<string, ApiContext>();
  // Parsed and validated once per distinct query text, not once per subscriber.
  const checkDocument = documentCache(schema);
  const toGraphQLError = (e: unknown) =>
    e instanceof GraphQLError
      ? e
      : new GraphQLError(e instanceof Error ? e.message : String(e), {
          originalError: e instanceof Error ? e : undefined,
        });
  const scopeOf = (ctx: WsContext, id: string) =>
    contexts.get(`${connId(ctx)}:${id}`) ?? { requestId: 'ws', log: deps.log };
  const connIds = new WeakMap<object, string>();
  const connId = (ctx: WsContext) => {
    const known = connIds.get(ctx);
    if (known) return known;
    const id = randomUUID();
    connIds.set(ctx, id);
    return id;
  };

  const disposable = useServer(
    {
      schema,
      async onConnect(ctx) {
        try {
          const principal = await authenticate(deps, ctx.connectionParams?.authorization);
          principals.set(ctx, principal);
          return true;
        } catch (e) {
          const message = isAppError(e) ? `${e.code}: ${e.message}` : 'UNAUTHENTICATED';
          if (!isAppError(e)) deps.log.error({ err: e }, 'graphql-ws authentication failed');
          // Close reasons are limited to 123 bytes by the protocol.
          (ctx.extra as { socket: { close(code: number, reason: string): void } }).socket.close(
            WS_UNAUTHENTICATED,
            message.slice(0, 120),
          );
          return false;
        }
      },
      async onSubscribe(ctx, id, payload) {
        const principal = principals.get(ctx);
        if (!principal)
          return [new GraphQLError('Not authenticated', { extensions: { code: 'UNAUTHENTICATED' } })];
        const requestId = randomUUID();
        const apiCtx = contextFor(deps, principal, requestId);
        contexts.set(`${connId(ctx)}:${id}`, apiCtx);
        try {
          await admit(deps, principal);
        } catch (e) {
          return [toGraphQLError(e)];
        }
        let checked: ReturnType<typeof checkDocument>;
        try {
          checked = checkDocument(payload.query);
        } catch (e) {
          return [toGraphQLError(e)];
        }
        const { document, errors } = checked;
        if (errors.length > 0) return [...errors];
        return {
          schema,
          document,
          operationName: payload.operationName,
          variableValues: payload.variables,
          contextValue: apiCtx,
        };
      },
      onNext(ctx, id, _payload, _args, result) {
        if (!result.errors) return;
        const scope = scopeOf(ctx, id);
        return { ...result, errors: result.errors.map((e) => formatApiError(e, scope)) };
      },
      onError(ctx, id, _payload, errors) {
        const scope = scopeOf(ctx, id);
        return errors.map((e) => formatApiError(e, scope));
      },
      onComplete(ctx, id) {
        contexts.delete(`${connId(ctx)}:${id}`);
      },
    },
    wss,
  );

  return {
    wss,
    async close(): Promise<void> {
      for (const client of wss.clients) client.terminate();
      await disposable.dispose();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}
