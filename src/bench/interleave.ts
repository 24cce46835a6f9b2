/**
 * Load runs that are compared with each other, measured interleaved: each round runs every
 * variant for a short slice (in a rotating order), and a variant's figures come from all of its
 * slices. On a shared, loaded machine the load changes from second to second; back-to-back runs
 * of several seconds each would charge one variant for a busy spell the other never saw.
 *
 * The load generator (autocannon) runs on a worker thread: on the servers' own event loop its
 * per-request work would be added to every latency alike and flatten the ratios. Latencies are
 * taken per request (autocannon's 'response' event, sub-millisecond), not from autocannon's
 * whole-millisecond histogram, so ratios of small means are not rounding artefacts.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { AutocannonOptions } from 'autocannon';

export type Variant = {
  name: string;
  /** autocannon options for one slice (plain data: they go to the load thread). */
  options: Omit<AutocannonOptions, 'duration' | 'setupClient'>;
  /** Headers per connection, assigned round-robin (e.g. one tenant's key per connection). */
  headersPerConnection?: Record<string, string>[];
};

export type LatencyStats = {
  /** Successful (2xx) responses over all slices. */
  requests: number;
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  /** Successful responses per second of measured time. */
  rate: number;
};

export type InterleaveOptions = {
  rounds: number;
  sliceSeconds: number;
  /** Unrecorded run per variant first (JIT, connection pools). Default 1 s. */
  warmupSeconds?: number;
  log?: (line: string) => void;
};

export function percentile(xs: ArrayLike<number>, p: number): number {
  const s = Float64Array.from(xs).sort();
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : Number.NaN;
}

type Slice = { latencies: Float64Array; failed: number; seconds: number };

// Plain CommonJS, evaluated on the worker thread (which has no TypeScript loader).
const LOAD_THREAD = `
const { parentPort, workerData } = require('node:worker_threads');
const autocannon = require(workerData.autocannon);
parentPort.on('message', async ({ options, seconds, headersPerConnection }) => {
  try {
    let next = 0;
    const latencies = [];
    let failed = 0;
    const setupClient = headersPerConnection
      ? (c) => c.setHeaders(headersPerConnection[next++ % headersPerConnection.length])
      : undefined;
    const instance = autocannon({ ...options, duration: seconds, ...(setupClient ? { setupClient } : {}) });
    instance.on('response', (_client, status, _bytes, ms) => {
      if (status >= 200 && status < 300) latencies.push(ms);
      else failed++;
    });
    const r = await instance;
    const out = Float64Array.from(latencies);
    parentPort.postMessage(
      { latencies: out, failed: failed + r.errors + r.timeouts, seconds: r.duration },
      [out.buffer],
    );
  } catch (e) {
    parentPort.postMessage({ error: String((e && e.stack) || e) });
  }
});
`;

/** One load thread running one slice at a time. */
function loadThread() {
  const worker = new Worker(LOAD_THREAD, {
    eval: true,
    workerData: { autocannon: createRequire(import.meta.url).resolve('autocannon') },
  });
  return {
    slice(v: Variant, seconds: number): Promise<Slice> {
      return new Promise((resolve, reject) => {
        const onError = (e: Error) => reject(e);
        worker.once('error', onError);
        worker.once('message', (m: Slice & { error?: string }) => {
          worker.off('error', onError);
          if (m.error) reject(new Error(`${v.name}: ${m.error}`));
          else resolve(m);
        });
        worker.postMessage({ options: v.options, seconds, headersPerConnection: v.headersPerConnection });
      });
    },
    close: () => worker.terminate(),
  };
}

/**
 * Runs the variants interleaved; throws if any request failed (a non-2xx status, a socket error
 * or a timeout), since a failing run measures the failure, not the path.
 */
export async function runInterleaved(
  variants: Variant[],
  o: InterleaveOptions,
): Promise<Record<string, LatencyStats>> {
  const samples = new Map<string, Slice[]>(variants.map((v) => [v.name, []]));
  const load = loadThread();
  try {
    for (const v of variants) {
      const w = await load.slice(v, o.warmupSeconds ?? 1);
      if (w.failed > 0) throw new Error(`${v.name}: ${w.failed} failed requests during warm-up`);
    }
    for (let r = 0; r < o.rounds; r++) {
      // Rotate who goes first, so no variant always runs right after the same neighbour.
      for (let i = 0; i < variants.length; i++) {
        const v = variants[(i + r) % variants.length];
        const s = await load.slice(v, o.sliceSeconds);
        if (s.failed > 0) throw new Error(`${v.name}: ${s.failed} failed requests in round ${r + 1}`);
        samples.get(v.name)?.push(s);
      }
    }
  } finally {
    await load.close();
  }
  const out: Record<string, LatencyStats> = {};
  for (const [name, slices] of samples) {
    const all = slices.flatMap((s) => Array.from(s.latencies));
    const seconds = slices.reduce((a, s) => a + s.seconds, 0);
    out[name] = {
      requests: all.length,
      p50Ms: percentile(all, 50),
      p99Ms: percentile(all, 99),
      meanMs: all.reduce((a, x) => a + x, 0) / Math.max(1, all.length),
      rate: all.length / Math.max(seconds, 1e-9),
    };
    o.log?.(
      `api: ${name} p50 ${out[name].p50Ms.toFixed(2)} ms, p99 ${out[name].p99Ms.toFixed(2)} ms, mean ${out[name].meanMs.toFixed(2)} ms, ${out[name].rate.toFixed(0)} req/s (${o.rounds} interleaved slices of ${o.sliceSeconds} s)`,
    );
  }
  return out;
}
