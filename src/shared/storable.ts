/**
 * What the database can store. Postgres `text` and `jsonb` refuse the NUL character, `jsonb`
 * refuses an unpaired UTF-16 surrogate (and `text` silently turns one into U+FFFD), and a
 * timestamp outside the 4-digit ISO years cannot round-trip through JSON and Prisma. Input that
 * would reach a column unchecked failed there as an INTERNAL error; these rules turn it into
 * BAD_USER_INPUT at the edge instead. Used by every input schema (job-inputs.ts) and the API's
 * scalars, so the rule has one home.
 */

/** An unpaired high or low surrogate. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Why `s` cannot be stored as text, or undefined when it can. */
export function unstorableText(s: string): string | undefined {
  if (s.includes('\u0000')) return 'must not contain the NUL character (U+0000)';
  if (LONE_SURROGATE.test(s)) return 'must be valid Unicode (it contains an unpaired surrogate)';
  return undefined;
}

export const MIN_YEAR = 1;
export const MAX_YEAR = 9999;

/** Why `d` cannot be stored as a timestamp, or undefined when it can. */
export function unstorableDate(d: Date): string | undefined {
  const t = d.getTime();
  if (Number.isNaN(t)) return 'is not a valid date';
  const y = d.getUTCFullYear();
  if (y < MIN_YEAR || y > MAX_YEAR) return `must be between the years ${MIN_YEAR} and ${MAX_YEAR}`;
  return undefined;
}
