/**
 * The per-step alternative to diffusion_sampler.onnx, for the benchmark: 100 runs of the
 * diffusion_mlp module graph (built in memory: no model directory ships it), with CFG mixing and the §3.6 reverse update on
 * the host in float32 (tables cast to float32 as the fused graph casts its initializers). It is
 * what a port without a fused sampler would do per MAR step, so the speed ratio the bench reports
 * is the price of 100 host round trips. Same inputs as the fused graph: c, x_T, noise [S,n,16],
 * cfg scale, temperature.
 */
import { outF32 } from '../harmon/harmon-model.ts';
import type { HarmonConfig } from '../model/config.ts';
import { diffusionSchedule } from '../onnx/builders/diffusion-schedule.ts';
import type { GraphSession } from '../runtime/sessions.ts';

const C = 16; // latent channels per token

export interface SamplerInputs {
  /** Tokens sampled (conditional rows). */
  n: number;
  /** Condition z: [2n,D] with CFG (conditional block first), [n,D] without. */
  c: Float32Array;
  xT: Float32Array; // [n,16]
  noise: Float32Array; // [S,n,16]; step 0's slice is unused (no noise at i = 0)
  cfg: boolean;
  cfgScale: number;
  temperature: number;
}

/** What the driver needs: `run` of a diffusion_mlp session (x [R,16], t [R], c [R,D] -> out [R,32]). */
export type MlpRunner = Pick<GraphSession, 'run'>;

/** Runs the 100-step loop with one diffusion_mlp session run per step; returns x_0 [n,16]. */
export async function samplePerStep(
  config: HarmonConfig,
  runtime: MlpRunner,
  inp: SamplerInputs,
): Promise<Float32Array> {
  const s = diffusionSchedule(config.diffusion);
  const S = config.diffusion.samplingSteps;
  const D = config.mar.width;
  const { n } = inp;
  const rows = inp.cfg ? 2 * n : n;
  const f = Math.fround;
  const x = Float32Array.from(inp.xT);
  const xin = new Float32Array(rows * C);
  const t = new Float32Array(rows);
  const c = { dtype: 'float32' as const, dims: [rows, D], data: inp.c };
  for (let i = S - 1; i >= 0; i--) {
    // Both CFG halves see the same x_t (§3.5): the state is duplicated, not sampled twice.
    xin.set(x, 0);
    if (inp.cfg) xin.set(x, n * C);
    t.fill(s.timesteps[i]);
    const res = await runtime.run({
      x: { dtype: 'float32', dims: [rows, C], data: xin },
      t: { dtype: 'float32', dims: [rows], data: t },
      c,
    });
    const out = outF32(res, 'out', 'diffusion_mlp').data;
    // out is [rows, 32]: ε in channels 0..15, the variance interpolation v in 16..31.
    const sra = f(s.sra[i]);
    const srm1 = f(s.srm1[i]);
    const c1 = f(s.c1[i]);
    const c2 = f(s.c2[i]);
    const minLog = f(s.minLog[i]);
    const maxLog = f(s.maxLog[i]);
    for (let r = 0; r < n; r++) {
      for (let k = 0; k < C; k++) {
        const ec = out[r * 2 * C + k];
        const eu = inp.cfg ? out[(r + n) * 2 * C + k] : ec;
        const eps = inp.cfg ? f(eu + f(inp.cfgScale * f(ec - eu))) : ec;
        const v = out[r * 2 * C + C + k];
        const xt = x[r * C + k];
        const mean = f(f(c1 * f(f(sra * xt) - f(srm1 * eps))) + f(c2 * xt));
        const frac = f(f(v + 1) * 0.5);
        const logVar = f(f(frac * maxLog) + f(f(1 - frac) * minLog));
        const z =
          i > 0 ? f(f(Math.exp(f(0.5 * logVar))) * inp.noise[(i * n + r) * C + k]) * inp.temperature : 0;
        x[r * C + k] = f(mean + f(z));
      }
    }
  }
  return x;
}
