/**
 * `harmon bench --model DIR`: what one model directory costs. Bytes on disk against the bytes of
 * its weights counted once, what a serving process holds, and one generate request (256², 4 MAR
 * steps) and one describe request (a few tokens) each in a fresh child process (model-probe.ts):
 * its load time per graph, per-stage ms, and peak RSS. Child processes keep the bench process
 * free of gigabytes of weights, and make each peak RSS the one a `harmon generate` user sees.
 *
 * The first probe may hash the files (no hash markers yet); the second finds the markers. Both
 * loads are reported with how each file was checked, so a cold and a warm start can be told apart.
 */
import { spawn } from 'node:child_process';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readManifest } from '../model/model-dir.ts';
import { weightBudget } from '../onnx/weight-budget.ts';
import type { LoadStats } from '../runtime/sessions.ts';
import { AppError } from '../shared/errors.ts';
import type { ProbeRequest } from './model-probe.ts';
import type { PipelineBenchEntry } from './pipeline-bench.ts';
import type { DescribeFigures, LoadFigures, ModelFigures } from './report.ts';

export interface ModelBenchOptions {
  modelDir: string;
  /** generate request: image side and MAR steps (default 256, 4). */
  size?: number;
  steps?: number;
  /** describe request: tokens to decode (default 4). */
  maxTokens?: number;
  log?: (line: string) => void;
}

function loadFigures(l: LoadStats): LoadFigures {
  return {
    totalMs: l.totalMs,
    verifyMs: l.verifyMs,
    filesHashed: l.files.filter((f) => f.how === 'hashed').length,
    filesByMarker: l.files.filter((f) => f.how === 'marker').length,
    msByGraph: l.msByGraph,
  };
}

async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(dir))
    if (!name.endsWith('.sha256')) total += (await stat(join(dir, name))).size;
  return total;
}

const PROBE = fileURLToPath(new URL('./model-probe.ts', import.meta.url));

/** Runs one probe in a fresh Node process; its stderr lines go to `log`. */
function probe<T>(req: ProbeRequest, log: (line: string) => void): Promise<{ result: T; peakRssMb: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', PROBE, JSON.stringify(req)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d: Buffer) => {
      err += d;
      for (const line of d.toString().split('\n')) if (line.startsWith('probe: ')) log(line.slice(7));
    });
    child.on('error', reject);
    child.on('close', (code) => {
      const last = out.trim().split('\n').pop() ?? '';
      if (code === 0 && last.startsWith('{')) resolve(JSON.parse(last));
      else
        reject(new AppError('INTERNAL', `the ${req.mode} probe exited ${code}: ${err.trim().slice(-1500)}`));
    });
  });
}

export async function runModelBench(opts: ModelBenchOptions): Promise<ModelFigures> {
  const log = opts.log ?? (() => {});
  const manifest = await readManifest(opts.modelDir);
  const dtype = manifest.dtype === 'float16' ? 'float16' : 'float32';
  const budget = weightBudget(manifest.config, dtype);
  const bytes = await dirBytes(opts.modelDir);
  const weightBytes = budget.uniqueParams * (dtype === 'float16' ? 2 : 4);
  const weightBytesFp32 = budget.uniqueParams * 4;
  const size = opts.size ?? 256;
  const steps = opts.steps ?? 4;
  const maxTokens = opts.maxTokens ?? 4;

  log(`model ${manifest.variant}: generate ${size}² × ${steps} steps in a fresh process…`);
  const g = await probe<PipelineBenchEntry>(
    { mode: 'generate', modelDir: opts.modelDir, variant: manifest.variant, size, steps },
    log,
  );
  log(`model ${manifest.variant}: describe (${maxTokens} tokens) in a fresh process…`);
  const d = await probe<DescribeFigures & { load: LoadStats }>(
    { mode: 'describe', modelDir: opts.modelDir, maxTokens },
    log,
  );
  const { load: describeLoad, ...describeFigures } = d.result;
  const mb = 1024 * 1024;
  return {
    variant: manifest.variant,
    modelId: manifest.modelId,
    dtype,
    dirBytes: bytes,
    weightBytes,
    dirToWeightRatio: bytes / weightBytes,
    weightBytesFp32,
    residentWeightBytes: budget.residentBytes,
    generate: {
      size,
      steps,
      totalMs: g.result.totalMs.median,
      stageMs: g.result.stageMs,
      sessionRunsPerImage: g.result.sessionRunsPerImage,
      jsOverheadShare: g.result.jsOverheadShare,
      load: loadFigures(g.result.load),
      peakRssMb: g.peakRssMb,
      peakRssToWeightRatio: (g.peakRssMb * mb) / weightBytesFp32,
    },
    describe: {
      maxTokens,
      timeToFirstTokenMs: describeFigures.timeToFirstTokenMs,
      prefillMs: describeFigures.prefillMs,
      tokensPerSecond: describeFigures.tokensPerSecond,
      totalMs: describeFigures.totalMs,
      stageMs: describeFigures.stageMs,
      load: loadFigures(describeLoad),
      peakRssMb: d.peakRssMb,
      peakRssToWeightRatio: (d.peakRssMb * mb) / weightBytesFp32,
      figures: describeFigures,
    },
  };
}
