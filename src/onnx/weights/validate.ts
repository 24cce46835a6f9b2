/**
 * The loader's gate: compare a checkpoint against the expected key/shape map and report every
 * problem at once (missing, unexpected, mis-shaped, untied LM head), like nanoGPT's
 * from_pretrained assertions but collected instead of stopping at the first.
 */
import { AppError } from '../../shared/errors.ts';
import { isIgnoredKey, OPTIONAL_HARMON_KEYS } from './key-rules.ts';
import type { WeightSource } from './types.ts';

export interface ValidateOptions {
  /** Expected keys that may be absent. Default: the tied LM head and MAR's class embedding. */
  optional?: ReadonlySet<string>;
  /** Unexpected keys to tolerate. Default: RoPE caches, optimizer and loss entries. */
  ignore?: (name: string) => boolean;
  /** Check that a present `llm.lm_head.weight` equals the embedding (reads both). Default true. */
  checkTiedHead?: boolean;
  /** Names the checkpoint in the message (a file path). */
  label?: string;
}

/** How many names per category the message shows; `details` always carries all of them. */
const SHOW = 25;

function list(title: string, items: string[]): string {
  if (items.length === 0) return '';
  const more = items.length > SHOW ? `, ... and ${items.length - SHOW} more` : '';
  return `\n  ${title} (${items.length}): ${items.slice(0, SHOW).join(', ')}${more}`;
}

function fmt(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

function tiedHeadDiffers(source: WeightSource): boolean {
  const head = source.get('llm.lm_head.weight');
  const emb = source.get('llm.model.embed_tokens.weight');
  if (!head || !emb) return false;
  const a = head.read();
  const b = emb.read();
  if (a === b) return false;
  if (a.length !== b.length) return true;
  for (let i = 0; i < a.length; i++)
    if (a[i] !== b[i] && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) return true;
  return false;
}

export function validateWeights(
  source: WeightSource,
  expected: ReadonlyMap<string, readonly number[]>,
  options: ValidateOptions = {},
): void {
  const optional = options.optional ?? OPTIONAL_HARMON_KEYS;
  const ignore = options.ignore ?? isIgnoredKey;
  const missing: string[] = [];
  const misshaped: { name: string; expected: number[]; actual: number[] }[] = [];
  const unexpected: string[] = [];
  for (const [name, shape] of expected) {
    const e = source.get(name);
    if (!e) {
      if (!optional.has(name)) missing.push(name);
      continue;
    }
    if (e.shape.length !== shape.length || e.shape.some((d, i) => d !== shape[i])) {
      misshaped.push({ name, expected: [...shape], actual: [...e.shape] });
    }
  }
  for (const name of source.names()) if (!expected.has(name) && !ignore(name)) unexpected.push(name);
  const headOk = misshaped.some(
    (m) => m.name === 'llm.lm_head.weight' || m.name === 'llm.model.embed_tokens.weight',
  );
  const untied =
    expected.has('llm.lm_head.weight') &&
    options.checkTiedHead !== false &&
    !headOk &&
    tiedHeadDiffers(source)
      ? ['llm.lm_head.weight']
      : [];
  if (missing.length + misshaped.length + unexpected.length + untied.length === 0) return;
  const where = options.label ? `${options.label}: ` : '';
  throw new AppError(
    'WEIGHTS_INVALID',
    `${where}checkpoint does not match the expected model layout` +
      list('missing', missing) +
      list(
        'mis-shaped',
        misshaped.map((m) => `${m.name} (expected ${fmt(m.expected)}, got ${fmt(m.actual)})`),
      ) +
      list('unexpected', unexpected) +
      list('not equal to llm.model.embed_tokens.weight although the head is tied', untied),
    { details: { missing, unexpected, misshaped, untied } },
  );
}
