/**
 * The performance targets of issues #7 and #12, checked (never asserted) against one bench run. Each check
 * says met / missed / not measured and, in a sentence, why — a missed target with its cause is a
 * result; a silently dropped one is not.
 */

export type TargetStatus = 'met' | 'missed' | 'not measured';

export interface TargetCheck {
  /** JSON key the target is about, e.g. "pipeline.jsOverheadShare". */
  key: string;
  target: string;
  value: number | null;
  limit: number | null;
  status: TargetStatus;
  why: string;
}

/** What the checks read; null where the figure was not measured, with the reason in `notMeasured`. */
export interface TargetInputs {
  /** JS orchestration share of generate on the small config (the target's config). */
  jsOverheadShareSmall: number | null;
  /** The same on the tiny config, quoted when the small config did not run. */
  jsOverheadShareTiny: number | null;
  sessionRunsPerImage: number | null;
  /** MAR steps of the generate run sessionRunsPerImage comes from. */
  steps: number | null;
  fusedSpeedupTiny: number | null;
  /** Ratio of the fastest fused and fastest per-step runs: the uncontended estimate. */
  fusedSpeedupTinyBest: number | null;
  /** Fastest whole sampling (100 steps) on tiny, fused and per-step: the least noisy cost split. */
  fusedMinMsTiny: number | null;
  perStepMinMsTiny: number | null;
  enqueueP99Ms: number | null;
  /** Request rate the enqueue latency was measured at (req/s), if the API bench reports it. */
  enqueueRate: number | null;
  overheadVsBareApollo: number | null;
  subscriberEventDelayP99Ms: number | null;
  /** Enqueue p50 / floor p50, and the two p50s (ms), measured interleaved (issue #12). */
  enqueueVsFloorP50: number | null;
  enqueueP50Ms: number | null;
  enqueueFloorP50Ms: number | null;
  /** Job query mean / bare one-row-read mean, and the two means (ms), measured interleaved. */
  queryVsBareReadMean: number | null;
  queryMeanMs: number | null;
  bareReadMeanMs: number | null;
  cpus: number;
  loadAverage1m: number;
  notMeasured: Record<string, string>;
}

/**
 * Why fusing did not pay 3×, from the fastest runs (the medians carry the machine's noise): the
 * per-step path's extra cost per step is everything fusing can remove; what is left is the
 * network's own compute, which both paths run.
 */
function overheadSplit(t: TargetInputs): string {
  if (t.fusedMinMsTiny === null || t.perStepMinMsTiny === null) return '';
  const steps = 100;
  const perStepUs = (1000 * t.perStepMinMsTiny) / steps;
  const savedUs = (1000 * (t.perStepMinMsTiny - t.fusedMinMsTiny)) / steps;
  const leftUs = (1000 * t.fusedMinMsTiny) / steps;
  return ` In the fastest runs, one sampling step of the per-step path costs ${perStepUs.toFixed(0)} µs, of which fusing removes ${savedUs.toFixed(0)} µs (session call, feed checks, tensor wrapping, host update); the remaining ${leftUs.toFixed(0)} µs is the diffusion MLP's own kernels (matrix multiplies and ~35 small element-wise ops per step; the Loop/Scan bookkeeping itself measured ~1–2 µs), which both paths run. A 3× ratio needs the removable part to be ≥ 2/3 of a step; on the CPU provider it is not.`;
}

const pct = (v: number) => `${(100 * v).toFixed(1)} %`;

function check(
  key: string,
  target: string,
  value: number | null,
  limit: number | null,
  ok: (v: number, limit: number) => boolean,
  reason: { missing: string; met: string; missed: string },
): TargetCheck {
  if (value === null || limit === null || !Number.isFinite(value)) {
    return { key, target, value: null, limit, status: 'not measured', why: reason.missing };
  }
  const met = ok(value, limit);
  return { key, target, value, limit, status: met ? 'met' : 'missed', why: met ? reason.met : reason.missed };
}

export function checkTargets(t: TargetInputs): TargetCheck[] {
  const nm = (key: string, fallback: string) => t.notMeasured[key] ?? fallback;
  const loaded = t.loadAverage1m > t.cpus;
  const noise = loaded
    ? ` The machine was oversubscribed during the run (1-minute load ${t.loadAverage1m.toFixed(1)} on ${t.cpus} CPUs), which inflates short, many-call measurements most.`
    : '';
  const checks: TargetCheck[] = [];

  const tinyNote =
    t.jsOverheadShareTiny !== null ? ` On the tiny config it was ${pct(t.jsOverheadShareTiny)}.` : '';
  checks.push(
    check(
      'pipeline.jsOverheadShare',
      'JS orchestration ≤ 3 % of generate time on the small config',
      t.jsOverheadShareSmall,
      0.03,
      (v, l) => v <= l,
      {
        missing: `${nm('pipeline.jsOverheadShareSmall', 'the small config did not run (the quick mode benchmarks the tiny model only; run the full bench)')}.${tinyNote}`,
        met: `JS time outside session runs was ${pct(t.jsOverheadShareSmall ?? 0)} of the request.`,
        missed: `JS time outside session runs was ${pct(t.jsOverheadShareSmall ?? 0)}. Likely cause: host-side work (prompt batching, token gathers, PNG encoding) is not negligible next to the small model's graphs on this CPU.${noise}`,
      },
    ),
  );

  const runsLimit = t.steps !== null ? 3 * t.steps + 10 : null;
  checks.push(
    check(
      'pipeline.sessionRunsPerImage',
      'session runs per image ≤ 3 × steps + 10',
      t.sessionRunsPerImage,
      runsLimit,
      (v, l) => v <= l,
      {
        missing: nm('pipeline.sessionRunsPerImage', 'the pipeline benchmark did not run'),
        met: `${t.sessionRunsPerImage} runs for ${t.steps} MAR steps (limit ${runsLimit}).`,
        missed: `${t.sessionRunsPerImage} runs for ${t.steps} MAR steps exceed ${runsLimit}: about ${((t.sessionRunsPerImage ?? 0) / (t.steps ?? 1)).toFixed(1)} runs per MAR step where the target budgets 3 per step plus 10 per request, so some per-step graphs would have to be merged (the graphs run per step are in src/harmon/generate.ts).`,
      },
    ),
  );

  const best =
    t.fusedSpeedupTinyBest !== null ? ` Fastest-run ratio: ${t.fusedSpeedupTinyBest.toFixed(2)}×.` : '';
  checks.push(
    check(
      'pipeline.fusedVsPerStepSpeedup',
      'fused sampler ≥ 3× faster than per-step on the tiny model',
      t.fusedSpeedupTiny,
      3,
      (v, l) => v >= l,
      {
        missing: nm('pipeline.fusedVsPerStepSpeedup', 'the sampler benchmark did not run'),
        met: `median ratio ${t.fusedSpeedupTiny?.toFixed(2)}× (100 session runs and host updates replaced by one Loop run).${best}`,
        missed:
          t.fusedSpeedupTinyBest !== null && t.fusedSpeedupTinyBest >= 3
            ? `median ratio ${t.fusedSpeedupTiny?.toFixed(2)}×, but the fastest runs of each give ${t.fusedSpeedupTinyBest.toFixed(2)}×: the gap between median and best is machine noise, not the graph.${noise}`
            : `median ratio ${t.fusedSpeedupTiny?.toFixed(2)}×.${best}${overheadSplit(t)}${noise}`,
      },
    ),
  );

  const rateNote = t.enqueueRate !== null ? ` at ${t.enqueueRate.toFixed(0)} req/s` : '';
  checks.push(
    check(
      'api.enqueueP99Ms',
      'enqueue mutation p99 ≤ 25 ms at 300 req/s',
      t.enqueueP99Ms,
      25,
      (v, l) => v <= l && (t.enqueueRate === null || t.enqueueRate >= 300),
      {
        missing: nm('api.enqueueP99Ms', 'the API benchmark did not run'),
        met: `p99 ${t.enqueueP99Ms?.toFixed(1)} ms${rateNote}.`,
        missed:
          t.enqueueRate !== null && t.enqueueRate < 300
            ? `measured${rateNote}, below the 300 req/s the target is stated at (p99 ${t.enqueueP99Ms?.toFixed(1)} ms). Likely cause: the load generator, the API and Postgres share ${t.cpus} CPUs, so the request rate is bounded by CPU, not by the enqueue path (its cost next to a bare insert is the api.enqueueVsFloorP50 check).${noise}`
            : `p99 ${t.enqueueP99Ms?.toFixed(1)} ms${rateNote}. Likely cause: each enqueue is a Postgres transaction (job row, event + NOTIFY, pg-boss message, then the quota statement, which serialises one tenant's enqueues up to COMMIT), and the load generator, API and Postgres share ${t.cpus} CPUs.${noise}`,
      },
    ),
  );

  checks.push(
    check(
      'api.overheadVsBareApollo',
      'our API layer ≤ 1.3× a bare Apollo Server with trivial resolvers',
      t.overheadVsBareApollo,
      1.3,
      (v, l) => v <= l,
      {
        missing: nm('api.overheadVsBareApollo', 'the API benchmark did not run'),
        met: `ratio ${t.overheadVsBareApollo?.toFixed(2)}×.`,
        missed: `ratio ${t.overheadVsBareApollo?.toFixed(2)}×. That bare server reads nothing, while every job query reads its row through Prisma; against a bare server making the same read the ratio is ${t.queryVsBareReadMean === null ? 'not measured' : `${t.queryVsBareReadMean.toFixed(2)}×`} (api.queryVsBareReadMean). The key lookup and rate limit are served in process (key cache, batched tokens).${noise}`,
      },
    ),
  );

  checks.push(
    check(
      'api.subscriberEventDelayP99Ms',
      'event delivery p99 ≤ 100 ms with 1,000 subscribers',
      t.subscriberEventDelayP99Ms,
      100,
      (v, l) => v <= l,
      {
        missing: nm('api.subscriberEventDelayP99Ms', 'the API benchmark did not run'),
        met: `p99 ${t.subscriberEventDelayP99Ms?.toFixed(1)} ms from publish to the last subscriber.`,
        missed: `p99 ${t.subscriberEventDelayP99Ms?.toFixed(1)} ms. Likely cause (not isolated by this bench): 1,000 WebSocket frames per event are serialised on one Node event loop, on the same CPUs as the 1,000 clients.${noise}`,
      },
    ),
  );
  const ms = (v: number | null) => (v === null ? '—' : `${v.toFixed(2)} ms`);
  checks.push(
    check(
      'api.enqueueVsFloorP50',
      'enqueue p50 ≤ 2× a bare "job insert + pg-boss send in one transaction" server, measured interleaved',
      t.enqueueVsFloorP50,
      2,
      (v, l) => v <= l,
      {
        missing: nm('api.enqueueVsFloorP50', 'the API benchmark did not run'),
        met: `ratio ${t.enqueueVsFloorP50?.toFixed(2)}× (p50 ${ms(t.enqueueP50Ms)} vs the floor's ${ms(t.enqueueFloorP50Ms)}).`,
        missed: `ratio ${t.enqueueVsFloorP50?.toFixed(2)}× (p50 ${ms(t.enqueueP50Ms)} vs the floor's ${ms(t.enqueueFloorP50Ms)}). What the enqueue adds to the floor: admission (key cache, rate-limit batch), input validation, the event insert + NOTIFY and the quota statement, whose per-tenant lock serialises one tenant's enqueues from that statement to COMMIT; the floor has none of them.${noise}`,
      },
    ),
  );

  checks.push(
    check(
      'api.queryVsBareReadMean',
      'job query mean ≤ 1.5× a bare Apollo Server doing the same one-row read through the same driver, measured interleaved',
      t.queryVsBareReadMean,
      1.5,
      (v, l) => v <= l,
      {
        missing: nm('api.queryVsBareReadMean', 'the API benchmark did not run'),
        met: `ratio ${t.queryVsBareReadMean?.toFixed(2)}× (mean ${ms(t.queryMeanMs)} vs ${ms(t.bareReadMeanMs)}).`,
        missed: `ratio ${t.queryVsBareReadMean?.toFixed(2)}× (mean ${ms(t.queryMeanMs)} vs ${ms(t.bareReadMeanMs)}). What the API adds to the bare read: key lookup (cached), the rate-limit token (batched), the request scope and metrics, and our error formatting; all of it runs on the same CPUs as the load generator and Postgres.${noise}`,
      },
    ),
  );
  return checks;
}
