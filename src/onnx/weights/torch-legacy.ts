/**
 * Legacy (pre-1.6, non-zip) `torch.save` files: five pickles back to back (magic number,
 * protocol version, sys info, the object graph, the sorted list of storage keys) followed by
 * each storage in key order as an int64 element count and its raw bytes. The pickles are read
 * from the head of the file; storages are located by hopping over the count prefixes, so tensor
 * data is still only read on demand.
 */
import { AppError } from '../../shared/errors.ts';
import { DTYPE_BYTES } from './dtype.ts';
import { RandomAccessFile } from './file-io.ts';
import { type StorageRef, torchHooks } from './torch-pickle.ts';
import { checkpointFromPickle, type TorchCheckpoint, type TorchOpenOptions } from './torch-zip.ts';
import { type PyValue, unpickle } from './unpickle.ts';

/** PROTO 2, LONG1 of 10 bytes: torch's legacy magic number 0x1950a86a20f9469cfc6c. */
export const LEGACY_MAGIC = Uint8Array.from([
  0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19,
]);

function parseHead(
  file: RandomAccessFile,
  types: Map<string, StorageRef>,
): { obj: PyValue; keys: string[]; end: number } {
  for (let chunk = Math.min(file.size, 1 << 24); ; chunk = Math.min(file.size, chunk * 4)) {
    const head = file.read(0, chunk);
    try {
      let p = 0;
      for (let i = 0; i < 3; i++) p = unpickle(head, {}, p).end; // magic, protocol version, sys info
      const main = unpickle(
        head,
        torchHooks((s) => {
          types.set(s.key, s);
          return s;
        }),
        p,
      );
      const keys = unpickle(head, {}, main.end);
      if (!Array.isArray(keys.value))
        throw new AppError('WEIGHTS_INVALID', `${file.path}: storage key list missing`);
      return { obj: main.value, keys: keys.value.map(String), end: keys.end };
    } catch (e) {
      // The object graph may be longer than the first chunk: retry with more of the file.
      if (chunk >= file.size || !(e instanceof AppError && e.details?.truncated)) throw e;
    }
  }
}

export function openTorchLegacy(path: string, options: TorchOpenOptions = {}): TorchCheckpoint {
  const file = new RandomAccessFile(path);
  try {
    const types = new Map<string, StorageRef>();
    const { obj, keys, end } = parseHead(file, types);
    const located = new Map<string, { offset: number; bytes: number }>();
    let p = end;
    for (const key of keys) {
      const s = types.get(key);
      if (!s?.dtype)
        throw new AppError(
          'WEIGHTS_INVALID',
          `${path}: storage ${key} has unsupported type ${s?.typeName ?? '?'}`,
        );
      const count = Number(new DataView(file.read(p, 8).buffer).getBigInt64(0, true));
      const bytes = count * DTYPE_BYTES[s.dtype];
      if (count < 0 || p + 8 + bytes > file.size)
        throw new AppError('WEIGHTS_INVALID', `${path} is truncated inside storage ${key}`);
      located.set(key, { offset: p + 8, bytes });
      p += 8 + bytes;
    }
    return checkpointFromPickle(
      obj,
      path,
      options,
      {
        read: (key, start, len) => file.read((located.get(key)?.offset ?? 0) + start, len),
        bytes: (key) => located.get(key)?.bytes,
      },
      () => file.close(),
    );
  } catch (e) {
    file.close();
    throw e;
  }
}
