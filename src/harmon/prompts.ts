/**
 * Prompt construction for generate (spec §2.2–2.3) and describe (spec §4.3).
 * ChatML without a system turn and without BOS (spec §5.1 item 21). User text goes through
 * `encode` (special-token strings neutralised), our template pieces through `encodeTemplate`.
 * Splitting at the special tokens gives the same ids as encoding the whole string because the
 * tokenizer splits on added tokens before BPE; user text and the prefix "Generate an image: "
 * are encoded as ONE segment, because BPE pre-tokenisation joins the space with the next word.
 */

import { IM_END, IMAGE_TOKEN_ID } from '../model/tokens.ts';
import { AppError } from '../shared/errors.ts';
import type { QwenTokenizer } from './tokenizer.ts';

export const GENERATE_PREFIX = 'Generate an image: ';
export const DEFAULT_CFG_PROMPT = 'Generate an image.';
export const DEFAULT_DESCRIBE_QUESTION = 'Describe the image in detail.';
/** Pad id for right padding; any value works because padded slots are masked (spec §2.2 step 4). */
export const PAD_ID = IM_END;

const USER_OPEN = '<|im_start|>user\n';
const TURN_CLOSE = '<|im_end|>\n<|im_start|>assistant\n';

export interface GeneratePromptOptions {
  prompt: string;
  /** Unconditional prompt; default "Generate an image." */
  cfgPrompt?: string;
  /** Guidance scale; exactly 1 drops the unconditional rows (spec §2.3). */
  cfg: number;
  /** Number of images G. */
  count: number;
}

export interface GenerateBatch {
  /** Token ids per row, unpadded; rows 0..G-1 conditional, G..2G-1 unconditional (with CFG). */
  rows: number[][];
  /** Valid length per row (Lc for conditional rows, Lu for unconditional). */
  lengths: number[];
  /** B = 2G with CFG, G without. */
  batch: number;
  /** Padded length L = max(lengths). */
  maxLength: number;
  /** `[B, L]` row-major ids, right-padded with PAD_ID. */
  ids: Int32Array;
  /** `[B, L]` row-major, 1 for real tokens, 0 for padding. */
  textMask: Uint8Array;
}

function chatIds(tok: QwenTokenizer, userText: string): number[] {
  return [...tok.encodeTemplate(USER_OPEN), ...tok.encode(userText), ...tok.encodeTemplate(TURN_CLOSE)];
}

export function buildGeneratePrompt(tok: QwenTokenizer, opts: GeneratePromptOptions): GenerateBatch {
  if (opts.prompt.trim().length === 0) {
    throw new AppError('BAD_USER_INPUT', 'The prompt is empty; describe the image you want.');
  }
  if (!Number.isInteger(opts.count) || opts.count < 1) {
    throw new AppError('BAD_USER_INPUT', `count must be a positive integer, got ${opts.count}.`);
  }
  if (!Number.isFinite(opts.cfg)) {
    throw new AppError('BAD_USER_INPUT', `cfg must be a finite number, got ${opts.cfg}.`);
  }
  const cond = chatIds(tok, GENERATE_PREFIX + opts.prompt);
  const rows: number[][] = [];
  for (let g = 0; g < opts.count; g++) rows.push(cond);
  if (opts.cfg !== 1) {
    const uncond = chatIds(tok, opts.cfgPrompt ?? DEFAULT_CFG_PROMPT);
    for (let g = 0; g < opts.count; g++) rows.push(uncond);
  }
  return padRows(rows);
}

/** Right-pads rows to a common length (spec §2.2 step 4). */
export function padRows(rows: number[][]): GenerateBatch {
  const batch = rows.length;
  const lengths = rows.map((r) => r.length);
  const maxLength = Math.max(...lengths);
  const ids = new Int32Array(batch * maxLength).fill(PAD_ID); // [B, L]
  const textMask = new Uint8Array(batch * maxLength); // [B, L]
  rows.forEach((row, b) => {
    ids.set(row, b * maxLength);
    textMask.fill(1, b * maxLength, b * maxLength + row.length);
  });
  return { rows, lengths, batch, maxLength, ids, textMask };
}

export interface DescribePrompt {
  ids: number[];
  /** Index of the first `<image>` position; image embeddings fill [imageStart, imageStart + nImage). */
  imageStart: number;
  nImage: number;
}

/**
 * Describe prompt: `<|im_start|>user\n` ‖ <image>×nImage ‖ `\n{question}<|im_end|>\n<|im_start|>assistant\n`.
 * nImage = (size/16)² + 64 (1088 at 512 px, spec §4.2).
 */
export function buildDescribePrompt(tok: QwenTokenizer, nImage: number, question?: string): DescribePrompt {
  if (!Number.isInteger(nImage) || nImage < 1) {
    throw new AppError(
      'BAD_USER_INPUT',
      `The number of image tokens must be a positive integer, got ${nImage}.`,
    );
  }
  const q = question ?? DEFAULT_DESCRIBE_QUESTION;
  if (q.trim().length === 0) {
    throw new AppError('BAD_USER_INPUT', 'The question is empty; leave it out to use the default.');
  }
  const head = tok.encodeTemplate(USER_OPEN);
  const ids = [
    ...head,
    ...new Array<number>(nImage).fill(IMAGE_TOKEN_ID),
    ...tok.encode(`\n${q}`),
    ...tok.encodeTemplate(TURN_CLOSE),
  ];
  return { ids, imageStart: head.length, nImage };
}
