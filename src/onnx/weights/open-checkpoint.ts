/**
 * One entry point for every checkpoint format, chosen by content rather than file extension
 * (`.ckpt` may be a zip or a legacy pickle; HF exports may be single files or shard folders).
 */
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { AppError } from '../../shared/errors.ts';
import { openSafetensors } from './safetensors.ts';
import { LEGACY_MAGIC, openTorchLegacy } from './torch-legacy.ts';
import { openTorchZip, type TorchOpenOptions } from './torch-zip.ts';
import type { WeightSource } from './types.ts';

export type CheckpointFormat = 'safetensors' | 'torch-zip' | 'torch-legacy';

export function detectCheckpointFormat(path: string): CheckpointFormat {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(path);
  } catch (cause) {
    throw new AppError('WEIGHTS_INVALID', `checkpoint ${path} does not exist`, { cause });
  }
  if (st.isDirectory()) return 'safetensors';
  const head = new Uint8Array(16);
  const fd = openSync(path, 'r');
  let n: number;
  try {
    n = readSync(fd, head, 0, 16, 0);
  } finally {
    closeSync(fd);
  }
  if (n >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04)
    return 'torch-zip';
  if (n >= LEGACY_MAGIC.length && LEGACY_MAGIC.every((b, i) => head[i] === b)) return 'torch-legacy';
  // safetensors: u64 header length that fits the file, then a JSON object.
  if (n >= 9 && head[8] === 0x7b) {
    const len = Number(new DataView(head.buffer).getBigUint64(0, true));
    if (len >= 2 && 8 + len <= st.size) return 'safetensors';
  }
  throw new AppError(
    'WEIGHTS_INVALID',
    `${path} is not a recognised checkpoint: expected safetensors, a torch.save zip (.pth/.ckpt) or a legacy torch pickle`,
  );
}

/** Opens any supported checkpoint as a lazy WeightSource. `subKey` applies to torch files only. */
export function openCheckpoint(path: string, options: TorchOpenOptions = {}): WeightSource {
  switch (detectCheckpointFormat(path)) {
    case 'safetensors':
      return openSafetensors(path);
    case 'torch-zip':
      return openTorchZip(path, options);
    case 'torch-legacy':
      return openTorchLegacy(path, options);
  }
}
