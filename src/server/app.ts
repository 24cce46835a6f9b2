/**
 * A minimal router over node:http. Later features mount themselves by path prefix
 * (`app.mount('/graphql', handler)`); the longest matching prefix wins, so mounts do not depend
 * on registration order.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isAppError } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';

export type RouteHandler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

export type App = {
  mount(prefix: string, handler: RouteHandler): void;
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
};

/** The bearer token of an Authorization header value (or graphql-ws connection_init field), or undefined. */
export function bearerToken(header: unknown): string | undefined {
  if (typeof header !== 'string') return undefined;
  const m = /^\s*Bearer\s+(\S+)\s*$/i.exec(header);
  return m?.[1];
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

export function createApp(log: Logger): App {
  const routes: { prefix: string; handler: RouteHandler }[] = [];
  const matches = (path: string, prefix: string) =>
    prefix === '/' || path === prefix || path.startsWith(prefix.endsWith('/') ? prefix : `${prefix}/`);

  return {
    mount(prefix, handler) {
      if (!prefix.startsWith('/')) throw new Error(`mount prefix must start with '/': ${prefix}`);
      if (routes.some((r) => r.prefix === prefix))
        throw new Error(`a handler is already mounted at ${prefix}`);
      routes.push({ prefix, handler });
      routes.sort((a, b) => b.prefix.length - a.prefix.length);
    },
    async handle(req, res) {
      const path = new URL(req.url ?? '/', 'http://localhost').pathname;
      const route = routes.find((r) => matches(path, r.prefix));
      try {
        if (!route)
          return sendJson(res, 404, { error: { code: 'NOT_FOUND', message: `no route for ${path}` } });
        await route.handler(req, res);
      } catch (e) {
        // Unexpected errors are logged with detail and masked for the client.
        log.error({ err: e, path }, 'request failed');
        if (res.headersSent) return void res.destroy();
        if (isAppError(e) && e.code !== 'INTERNAL')
          sendJson(res, 400, { error: { code: e.code, message: e.message } });
        else sendJson(res, 500, { error: { code: 'INTERNAL', message: 'internal error' } });
      }
    },
  };
}
