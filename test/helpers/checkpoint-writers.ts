/**
 * Test-only checkpoint writers: tensors -> a safetensors file, a torch.save-style zip
 * (STORED, 64-byte aligned, protocol-2 data.pkl with OrderedDict + _rebuild_tensor_v2 + BINPERSID
 * storages, optionally zip64 or nested under {"model": ...}) or a legacy torch pickle file.
 */
import { writeFileSync } from 'node:fs';
import { crc32, deflateRawSync } from 'node:zlib';
import { float32ToBfloat16Bits, float32ToFloat16Bits } from '../../src/onnx/weights/dtype.ts';
import type { WeightSource } from '../../src/onnx/weights/types.ts';
import { PickleWriter } from './pickle-writer.ts';

export interface TensorData {
  shape: readonly number[];
  data: Float32Array;
}
export type Tensors = WeightSource | Record<string, TensorData>;
export type WriteDType = 'float32' | 'float16' | 'bfloat16';

function entries(t: Tensors): [string, TensorData][] {
  if (typeof (t as WeightSource).names === 'function') {
    const s = t as WeightSource;
    return s.names().map((n) => {
      const e = s.get(n);
      if (!e) throw new Error(`source lost ${n}`);
      return [n, { shape: e.shape, data: e.read() }];
    });
  }
  return Object.entries(t as Record<string, TensorData>);
}

export function encode(data: Float32Array, dtype: WriteDType): Uint8Array {
  if (dtype === 'float32')
    return new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
  const out = new Uint16Array(data.length);
  const f = dtype === 'float16' ? float32ToFloat16Bits : float32ToBfloat16Bits;
  for (let i = 0; i < data.length; i++) out[i] = f(data[i]);
  return new Uint8Array(out.buffer);
}

const ST_DTYPE: Record<WriteDType, string> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16' };

/** Writes a safetensors file; `dtypeOf` can pick a dtype per tensor. */
export function writeSafetensors(
  path: string,
  tensors: Tensors,
  dtype: WriteDType | ((name: string) => WriteDType) = 'float32',
): void {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  const blobs: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of entries(tensors)) {
    const dt = typeof dtype === 'function' ? dtype(name) : dtype;
    const bytes = encode(t.data, dt);
    header[name] = {
      dtype: ST_DTYPE[dt],
      shape: [...t.shape],
      data_offsets: [offset, offset + bytes.length],
    };
    blobs.push(bytes);
    offset += bytes.length;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8); // the format pads the header to 8 bytes
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  writeFileSync(path, Buffer.concat([len, Buffer.from(json), ...blobs]));
}

export interface TorchWriteOptions {
  dtype?: WriteDType;
  /** Wrap the state dict as {"model": state_dict, "epoch": 3, ...} like kl16.ckpt. */
  nestUnder?: string;
  /** Store these 2-D tensors transposed in their storage, with stride (1, rows): a non-contiguous view. */
  transposed?: string[];
  /** Write zip64 records even though the file is small (what torch does past 4 GiB). */
  zip64?: boolean;
  /** Compress every entry (DEFLATED), as a re-zipped archive would be. */
  deflate?: boolean;
  /** Name of the archive's root folder (torch uses the file stem). */
  root?: string;
}

interface Stored {
  name: string;
  shape: number[];
  stride: number[];
  bytes: Uint8Array;
  numel: number;
}

function storages(tensors: Tensors, o: TorchWriteOptions): Stored[] {
  const dtype = o.dtype ?? 'float32';
  return entries(tensors).map(([name, t]) => {
    const shape = [...t.shape];
    if (o.transposed?.includes(name) && shape.length === 2) {
      const [r, c] = shape;
      const tr = new Float32Array(r * c); // [r,c] -> storage laid out as [c,r]
      for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) tr[j * r + i] = t.data[i * c + j];
      return { name, shape, stride: [1, r], bytes: encode(tr, dtype), numel: r * c };
    }
    const stride = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
    return { name, shape, stride, bytes: encode(t.data, dtype), numel: t.data.length };
  });
}

const STORAGE_CLASS: Record<WriteDType, string> = {
  float32: 'FloatStorage',
  float16: 'HalfStorage',
  bfloat16: 'BFloat16Storage',
};

/** The object graph torch.save writes for a state dict (optionally nested with extra, non-tensor entries). */
function statePickle(stored: Stored[], o: TorchWriteOptions, legacy: boolean): Uint8Array {
  const w = new PickleWriter().proto();
  const stateDict = () => {
    w.orderedDict();
    w.setitems(() => {
      stored.forEach((s, i) => {
        w.str(s.name);
        w.global('torch._utils', '_rebuild_tensor_v2');
        w.tuple(6, () => {
          // Persistent id: ('storage', torch.XStorage, key, location, numel[, view_metadata])
          w.tuple(legacy ? 6 : 5, () => {
            w.str('storage')
              .global('torch', STORAGE_CLASS[o.dtype ?? 'float32'])
              .str(String(i))
              .str('cpu')
              .int(s.numel);
            if (legacy) w.none();
          });
          w.binpersid();
          w.int(0).ints(s.shape).ints(s.stride).bool(false);
          w.orderedDict(); // backward hooks
        });
        w.reduce();
      });
    });
    // state_dict() also pickles its `_metadata` attribute: BUILD with {'_metadata': OrderedDict}
    w.emptyDict().str('_metadata').orderedDict().raw(0x73).build();
  };
  if (!o.nestUnder) {
    stateDict();
  } else {
    w.emptyDict();
    w.setitems(() => {
      w.str(o.nestUnder as string);
      stateDict();
      w.str('epoch').int(3);
      w.str('global_step').int(2 ** 40);
      w.str('lr').float(1e-4);
      w.str('device')
        .global('torch', 'device')
        .tuple(1, () => w.str('cpu'))
        .reduce();
      w.str('history')
        .emptyList()
        .appends(() => w.float(0.5).none().bool(true).int(-7));
    });
  }
  return w.stop();
}

function zipArchive(files: { name: string; data: Uint8Array }[], zip64: boolean, deflate: boolean): Buffer {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let pos = 0;
  for (const f of files) {
    const name = Buffer.from(f.name);
    const crc = crc32(f.data);
    // torch pads the local extra field ("FB" id) so every entry's data starts 64-byte aligned.
    const pad = (64 - ((pos + 30 + name.length + 4) % 64)) % 64;
    const extra = Buffer.alloc(4 + pad);
    extra.writeUInt16LE(0x4246, 0);
    extra.writeUInt16LE(pad, 2);
    const body = deflate ? deflateRawSync(f.data) : Buffer.from(f.data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(zip64 ? 45 : 20, 4);
    local.writeUInt16LE(deflate ? 8 : 0, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(f.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(extra.length, 28);
    const cextra = Buffer.alloc(zip64 ? 28 : 0);
    if (zip64) {
      cextra.writeUInt16LE(1, 0);
      cextra.writeUInt16LE(24, 2);
      cextra.writeBigUInt64LE(BigInt(f.data.length), 4);
      cextra.writeBigUInt64LE(BigInt(body.length), 12);
      cextra.writeBigUInt64LE(BigInt(pos), 20);
    }
    const c = Buffer.alloc(46);
    c.writeUInt32LE(0x02014b50, 0);
    c.writeUInt16LE(zip64 ? 45 : 20, 4);
    c.writeUInt16LE(zip64 ? 45 : 20, 6);
    c.writeUInt16LE(deflate ? 8 : 0, 10);
    c.writeUInt32LE(crc, 16);
    c.writeUInt32LE(zip64 ? 0xffffffff : body.length, 20);
    c.writeUInt32LE(zip64 ? 0xffffffff : f.data.length, 24);
    c.writeUInt16LE(name.length, 28);
    c.writeUInt16LE(cextra.length, 30);
    c.writeUInt32LE(zip64 ? 0xffffffff : pos, 42);
    central.push(c, name, cextra);
    parts.push(local, name, extra, body);
    pos += 30 + name.length + extra.length + body.length;
  }
  const cd = Buffer.concat(central);
  const tail: Buffer[] = [];
  if (zip64) {
    const z = Buffer.alloc(56);
    z.writeUInt32LE(0x06064b50, 0);
    z.writeBigUInt64LE(44n, 4);
    z.writeBigUInt64LE(BigInt(files.length), 24);
    z.writeBigUInt64LE(BigInt(files.length), 32);
    z.writeBigUInt64LE(BigInt(cd.length), 40);
    z.writeBigUInt64LE(BigInt(pos), 48);
    const loc = Buffer.alloc(20);
    loc.writeUInt32LE(0x07064b50, 0);
    loc.writeBigUInt64LE(BigInt(pos + cd.length), 8);
    loc.writeUInt32LE(1, 16);
    tail.push(z, loc);
  }
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(zip64 ? 0xffff : files.length, 8);
  eocd.writeUInt16LE(zip64 ? 0xffff : files.length, 10);
  eocd.writeUInt32LE(zip64 ? 0xffffffff : cd.length, 12);
  eocd.writeUInt32LE(zip64 ? 0xffffffff : pos, 16);
  return Buffer.concat([...parts, cd, ...tail, eocd]);
}

/** Writes a checkpoint laid out like `torch.save(state_dict, path)` (zip format, torch >= 1.6). */
export function writeTorchZip(path: string, tensors: Tensors, o: TorchWriteOptions = {}): void {
  const root = o.root ?? 'archive';
  const stored = storages(tensors, o);
  const files = [
    { name: `${root}/data.pkl`, data: statePickle(stored, o, false) },
    { name: `${root}/byteorder`, data: Buffer.from('little') },
    ...stored.map((s, i) => ({ name: `${root}/data/${i}`, data: s.bytes })),
    { name: `${root}/version`, data: Buffer.from('3\n') },
  ];
  writeFileSync(path, zipArchive(files, o.zip64 ?? false, o.deflate ?? false));
}

/** Writes the pre-1.6 format: magic, protocol, sys_info, object graph, storage keys, then storages. */
export function writeTorchLegacy(path: string, tensors: Tensors, o: TorchWriteOptions = {}): void {
  const stored = storages(tensors, o);
  const magic = new PickleWriter()
    .proto()
    .raw(0x8a, 10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19)
    .stop();
  const version = new PickleWriter().proto().int(1001).stop();
  const sys = new PickleWriter().proto();
  sys.emptyDict().setitems(() => sys.str('protocol_version').int(1001).str('little_endian').bool(true));
  const keys = new PickleWriter().proto();
  keys.emptyList().appends(() => {
    for (let i = 0; i < stored.length; i++) keys.str(String(i));
  });
  const blobs: Buffer[] = [];
  for (const s of stored) {
    const n = Buffer.alloc(8);
    n.writeBigInt64LE(BigInt(s.numel));
    blobs.push(n, Buffer.from(s.bytes));
  }
  writeFileSync(
    path,
    Buffer.concat([magic, version, sys.stop(), statePickle(stored, o, true), keys.stop(), ...blobs]),
  );
}
