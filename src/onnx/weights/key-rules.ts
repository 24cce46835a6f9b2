/** Which checkpoint keys may be absent and which may be present without being used (§1.3, §1.8). */
/** Keys that may be absent: the tied LM head (HF drops it) and MAR's unused class embedding. */
export const OPTIONAL_HARMON_KEYS: ReadonlySet<string> = new Set([
  'llm.lm_head.weight',
  'mar.class_emb.weight',
]);

/**
 * Keys tolerated in a checkpoint although no graph uses them: RoPE caches older savers wrote
 * (recomputed from theta), optimizer state, and the VAE training loss (LPIPS, discriminator)
 * that LDM checkpoints keep next to the autoencoder.
 */
export function isIgnoredKey(name: string): boolean {
  return (
    name.endsWith('.rotary_emb.inv_freq') ||
    name === 'mar.class_emb.weight' ||
    /^(vae\.)?loss\./.test(name) ||
    /^(optimizer|optimizer_states|lr_scheduler|lr_schedulers)\./.test(name)
  );
}
