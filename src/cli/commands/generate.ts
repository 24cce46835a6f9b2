/**
 * `harmon generate --prompt TEXT [--model DIR --seed N --steps T --cfg S --size PX --count G --out FILE]`:
 * writes PNG files (FILE, or FILE-1.png … FILE-G.png for --count > 1) and prints their paths on
 * stdout; progress goes to stderr.
 */
import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { DEMO_NOTICE } from '../../harmon/events.ts';
import { type GenerateInput, validateGenerateInput } from '../../shared/job-inputs.ts';
import { progressBar } from '../progress.ts';
import { num, withEngine } from './harmon-run.ts';

interface Opts {
  model?: string;
  prompt: string;
  cfgPrompt?: string;
  seed?: string;
  steps?: string;
  cfg?: string;
  cfgSchedule?: string;
  temperature?: string;
  size?: string;
  count?: string;
  out: string;
}

/** a.png, count 3 → a-1.png, a-2.png, a-3.png. */
export function outputPaths(out: string, count: number): string[] {
  if (count === 1) return [out];
  const base = out.toLowerCase().endsWith('.png') ? out.slice(0, -4) : out;
  return Array.from({ length: count }, (_, i) => `${base}-${i + 1}.png`);
}

export function register(program: Command): void {
  program
    .command('generate')
    .description('text → image with Harmon (PNG)')
    .requiredOption('--prompt <text>', 'what to draw')
    .option('--model <dir>', 'model directory (default: HARMON_MODEL, else the random-weight demo model)')
    .option('--cfg-prompt <text>', 'unconditional (negative) prompt for guidance')
    .option('--seed <n>', 'random seed (default: random, printed)')
    .option('--steps <n>', 'MAR steps (default 64, at most the token count (size/16)²)')
    .option('--cfg <s>', 'guidance scale, 1 disables guidance (default 3)')
    .option('--cfg-schedule <kind>', 'constant | linear')
    .option('--temperature <t>', 'diffusion noise temperature (default 1)')
    .option('--size <px>', 'image side, a multiple of 16 (default 512, capped by the model)')
    .option('--count <g>', 'number of images, 1-4')
    .option('--out <file>', 'output PNG path', 'harmon.png')
    .action(async (o: Opts) => {
      const input: GenerateInput = { prompt: o.prompt };
      if (o.cfgPrompt !== undefined) input.cfgPrompt = o.cfgPrompt;
      if (o.seed !== undefined) input.seed = num(o.seed);
      if (o.steps !== undefined) input.steps = num(o.steps);
      if (o.cfg !== undefined) input.cfg = num(o.cfg);
      if (o.cfgSchedule !== undefined) input.cfgSchedule = o.cfgSchedule as GenerateInput['cfgSchedule'];
      if (o.temperature !== undefined) input.temperature = num(o.temperature);
      if (o.size !== undefined) input.size = num(o.size);
      if (o.count !== undefined) input.count = num(o.count);
      validateGenerateInput(input); // refuse bad options before loading a model
      await withEngine(o.model, async (engine, signal) => {
        const bar = progressBar('generate');
        let result: Awaited<ReturnType<typeof engine.generate>>;
        try {
          result = await engine.generate(input, {
            signal,
            onEvent: (e) => {
              if (e.type === 'step') bar.update(e.step, e.totalSteps, `step ${e.step}/${e.totalSteps}`);
            },
          });
        } finally {
          bar.stop();
        }
        const paths = outputPaths(o.out, result.images.length);
        await Promise.all(result.images.map((img, i) => writeFile(paths[i], img.data)));
        const m = result.meta;
        process.stderr.write(
          `harmon: ${result.images.length} image(s) ${result.size}×${result.size}, seed ${result.seed}, ${result.steps} steps, ` +
            `${Math.round(m.totalMs)} ms, ${m.sessions.runs} session runs (model ${m.modelId})\n`,
        );
        if (m.demo) process.stderr.write(`harmon: ${DEMO_NOTICE}\n`);
        for (const p of paths) process.stdout.write(`${p}\n`);
      });
    });
}
