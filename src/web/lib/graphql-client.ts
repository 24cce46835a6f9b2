/**
 * A tiny GraphQL client: queries and mutations over fetch (POST /graphql, JSON), subscriptions
 * over graphql-ws on the same path. The API key is read at call time so a new key takes effect at
 * once; the socket is rebuilt when the key changes because graphql-ws authenticates once per
 * connection (connection_init).
 */
import { type Client, createClient } from 'graphql-ws';
import { ApiError, fromGraphQLErrors, toApiError } from './api-error.ts';

export type Sink<T> = { next(data: T): void; error(e: ApiError): void; complete(): void };

export type GraphQLClient = {
  request<T>(query: string, variables?: Record<string, unknown>): Promise<T>;
  subscribe<T>(query: string, variables: Record<string, unknown>, sink: Sink<T>): () => void;
  /** Drops the live connection (call after the key changed). */
  reset(): void;
};

export type ClientOptions = {
  httpUrl: string;
  wsUrl: string;
  getKey(): string;
  fetchImpl?: typeof fetch;
  /** A WebSocket constructor where the global one is missing (Node tests). */
  webSocketImpl?: unknown;
  /** Bound on every HTTP request so a hung server shows an error instead of a spinner forever. */
  timeoutMs?: number;
};

export function createGraphQLClient(options: ClientOptions): GraphQLClient {
  const doFetch = options.fetchImpl ?? ((...a: Parameters<typeof fetch>) => fetch(...a));
  let ws: { client: Client; key: string } | undefined;

  const socket = (): Client => {
    const key = options.getKey();
    if (ws && ws.key === key) return ws.client;
    ws?.client.dispose();
    const client = createClient({
      url: options.wsUrl,
      webSocketImpl: options.webSocketImpl,
      connectionParams: () => ({ authorization: `Bearer ${options.getKey()}` }),
      lazy: true,
      // Reconnects after network blips; subscribers resume by seq, so replays are harmless.
      retryAttempts: 5,
      shouldRetry: (e) =>
        !(e && typeof e === 'object' && 'code' in e && (e as { code: number }).code === 4401),
    });
    ws = { client, key };
    return client;
  };

  return {
    async request<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
      let res: Response;
      try {
        res = await doFetch(options.httpUrl, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${options.getKey()}` },
          body: JSON.stringify({ query, variables }),
          signal: AbortSignal.timeout(options.timeoutMs ?? 30_000),
        });
      } catch (e) {
        throw new ApiError(
          'NETWORK',
          e instanceof Error && e.name === 'TimeoutError'
            ? 'The request timed out.'
            : 'The server could not be reached.',
        );
      }
      let body: { data?: T | null; errors?: { message?: unknown; extensions?: Record<string, unknown> }[] };
      try {
        body = await res.json();
      } catch {
        throw new ApiError('BAD_RESPONSE', `The server answered ${res.status} without GraphQL JSON.`);
      }
      if (body.errors?.length) throw fromGraphQLErrors(body.errors);
      if (!body.data) throw new ApiError('BAD_RESPONSE', `The server answered ${res.status} with no data.`);
      return body.data;
    },

    subscribe<T>(query: string, variables: Record<string, unknown>, sink: Sink<T>): () => void {
      return socket().subscribe<T>(
        { query, variables },
        {
          next: (r) => {
            if (r.errors?.length) sink.error(fromGraphQLErrors(r.errors));
            else if (r.data) sink.next(r.data as T);
          },
          error: (e) => sink.error(toApiError(e)),
          complete: () => sink.complete(),
        },
      );
    },

    reset() {
      ws?.client.dispose();
      ws = undefined;
    },
  };
}
