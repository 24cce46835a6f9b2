/**
 * PyTorch `torch.save` zip checkpoints (`.pth`, `.ckpt`, torch >= 1.6): a zip holding
 * `<root>/data.pkl` (the object graph; tensors point at storages by key) and
 * `<root>/data/<key>` (raw little-endian storage bytes). Only data.pkl is read up front; each
 * tensor is read from its storage entry when asked for. Unpickling subset: see unpickle.ts.
 */
import { AppError } from '../../shared/errors.ts';
import { RandomAccessFile } from './file-io.ts';
import { collectTensors, tensorEntry, torchHooks } from './torch-pickle.ts';
import type { WeightEntry, WeightSource } from './types.ts';
import { type PyValue, unpickle } from './unpickle.ts';
import { type ZipEntry, ZipReader } from './zip.ts';

export interface TorchOpenOptions {
  /** Take the state dict from this top-level key (e.g. 'model' for kl16.ckpt); auto-detected when absent. */
  subKey?: string;
}

/** A WeightSource over tensors found in a torch checkpoint (zip or legacy). */
export class TorchCheckpoint implements WeightSource {
  /** Tensors whose storage type we cannot convert (int8, complex...); left out of names(). */
  readonly skipped: string[] = [];

  constructor(
    private readonly entries: Map<string, WeightEntry>,
    skipped: string[],
    private readonly onClose: () => void,
  ) {
    this.skipped.push(...skipped);
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  get(name: string): WeightEntry | undefined {
    return this.entries.get(name);
  }

  close(): void {
    this.onClose();
  }
}

/** How one checkpoint format reaches the raw bytes of a storage named by its key. */
export interface StorageAccess {
  read(key: string, byteStart: number, byteLength: number): Uint8Array;
  bytes(key: string): number | undefined;
}

/**
 * Wraps every tensor of an unpickled torch object graph; zip and legacy files differ only in
 * where storages live. Tensors of a storage type we cannot convert are listed as skipped.
 */
export function checkpointFromPickle(
  root: PyValue,
  path: string,
  options: TorchOpenOptions,
  storage: StorageAccess,
  onClose: () => void,
): TorchCheckpoint {
  const entries = new Map<string, WeightEntry>();
  const skipped: string[] = [];
  for (const [name, t] of collectTensors(root, path, options.subKey)) {
    const e = tensorEntry(name, t, path, storage.read, storage.bytes);
    if (e) entries.set(name, e);
    else skipped.push(name);
  }
  return new TorchCheckpoint(entries, skipped, onClose);
}

export function openTorchZip(path: string, options: TorchOpenOptions = {}): TorchCheckpoint {
  const file = new RandomAccessFile(path);
  try {
    const zip = new ZipReader(file);
    // The root folder is named after the file torch saved to; find it through data.pkl.
    const pkl = [...zip.entries.values()]
      .filter((e) => e.name === 'data.pkl' || e.name.endsWith('/data.pkl'))
      .sort((a, b) => a.name.length - b.name.length)[0];
    if (!pkl)
      throw new AppError('WEIGHTS_INVALID', `${path} is a zip file but not a torch checkpoint (no data.pkl)`);
    const root = pkl.name.slice(0, -'data.pkl'.length);
    const order = zip.entries.get(`${root}byteorder`);
    if (order && Buffer.from(zip.readAll(order)).toString('latin1').trim() !== 'little') {
      throw new AppError(
        'WEIGHTS_INVALID',
        `${path} was saved on a big-endian machine; re-save it on a little-endian one`,
      );
    }
    const { value } = unpickle(zip.readAll(pkl), torchHooks());
    const storage = (key: string): ZipEntry | undefined => zip.entries.get(`${root}data/${key}`);
    return checkpointFromPickle(
      value,
      path,
      options,
      {
        read: (key, start, len) => zip.readRange(storage(key) as ZipEntry, start, len),
        bytes: (key) => storage(key)?.size,
      },
      () => file.close(),
    );
  } catch (e) {
    file.close();
    throw e;
  }
}
