/**
 * Image I/O at the edges of the Harmon pipeline, on sharp (libvips):
 *  (a) safe decoding of untrusted bytes (describe input),
 *  (b) describe preprocessing: expand-to-square, resize, normalise (spec §4.1),
 *  (c) float pixels → 8-bit RGB (spec §2.9, §5.1 item 16),
 *  (d) PNG / WebP encoding.
 *
 * Decoding matches PIL `Image.open(...).convert('RGB')` in the ways that matter: EXIF orientation
 * is NOT applied (sharp only rotates when asked), alpha is dropped without compositing, grey and
 * palette images are expanded to RGB, 16-bit samples are reduced to 8 bits. Animated GIF/WebP:
 * the first frame only.
 */
import sharp from 'sharp';
import { AppError } from '../shared/errors.ts';
import { sniffImageFormat } from '../shared/images.ts';

// The sniff is shared with the API's pre-checks (one rule for which formats are accepted).
export { type ImageFormat, sniffImageFormat as sniffFormat } from '../shared/images.ts';

export interface ImageLimits {
  /** Largest accepted width or height. */
  maxSide: number;
  /** Largest accepted width × height. */
  maxPixels: number;
}

export const DEFAULT_IMAGE_LIMITS: ImageLimits = { maxSide: 4096, maxPixels: 4096 * 4096 };

/** 8-bit RGB pixels, HWC row-major. */
export interface RgbImage {
  width: number;
  height: number;
  /** length width·height·3 */
  data: Uint8Array;
}

function invalid(message: string, cause?: unknown, details?: Record<string, unknown>): AppError {
  return new AppError('IMAGE_INVALID', message, { cause, details });
}

/**
 * Decodes untrusted bytes to RGB. The header is read first and the size checked before any
 * pixel buffer exists, so a decompression bomb (a tiny file declaring 20000×20000) is refused
 * without allocating; `limitInputPixels` is passed to every sharp call as a second guard.
 */
export async function decodeImage(
  bytes: Uint8Array,
  limits: ImageLimits = DEFAULT_IMAGE_LIMITS,
): Promise<RgbImage> {
  const format = sniffImageFormat(bytes);
  if (!format) {
    throw invalid('The file is not a PNG, JPEG, WebP or GIF image.');
  }
  const input = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const options = { limitInputPixels: limits.maxPixels, failOn: 'error' as const, pages: 1 };
  let meta: Awaited<ReturnType<ReturnType<typeof sharp>['metadata']>>;
  try {
    meta = await sharp(input, options).metadata(); // header only
  } catch (e) {
    if (/pixel limit/i.test(String((e as Error)?.message))) {
      throw invalid(
        `The image is too large: its header declares more than ${limits.maxPixels.toLocaleString('en-US')} pixels.`,
        e,
      );
    }
    throw invalid(`The ${format.toUpperCase()} image header could not be read; the file is corrupt.`, e);
  }
  const { width, height } = meta;
  if (!width || !height) throw invalid(`The ${format.toUpperCase()} image has no readable dimensions.`);
  if (meta.format !== format) {
    throw invalid(`The file starts like ${format.toUpperCase()} but decodes as ${meta.format ?? 'unknown'}.`);
  }
  if (width > limits.maxSide || height > limits.maxSide || width * height > limits.maxPixels) {
    throw invalid(
      `The image is ${width}×${height}; the limit is ${limits.maxSide} pixels per side and ${limits.maxPixels.toLocaleString('en-US')} pixels in total.`,
      undefined,
      { width, height },
    );
  }
  try {
    const { data, info } = await sharp(input, options)
      .toColourspace('srgb')
      .removeAlpha()
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.width !== width || info.height !== height || info.channels !== 3) {
      throw new Error(`decoder returned ${info.width}×${info.height}×${info.channels}`);
    }
    return { width, height, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
  } catch (e) {
    throw invalid(
      `The ${format.toUpperCase()} image could not be decoded; the file is truncated or corrupt.`,
      e,
    );
  }
}

/** Grey value of the square padding, as the reference (127, not 128; spec §5.1 item 17). */
export const PAD_GREY = 127;

/**
 * PIL-style `expand2square`: the longer side is kept and the image pasted centred with floor
 * offsets on a (127,127,127) canvas.
 */
export function expandToSquare(img: RgbImage, fill = PAD_GREY): RgbImage {
  const { width: w, height: h } = img;
  if (w === h) return img;
  const side = Math.max(w, h);
  const out = new Uint8Array(side * side * 3).fill(fill);
  const x0 = w < side ? Math.floor((side - w) / 2) : 0;
  const y0 = h < side ? Math.floor((side - h) / 2) : 0;
  for (let y = 0; y < h; y++) {
    out.set(img.data.subarray(y * w * 3, (y + 1) * w * 3), ((y0 + y) * side + x0) * 3);
  }
  return { width: side, height: side, data: out };
}

/**
 * Describe preprocessing → `[1, 3, S, S]` in [−1, 1]: expand2square, resize to S×S, x = 2·p/255 − 1.
 * Resize uses libvips' cubic kernel (Catmull-Rom, a = −0.5, widened when shrinking), which
 * approximates PIL's antialiased BICUBIC but is not bit-exact (PIL rounds to 8 bits after each
 * separable pass); the resulting pixel differences are small and accepted (spec §5.2).
 */
export async function preprocessForDescribe(img: RgbImage, size: number): Promise<Float32Array> {
  if (!Number.isInteger(size) || size < 16 || size % 16 !== 0) {
    throw new AppError('BAD_USER_INPUT', `The image size must be a positive multiple of 16, got ${size}.`);
  }
  const square = expandToSquare(img);
  let pixels = square.data;
  if (square.width !== size) {
    const resized = await sharp(square.data, {
      raw: { width: square.width, height: square.height, channels: 3 },
    })
      .resize(size, size, { kernel: 'cubic', fit: 'fill' })
      .raw()
      .toBuffer();
    pixels = new Uint8Array(resized.buffer, resized.byteOffset, resized.byteLength);
  }
  const plane = size * size;
  const out = new Float32Array(3 * plane); // [H, W, 3] -> [1, 3, H, W]
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) out[c * plane + i] = 2 * (pixels[i * 3 + c] / 255) - 1;
  }
  return out;
}

/**
 * One image of an NCHW float batch `[N, 3, H, W]` → HWC RGB bytes with
 * `floor(clamp(127.5·x + 128, 0, 255))` (the +128 makes truncation round half up; spec §2.9).
 * NaN maps to 0 (black) rather than propagating an undefined byte.
 */
export function tensorToRgb(x: Float32Array, height: number, width: number, index = 0): RgbImage {
  const plane = height * width;
  const base = index * 3 * plane;
  if (!Number.isInteger(index) || index < 0 || base + 3 * plane > x.length) {
    throw new AppError(
      'INTERNAL',
      `Image ${index} of size 3×${height}×${width} is outside a tensor of ${x.length} values.`,
    );
  }
  const data = new Uint8Array(plane * 3);
  for (let c = 0; c < 3; c++) {
    const src = base + c * plane;
    for (let i = 0; i < plane; i++) {
      const v = 127.5 * x[src + i] + 128;
      data[i * 3 + c] = v >= 255 ? 255 : v > 0 ? Math.floor(v) : 0; // NaN fails both tests → 0
    }
  }
  return { width, height, data };
}

export type OutputFormat = 'png' | 'webp';

export interface EncodeOptions {
  /** WebP only: lossless (default true) or lossy with `quality`. */
  lossless?: boolean;
  /** WebP lossy quality 1–100 (default 90). */
  quality?: number;
}

/** Encodes RGB bytes; PNG is always lossless, WebP lossless unless asked otherwise. */
export async function encodeImage(
  img: RgbImage,
  format: OutputFormat,
  options: EncodeOptions = {},
): Promise<Buffer> {
  if (img.data.length !== img.width * img.height * 3) {
    throw new AppError(
      'INTERNAL',
      `RGB buffer has ${img.data.length} bytes; expected ${img.width}×${img.height}×3.`,
    );
  }
  const pipeline = sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } });
  if (format === 'png') return pipeline.png().toBuffer();
  if (format === 'webp') {
    const lossless = options.lossless ?? true;
    return pipeline.webp(lossless ? { lossless: true } : { quality: options.quality ?? 90 }).toBuffer();
  }
  throw new AppError(
    'BAD_USER_INPUT',
    `Output format must be "png" or "webp", got ${JSON.stringify(format)}.`,
  );
}
