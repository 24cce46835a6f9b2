/**
 * `harmon describe --image FILE [--model DIR --prompt TEXT --max-tokens N]`: streams the text to
 * stdout as tokens are produced; stage progress goes to stderr.
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { DEMO_NOTICE } from '../../harmon/events.ts';
import { type DescribeInput, validateDescribeInput } from '../../shared/job-inputs.ts';
import { progressBar } from '../progress.ts';
import { num, readError, withEngine } from './harmon-run.ts';

interface Opts {
  model?: string;
  image: string;
  prompt?: string;
  maxTokens?: string;
  size?: string;
  temperature?: string;
  topP?: string;
  seed?: string;
}

const STAGES = ['decode_image', 'vae_encode', 'prefill', 'decode'];

export function register(program: Command): void {
  program
    .command('describe')
    .description('image → text with Harmon')
    .requiredOption('--image <file>', 'PNG, JPEG, WebP or GIF file')
    .option('--model <dir>', 'model directory (default: HARMON_MODEL, else the random-weight demo model)')
    .option('--prompt <text>', 'question (default "Describe the image in detail.")')
    .option('--max-tokens <n>', 'most tokens to generate (default 1024)')
    .option(
      '--size <px>',
      'side the image is resized to, a multiple of 16 (default 512, capped by the model)',
    )
    .option('--temperature <t>', 'sample with this temperature instead of greedy decoding')
    .option('--top-p <p>', 'nucleus sampling mass (with --temperature)')
    .option('--seed <n>', 'seed for sampling')
    .action(async (o: Opts) => {
      const input: DescribeInput = {};
      if (o.prompt !== undefined) input.prompt = o.prompt;
      if (o.maxTokens !== undefined) input.maxTokens = num(o.maxTokens);
      if (o.size !== undefined) input.size = num(o.size);
      if (o.temperature !== undefined) input.temperature = num(o.temperature);
      if (o.topP !== undefined) input.topP = num(o.topP);
      if (o.seed !== undefined) input.seed = num(o.seed);
      let image: Buffer;
      try {
        image = await readFile(o.image);
      } catch (e) {
        throw readError(o.image, e);
      }
      validateDescribeInput(input); // refuse bad options before loading a model
      await withEngine(o.model, async (engine, signal) => {
        const bar = progressBar('describe');
        let streaming = false;
        const result = await engine
          .describe(new Uint8Array(image.buffer, image.byteOffset, image.byteLength), input, {
            signal,
            onEvent: (e) => {
              if (e.type === 'stage') {
                bar.update(STAGES.indexOf(e.stage) + 1, STAGES.length, e.stage);
              } else if (e.type === 'token' && e.text) {
                if (!streaming) {
                  bar.stop();
                  streaming = true;
                }
                process.stdout.write(e.text);
              }
            },
          })
          .finally(() => bar.stop());
        process.stdout.write('\n');
        const m = result.meta;
        process.stderr.write(
          `harmon: ${result.tokenCount} tokens (${result.stopReason === 'stop_token' ? 'stop token' : 'token limit'}), ` +
            `${Math.round(m.totalMs)} ms (model ${m.modelId})\n`,
        );
        if (m.demo) process.stderr.write(`harmon: ${DEMO_NOTICE}\n`);
      });
    });
}
