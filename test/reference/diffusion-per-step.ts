/**
 * The per-step alternative to diffusion_sampler.onnx: 100 runs of diffusion_mlp.onnx driven
 * from TypeScript, with the CFG mixing and the §3.6 update done on the host in float32 (the
 * tables cast to float32 as the fused graph does). Test/bench only: it exists so the fused
 * sampler can be checked against it and the benchmark can compare their speed.
 */
import * as ort from 'onnxruntime-node';
import { diffusionSchedule } from '../../src/onnx/builders/diffusion-schedule.ts';
import type { HarmonConfig } from '../../src/onnx/config.ts';

export interface PerStepInputs {
  n: number;
  c: Float32Array; // [2n,D] with CFG, [n,D] without
  xT: Float32Array; // [n,16]
  noise: Float32Array; // [S,n,16], index 0 unused
  cfg: boolean;
  cfgScale: number;
  temperature: number;
}

/** Runs the sampler loop over `mlp` (a session of diffusion_mlp.onnx); returns x_0 [n,16]. */
export async function samplePerStep(
  config: HarmonConfig,
  mlp: ort.InferenceSession,
  inp: PerStepInputs,
): Promise<Float32Array> {
  const s = diffusionSchedule(config.diffusion);
  const S = config.diffusion.samplingSteps;
  const D = config.mar.width;
  const { n } = inp;
  const rows = inp.cfg ? 2 * n : n;
  const f = Math.fround;
  const c = new ort.Tensor('float32', inp.c, [rows, D]);
  const x = Float32Array.from(inp.xT);
  const xin = new Float32Array(rows * 16);
  const t = new Float32Array(rows);
  for (let i = S - 1; i >= 0; i--) {
    xin.set(x, 0);
    if (inp.cfg) xin.set(x, n * 16);
    t.fill(s.timesteps[i]);
    const res = await mlp.run({
      x: new ort.Tensor('float32', xin, [rows, 16]),
      t: new ort.Tensor('float32', t, [rows]),
      c,
    });
    const out = res.out.data as Float32Array;
    const [sra, srm1, c1, c2, minLog, maxLog] = [s.sra, s.srm1, s.c1, s.c2, s.minLog, s.maxLog].map((a) =>
      f(a[i]),
    );
    for (let r = 0; r < n; r++) {
      for (let k = 0; k < 16; k++) {
        const ec = out[r * 32 + k];
        const eps = inp.cfg ? f(out[(r + n) * 32 + k] + f(inp.cfgScale * f(ec - out[(r + n) * 32 + k]))) : ec;
        const v = out[r * 32 + 16 + k];
        const xt = x[r * 16 + k];
        const mean = f(f(c1 * f(f(sra * xt) - f(srm1 * eps))) + f(c2 * xt));
        const frac = f(f(v + 1) * 0.5);
        const logVar = f(f(frac * maxLog) + f(f(1 - frac) * minLog));
        const noise =
          i > 0 ? f(f(Math.exp(f(0.5 * logVar))) * inp.noise[(i * n + r) * 16 + k]) * inp.temperature : 0;
        x[r * 16 + k] = f(mean + f(noise));
      }
    }
  }
  return x;
}
