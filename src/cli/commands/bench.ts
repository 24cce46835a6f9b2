/**
 * `harmon bench [--quick] [--json FILE] [--model DIR] [--chart FILE]` (also `npm run bench`):
 * runs the benchmark suite (src/bench/run-bench.ts), prints the measurement table (median, p90,
 * min–max) and a summary with the target checks, and writes the JSON report and the
 * stage-breakdown SVG next to it. Progress goes to stderr.
 *
 * --quick: the tiny model only (under 3 minutes on 2 cores). The full run adds the "small"
 * config, whose graphs are large enough that per-call overhead does not dominate.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Command } from 'commander';
import { renderStageChart } from '../../bench/chart.ts';
import { formatTable } from '../../bench/harness.ts';
import { loadProviders } from '../../bench/providers.ts';
import { chartRows, formatSummary, missingKeys } from '../../bench/report.ts';
import { runBench } from '../../bench/run-bench.ts';
import { AppError } from '../../shared/errors.ts';

interface Opts {
  quick?: boolean;
  json: string;
  model?: string;
  chart?: string;
}

/** out.json → out.svg (any other name gets .svg appended). */
export function defaultChartPath(json: string): string {
  return json.toLowerCase().endsWith('.json') ? `${json.slice(0, -5)}.svg` : `${json}.svg`;
}

export function register(program: Command): void {
  program
    .command('bench')
    .description(
      'benchmarks: generate stages, fused vs per-step sampler, describe, API; table + JSON + chart',
    )
    .option('--quick', 'tiny model only, short budgets (under 3 minutes on 2 cores)')
    .option('--json <file>', 'write the JSON report here', 'bench-results/bench.json')
    .option(
      '--model <dir>',
      'benchmark this model directory instead of building tiny (+ small) random-weight models',
    )
    .option('--chart <file>', 'stage-breakdown SVG (default: the --json path with .svg)')
    .action(async (o: Opts) => {
      const log = (line: string) => process.stderr.write(`bench: ${line}\n`);
      const providers = await loadProviders();
      const report = await runBench({
        quick: Boolean(o.quick),
        modelDir: o.model,
        pipeline: providers.pipeline,
        api: providers.api,
        absentReason: providers.absentReason,
        log,
      });
      const rows = chartRows(report);
      if (rows.length) {
        const chart = o.chart ?? defaultChartPath(o.json);
        await mkdir(dirname(chart), { recursive: true });
        await writeFile(chart, renderStageChart(rows));
        report.chart = chart;
      }
      await mkdir(dirname(o.json), { recursive: true });
      await writeFile(o.json, `${JSON.stringify(report, null, 2)}\n`);
      process.stdout.write(`${formatTable(report.measurements)}\n\n${formatSummary(report)}\n`);
      log(`wrote ${o.json}${report.chart ? ` and ${report.chart}` : ''}`);
      const missing = missingKeys(report);
      if (missing.length)
        throw new AppError('INTERNAL', `the report lacks required keys: ${missing.join(', ')}`);
    });
}
