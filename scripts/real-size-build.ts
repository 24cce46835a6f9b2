/**
 * Builds a random-weight model directory at a registered variant's real shapes for
 * scripts/real-size-check.sh and prints one JSON line: build seconds, fp32 weight bytes (every
 * checkpoint tensor except the tied lm_head copy, as issue #11 counts them) and model-dir bytes.
 * Usage: node --import tsx scripts/real-size-build.ts <variant> <fp32|fp16> <outDir>
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { VARIANTS, type VariantName } from '../src/model/config.ts';
import { expectedHarmonTensors } from '../src/onnx/harmon-keys.ts';
import { buildTinyModel } from '../src/onnx/tiny.ts';
import { numelOf } from '../src/onnx/weights/dtype.ts';

const [variant, dtype, outDir] = process.argv.slice(2);
const config = VARIANTS[variant as VariantName];
if (!config || !['fp32', 'fp16'].includes(dtype) || !outDir) {
  console.error('usage: real-size-build.ts <tiny|small|0.5b|1.5b> <fp32|fp16> <outDir>');
  process.exit(2);
}
const weightBytes = [...expectedHarmonTensors(config, { includeVae: true, vaePrefix: 'vae.' })]
  .filter(([name]) => name !== 'llm.lm_head.weight')
  .reduce((sum, [, shape]) => sum + 4 * numelOf(shape), 0);
const t0 = performance.now();
await buildTinyModel({
  outDir,
  config,
  seed: 1,
  dtype: dtype === 'fp16' ? 'float16' : 'float32',
  onProgress: (done, total, graph) =>
    console.error(`  ${done}/${total} ${graph} ${((performance.now() - t0) / 1000).toFixed(0)} s`),
});
const buildSeconds = (performance.now() - t0) / 1000;
const dirBytes = readdirSync(outDir).reduce((sum, f) => sum + statSync(join(outDir, f)).size, 0);
console.log(
  JSON.stringify({ variant, dtype, buildSeconds: Math.round(buildSeconds), weightBytes, dirBytes }),
);
