/**
 * The measuring core of `harmon bench`: warm-up, repetitions under a wall-clock budget, and
 * order statistics that survive a noisy shared machine (median and p90, never the mean alone:
 * one GC pause or a neighbour's burst would otherwise move a headline figure).
 *
 * Pure except for the clock; the statistics are exported separately so tests check them on
 * known samples.
 */
import { AppError } from '../shared/errors.ts';

export interface Summary {
  /** Number of samples the statistics are computed from. */
  n: number;
  median: number;
  p90: number;
  min: number;
  max: number;
  mean: number;
}

export interface Measurement extends Summary {
  name: string;
  unit: string;
  warmup: number;
  /** True when the wall-clock budget ended the repetitions before the requested count. */
  truncated: boolean;
  samples: number[];
}

export interface MeasureOptions {
  /** Untimed runs first, so lazy allocations and ORT's first-run planning are not measured. */
  warmup?: number;
  /** Timed repetitions wanted. */
  reps?: number;
  /** Wall-clock budget for warm-up plus repetitions; at least one timed repetition always runs. */
  maxMs?: number;
}

/**
 * Percentile by linear interpolation between closest ranks (numpy's default, "type 7"):
 * rank h = (n−1)·q, value = x[⌊h⌋] + (h−⌊h⌋)·(x[⌊h⌋+1] − x[⌊h⌋]). Median = percentile(0.5).
 */
export function percentile(samples: readonly number[], q: number): number {
  if (samples.length === 0) throw new AppError('INTERNAL', 'percentile of an empty sample set');
  if (!(q >= 0 && q <= 1)) throw new AppError('INTERNAL', `percentile rank must be in [0,1], got ${q}`);
  const x = [...samples].sort((a, b) => a - b);
  const h = (x.length - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, x.length - 1);
  return x[lo] + (h - lo) * (x[hi] - x[lo]);
}

export function summarize(samples: readonly number[]): Summary {
  if (samples.length === 0) throw new AppError('INTERNAL', 'cannot summarize zero samples');
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  let sum = 0;
  for (const v of samples) {
    min = Math.min(min, v);
    max = Math.max(max, v);
    sum += v;
  }
  return {
    n: samples.length,
    median: percentile(samples, 0.5),
    p90: percentile(samples, 0.9),
    min,
    max,
    mean: sum / samples.length,
  };
}

/** A Measurement from samples taken elsewhere (e.g. time to first token inside one call). */
export function measurementOf(name: string, samples: number[], unit = 'ms', warmup = 0): Measurement {
  return { name, unit, warmup, truncated: false, samples, ...summarize(samples) };
}

/**
 * Times `fn` (wall clock, ms): `warmup` untimed calls, then up to `reps` timed ones, stopping
 * early once `maxMs` has passed since the start (the call in flight finishes; that is the bound's
 * slack). `fn` may return a number to report its own sample instead of the wall time.
 */
export async function measure(
  name: string,
  fn: (rep: number) => Promise<unknown> | unknown,
  opts: MeasureOptions = {},
): Promise<Measurement> {
  const warmup = opts.warmup ?? 1;
  const reps = Math.max(1, opts.reps ?? 5);
  const maxMs = opts.maxMs ?? Number.POSITIVE_INFINITY;
  const start = performance.now();
  const overBudget = () => performance.now() - start >= maxMs;
  let warmed = 0;
  for (; warmed < warmup && !overBudget(); warmed++) await fn(-1 - warmed);
  const samples: number[] = [];
  while (samples.length < reps && (samples.length === 0 || !overBudget())) {
    const t0 = performance.now();
    const own = await fn(samples.length);
    samples.push(typeof own === 'number' ? own : performance.now() - t0);
  }
  return {
    name,
    unit: 'ms',
    warmup: warmed,
    truncated: samples.length < reps,
    samples,
    ...summarize(samples),
  };
}

/** Peak resident set size of this process so far, in MiB (maxRSS is reported in KiB). */
export function peakRssMb(): number {
  return process.resourceUsage().maxRSS / 1024;
}

function fmt(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a >= 1000) return v.toFixed(0);
  if (a >= 100) return v.toFixed(1);
  if (a >= 1) return v.toFixed(2);
  return v.toFixed(3);
}

/** Fixed-width text table: name, n, median, p90, min–max, unit. */
export function formatTable(rows: readonly Measurement[]): string {
  const header = ['benchmark', 'n', 'median', 'p90', 'min–max', 'unit'];
  const body = rows.map((m) => [
    m.name,
    `${m.n}${m.truncated ? '*' : ''}`,
    fmt(m.median),
    fmt(m.p90),
    `${fmt(m.min)}–${fmt(m.max)}`,
    m.unit,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 || i === 5 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  const out = [line(header), widths.map((w) => '─'.repeat(w)).join('  '), ...body.map(line)];
  if (rows.some((m) => m.truncated))
    out.push('* fewer repetitions than asked: the wall-clock budget ran out');
  return out.join('\n');
}
