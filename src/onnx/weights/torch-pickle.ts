/**
 * The torch-specific half of checkpoint unpickling, shared by the zip and legacy readers:
 * storage persistent ids, `torch._utils._rebuild_tensor_v2` / `_rebuild_parameter`, picking the
 * state dict out of a nested checkpoint, and reading one (possibly strided) tensor from its
 * storage bytes.
 */
import { AppError } from '../../shared/errors.ts';
import type { StoredDType } from './dtype.ts';
import { DTYPE_BYTES, decodeToFloat32, numelOf } from './dtype.ts';
import type { WeightEntry } from './types.ts';
import { PyGlobal, type PyValue, type UnpickleHooks } from './unpickle.ts';

const STORAGE_DTYPES: Record<string, StoredDType> = {
  FloatStorage: 'float32',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  DoubleStorage: 'float64',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
};

export interface StorageRef {
  readonly kind: 'storage';
  readonly key: string;
  /** undefined for storage types we cannot convert (int8, complex...): such tensors are skipped. */
  readonly dtype: StoredDType | undefined;
  readonly typeName: string;
  readonly numel: number;
  /** Element offset inside the root storage (legacy storage views only; 0 otherwise). */
  readonly base: number;
}

export interface TensorRef {
  readonly kind: 'tensor';
  readonly storage: StorageRef;
  readonly offset: number;
  readonly shape: number[];
  readonly stride: number[];
}

export function isTensorRef(v: unknown): v is TensorRef {
  return typeof v === 'object' && v !== null && (v as { kind?: unknown }).kind === 'tensor';
}

function toInt(v: PyValue, what: string): number {
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  throw new AppError('WEIGHTS_INVALID', `checkpoint pickle: ${what} is not an integer`);
}

function toInts(v: PyValue, what: string): number[] {
  if (!Array.isArray(v)) throw new AppError('WEIGHTS_INVALID', `checkpoint pickle: ${what} is not a tuple`);
  return v.map((x) => toInt(x, what));
}

/**
 * Hooks for `unpickle`. `onStorage` sees every storage persistent id: the zip format's
 * `('storage', torch.XStorage, key, location, numel)` and the legacy format's extra
 * `view_metadata` = `(view_key, offset, view_numel)` or None.
 */
export function torchHooks(
  onStorage?: (s: StorageRef, viewOf?: { key: string; offset: number }) => StorageRef,
): UnpickleHooks {
  return {
    persistentLoad(pid) {
      if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 5) {
        throw new AppError(
          'WEIGHTS_INVALID',
          'checkpoint pickle: unknown persistent id (only torch storages are supported)',
        );
      }
      const type = pid[1];
      const typeName = type instanceof PyGlobal ? type.name : String(type);
      const s: StorageRef = {
        kind: 'storage',
        key: String(pid[2]),
        dtype: STORAGE_DTYPES[typeName],
        typeName,
        numel: toInt(pid[4], 'storage size'),
        base: 0,
      };
      const view = pid[5];
      if (Array.isArray(view) && view.length >= 3) {
        const viewOf = { key: String(view[0]), offset: toInt(view[1], 'view offset') };
        return onStorage ? onStorage(s, viewOf) : s;
      }
      return onStorage ? onStorage(s) : s;
    },
    reduce(fn, args) {
      if (fn.module !== 'torch._utils') return undefined;
      if (fn.name === '_rebuild_tensor_v2' || fn.name === '_rebuild_tensor') {
        const storage = args[0] as unknown as StorageRef;
        if (storage?.kind !== 'storage')
          throw new AppError('WEIGHTS_INVALID', 'checkpoint pickle: tensor without a storage');
        const t: TensorRef = {
          kind: 'tensor',
          storage,
          offset: toInt(args[1], 'storage offset'),
          shape: toInts(args[2], 'tensor size'),
          stride: toInts(args[3], 'tensor stride'),
        };
        return t;
      }
      // nn.Parameter wraps the tensor: keep the data, drop requires_grad and hooks.
      if (fn.name === '_rebuild_parameter' || fn.name === '_rebuild_parameter_with_state') return args[0];
      return undefined;
    },
  };
}

/** Containers that training scripts wrap a state dict in (kl16.ckpt: "model"; Lightning: "state_dict"). */
const CONTAINER_KEYS = ['state_dict', 'model', 'module', 'model_state_dict'];

/**
 * Picks the tensors out of an unpickled checkpoint. With `subKey`, that entry of the top-level
 * dict is the state dict. Otherwise: a top-level dict holding tensors is the state dict itself;
 * else the first known container key that holds a dict; else every tensor in nested dicts,
 * named by its dotted path.
 */
export function collectTensors(root: PyValue, path: string, subKey?: string): Map<string, TensorRef> {
  if (!(root instanceof Map))
    throw new AppError('WEIGHTS_INVALID', `${path}: the checkpoint is not a dict of tensors`);
  const out = new Map<string, TensorRef>();
  const walk = (d: Map<PyValue, PyValue>, prefix: string, deep: boolean) => {
    for (const [k, v] of d) {
      if (isTensorRef(v)) out.set(prefix + String(k), v);
      else if (deep && v instanceof Map) walk(v, `${prefix}${String(k)}.`, true);
    }
  };
  if (subKey !== undefined) {
    const sub = root.get(subKey);
    if (!(sub instanceof Map)) {
      const keys = [...root.keys()].map(String).join(', ');
      throw new AppError(
        'WEIGHTS_INVALID',
        `${path}: no dict under key "${subKey}" (top-level keys: ${keys})`,
      );
    }
    walk(sub, '', false);
    return out;
  }
  if ([...root.values()].some(isTensorRef)) {
    walk(root, '', false);
    return out;
  }
  for (const k of CONTAINER_KEYS) {
    const sub = root.get(k);
    if (sub instanceof Map && [...sub.values()].some(isTensorRef)) {
      walk(sub, '', false);
      return out;
    }
  }
  walk(root, '', true);
  return out;
}

function isContiguous(shape: number[], stride: number[]): boolean {
  let expected = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && stride[i] !== expected) return false;
    expected *= shape[i];
  }
  return true;
}

/**
 * Builds a lazy WeightEntry for a tensor. `readStorage(key, byteStart, byteLength)` returns
 * raw bytes of a storage; `storageBytes(key)` its stored size, for bounds checks done up front.
 */
export function tensorEntry(
  name: string,
  t: TensorRef,
  path: string,
  readStorage: (key: string, byteStart: number, byteLength: number) => Uint8Array,
  storageBytes: (key: string) => number | undefined,
): WeightEntry | undefined {
  const { storage, shape, stride } = t;
  const dtype = storage.dtype;
  if (!dtype) return undefined;
  const item = DTYPE_BYTES[dtype];
  const numel = numelOf(shape);
  if (shape.length !== stride.length || stride.some((s) => s < 0)) {
    throw new AppError(
      'WEIGHTS_INVALID',
      `${path}: tensor ${name} has size ${shape} and stride ${stride}, which do not match`,
    );
  }
  // Elements the view touches, counted from its first element.
  const span = numel === 0 ? 0 : 1 + shape.reduce((a, d, i) => a + (d - 1) * stride[i], 0);
  const first = storage.base + t.offset;
  const have = storageBytes(storage.key);
  if (have === undefined)
    throw new AppError('WEIGHTS_INVALID', `${path}: storage ${storage.key} of tensor ${name} is missing`);
  if ((first + span) * item > have) {
    throw new AppError(
      'WEIGHTS_INVALID',
      `${path}: tensor ${name} needs bytes up to ${(first + span) * item} of storage ${storage.key}, which holds ${have} (truncated?)`,
    );
  }
  const contiguous = isContiguous(shape, stride);
  return {
    name,
    dtype,
    shape: [...shape],
    read(): Float32Array {
      if (numel === 0) return new Float32Array(0);
      const src = decodeToFloat32(readStorage(storage.key, first * item, span * item), dtype, span);
      if (contiguous) return src;
      // Gather a strided view (e.g. a saved transpose) into row-major order with an odometer.
      const out = new Float32Array(numel);
      const idx = new Array<number>(shape.length).fill(0);
      let at = 0;
      for (let i = 0; i < numel; i++) {
        out[i] = src[at];
        for (let d = shape.length - 1; d >= 0; d--) {
          idx[d]++;
          at += stride[d];
          if (idx[d] < shape[d]) break;
          at -= stride[d] * shape[d];
          idx[d] = 0;
        }
      }
      return out;
    },
  };
}
