/**
 * The one home of the input-image rules shared by the API (checks before a job exists), the
 * worker (loads the image) and the pipeline (decodes it): which formats are accepted, how they
 * are recognised, how large they may be, and what inline base64 must look like. The API and the
 * pipeline used to sniff separately and disagreed (the API refused GIF the pipeline decodes).
 */
import { AppError } from './errors.ts';

export type ImageFormat = 'png' | 'jpeg' | 'webp' | 'gif';

export const IMAGE_CONTENT_TYPES: Readonly<Record<ImageFormat, string>> = {
  png: 'image/png',
  jpeg: 'image/jpeg',
  webp: 'image/webp',
  gif: 'image/gif',
};
export const ACCEPTED_CONTENT_TYPES: readonly string[] = Object.values(IMAGE_CONTENT_TYPES);
/** For messages: "PNG, JPEG, WebP or GIF". */
export const ACCEPTED_FORMATS_TEXT = 'PNG, JPEG, WebP or GIF';

const MiB = 1024 * 1024;
export const IMAGE_BYTES = {
  /** Decoded size of a base64 image sent inside a GraphQL request (the request body limit follows). */
  inline: 1 * MiB,
  /** Default upload / fetch / decode limit: MAX_UPLOAD_BYTES when unset. */
  default: 10 * MiB,
  /** The most MAX_UPLOAD_BYTES may be set to; the pipeline refuses larger files whatever the config. */
  ceiling: 20 * MiB,
} as const;

/**
 * Format from magic bytes. Checked before any decoder sees the bytes so that only these four
 * decoders are reachable from user input (libvips would otherwise also parse SVG, TIFF, HEIF,
 * PDF...).
 */
export function sniffImageFormat(bytes: Uint8Array): ImageFormat | null {
  const has = (offset: number, sig: number[]) =>
    bytes.length >= offset + sig.length && sig.every((b, i) => bytes[offset + i] === b);
  if (has(0, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return 'png';
  if (has(0, [0xff, 0xd8, 0xff])) return 'jpeg';
  if (has(0, [0x52, 0x49, 0x46, 0x46]) && has(8, [0x57, 0x45, 0x42, 0x50])) return 'webp'; // RIFF....WEBP
  if (has(0, [0x47, 0x49, 0x46, 0x38]) && (has(4, [0x37, 0x61]) || has(4, [0x39, 0x61]))) return 'gif'; // GIF87a/89a
  return null;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

const badBase64 = (path: string, message: string, sentence: string) =>
  new AppError('BAD_USER_INPUT', sentence, { details: { fields: [{ path, message }] } });

/**
 * Standard padded base64 (whitespace ignored) of at most `maxBytes` decoded bytes, else
 * BAD_USER_INPUT naming `path`. The size is checked on the text, before anything is decoded.
 */
export function decodeImageBase64(text: string, maxBytes: number, path = 'imageBase64'): Buffer {
  const s = text.replace(/\s+/g, '');
  if (s.length === 0 || s.length % 4 !== 0 || !BASE64.test(s))
    throw badBase64(
      path,
      'malformed base64',
      `${path} is not valid base64 (A-Z, a-z, 0-9, +, / with = padding)`,
    );
  if ((s.length / 4) * 3 > maxBytes + 2)
    throw badBase64(
      path,
      `at most ${maxBytes} bytes`,
      `${path} decodes to more than ${maxBytes} bytes; use createUpload for larger images`,
    );
  return Buffer.from(s, 'base64');
}
