/**
 * safetensors reader (the HF-format export). Layout: u64 little-endian header length N, N bytes
 * of JSON `{name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {...}}`, then the
 * data block; offsets are relative to the data block. Only the header is read up front; each
 * tensor is read on demand with one positional read.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { AppError } from '../../shared/errors.ts';
import type { StoredDType } from './dtype.ts';
import { DTYPE_BYTES, decodeToFloat32, numelOf } from './dtype.ts';
import { RandomAccessFile } from './file-io.ts';
import type { WeightEntry, WeightSource } from './types.ts';

const DTYPES: Record<string, StoredDType> = {
  F32: 'float32',
  F16: 'float16',
  BF16: 'bfloat16',
  F64: 'float64',
  I64: 'int64',
  I32: 'int32',
  U8: 'uint8',
  BOOL: 'bool',
};

/** A header bigger than this is not a real safetensors file (the format itself caps it at 100 MB). */
const MAX_HEADER = 100_000_000;

function invalid(path: string, why: string, cause?: unknown): AppError {
  return new AppError('WEIGHTS_INVALID', `${path} is not a valid safetensors file: ${why}`, { cause });
}

interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/** Opens one `.safetensors` file, or a directory of shards (with or without `model.safetensors.index.json`). */
export function openSafetensors(path: string): WeightSource {
  if (existsSync(path) && statSync(path).isDirectory()) return openShardedSafetensors(path);
  return new SafetensorsFile(path);
}

class SafetensorsFile implements WeightSource {
  private readonly file: RandomAccessFile;
  private readonly entries = new Map<string, WeightEntry>();

  constructor(readonly path: string) {
    this.file = new RandomAccessFile(path);
    try {
      this.parseHeader();
    } catch (e) {
      this.file.close();
      throw e;
    }
  }

  private parseHeader(): void {
    const { file, path } = this;
    if (file.size < 8) throw invalid(path, `file is only ${file.size} bytes`);
    const lenBytes = file.read(0, 8);
    const len = Number(new DataView(lenBytes.buffer).getBigUint64(0, true));
    if (len < 2 || len > MAX_HEADER || 8 + len > file.size) {
      throw invalid(path, `header length ${len} does not fit a ${file.size}-byte file`);
    }
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(Buffer.from(file.read(8, len)).toString('utf8'));
    } catch (cause) {
      throw invalid(path, 'header is not JSON', cause);
    }
    if (header === null || typeof header !== 'object' || Array.isArray(header))
      throw invalid(path, 'header is not a JSON object');
    const dataStart = 8 + len;
    const dataSize = file.size - dataStart;
    for (const [name, raw] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      const e = raw as HeaderEntry;
      const dtype = DTYPES[e?.dtype];
      if (!dtype) throw invalid(path, `tensor ${name} has unsupported dtype ${JSON.stringify(e?.dtype)}`);
      if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isInteger(d) && d >= 0)) {
        throw invalid(path, `tensor ${name} has a bad shape ${JSON.stringify(e.shape)}`);
      }
      const [begin, end] = Array.isArray(e.data_offsets) ? e.data_offsets : [Number.NaN, Number.NaN];
      const numel = numelOf(e.shape);
      const nbytes = numel * DTYPE_BYTES[dtype];
      if (
        !Number.isInteger(begin) ||
        !Number.isInteger(end) ||
        begin < 0 ||
        end - begin !== nbytes ||
        end > dataSize
      ) {
        throw invalid(
          path,
          `tensor ${name} (${e.dtype} ${JSON.stringify(e.shape)}, ${nbytes} bytes) has offsets [${begin}, ${end}] outside the ${dataSize}-byte data block (truncated file?)`,
        );
      }
      const shape = [...e.shape];
      this.entries.set(name, {
        name,
        dtype,
        shape,
        read: () => decodeToFloat32(file.read(dataStart + begin, nbytes), dtype, numel),
      });
    }
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  get(name: string): WeightEntry | undefined {
    return this.entries.get(name);
  }

  close(): void {
    this.file.close();
  }
}

/** Several shards seen as one source; a tensor name found in two shards is an error. */
class ShardedSource implements WeightSource {
  private readonly owner = new Map<string, WeightSource>();

  constructor(
    dir: string,
    private readonly shards: WeightSource[],
    shardNames: string[],
  ) {
    shards.forEach((s, i) => {
      for (const n of s.names()) {
        if (this.owner.has(n)) {
          this.close();
          throw new AppError(
            'WEIGHTS_INVALID',
            `${dir}: tensor ${n} appears in more than one shard (${shardNames[i]})`,
          );
        }
        this.owner.set(n, s);
      }
    });
  }

  names(): string[] {
    return [...this.owner.keys()];
  }

  get(name: string): WeightEntry | undefined {
    return this.owner.get(name)?.get(name);
  }

  close(): void {
    for (const s of this.shards) s.close();
  }
}

function openShardedSafetensors(dir: string): WeightSource {
  const indexPath = join(dir, 'model.safetensors.index.json');
  let files: string[];
  if (existsSync(indexPath)) {
    let index: { weight_map?: Record<string, string> };
    try {
      index = JSON.parse(readFileSync(indexPath, 'utf8'));
    } catch (cause) {
      throw new AppError('WEIGHTS_INVALID', `${indexPath} is not valid JSON`, { cause });
    }
    if (!index.weight_map || typeof index.weight_map !== 'object') {
      throw new AppError('WEIGHTS_INVALID', `${indexPath} has no weight_map`);
    }
    files = [...new Set(Object.values(index.weight_map))].sort();
  } else {
    files = readdirSync(dir)
      .filter((f) => f.endsWith('.safetensors'))
      .sort();
  }
  if (files.length === 0) throw new AppError('WEIGHTS_INVALID', `${dir} contains no .safetensors files`);
  const shards: WeightSource[] = [];
  try {
    for (const f of files) shards.push(new SafetensorsFile(join(dir, basename(f))));
  } catch (e) {
    for (const s of shards) s.close();
    throw e;
  }
  return new ShardedSource(dir, shards, files);
}
