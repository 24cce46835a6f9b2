/**
 * Identity of the random-weight demo model (the tiny config, fixed seed) that a deployment serves
 * when no model directory is configured. The builder (src/onnx/demo-model.ts) and the API's model
 * list (src/api/models.ts) both read it here, so the id the API advertises is the one the worker's
 * engine answers to.
 */
import { HARMON_TINY } from './config.ts';

/** Manifest id of a random-weight model: what `harmon tiny` / `harmon random` write. */
export function randomModelId(variant: string, seed: number): string {
  return `harmon-${variant}-demo-seed${seed}`;
}

/** Weight seed of the demo model; fixed so every install has the same demo. */
export const DEMO_SEED = 0;
export const DEMO_CONFIG = HARMON_TINY;
export const DEMO_MODEL_ID = randomModelId(DEMO_CONFIG.variant, DEMO_SEED);
