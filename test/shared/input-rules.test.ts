// The one home of each input rule (issue 12): image formats, byte limits, inline base64, text and
// dates the database can store, the idempotency key, and the drop-the-oldest bounded map.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadConfig } from '../../src/config/config.ts';
import { sniffFormat } from '../../src/harmon/image-io.ts';
import { BoundedMap } from '../../src/shared/bounded-map.ts';
import { AppError } from '../../src/shared/errors.ts';
import {
  ACCEPTED_CONTENT_TYPES,
  decodeImageBase64,
  IMAGE_BYTES,
  sniffImageFormat,
} from '../../src/shared/images.ts';
import { checkIdempotencyKey, LIMITS, validateGenerateInput } from '../../src/shared/job-inputs.ts';
import { unstorableDate, unstorableText } from '../../src/shared/storable.ts';

/** The first field path of a BAD_USER_INPUT AppError's `details.fields`. */
function firstPath(e: AppError): string {
  const fields = e.details?.fields as { path: string }[] | undefined;
  assert.ok(fields, 'details.fields');
  return fields[0].path;
}
const bytes = (...b: number[]) => Uint8Array.from(b);
const latin1 = (s: string) => Buffer.from(s, 'latin1');

test('one sniff for the API and the pipeline: PNG, JPEG, WebP and GIF, nothing else', () => {
  assert.equal(sniffFormat, sniffImageFormat, 'the pipeline uses the shared sniff');
  assert.equal(sniffImageFormat(bytes(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)), 'png');
  // The API used to accept the first 4 PNG bytes alone; the full 8-byte signature is required.
  assert.equal(sniffImageFormat(bytes(0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 0)), null);
  assert.equal(sniffImageFormat(bytes(0xff, 0xd8, 0xff, 0xe0)), 'jpeg');
  assert.equal(sniffImageFormat(latin1('RIFF\0\0\0\0WEBPVP8 ')), 'webp');
  // The API used to refuse GIF, which the pipeline decodes.
  assert.equal(sniffImageFormat(latin1('GIF87a')), 'gif');
  assert.equal(sniffImageFormat(latin1('GIF89a')), 'gif');
  assert.equal(sniffImageFormat(latin1('GIF80a')), null);
  assert.equal(sniffImageFormat(latin1('<svg xmlns="http://www.w3.org/2000/svg"/>')), null);
  assert.deepEqual([...ACCEPTED_CONTENT_TYPES], ['image/png', 'image/jpeg', 'image/webp', 'image/gif']);
});

test('byte limits: MAX_UPLOAD_BYTES defaults to the shared default and may not exceed the pipeline ceiling', () => {
  assert.equal(loadConfig({}).maxUploadBytes, IMAGE_BYTES.default);
  assert.equal(LIMITS.imageMaxBytes, IMAGE_BYTES.ceiling);
  assert.equal(
    loadConfig({ MAX_UPLOAD_BYTES: String(IMAGE_BYTES.ceiling) }).maxUploadBytes,
    IMAGE_BYTES.ceiling,
  );
  assert.throws(
    () => loadConfig({ MAX_UPLOAD_BYTES: String(IMAGE_BYTES.ceiling + 1) }),
    (e) => e instanceof AppError && e.code === 'BAD_CONFIG' && /MAX_UPLOAD_BYTES/.test(e.message),
  );
  assert.ok(IMAGE_BYTES.inline < IMAGE_BYTES.default && IMAGE_BYTES.default < IMAGE_BYTES.ceiling);
});

test('inline base64: well-formed and within the limit, else BAD_USER_INPUT naming the field', () => {
  assert.deepEqual([...decodeImageBase64('AAEC\n', 3)], [0, 1, 2]);
  const fieldOf = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      assert.ok(e instanceof AppError && e.code === 'BAD_USER_INPUT');
      return firstPath(e);
    }
    assert.fail('no error');
  };
  assert.equal(
    fieldOf(() => decodeImageBase64('not base64!!', 100)),
    'imageBase64',
  );
  assert.equal(
    fieldOf(() => decodeImageBase64('AAAAAAAA', 3, 'image base64')),
    'image base64',
  );
  assert.equal(
    fieldOf(() => decodeImageBase64('', 3)),
    'imageBase64',
  );
});

test('storable text: no NUL, no unpaired surrogate; paired surrogates (emoji) are fine', () => {
  assert.equal(unstorableText('a cat 🐈'), undefined);
  assert.match(unstorableText('a\u0000b') ?? '', /NUL/);
  assert.match(unstorableText('a\ud800b') ?? '', /surrogate/);
  assert.match(unstorableText('\udc00') ?? '', /surrogate/);
  assert.match(unstorableText('x\ud83d') ?? '', /surrogate/);
});

test('storable dates: years 0001..9999 only', () => {
  assert.equal(unstorableDate(new Date('2026-01-31T12:00:00Z')), undefined);
  assert.equal(unstorableDate(new Date('0001-01-01T00:00:00Z')), undefined);
  assert.match(unstorableDate(new Date('0000-01-01T00:00:00Z')) ?? '', /years 1 and 9999/);
  assert.match(unstorableDate(new Date(Date.UTC(10000, 0, 1))) ?? '', /years/);
  assert.match(unstorableDate(new Date(Number.NaN)) ?? '', /not a valid date/);
});

test('prompts go through the storable rule (CLI, API and worker share the schema)', () => {
  assert.throws(
    () => validateGenerateInput({ prompt: 'a\u0000' }),
    (e) => e instanceof AppError && e.code === 'BAD_USER_INPUT' && /NUL/.test(e.message),
  );
  assert.throws(() => validateGenerateInput({ prompt: 'ok', cfgPrompt: '\ud800' }), /surrogate/);
  assert.equal(validateGenerateInput({ prompt: 'a 🐈' }).prompt, 'a 🐈');
});

test('idempotencyKey: one rule and one error shape (fields array) for the API and enqueueJob', () => {
  assert.equal(checkIdempotencyKey(undefined), undefined);
  assert.equal(checkIdempotencyKey(null), undefined);
  assert.equal(checkIdempotencyKey('order-1'), 'order-1');
  for (const bad of ['', 'k'.repeat(LIMITS.idempotencyKeyMaxChars + 1), 'k\u0000', '\ud800']) {
    assert.throws(
      () => checkIdempotencyKey(bad),
      (e) => e instanceof AppError && e.code === 'BAD_USER_INPUT' && firstPath(e) === 'idempotencyKey',
    );
  }
});

test('BoundedMap drops the oldest insertion; re-setting a key makes it the newest', () => {
  const m = new BoundedMap<string, number>(2);
  m.set('a', 1).set('b', 2).set('a', 3).set('c', 4);
  assert.deepEqual(
    [...m],
    [
      ['a', 3],
      ['c', 4],
    ],
  );
  assert.equal(m.size, 2);
  assert.throws(() => new BoundedMap(0), RangeError);
});
