/**
 * The deployment's memory fit (infra/lib/memory.ts) as the synthesized stack states it: the
 * default instance, task reservation and dtype hold the model the layout produces, a combination
 * that does not fit fails synth, and infra/README.md's table is the one memoryNeeds() computes.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { DEFAULTS, readConfig } from '../../infra/lib/config.ts';
import { fitOn, GIB, GPU_INSTANCES, memoryNeeds, variantOf } from '../../infra/lib/memory.ts';
import { VARIANTS } from '../../src/model/config.ts';
import { weightBudget } from '../../src/onnx/weight-budget.ts';
import { cdkJson, synth } from './synth.ts';

function workerTask(overrides: Record<string, unknown> = {}) {
  const { compute } = synth(overrides);
  const gpu = Object.values(compute.findResources('AWS::ECS::TaskDefinition')).find((t) =>
    JSON.stringify(t.Properties?.ContainerDefinitions).includes('"Type":"GPU"'),
  );
  assert.ok(gpu, 'the stack has a GPU worker task');
  const [container] = gpu.Properties.ContainerDefinitions as { MemoryReservation: number }[];
  const [template] = Object.values(compute.findResources('AWS::EC2::LaunchTemplate'));
  const instance = (template.Properties.LaunchTemplateData as { InstanceType: string }).InstanceType;
  return { reservationMiB: container.MemoryReservation, instance };
}

describe('worker memory fit', () => {
  test('defaults: the synthesized instance and reservation hold the default model in its dtype', () => {
    const cfg = readConfig((k) => cdkJson.context[k]);
    assert.deepEqual(
      [cfg.gpuInstanceType, cfg.modelVariant, cfg.modelDtype],
      [DEFAULTS.gpuInstanceType, DEFAULTS.modelVariant, DEFAULTS.modelDtype],
    );
    const { reservationMiB, instance } = workerTask();
    assert.equal(instance, cfg.gpuInstanceType);
    const size = variantOf(cfg.modelVariant);
    assert.ok(size);
    const needs = memoryNeeds(size, cfg.modelDtype === 'fp16' ? 'float16' : 'float32');
    const spec = GPU_INSTANCES[cfg.gpuInstanceType];
    // Host: the reservation covers the load peak and the instance can grant it.
    assert.ok(reservationMiB * 2 ** 20 >= needs.hostLoadBytes, `${reservationMiB} MiB reserved`);
    assert.ok(reservationMiB <= (spec.ramGiB - 2) * 1024, `${reservationMiB} MiB on ${spec.ramGiB} GiB`);
    // GPU: every weight the serving sessions hold (fp32 after load) + base + activations.
    const weights = weightBudget(VARIANTS[size], 'float16').residentBytes;
    assert.ok(needs.gpuServeBytes >= weights);
    assert.ok(needs.gpuServeBytes <= spec.gpuGiB * GIB, `${needs.gpuServeBytes / GIB} GiB on ${spec.gpu}`);
  });

  test('the default holds 1.5B with room; a 24 GB GPU holds it only with fp32 storage, by the estimate', () => {
    assert.deepEqual(
      [DEFAULTS.gpuInstanceType, DEFAULTS.modelVariant, DEFAULTS.modelDtype],
      ['g6e.xlarge', 'harmon-1.5b', 'fp16'],
    );
    // The L40S holds it with room, in fp16 storage (half the download), loading within the
    // 30 GiB its tasks may reserve.
    const l40s = fitOn('g6e.xlarge', '1.5b', 'float16');
    assert.deepEqual(l40s.problems, []);
    assert.ok(44.9 * GIB - l40s.needs.gpuServeBytes > 20 * GIB);
    // With the LLM's attention in query chunks, 1.5B fits the 24 GB A10G/L4 of g5/g6.xlarge
    // (estimated: CPU-measured arena, CUDA kernels read from onnxruntime's sources), with room
    // for 2 GiB of error; fp16 storage does not, its load needing more host RAM than they leave.
    for (const type of ['g6.xlarge', 'g5.xlarge']) {
      const fp32 = fitOn(type, '1.5b', 'float32');
      assert.deepEqual(fp32.problems, []);
      assert.ok(GPU_INSTANCES[type].gpuGiB * GIB - fp32.needs.gpuServeBytes > 2 * GIB);
      assert.match(fitOn(type, '1.5b', 'float16').problems.join(';'), /loading needs 14\.6 GiB of host RAM/);
    }
    // 0.5B fits the cheapest size, in fp16 too.
    assert.deepEqual(fitOn('g6.xlarge', '0.5b', 'float16').problems, []);
  });

  test('the reservation follows the model: 0.5B reserves less than 1.5B on the same instance', () => {
    const small = workerTask({ modelVariant: 'harmon-0.5b' }).reservationMiB;
    assert.equal(small, fitOn(DEFAULTS.gpuInstanceType, '0.5b', 'float16').reservationMiB);
    assert.ok(small < workerTask().reservationMiB);
  });

  test('a model that does not fit the instance fails synth with the numbers', () => {
    const ctx = (o: Record<string, string>) => (k: string) => o[k] ?? cdkJson.context[k];
    assert.throws(
      () =>
        readConfig(ctx({ gpuInstanceType: 'g6.xlarge', modelVariant: 'harmon-1.5b', modelDtype: 'fp16' })),
      /g6\.xlarge cannot serve harmon-1\.5b \(fp16\): loading needs 14\.6 GiB of host RAM, g6\.xlarge leaves 14\.0 GiB \(see/,
    );
    assert.doesNotThrow(() =>
      readConfig(ctx({ gpuInstanceType: 'g5.xlarge', modelVariant: 'harmon-1.5b', modelDtype: 'fp32' })),
    );
    assert.throws(() => readConfig(ctx({ modelVariant: 'my-model' })), /must start with harmon-<size>/);
    assert.throws(() => readConfig(ctx({ modelDtype: 'bf16' })), /modelDtype=bf16: expected fp16 or fp32/);
  });

  test("infra/README.md's memory table is the one memoryNeeds computes", () => {
    const readme = readFileSync(new URL('../../infra/README.md', import.meta.url), 'utf8');
    const gib = (b: number) => (b / GIB).toFixed(1);
    for (const size of ['0.5b', '1.5b'] as const)
      for (const dtype of ['float32', 'float16'] as const) {
        const n = memoryNeeds(size, dtype);
        const row = `| ${size} | ${dtype === 'float16' ? 'fp16' : 'fp32'} | ${gib(n.dirBytes)} | ${gib(n.residentBytes)} | ${gib(n.activationBytes)} | ${gib(n.hostLoadBytes)} | ${gib(n.gpuServeBytes)} | ${gib(n.hostCpuServeBytes)} |`;
        assert.ok(readme.includes(row), `infra/README.md lacks the row\n${row}`);
      }
  });
});
