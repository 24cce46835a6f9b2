/**
 * Adapts a Prisma interactive transaction to the queue port's `SqlTransaction`, so a queue that
 * lives in the application database (pg-boss) can write its message in the producer's
 * transaction (enqueueJob).
 */
import type { Prisma as P } from '../../generated/prisma/client.ts';
import type { SqlTransaction } from './port.ts';

export function prismaSqlTransaction(tx: P.TransactionClient): SqlTransaction {
  return {
    query: (text, values) => tx.$queryRawUnsafe<unknown[]>(text, ...values.map(toParam)),
  };
}

/**
 * node-postgres, which pg-boss normally talks to, sends a plain object as its JSON text and
 * undefined as NULL; pg-boss relies on both (its job data goes to a `$n::jsonb` parameter).
 * Prisma's raw-query parameter mapping does not promise either, so do it here.
 */
function toParam(value: unknown): unknown {
  if (value === undefined) return null;
  if (
    value !== null &&
    typeof value === 'object' &&
    !(value instanceof Date) &&
    !Array.isArray(value) &&
    !ArrayBuffer.isView(value)
  ) {
    return JSON.stringify(value);
  }
  return value;
}
