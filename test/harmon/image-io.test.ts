import assert from 'node:assert/strict';
import { test } from 'node:test';
import { crc32 } from 'node:zlib';
import sharp from 'sharp';
import {
  decodeImage,
  encodeImage,
  expandToSquare,
  preprocessForDescribe,
  type RgbImage,
  sniffFormat,
  tensorToRgb,
} from '../../src/harmon/image-io.ts';
import { Rng } from '../../src/harmon/prng.ts';
import { AppError } from '../../src/shared/errors.ts';

const isImageInvalid = (e: unknown) => e instanceof AppError && e.code === 'IMAGE_INVALID';

function randomRgb(width: number, height: number, seed: number): RgbImage {
  const r = Rng.fromSeed(seed);
  const data = new Uint8Array(width * height * 3).map(() => r.below(256));
  return { width, height, data };
}

function pngChunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

/** A 60-byte PNG whose IHDR declares 20000×20000 RGB: 1.2 GB if anyone decoded it. */
function bombPng(): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(20000, 0);
  ihdr.writeUInt32BE(20000, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type RGB
  const idat = Buffer.from([0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]); // empty zlib stream
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', idat),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

test('magic-byte sniffing', () => {
  assert.equal(sniffFormat(bombPng()), 'png');
  assert.equal(sniffFormat(Buffer.from([0xff, 0xd8, 0xff, 0xe0])), 'jpeg');
  assert.equal(sniffFormat(Buffer.from('RIFF\0\0\0\0WEBPVP8 ', 'latin1')), 'webp');
  assert.equal(sniffFormat(Buffer.from('GIF89a')), 'gif');
  assert.equal(sniffFormat(Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>')), null);
  assert.equal(sniffFormat(new Uint8Array(0)), null);
});

test('decompression bomb header is refused before decoding', async () => {
  const before = process.memoryUsage().rss;
  const t0 = performance.now();
  await assert.rejects(
    decodeImage(bombPng()),
    (e: unknown) => isImageInvalid(e) && /too large|20000/.test((e as Error).message),
  );
  assert.ok(performance.now() - t0 < 2000);
  assert.ok(process.memoryUsage().rss - before < 300e6, 'no 1.2 GB pixel buffer was allocated');
});

test('side limit applies even when the pixel count is within limits', async () => {
  const wide = await encodeImage(randomRgb(300, 2, 1), 'png');
  await assert.rejects(
    decodeImage(wide, { maxSide: 256, maxPixels: 1e6 }),
    (e: unknown) => isImageInvalid(e) && /300×2/.test((e as Error).message),
  );
});

test('truncated, random and non-image bytes are coded errors', async () => {
  const png = await encodeImage(randomRgb(64, 64, 2), 'png');
  await assert.rejects(decodeImage(png.subarray(0, png.length - 100)), isImageInvalid);
  await assert.rejects(decodeImage(png.subarray(0, 20)), isImageInvalid); // header cut mid-IHDR
  const r = Rng.fromSeed(9);
  await assert.rejects(decodeImage(new Uint8Array(4096).map(() => r.below(256))), isImageInvalid);
  await assert.rejects(decodeImage(Buffer.from('hello, not an image')), isImageInvalid);
  await assert.rejects(
    decodeImage(Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>')),
    isImageInvalid,
  );
  // PNG signature followed by garbage.
  const fake = Buffer.concat([png.subarray(0, 8), Buffer.alloc(200, 7)]);
  await assert.rejects(decodeImage(fake), isImageInvalid);
});

test('PNG and lossless WebP round trips are exact; GIF/JPEG decode to RGB', async () => {
  const img = randomRgb(37, 23, 3);
  for (const fmt of ['png', 'webp'] as const) {
    const back = await decodeImage(await encodeImage(img, fmt));
    assert.equal(back.width, 37);
    assert.equal(back.height, 23);
    assert.deepEqual(back.data, img.data);
  }
  const raw = { raw: { width: 37, height: 23, channels: 3 as const } };
  const jpeg = await decodeImage(await sharp(img.data, raw).jpeg().toBuffer());
  assert.equal(jpeg.data.length, 37 * 23 * 3);
  const gif = await decodeImage(await sharp(img.data, raw).gif().toBuffer());
  assert.equal(gif.data.length, 37 * 23 * 3);
  const lossy = await encodeImage(img, 'webp', { lossless: false, quality: 50 });
  assert.equal(sniffFormat(lossy), 'webp');
});

test('grey and RGBA inputs become RGB; alpha is dropped, not composited', async () => {
  const grey = await sharp(Buffer.alloc(16, 100), { raw: { width: 4, height: 4, channels: 1 } })
    .png()
    .toBuffer();
  assert.deepEqual([...(await decodeImage(grey)).data.subarray(0, 6)], [100, 100, 100, 100, 100, 100]);
  const rgba = Buffer.alloc(4 * 4 * 4);
  for (let i = 0; i < 16; i++) rgba.set([10, 20, 30, 0], i * 4); // fully transparent
  const out = await decodeImage(
    await sharp(rgba, { raw: { width: 4, height: 4, channels: 4 } })
      .png()
      .toBuffer(),
  );
  assert.deepEqual([...out.data.subarray(0, 3)], [10, 20, 30]);
});

test('EXIF orientation is not applied', async () => {
  const img = randomRgb(8, 4, 4);
  const rotated = await sharp(img.data, { raw: { width: 8, height: 4, channels: 3 } })
    .withMetadata({ orientation: 6 })
    .jpeg({ quality: 100 })
    .toBuffer();
  assert.equal((await sharp(rotated).metadata()).orientation, 6); // the tag is really there
  const out = await decodeImage(rotated);
  assert.equal(out.width, 8);
  assert.equal(out.height, 4);
});

test('expandToSquare pads with 127 at floor offsets', () => {
  const red = {
    width: 5,
    height: 2,
    data: new Uint8Array(5 * 2 * 3).fill(0).map((_, i) => (i % 3 === 0 ? 255 : 0)),
  };
  const sq = expandToSquare(red);
  assert.equal(sq.width, 5);
  assert.equal(sq.height, 5);
  const px = (x: number, y: number) => [...sq.data.subarray((y * 5 + x) * 3, (y * 5 + x) * 3 + 3)];
  // floor((5 - 2) / 2) = 1: rows 1..2 hold the image, rows 0, 3, 4 are grey.
  for (let x = 0; x < 5; x++) {
    assert.deepEqual(px(x, 0), [127, 127, 127]);
    assert.deepEqual(px(x, 1), [255, 0, 0]);
    assert.deepEqual(px(x, 2), [255, 0, 0]);
    assert.deepEqual(px(x, 3), [127, 127, 127]);
    assert.deepEqual(px(x, 4), [127, 127, 127]);
  }
  const tall = expandToSquare({ width: 1, height: 4, data: new Uint8Array(12).fill(9) });
  // floor((4 - 1) / 2) = 1: column 1 holds the image.
  for (let y = 0; y < 4; y++) {
    assert.deepEqual([...tall.data.subarray(y * 4 * 3, y * 4 * 3 + 3)], [127, 127, 127]);
    assert.deepEqual([...tall.data.subarray((y * 4 + 1) * 3, (y * 4 + 1) * 3 + 3)], [9, 9, 9]);
    assert.deepEqual([...tall.data.subarray((y * 4 + 2) * 3, (y * 4 + 2) * 3 + 3)], [127, 127, 127]);
  }
});

test('describe preprocessing: NCHW in [-1, 1], padding colour and placement', async () => {
  // 64×32 white image -> 64×64 canvas, white rows 16..47 -> 32×32 after resize: white rows 8..23.
  const white = { width: 64, height: 32, data: new Uint8Array(64 * 32 * 3).fill(255) };
  const x = await preprocessForDescribe(white, 32);
  assert.equal(x.length, 3 * 32 * 32);
  const pad = 2 * (127 / 255) - 1;
  assert.ok(Math.abs(pad - -0.00392) < 1e-5);
  for (let c = 0; c < 3; c++) {
    const at = (y: number, xx: number) => x[c * 1024 + y * 32 + xx];
    assert.ok(Math.abs(at(0, 5) - pad) < 1e-6, `top padding ${at(0, 5)}`);
    assert.ok(Math.abs(at(31, 5) - pad) < 1e-6, 'bottom padding');
    assert.ok(Math.abs(at(16, 5) - 1) < 1e-6, 'image centre is white');
    assert.ok(Math.abs(at(5, 16) - pad) < 1e-6);
    assert.ok(at(8, 0) > 0.5 && at(23, 31) > 0.5, 'image rows start at 8 and end at 23');
  }
  // Already the right size: no resize, exact normalisation and channel planes.
  const img = randomRgb(16, 16, 5);
  const y = await preprocessForDescribe(img, 16);
  for (const i of [0, 17, 255]) {
    for (let c = 0; c < 3; c++)
      assert.equal(y[c * 256 + i], Math.fround(2 * (img.data[i * 3 + c] / 255) - 1));
  }
  await assert.rejects(
    preprocessForDescribe(img, 20),
    (e: unknown) => e instanceof AppError && e.code === 'BAD_USER_INPUT',
  );
});

test('uint8 conversion edge cases: floor(clamp(127.5x + 128, 0, 255))', () => {
  // [1, 3, 1, 6]: values chosen around the rounding and clamping edges.
  const vals = [-1, 1, 0, -2, 2, Number.NaN];
  const x = new Float32Array(18);
  for (let c = 0; c < 3; c++) x.set(vals, c * 6);
  const out = tensorToRgb(x, 1, 6);
  const red = [0, 1, 2, 3, 4, 5].map((i) => out.data[i * 3]);
  // -1 -> 0.5 -> 0; 1 -> 255.5 -> 255; 0 -> 128; clamps; NaN -> 0
  assert.deepEqual(red, [0, 255, 128, 0, 255, 0]);
  // Truncation of 127.5x + 128 = round half up of 127.5x + 127.5 (binary-exact inputs):
  // -0.5 -> 64.25 -> 64; 0.5 -> 191.75 -> 191; 2^-8 -> 128.498 -> 128; -2^-8 -> 127.50195 -> 127
  const t = tensorToRgb(new Float32Array([-0.5, 0.5, 2 ** -8, -(2 ** -8), 0, 0, 0, 0, 0, 0, 0, 0]), 1, 4);
  assert.deepEqual(
    [0, 1, 2, 3].map((i) => t.data[i * 3]),
    [64, 191, 128, 127],
  );
});

test('tensorToRgb picks the right image and layout from a batch', () => {
  // [2, 3, 1, 2]: image 1, channel c, pixel p = (c * 10 + p) / 127.5 -> byte 128 + c*10 + p
  const x = new Float32Array(12);
  for (let c = 0; c < 3; c++) for (let p = 0; p < 2; p++) x[6 + c * 2 + p] = (c * 10 + p) / 127.5;
  const img = tensorToRgb(x, 1, 2, 1);
  assert.deepEqual([...img.data], [128, 138, 148, 129, 139, 149]);
  assert.throws(() => tensorToRgb(x, 1, 2, 2), AppError);
});
