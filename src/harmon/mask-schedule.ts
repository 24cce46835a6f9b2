/**
 * Cosine mask schedule of the MAR loop (spec §2.6 g–h, check values §2.7) and the CFG scale
 * per step (spec §2.8). Pure arithmetic, computed once per (N, T) before the loop starts.
 */
import { AppError } from '../shared/errors.ts';

export interface MaskSchedule {
  /** Image tokens N. */
  n: number;
  /** MAR steps T. */
  steps: number;
  /**
   * Clamped masked count after each step k = 0..T-1. The last entry is the clamped value 1,
   * which the linear CFG schedule uses although the last step predicts every remaining token.
   */
  maskedAfter: number[];
  /** Masked count at the start of step k (N at k = 0). */
  maskedBefore: number[];
  /** Visible tokens V_k = N - maskedBefore[k] at the start of step k. */
  visible: number[];
  /** Tokens predicted at step k; sums to N. */
  predicted: number[];
}

/**
 * Mnext = floor(N·cos(π/2·(k+1)/T)) in float64, clamped to [1, Mcnt−1] so each step reveals at
 * least one token and one stays masked for the next; the last step predicts all that remain.
 * T is limited to N: more steps than tokens would leave steps that predict nothing.
 */
export function maskSchedule(n: number, steps: number): MaskSchedule {
  if (!Number.isInteger(n) || n < 1) {
    throw new AppError('BAD_USER_INPUT', `The number of image tokens must be a positive integer, got ${n}.`);
  }
  if (!Number.isInteger(steps) || steps < 1 || steps > n) {
    throw new AppError(
      'BAD_USER_INPUT',
      `steps must be an integer between 1 and ${n} (the number of image tokens at this size), got ${steps}.`,
    );
  }
  const maskedAfter: number[] = [];
  const maskedBefore: number[] = [];
  const visible: number[] = [];
  const predicted: number[] = [];
  let mcnt = n;
  for (let k = 0; k < steps; k++) {
    maskedBefore.push(mcnt);
    visible.push(n - mcnt);
    const raw = Math.floor(n * Math.cos((Math.PI / 2) * ((k + 1) / steps)));
    const next = Math.max(1, Math.min(mcnt - 1, raw));
    maskedAfter.push(next);
    predicted.push(k === steps - 1 ? mcnt : mcnt - next);
    mcnt = next;
  }
  return { n, steps, maskedAfter, maskedBefore, visible, predicted };
}

export type CfgScheduleKind = 'constant' | 'linear';

/**
 * Guidance scale per step. `linear` (Muse-style) ramps with the fraction of tokens that will be
 * known after the step, using the clamped Mnext, so the last scale is 1 + (cfg−1)(N−1)/N.
 */
export function cfgScales(kind: CfgScheduleKind, cfg: number, schedule: MaskSchedule): number[] {
  if (!Number.isFinite(cfg)) throw new AppError('BAD_USER_INPUT', `cfg must be a finite number, got ${cfg}.`);
  if (kind === 'constant') return schedule.maskedAfter.map(() => cfg);
  if (kind === 'linear') {
    return schedule.maskedAfter.map((m) => 1 + ((cfg - 1) * (schedule.n - m)) / schedule.n);
  }
  throw new AppError(
    'BAD_USER_INPUT',
    `cfgSchedule must be "constant" or "linear", got ${JSON.stringify(kind)}.`,
  );
}
