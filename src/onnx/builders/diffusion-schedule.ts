/**
 * The diffusion sampler's schedule (spec §3.1–§3.3): cosine ᾱ over `trainSteps`, respaced to
 * `samplingSteps`, and the per-step coefficient tables of the reverse process. Everything is
 * float64 (JavaScript numbers), as the reference computes it with numpy; graphs cast to float32
 * only when a table becomes an initializer. Pure: the TS pipeline and the tests import it too.
 */
import type { DiffusionConfig } from '../../model/config.ts';

export interface DiffusionSchedule {
  /** Original-scale timestep τ[i] fed to the network for spaced step i (0 … samplingSteps−1). */
  timesteps: number[];
  /** Base process: β_i and ᾱ_i for i = 0 … trainSteps−1. */
  baseBetas: number[];
  baseAlphasCumprod: number[];
  /** Spaced process, indexed by the spaced step i. */
  betas: number[]; // β'_i
  alphasCumprod: number[]; // ᾱ'_i = ᾱ_{τ[i]}
  alphasCumprodPrev: number[]; // ᾱ'_{i−1}, 1 at i = 0
  sra: number[]; // sqrt(1/ᾱ')
  srm1: number[]; // sqrt(1/ᾱ' − 1)
  c1: number[]; // posterior-mean coefficient on x̂₀
  c2: number[]; // posterior-mean coefficient on x_t
  posteriorVariance: number[]; // σ̃², 0 at i = 0
  /** log σ̃² with index 0 borrowing index 1 (log 0 would be −∞). */
  minLog: number[];
  /** log β' of the SPACED betas (not the 1000-step ones). */
  maxLog: number[];
}

const MAX_BETA = 0.999;

/** Cosine ᾱ(t) for t ∈ [0, 1] (Nichol & Dhariwal, s = 0.008). */
export function cosineAlphaBar(t: number): number {
  return Math.cos(((t + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
}

export function cosineBetas(trainSteps: number): number[] {
  const betas: number[] = [];
  for (let i = 0; i < trainSteps; i++) {
    const b = 1 - cosineAlphaBar((i + 1) / trainSteps) / cosineAlphaBar(i / trainSteps);
    betas.push(Math.min(b, MAX_BETA));
  }
  return betas;
}

export function cumulativeAlphas(betas: number[]): number[] {
  const out: number[] = [];
  let p = 1;
  for (const b of betas) {
    p *= 1 - b;
    out.push(p);
  }
  return out;
}

/**
 * Kept original timesteps: one section of `samplingSteps` over `trainSteps`,
 * round(k·(T−1)/(S−1)). Python's round is half-to-even but no ties occur for 1000/100, and a
 * tie would need k·(T−1)/(S−1) to be exactly x.5, which the check below rejects.
 */
export function respacedTimesteps(trainSteps: number, samplingSteps: number): number[] {
  if (samplingSteps < 2 || samplingSteps > trainSteps) {
    throw new RangeError(`samplingSteps must be in [2, ${trainSteps}], got ${samplingSteps}`);
  }
  const out: number[] = [];
  for (let k = 0; k < samplingSteps; k++) {
    const x = (k * (trainSteps - 1)) / (samplingSteps - 1);
    if (Math.abs(x - Math.floor(x) - 0.5) < 1e-9) throw new RangeError(`respacing tie at k = ${k}`);
    out.push(Math.round(x));
  }
  return out;
}

export function diffusionSchedule(
  cfg: Pick<DiffusionConfig, 'trainSteps' | 'samplingSteps'>,
): DiffusionSchedule {
  const baseBetas = cosineBetas(cfg.trainSteps);
  const baseAlphasCumprod = cumulativeAlphas(baseBetas);
  const timesteps = respacedTimesteps(cfg.trainSteps, cfg.samplingSteps);

  const alphasCumprod = timesteps.map((t) => baseAlphasCumprod[t]);
  const alphasCumprodPrev = alphasCumprod.map((_, i) => (i === 0 ? 1 : alphasCumprod[i - 1]));
  const betas = alphasCumprod.map((a, i) => 1 - a / alphasCumprodPrev[i]);

  const sra = alphasCumprod.map((a) => Math.sqrt(1 / a));
  const srm1 = alphasCumprod.map((a) => Math.sqrt(1 / a - 1));
  const c1 = betas.map((b, i) => (b * Math.sqrt(alphasCumprodPrev[i])) / (1 - alphasCumprod[i]));
  const c2 = betas.map((b, i) => ((1 - alphasCumprodPrev[i]) * Math.sqrt(1 - b)) / (1 - alphasCumprod[i]));
  const posteriorVariance = betas.map((b, i) => (b * (1 - alphasCumprodPrev[i])) / (1 - alphasCumprod[i]));
  const minLog = posteriorVariance.map((_, i) => Math.log(posteriorVariance[i === 0 ? 1 : i]));
  const maxLog = betas.map((b) => Math.log(b));

  return {
    timesteps,
    baseBetas,
    baseAlphasCumprod,
    betas,
    alphasCumprod,
    alphasCumprodPrev,
    sra,
    srm1,
    c1,
    c2,
    posteriorVariance,
    minLog,
    maxLog,
  };
}
