/**
 * describe on the tiny model, in process: text and token streaming, maxTokens and stop tokens,
 * the repetition penalty and sampler helpers, and coded errors for hostile image bytes.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { deflateSync } from 'node:zlib';
import sharp from 'sharp';
import {
  applyRepetitionPenalty,
  argmax,
  describe,
  STOP_TOKENS,
  sampleToken,
} from '../../src/harmon/describe.ts';
import type { PipelineEvent } from '../../src/harmon/events.ts';
import { Rng } from '../../src/harmon/prng.ts';
import { ENDOFTEXT, IM_END } from '../../src/model/tokens.ts';
import { useTinyModel } from './tiny-model-fixture.ts';

const tiny = useTinyModel();
let png: Uint8Array;

before(async () => {
  // A 96×64 gradient: non-square, so expand-to-square padding is exercised.
  const raw = Buffer.alloc(96 * 64 * 3);
  for (let i = 0; i < 96 * 64; i++) raw.set([i % 256, (i * 7) % 256, (i * 13) % 256], i * 3);
  png = new Uint8Array(
    await sharp(raw, { raw: { width: 96, height: 64, channels: 3 } })
      .png()
      .toBuffer(),
  );
});

test('describe returns text, streams token deltas that add up to it, and stops at maxTokens', async () => {
  const events: PipelineEvent[] = [];
  const r = await describe(tiny.model, png, { maxTokens: 16, size: 64 }, { onEvent: (e) => events.push(e) });
  const tokens = events.filter((e) => e.type === 'token');
  assert.ok(r.tokenCount >= 1 && r.tokenCount <= 16);
  assert.equal(r.tokenIds.length, r.tokenCount);
  if (r.stopReason === 'max_tokens') assert.equal(r.tokenCount, 16);
  else assert.ok(STOP_TOKENS.has(r.tokenIds.at(-1)!));
  assert.equal(tokens.map((e) => (e.type === 'token' ? e.text : '')).join(''), r.text);
  assert.ok(r.text.length > 0, 'random weights still produce some text');
  assert.deepEqual(
    events.filter((e) => e.type === 'stage').map((e) => e.type === 'stage' && e.stage),
    ['decode_image', 'vae_encode', 'prefill', 'decode'],
  );
  // Greedy decoding is deterministic.
  const again = await describe(tiny.model, png, { maxTokens: 16, size: 64 });
  assert.deepEqual(again.tokenIds, r.tokenIds);
  assert.equal(r.meta.demo, true);
  // vae_encoder, then one lm run per token: the prefill (MAR encoding included) and each decode.
  assert.deepEqual(r.meta.sessions.runsByGraph, { vae_encoder: 1, lm: r.tokenCount });
});

test('a stop token ends the run and is not part of the text', async () => {
  const first = await describe(tiny.model, png, { maxTokens: 1, size: 64 });
  assert.equal(first.tokenCount, 1);
  assert.equal(first.stopReason, 'max_tokens');
  const stopped = await describe(
    tiny.model,
    png,
    { maxTokens: 16, size: 64 },
    { stopTokens: new Set([first.tokenIds[0]]) },
  );
  assert.equal(stopped.tokenCount, 1);
  assert.equal(stopped.stopReason, 'stop_token');
  assert.equal(stopped.text, '');
  assert.ok(STOP_TOKENS.has(IM_END) && STOP_TOKENS.has(ENDOFTEXT));
});

test('sampling with a seed is reproducible and differs from greedy', async () => {
  const opts = { maxTokens: 8, size: 64, temperature: 1.5, topP: 0.95, seed: 4 };
  const a = await describe(tiny.model, png, opts);
  const b = await describe(tiny.model, png, opts);
  const greedy = await describe(tiny.model, png, { maxTokens: 8, size: 64 });
  assert.deepEqual(a.tokenIds, b.tokenIds);
  assert.notDeepEqual(a.tokenIds, greedy.tokenIds);
});

test('repetition penalty divides positive and multiplies negative logits of generated ids once', () => {
  const logits = Float32Array.of(2, -2, 5, 1);
  applyRepetitionPenalty(logits, [0, 1, 0], 1.1);
  assert.ok(Math.abs(logits[0] - 2 / 1.1) < 1e-6);
  assert.ok(Math.abs(logits[1] - -2.2) < 1e-6);
  assert.equal(logits[2], 5);
  assert.equal(argmax(logits), 2);
  // top-p 0 keeps only the most likely token.
  const rng = Rng.fromSeed(1);
  for (let i = 0; i < 20; i++) assert.equal(sampleToken(Float32Array.of(0, 3, 1), 1, 1e-9, rng), 1);
});

/** PNG CRC-32 (zlib polynomial) for hand-made chunks. */
function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const out = Buffer.alloc(body.length + 8);
  out.writeUInt32BE(data.length, 0);
  body.copy(out, 4);
  out.writeUInt32BE(crc32(body), body.length + 4);
  return out;
}

/** A decompression bomb: a well-formed PNG whose IHDR declares w×h with a few bytes of pixel data. */
function bombPng(w: number, h: number): Uint8Array {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB, no interlace
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(Buffer.alloc(64))),
    chunk('IEND', new Uint8Array(0)),
  ]);
}

test('hostile or broken images give IMAGE_INVALID; bad options BAD_USER_INPUT', async () => {
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ['non-image bytes', new TextEncoder().encode('hello, this is not an image at all'), /not a PNG/],
    ['truncated PNG', png.subarray(0, Math.floor(png.length / 2)), /truncated|corrupt/],
    ['20000×20000 header', bombPng(20000, 20000), /too large|limit/],
  ];
  for (const [what, bytes, msg] of cases) {
    await assert.rejects(
      describe(tiny.model, bytes, { maxTokens: 4, size: 64 }),
      (e: Error & { code?: string }) => {
        assert.equal(e.code, 'IMAGE_INVALID', `${what}: ${e.message}`);
        assert.match(e.message, msg, what);
        return true;
      },
    );
  }
  for (const input of [{ size: 17 }, { size: 512 }, { maxTokens: 0 }, { prompt: ' ' }, { topP: 0 }]) {
    await assert.rejects(describe(tiny.model, png, input), { code: 'BAD_USER_INPUT' }, JSON.stringify(input));
  }
});

test('cancel before decoding stops with CANCELED', async () => {
  const ac = new AbortController();
  await assert.rejects(
    describe(
      tiny.model,
      png,
      { maxTokens: 64, size: 64 },
      {
        signal: ac.signal,
        onEvent: (e) => {
          if (e.type === 'token' && e.index === 2) ac.abort();
        },
      },
    ),
    { code: 'CANCELED' },
  );
});
