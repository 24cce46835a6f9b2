import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HARMON_0_5B, HARMON_1_5B, HARMON_TINY } from '../../../src/model/config.ts';
import { expectedHarmonTensors, expectedVaeTensors, type Shape } from '../../../src/onnx/harmon-keys.ts';
import { numelOf } from '../../../src/onnx/weights/dtype.ts';
import { randomHarmonWeights } from '../../../src/onnx/weights/random.ts';
import { MemoryWeights } from '../../../src/onnx/weights/types.ts';
import { validateWeights } from '../../../src/onnx/weights/validate.ts';
import { AppError } from '../../../src/shared/errors.ts';

/** Parameter count of the keys matching `re` (lm_head excluded: it is the tied embedding). */
function params(m: Map<string, Shape>, re: RegExp): number {
  let n = 0;
  for (const [k, s] of m) if (re.test(k) && k !== 'llm.lm_head.weight') n += numelOf(s);
  return n;
}

function near(actual: number, expected: number, rel: number, what: string) {
  assert.ok(
    Math.abs(actual - expected) <= expected * rel,
    `${what}: ${(actual / 1e6).toFixed(2)} M vs ≈ ${expected / 1e6} M`,
  );
}

test('0.5B expected keys: counts per module and shapes from the spec tables', () => {
  const m = expectedHarmonTensors(HARMON_0_5B, { includeVae: true });
  const count = (re: RegExp) => [...m.keys()].filter((k) => re.test(k)).length;
  assert.equal(count(/^llm\.model\.layers\./), 24 * 12);
  assert.equal(count(/^llm\./), 24 * 12 + 3); // + embed, final norm, (optional) lm_head
  assert.equal(count(/^mar\.(?!diffloss)/), 304);
  assert.equal(count(/^mar\.diffloss\.net\./), 4 + 2 + 2 + 6 * 8 + 4);
  assert.equal(count(/^proj_(in|out)\./), 8);
  assert.equal(count(/^vae\./), 312);
  assert.deepEqual(m.get('llm.model.layers.3.self_attn.k_proj.weight'), [128, 896]);
  assert.deepEqual(m.get('llm.model.layers.3.self_attn.o_proj.weight'), [896, 896]);
  assert.equal(m.has('llm.model.layers.3.self_attn.o_proj.bias'), false);
  assert.deepEqual(m.get('mar.encoder_blocks.11.attn.qkv.weight'), [2304, 768]);
  assert.deepEqual(m.get('mar.encoder_pos_embed_learned'), [1, 320, 768]);
  assert.deepEqual(m.get('mar.diffusion_pos_embed_learned'), [1, 256, 768]);
  assert.deepEqual(m.get('mar.mask_token'), [1, 1, 768]);
  assert.deepEqual(m.get('mar.diffloss.net.res_blocks.5.adaLN_modulation.1.weight'), [3072, 1024]);
  assert.deepEqual(m.get('mar.diffloss.net.final_layer.linear.weight'), [32, 1024]);
  assert.deepEqual(m.get('mar.diffloss.net.time_embed.mlp.0.weight'), [1024, 256]);
  assert.deepEqual(m.get('proj_in.0.weight'), [896, 768]);
  assert.deepEqual(m.get('proj_out.2.weight'), [768, 896]);
  assert.deepEqual(m.get('vae.encoder.conv_out.weight'), [32, 512, 3, 3]);
  assert.deepEqual(m.get('vae.decoder.conv_in.weight'), [512, 16, 3, 3]);
  assert.deepEqual(m.get('vae.decoder.conv_out.weight'), [3, 128, 3, 3]);
  assert.deepEqual(m.get('vae.quant_conv.weight'), [32, 32, 1, 1]);
  assert.deepEqual(m.get('vae.post_quant_conv.weight'), [16, 16, 1, 1]);
  assert.deepEqual(m.get('vae.encoder.down.2.block.0.nin_shortcut.weight'), [256, 128, 1, 1]);
  assert.deepEqual(m.get('vae.decoder.up.3.block.0.nin_shortcut.weight'), [256, 512, 1, 1]);
});

test('VAE structure: attention, shortcuts, down/upsample exactly where §1.7 puts them', () => {
  const m = expectedVaeTensors(HARMON_0_5B.vae);
  const has = (k: string) => m.has(k);
  for (const l of [0, 1, 3]) assert.equal(has(`encoder.down.${l}.block.0.nin_shortcut.weight`), false);
  assert.ok(has('encoder.down.4.block.0.nin_shortcut.weight'));
  assert.ok(has('encoder.down.4.attn.0.q.weight') && has('encoder.down.4.attn.1.proj_out.bias'));
  assert.equal(has('encoder.down.3.attn.0.q.weight'), false);
  assert.equal(has('encoder.down.4.downsample.conv.weight'), false);
  for (const l of [0, 1, 2, 3]) assert.ok(has(`encoder.down.${l}.downsample.conv.weight`));
  for (const l of [0, 1, 2, 3, 4]) assert.ok(has(`decoder.up.${l}.block.2.conv2.weight`));
  assert.equal(has('decoder.up.0.upsample.conv.weight'), false);
  for (const l of [1, 2, 3, 4]) assert.ok(has(`decoder.up.${l}.upsample.conv.weight`));
  assert.equal(
    [...m.keys()].some((k) => k.startsWith('decoder.up.') && k.includes('.attn.')),
    false,
  );
  assert.deepEqual([...m.keys()].filter((k) => k.includes('nin_shortcut.weight')).sort(), [
    'decoder.up.1.block.0.nin_shortcut.weight',
    'decoder.up.3.block.0.nin_shortcut.weight',
    'encoder.down.2.block.0.nin_shortcut.weight',
    'encoder.down.4.block.0.nin_shortcut.weight',
  ]);
  // tiny VAE: one block per encoder level (so one attn), two per decoder level
  const t = expectedVaeTensors(HARMON_TINY.vae, 'vae.');
  assert.ok(t.has('vae.encoder.down.4.attn.0.q.weight'));
  assert.equal(t.has('vae.encoder.down.4.attn.1.q.weight'), false);
  assert.ok(t.has('vae.decoder.up.0.block.1.conv1.weight'));
  assert.equal(t.has('vae.decoder.up.0.block.2.conv1.weight'), false);
  assert.deepEqual(t.get('vae.decoder.mid.attn_1.q.weight'), [128, 128, 1, 1]);
});

test('parameter counts from the expected shapes match §1.2 (0.5B and 1.5B)', () => {
  const m = expectedHarmonTensors(HARMON_0_5B, { includeVae: true });
  near(params(m, /^llm\./), 494e6, 0.02, 'LLM 0.5B');
  near(params(m, /^llm\.model\.embed_tokens/), 136e6, 0.02, 'embedding 0.5B');
  near(params(m, /^mar\.(encoder_|z_proj|fake_latent)/), 85e6, 0.03, 'MAR enc');
  near(params(m, /^mar\.(decoder_|mask_token|diffusion_pos)/), 86e6, 0.03, 'MAR dec');
  near(params(m, /^mar\.diffloss\./), 36e6, 0.03, 'diffusion MLP');
  near(params(m, /^proj_/), 3e6, 0.05, 'projectors');
  near(params(m, /^vae\.(encoder|quant_conv)/), 28.3e6, 0.03, 'VAE encoder');
  near(params(m, /^vae\./), 66.5e6, 0.03, 'VAE');
  const b = expectedHarmonTensors(HARMON_1_5B);
  near(params(b, /^llm\./), 1544e6, 0.02, 'LLM 1.5B');
  near(params(b, /^mar\.(encoder_|z_proj|fake_latent)/), 394e6, 0.03, 'MAR-H enc');
  near(params(b, /^mar\.diffloss\./), 151e6, 0.03, 'diffusion MLP 1.5B');
  near(params(b, /^proj_/), 8.7e6, 0.05, 'projectors 1.5B');
  assert.equal(
    [...b.keys()].some((k) => k.startsWith('vae.')),
    false,
  );
});

test('validateWeights reports missing, mis-shaped and unexpected tensors in one error', () => {
  const expected = expectedHarmonTensors(HARMON_TINY);
  const w = randomHarmonWeights(HARMON_TINY, 1, { includeVae: false });
  assert.doesNotThrow(() => validateWeights(w, expected)); // lm_head absent: optional
  const broken = new MemoryWeights();
  for (const n of w.names()) {
    if (n === 'mar.z_proj_ln.bias') continue; // missing
    const e = w.get(n);
    if (!e) continue;
    if (n === 'mar.diffloss.net.input_proj.weight')
      broken.set(n, [e.shape[1], e.shape[0]], e.read()); // mis-shaped
    else broken.set(n, e.shape, e.read());
  }
  broken.set('mar.extra_head.weight', [2], new Float32Array(2)); // unexpected
  broken.set('llm.model.layers.0.self_attn.rotary_emb.inv_freq', [8], new Float32Array(8)); // ignored
  broken.set('mar.class_emb.weight', [1000, 64], new Float32Array(64000)); // optional
  let err: unknown;
  try {
    validateWeights(broken, expected, { label: 'harmon_tiny.pth' });
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof AppError);
  assert.equal(err.code, 'WEIGHTS_INVALID');
  assert.match(err.message, /^harmon_tiny\.pth: /);
  assert.match(err.message, /missing \(1\): mar\.z_proj_ln\.bias/);
  assert.match(
    err.message,
    /mis-shaped \(1\): mar\.diffloss\.net\.input_proj\.weight \(expected \[64, 16\], got \[16, 64\]\)/,
  );
  assert.match(err.message, /unexpected \(1\): mar\.extra_head\.weight/);
  assert.doesNotMatch(err.message, /inv_freq|class_emb/);
  assert.deepEqual(err.details?.missing, ['mar.z_proj_ln.bias']);
  assert.deepEqual(err.details?.misshaped, [
    { name: 'mar.diffloss.net.input_proj.weight', expected: [64, 16], actual: [16, 64] },
  ]);
  assert.deepEqual(err.details?.unexpected, ['mar.extra_head.weight']);
});

test('a mis-shaped tensor names expected and actual shapes; an untied lm_head is reported', () => {
  const expected = expectedHarmonTensors(HARMON_TINY);
  const w = randomHarmonWeights(HARMON_TINY, 2, { includeVae: false, includeLmHead: true });
  assert.doesNotThrow(() => validateWeights(w, expected)); // present and equal to the embedding
  const emb = w.get('llm.model.embed_tokens.weight')?.read() ?? new Float32Array();
  const head = emb.slice();
  head[5] += 1;
  w.set('llm.lm_head.weight', [HARMON_TINY.llm.vocab, 64], head);
  w.set('mar.z_proj.weight', [16, 64], new Float32Array(1024));
  assert.throws(
    () => validateWeights(w, expected),
    (e: AppError) => {
      assert.match(e.message, /mar\.z_proj\.weight \(expected \[64, 16\], got \[16, 64\]\)/);
      assert.match(e.message, /not equal to llm\.model\.embed_tokens\.weight/);
      assert.deepEqual(e.details?.untied, ['llm.lm_head.weight']);
      return true;
    },
  );
});

test('random tiny weights: every expected tensor, deterministic per seed, fast, sensible scales', () => {
  const t0 = performance.now();
  const a = randomHarmonWeights(HARMON_TINY, 7);
  const ms = performance.now() - t0;
  assert.ok(ms < 3000, `took ${ms} ms`);
  const expected = expectedHarmonTensors(HARMON_TINY, { includeVae: true });
  assert.doesNotThrow(() => validateWeights(a, expected));
  assert.equal(a.names().length, expected.size - 1); // all but the tied lm_head
  const b = randomHarmonWeights(HARMON_TINY, 7, { includeVae: false });
  const c = randomHarmonWeights(HARMON_TINY, 8, { includeVae: false });
  const name = 'llm.model.layers.1.mlp.up_proj.weight';
  assert.deepEqual(a.get(name)?.read(), b.get(name)?.read()); // same seed, VAE on or off
  assert.notDeepEqual(a.get(name)?.read(), c.get(name)?.read());
  const stats = (n: string) => {
    const x = a.get(n)?.read() ?? new Float32Array();
    const mean = x.reduce((s, v) => s + v, 0) / x.length;
    const std = Math.sqrt(x.reduce((s, v) => s + (v - mean) ** 2, 0) / x.length);
    return { mean, std };
  };
  const emb = stats('llm.model.embed_tokens.weight');
  assert.ok(Math.abs(emb.mean) < 1e-3 && Math.abs(emb.std - 0.02) < 1e-3, JSON.stringify(emb));
  const ln = stats('llm.model.norm.weight');
  assert.ok(Math.abs(ln.mean - 1) < 0.03 && ln.std > 0.005, JSON.stringify(ln));
  const q = stats('llm.model.layers.0.self_attn.q_proj.weight'); // U(±1/8): std 1/(8√3)
  assert.ok(Math.abs(q.std - 1 / (8 * Math.sqrt(3))) < 0.01, JSON.stringify(q));
  const bias = stats('mar.encoder_blocks.0.attn.qkv.bias');
  assert.ok(bias.std > 0 && bias.std < 0.02, JSON.stringify(bias));
});
