/**
 * Child-process entry of model-bench.ts: opens the model as a serving engine does, runs one
 * request (generate or describe), and prints one JSON line with the figures and this process's
 * peak RSS, so every real-size figure is that of a fresh process, like `harmon generate`.
 *
 *   node --import tsx src/bench/model-probe.ts '{"mode":"generate","modelDir":"…","variant":"0.5b","size":256,"steps":4}'
 */
import { runDescribeBench } from './describe-bench.ts';
import { peakRssMb } from './harness.ts';
import { runPipelineBench } from './pipeline-bench.ts';

export type ProbeRequest =
  | { mode: 'generate'; modelDir: string; variant: string; size: number; steps: number }
  | { mode: 'describe'; modelDir: string; maxTokens: number };

const req = JSON.parse(process.argv[2] ?? '{}') as ProbeRequest;
const log = (line: string) => process.stderr.write(`probe: ${line}\n`);
let result: unknown;
if (req.mode === 'generate') {
  const [entry] = await runPipelineBench(
    [{ name: req.variant, size: req.size, steps: req.steps, count: 1, warmup: 0, repetitions: 1 }],
    { [req.variant]: req.modelDir },
    log,
  );
  result = entry;
} else if (req.mode === 'describe') {
  const { measurements: _, ...figures } = await runDescribeBench({
    modelDir: req.modelDir,
    maxTokens: req.maxTokens,
    measure: { warmup: 0, reps: 1 },
  });
  result = figures;
} else {
  throw new Error(`model-probe: unknown request ${process.argv[2]}`);
}
process.stdout.write(`${JSON.stringify({ result, peakRssMb: peakRssMb() })}\n`);
