// Per-stage latency and GPU-ms in /metrics after one generate job on the REAL tiny model, run by
// the in-process worker: the worker stores the engine's stage timings on the Job row and the
// scrape observes them, so this holds whichever process ran the job.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { buildTinyModel } from '../../src/onnx/tiny.ts';
import { type ApiHarness, startApi } from './harness.ts';

let h: ApiHarness;
const METRICS_TOKEN = 'metrics-hardening-token-0123456789';
const scrape = async () =>
  (await fetch(`${h.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).text();
const dir = mkdtempSync(join(tmpdir(), 'harmon-api-metrics-'));

before(async () => {
  const modelDir = join(dir, 'model');
  await buildTinyModel({ outDir: modelDir, seed: 2 });
  // Per-tenant series are served only with the metrics token (exposure.test.ts).
  h = await startApi({ workerModelDirs: [modelDir], env: { METRICS_TOKEN } });
});
after(async () => {
  await h?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function waitForStatus(id: string, status: string, timeoutMs = 90_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const job = await h.db.prisma.job.findUnique({ where: { id }, select: { status: true } });
    if (job?.status === status) return;
    if (Date.now() > until) assert.fail(`job ${id} is ${job?.status}, expected ${status}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Value of the sample `name{labels}` whose labels include every `want` pair (any order). */
function sample(text: string, name: string, want: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)\{([^}]*)\} (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const labels = Object.fromEntries([...m[2].matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(want).every(([k, v]) => labels[k] === v)) return Number(m[3]);
  }
  return undefined;
}

test('/metrics: harmon_stage_seconds buckets for every pipeline stage and GPU-ms per tenant after one generate', async () => {
  const t = await h.newTenant('metrics');
  const g = await h.gql<{ generate: { id: string } }>(
    t.key,
    'mutation { generate(input:{ prompt: "a blue circle", size: 64, steps: 3, seed: 4 }) { id } }',
  );
  const id = g.body.data?.generate.id as string;
  assert.ok(id, JSON.stringify(g.body));
  await waitForStatus(id, 'SUCCEEDED');

  const job = await h.db.prisma.job.findUniqueOrThrow({ where: { id } });
  const stageMs = job.stageMs as Record<string, number>;
  assert.ok(stageMs && typeof stageMs === 'object', 'the worker stored the engine stage timings');
  assert.deepEqual(job.pendingKeys, [], 'every uploaded key is recorded by an Asset row');

  const text = await scrape();
  // Text prefill, MAR steps (fused mar_step graph or the encoder/decoder pair), diffusion, VAE
  // decode and PNG encode: each has buckets and exactly one observation from this job.
  const marStage = 'mar_step' in stageMs ? 'mar_step' : 'mar_decoder';
  for (const stage of ['prefill', marStage, 'diffusion_sampler', 'vae_decode', 'encode_png']) {
    assert.ok(stage in stageMs, `stageMs has ${stage}: ${JSON.stringify(stageMs)}`);
    const want = { stage, kind: 'GENERATE' };
    assert.equal(sample(text, 'harmon_stage_seconds_count', want), 1, `${stage} count`);
    assert.equal(sample(text, 'harmon_stage_seconds_bucket', { ...want, le: '+Inf' }), 1, `${stage} +Inf`);
    const sum = sample(text, 'harmon_stage_seconds_sum', want) as number;
    assert.ok(Math.abs(sum - stageMs[stage] / 1000) < 1e-6, `${stage} sum ${sum} vs ${stageMs[stage]} ms`);
  }
  const gpu = sample(text, 'harmon_job_gpu_ms_total', { tenant: t.tenantId, kind: 'GENERATE' });
  assert.equal(gpu, job.gpuMs);
  assert.ok((gpu as number) > 0);

  // A second scrape does not observe the same job again (cumulative histograms).
  const again = await scrape();
  assert.equal(sample(again, 'harmon_stage_seconds_count', { stage: 'prefill', kind: 'GENERATE' }), 1);
});
