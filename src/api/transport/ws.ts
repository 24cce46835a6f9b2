/**
 * graphql-ws at /graphql (WebSocket upgrade on the same http.Server). The API key arrives in the
 * connection_init payload ({ authorization: 'Bearer <key>' }); a missing or bad key closes the
 * socket with 4401 (4429 while the address is throttled) before any operation runs. Every
 * subscribe message goes through the same admission path as an HTTP request (the key again,
 * through the key cache, and the rate limit), then the shared parse/validate and operation
 * checks; every error is formatted by the shared error policy (masked when unexpected).
 *
 * Bounded by construction: frames over MAX_BODY_BYTES close the socket (1009); nothing is stored
 * per subscribe except what graphql-ws holds for a running operation (the error-formatting scope
 * hangs off the message payload, so a refused subscribe leaves nothing behind); a revoked key
 * closes the socket (use-auth.ts key watch).
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import type { ExecutionArgs, GraphQLError, GraphQLSchema } from 'graphql';
import type { Context } from 'graphql-ws';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocket, WebSocketServer } from 'ws';
import { AppError, isAppError } from '../../shared/errors.ts';
import { formatApiError } from '../errors.ts';
import type { Admission } from '../plugins.ts';
import type { ApiContext, ApiDeps } from '../types.ts';
import { clientAddress } from '../use-auth-throttle.ts';
import { asGraphQLError, MAX_BODY_BYTES, type RequestScope } from './request-scope.ts';

export const WS_UNAUTHENTICATED = 4401;
export const WS_RATE_LIMITED = 4429;

type Extra = { socket: WebSocket; request: IncomingMessage };
type WsContext = Context<Record<string, unknown> | undefined, Extra>;
type Connection = { authorization: unknown; address: string; unwatch: () => void };

/** Closes with a code and a reason naming the error code (reasons are limited to 123 bytes). */
function closeWith(socket: WebSocket, e: unknown): void {
  const rateLimited = isAppError(e) && e.code === 'RATE_LIMITED';
  const message = isAppError(e) ? `${e.code}: ${e.message}` : 'UNAUTHENTICATED';
  if (socket.readyState === WebSocket.OPEN || socket.readyState === WebSocket.CONNECTING)
    socket.close(
      rateLimited ? WS_RATE_LIMITED : WS_UNAUTHENTICATED,
      Buffer.from(message).subarray(0, 120).toString(),
    );
}

export function attachGraphqlWs(
  httpServer: Server,
  schema: GraphQLSchema,
  deps: ApiDeps,
  admission: Admission,
  path = '/graphql',
) {
  const wss = new WebSocketServer({ server: httpServer, path, maxPayload: MAX_BODY_BYTES });
  const connections = new WeakMap<object, Connection>();
  // Keyed by the subscribe message's payload object, which graphql-ws hands to onSubscribe and
  // then to onError: the entry goes away with the message.
  const scopes = new WeakMap<object, RequestScope>();
  const fallback: RequestScope = { requestId: 'ws', log: deps.log };
  const socketOf = (ctx: WsContext) => ctx.extra.socket;

  const disposable = useServer<Record<string, unknown> | undefined, Extra>(
    {
      schema,
      async onConnect(ctx) {
        const authorization = ctx.connectionParams?.authorization;
        const address = clientAddress(
          ctx.extra.request.socket.remoteAddress,
          ctx.extra.request.headers['x-forwarded-for'],
          deps.config.trustedProxyHops,
        );
        try {
          await admission.admit({
            transport: 'ws',
            phase: 'connect',
            authorization,
            clientAddress: address,
            requestId: randomUUID(),
          });
        } catch (e) {
          if (!isAppError(e)) deps.log.error({ err: e }, 'graphql-ws authentication failed');
          closeWith(socketOf(ctx), e);
          return false;
        }
        const unwatch = admission.watchKey(authorization, () =>
          closeWith(socketOf(ctx), new AppError('UNAUTHENTICATED', 'The API key was revoked.')),
        );
        connections.set(ctx, { authorization, address, unwatch });
        return true;
      },
      onClose(ctx) {
        connections.get(ctx)?.unwatch();
      },
      async onSubscribe(ctx, _id, payload): Promise<readonly GraphQLError[] | ExecutionArgs> {
        const conn = connections.get(ctx);
        const requestId = randomUUID();
        scopes.set(payload, { requestId, log: deps.log });
        let apiCtx: ApiContext;
        try {
          if (!conn) throw new AppError('UNAUTHENTICATED', 'The connection was not authenticated.');
          apiCtx = await admission.admit({
            transport: 'ws',
            phase: 'operation',
            authorization: conn.authorization,
            clientAddress: conn.address,
            requestId,
          });
        } catch (e) {
          // The key was revoked (or the tenant is throttled): the socket goes too.
          if (isAppError(e) && e.code === 'UNAUTHENTICATED') closeWith(socketOf(ctx), e);
          return [asGraphQLError(e)];
        }
        scopes.set(payload, apiCtx);
        try {
          return await admission.executionArgs(apiCtx, payload);
        } catch (e) {
          return [asGraphQLError(e)];
        }
      },
      onNext(_ctx, _id, _payload, args, result) {
        if (!result.errors) return;
        const scope = (args.contextValue as ApiContext | undefined) ?? fallback;
        return { ...result, errors: result.errors.map((e) => formatApiError(e, scope)) };
      },
      onError(_ctx, _id, payload, errors) {
        const scope = scopes.get(payload) ?? fallback;
        return errors.map((e) => formatApiError(e, scope));
      },
    },
    wss,
  );
  // ws closes a socket with 1009 itself when a frame is over maxPayload, then emits 'error';
  // graphql-ws's listener would log every such client mistake with console.error. Registered
  // after useServer's, so it replaces that listener on each new socket.
  wss.on('connection', (socket: WebSocket) => {
    socket.removeAllListeners('error');
    socket.on('error', (err: Error & { code?: string }) => {
      deps.log.debug({ err }, 'graphql-ws socket error');
      if (socket.readyState === WebSocket.OPEN) socket.close(1011, 'Internal server error');
    });
  });

  return {
    wss,
    async close(): Promise<void> {
      for (const client of wss.clients) client.terminate();
      await disposable.dispose();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}
