/**
 * Which operation kinds a transport can serve. A subscription is a stream: over a plain HTTP
 * POST (or the Lambda) it used to reach the subscribe resolver and come back as INTERNAL; it is
 * the client's mistake, so it gets BAD_USER_INPUT naming the endpoints that stream.
 */
import { AppError } from '../shared/errors.ts';
import type { ApiPlugin } from './plugin-types.ts';

const STREAMING = new Set(['ws', 'sse']);

export function useOperationKinds(): ApiPlugin {
  return {
    name: 'operation-kinds',
    onOperation(_ctx, op) {
      if (op.operation.operation === 'subscription' && !STREAMING.has(op.transport))
        throw new AppError(
          'BAD_USER_INPUT',
          'Subscriptions are served over graphql-ws (a WebSocket on /graphql) or SSE (/graphql/stream), not over a plain HTTP request.',
        );
    },
  };
}
