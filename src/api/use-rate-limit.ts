/**
 * The tenant's request rate limit, counting what a request does: one token when an operation is
 * admitted (before parsing, so an over-limit client costs no parse work), and one more for every
 * further root mutation field once the document is known. Without the second step one request of
 * 100 aliased `generate` fields created 100 jobs on a tenant limited to 60 requests a minute.
 * The extra tokens are taken all at once or not at all, so a refused operation runs nothing.
 */
import { type FieldNode, type FragmentDefinitionNode, Kind, type SelectionSetNode } from 'graphql';
import { AppError } from '../shared/errors.ts';
import { type RateLimiter, requestBucketKey } from '../tenancy/rate-limit.ts';
import type { ApiPlugin, OperationInfo } from './plugin-types.ts';

/**
 * Root fields an operation selects, fragments expanded. `@skip`/`@include` are not evaluated: a
 * conditional field counts, which can only over-count.
 */
export function rootFields(op: OperationInfo): FieldNode[] {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const d of op.document.definitions)
    if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d);
  const out: FieldNode[] = [];
  const seen = new Set<string>();
  const collect = (set: SelectionSetNode) => {
    for (const sel of set.selections) {
      if (sel.kind === Kind.FIELD) {
        if (!sel.name.value.startsWith('__')) out.push(sel);
      } else if (sel.kind === Kind.INLINE_FRAGMENT) collect(sel.selectionSet);
      else if (!seen.has(sel.name.value)) {
        seen.add(sel.name.value);
        const frag = fragments.get(sel.name.value);
        if (frag) collect(frag.selectionSet);
      }
    }
  };
  collect(op.operation.selectionSet);
  return out;
}

async function take(limiter: RateLimiter, tenantId: string, perMinute: number, cost: number): Promise<void> {
  const d = await limiter.take(requestBucketKey(tenantId), perMinute, cost);
  if (!d.allowed) {
    throw new AppError(
      'RATE_LIMITED',
      `Too many requests: the limit is ${perMinute} per minute${cost > 1 ? ` and this operation needs ${cost} more` : ''}. Retry in ${d.retryAfterSeconds} s.`,
      { details: { retryAfter: d.retryAfterSeconds } },
    );
  }
}

export function useRateLimit(limiter: RateLimiter): ApiPlugin {
  return {
    name: 'rate-limit',
    async onAdmit(state) {
      if (state.phase !== 'operation' || !state.principal) return;
      await take(limiter, state.principal.tenantId, state.principal.ratePerMinute, 1);
    },
    async onOperation(ctx, op) {
      if (op.operation.operation !== 'mutation') return;
      const n = rootFields(op).length;
      if (n <= 1) return;
      if (n > ctx.ratePerMinute)
        throw new AppError(
          'BAD_USER_INPUT',
          `This operation runs ${n} mutations, more than the ${ctx.ratePerMinute} requests per minute this API key's tenant may make; send at most ${ctx.ratePerMinute} per operation.`,
        );
      // The admission token paid for the first mutation.
      await take(limiter, ctx.tenantId, ctx.ratePerMinute, n - 1);
    },
  };
}
