import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PyGlobal, PyObject, unpickle } from '../../../src/onnx/weights/unpickle.ts';

const bytes = (...parts: (number | string)[]) =>
  Uint8Array.from(parts.flatMap((p) => (typeof p === 'string' ? [...Buffer.from(p, 'latin1')] : [p])));

test('protocol 4 opcodes: FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL, NEWOBJ, BINBYTES', () => {
  const data = bytes(
    0x80,
    4,
    0x95,
    40,
    0,
    0,
    0,
    0,
    0,
    0,
    0, // PROTO 4, FRAME
    0x7d,
    0x94, // EMPTY_DICT, MEMOIZE (0)
    0x28, // MARK
    0x8c,
    1,
    'a',
    0x94,
    0x43,
    3,
    'xyz', // 'a': b'xyz'
    0x8c,
    1,
    'b',
    0x8c,
    5,
    'torch',
    0x8c,
    6,
    'device',
    0x93,
    0x94,
    0x8c,
    3,
    'cpu',
    0x85,
    0x81, // 'b': torch.device('cpu') via NEWOBJ
    0x8c,
    1,
    'c',
    0x68,
    0, // 'c': BINGET 0 (the dict itself)
    0x8c,
    1,
    'd',
    0x8a,
    2,
    0xff,
    0x7f, // 'd': LONG1 32767
    0x75,
    0x2e, // SETITEMS, STOP
  );
  const { value, end } = unpickle(data);
  assert.equal(end, data.length);
  assert.ok(value instanceof Map);
  assert.deepEqual(value.get('a'), bytes('xyz'));
  const dev = value.get('b');
  assert.ok(dev instanceof PyObject);
  assert.ok(dev.callable instanceof PyGlobal && dev.callable.qualname === 'torch.device');
  assert.deepEqual(dev.args, ['cpu']);
  assert.equal(value.get('c'), value);
  assert.equal(value.get('d'), 32767);
});

test('protocol 0 text opcodes and big/negative LONG1 values', () => {
  const { value } = unpickle(
    bytes(
      '(I5\nF0.25\nI01\nL12345678901234567890L\n',
      0x8a,
      1,
      0xff,
      0x8a,
      9,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      1,
      'l.',
    ),
  );
  assert.deepEqual(value, [5, 0.25, true, 12345678901234567000, -1, 2n ** 64n]);
});

test('unsupported opcodes and truncated pickles fail with WEIGHTS_INVALID', () => {
  assert.throws(() => unpickle(bytes(0x80, 2, 0x82, 1)), { code: 'WEIGHTS_INVALID', message: /opcode 0x82/ }); // EXT1
  assert.throws(() => unpickle(bytes(0x80, 2, 0x58, 10, 0, 0, 0, 'ab')), {
    code: 'WEIGHTS_INVALID',
    message: /unexpected end/,
  });
  assert.throws(() => unpickle(bytes(0x80, 2, 0x68, 3, '.')), {
    code: 'WEIGHTS_INVALID',
    message: /memo key 3/,
  });
});
