/**
 * The one admission path of every transport (HTTP, graphql-ws, SSE, Lambda), in the envelop
 * spirit: each cross-cutting concern is a small `use-*` plugin with hooks, composed once here,
 * and a transport only calls `admit` (before parsing) and `checkOperation` (after validation).
 *
 *   admit:          use-auth-throttle -> use-auth -> use-rate-limit      -> ApiContext
 *   validate:       graphql's rules + every plugin's `validationRules` (use-limits)
 *   checkOperation: use-operation-kinds -> use-rate-limit (one token per extra mutation field)
 *
 * A hook refuses by throwing a coded AppError; an `onAdmit` hook may return a callback that is
 * told how admission ended (and may replace the error), like envelop's `on*Done` hooks.
 */
import {
  type DocumentNode,
  type ExecutionArgs,
  type GraphQLError,
  type GraphQLSchema,
  getOperationAST,
  type OperationDefinitionNode,
  specifiedRules,
  type ValidationRule,
} from 'graphql';
import { AppError } from '../shared/errors.ts';
import type { KeyPrincipal } from '../tenancy/key-cache.ts';
import type { AdmitDone, AdmitRequest, AdmitState, ApiPlugin, OperationInfo } from './plugin-types.ts';
import type { ApiContext, ApiDeps } from './types.ts';
import { contextFor, createKeyWatch, useAuth } from './use-auth.ts';
import { useAuthThrottle } from './use-auth-throttle.ts';
import { documentCache, useLimits } from './use-limits.ts';
import { useOperationKinds } from './use-operation-kinds.ts';
import { useRateLimit } from './use-rate-limit.ts';

export type AdmissionOptions = {
  /** How often open streams re-check their key (default 5 s; a revoke here is at once). */
  keyRecheckMs?: number;
  /** Failed authentications per client address per minute before 429 (default 30). */
  failedAuthPerMinute?: number;
};

export type Admission = ReturnType<typeof createAdmission>;

/** The standard plugin list, in order. */
export function apiPlugins(deps: ApiDeps, options: AdmissionOptions = {}): ApiPlugin[] {
  return [
    useAuthThrottle(deps.rateLimiter, { perMinute: options.failedAuthPerMinute }),
    useAuth(deps),
    useLimits(),
    useOperationKinds(),
    useRateLimit(deps.rateLimiter),
  ];
}

export function createAdmission(
  deps: ApiDeps,
  schema: GraphQLSchema,
  options: AdmissionOptions = {},
  plugins: ApiPlugin[] = apiPlugins(deps, options),
) {
  const admitHooks = plugins.filter((p) => p.onAdmit);
  const operationHooks = plugins.filter((p) => p.onOperation);
  const validationRules = plugins.flatMap((p) => p.validationRules ?? []);
  const keyWatch = createKeyWatch(deps, options.keyRecheckMs);
  return {
    /** Plugin rules only (Apollo adds graphql's own). */
    validationRules,
    /** graphql's rules plus the plugins', for transports that take a full list. */
    allValidationRules: [...specifiedRules, ...validationRules] as readonly ValidationRule[],
    /** Parse + validate with a cache of documents that passed (use-limits.ts). */
    checkDocument: documentCache(schema, undefined, [...specifiedRules, ...validationRules]),

    /** Runs every onAdmit hook in order; the result is the operation's context. */
    async admit(req: AdmitRequest): Promise<ApiContext> {
      const state: AdmitState = { ...req };
      const done: AdmitDone[] = [];
      let error: unknown;
      try {
        for (const p of admitHooks) {
          const after = await p.onAdmit?.(state);
          if (after) done.push(after);
        }
        if (!state.principal) throw new AppError('UNAUTHENTICATED', 'The request was not authenticated.');
      } catch (e) {
        error = e;
      }
      // Reverse order, like unwinding middleware; a hook may replace the error.
      for (const after of done.reverse()) {
        try {
          await after({ error });
        } catch (e) {
          error = e;
        }
      }
      if (error !== undefined) throw error;
      return contextFor(deps, state.principal as KeyPrincipal, req.requestId, req.transport);
    },

    /**
     * Picks the operation to run (BAD_USER_INPUT when `operationName` names none) and runs every
     * onOperation hook. Throws a coded AppError to refuse.
     */
    async checkOperation(
      ctx: ApiContext,
      document: DocumentNode,
      operationName?: string | null,
    ): Promise<OperationDefinitionNode> {
      const operation = getOperationAST(document, operationName);
      if (!operation)
        throw new AppError(
          'BAD_USER_INPUT',
          operationName
            ? `The document has no operation named "${operationName}".`
            : 'The document has several operations; name the one to run in operationName.',
        );
      const op: OperationInfo = { transport: ctx.transport, document, operation };
      for (const p of operationHooks) await p.onOperation?.(ctx, op);
      return operation;
    },

    /**
     * A streaming transport's whole check of one subscribe (SSE, WebSocket): parse + validate,
     * then checkOperation. Validation errors come back as a list (the transport streams them);
     * a refusal throws like checkOperation.
     */
    async executionArgs(
      ctx: ApiContext,
      request: { query: string; operationName?: string | null; variables?: Record<string, unknown> | null },
    ): Promise<(ExecutionArgs & { contextValue: ApiContext }) | readonly GraphQLError[]> {
      const { document, errors } = this.checkDocument(request.query);
      if (errors.length > 0) return errors;
      await this.checkOperation(ctx, document, request.operationName);
      return {
        schema,
        document,
        operationName: request.operationName,
        variableValues: request.variables,
        contextValue: ctx,
      };
    },

    /** Calls `onRevoked` once the key is revoked (at once here, within TTL + recheck elsewhere). */
    watchKey: keyWatch.watch,

    close(): void {
      keyWatch.close();
    },
  };
}
