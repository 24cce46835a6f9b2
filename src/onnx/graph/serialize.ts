/**
 * GraphBuilder -> ONNX ModelProto bytes (via the registry `onnx-proto` package), with weights
 * either inline (`raw_data`) or streamed to an external-data file. External data is required
 * above protobuf's 2 GiB message limit and keeps peak memory at one tensor while writing.
 *
 * External data layout (why): onnxruntime's shape inference reads shape/axes constants while it
 * resolves the graph and cannot read them from an external file ("Cannot parse data from external
 * tensors ... const_int64_10"), so structural constants and every initializer under
 * `inlineBelowBytes` stay inline, as onnx's own convert_model_to_external_data(size_threshold=1024)
 * does. Weights start on 4 KiB page boundaries so onnxruntime can map each one from the file on
 * its own pages, and a weight it releases after pre-packing gives back whole pages.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { basename } from 'node:path';
import onnxProto, { type onnx as OnnxTypes } from 'onnx-proto';
import { numelOf } from '../weights/dtype.ts';
import { FloatAttr, FloatsAttr, TensorAttr } from './attributes.ts';
import { ONNX_DTYPE } from './dtypes.ts';
import {
  type AttrValue,
  type Dim,
  GraphBuilder,
  type InitializerDecl,
  type TensorData,
  type ValueDecl,
} from './graph-builder.ts';

// onnx-proto is CommonJS: take the namespace off the default export (named ESM import fails).
const { onnx } = onnxProto;

export interface ModelOptions {
  /** Default ai.onnx opset 21, com.microsoft 1. */
  opset?: number;
  producer?: string;
  docString?: string;
  metadata?: Record<string, string>;
}

export interface SaveOptions extends ModelOptions {
  /** Write weights to `<file>.data` (default: when their total exceeds 1.5 GiB). */
  externalData?: boolean;
  /** With external data, initializers smaller than this stay inline (default 1024 bytes). */
  inlineBelowBytes?: number;
}

const IR_VERSION = 10;
const EXTERNAL_THRESHOLD = 1.5 * 1024 ** 3;
export const INLINE_BELOW_BYTES = 1024;
export const EXTERNAL_ALIGNMENT = 4096;

function valueInfo(v: ValueDecl): OnnxTypes.IValueInfoProto {
  const shape = v.dims
    ? { dim: v.dims.map((d: Dim) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) }
    : undefined;
  return { name: v.name, type: { tensorType: { elemType: ONNX_DTYPE[v.dtype], shape } } };
}

function attribute(name: string, v: AttrValue): OnnxTypes.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === 'number') return { name, type: T.INT, i: v };
  if (typeof v === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) return { name, type: T.INTS, ints: v };
  if (v instanceof FloatAttr) return { name, type: T.FLOAT, f: v.value };
  if (v instanceof FloatsAttr) return { name, type: T.FLOATS, floats: v.value };
  if (v instanceof TensorAttr) {
    return { name, type: T.TENSOR, t: tensorProto({ name: '', dtype: v.dtype, dims: v.dims, data: v.data }) };
  }
  if (v instanceof GraphBuilder) return { name, type: T.GRAPH, g: graphProto(v, false) };
  throw new Error(`unsupported attribute ${name}`);
}

function bytesOf(data: TensorData): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function resolve(decl: InitializerDecl): TensorData {
  return typeof decl.data === 'function' ? decl.data() : decl.data;
}

function tensorProto(decl: InitializerDecl): OnnxTypes.ITensorProto {
  // Copy: protobufjs may keep a reference, and the source buffer can be a view into a larger one.
  return {
    name: decl.name,
    dataType: ONNX_DTYPE[decl.dtype],
    dims: decl.dims,
    rawData: Uint8Array.from(bytesOf(resolve(decl))),
  };
}

function graphProto(
  g: GraphBuilder,
  withInitializers: boolean,
  external?: ExternalWriter,
): OnnxTypes.IGraphProto {
  const init = (i: InitializerDecl) => (external?.takes(i) ? external.write(i) : tensorProto(i));
  return {
    name: g.name,
    node: g.nodes.map((n) => ({
      name: n.name,
      opType: n.opType,
      domain: n.domain,
      input: n.inputs,
      output: n.outputs,
      attribute: Object.entries(n.attrs).map(([k, v]) => attribute(k, v)),
    })),
    input: g.inputs.map(valueInfo),
    output: g.outputs.map(valueInfo),
    initializer: withInitializers ? g.initializers.map(init) : [],
  };
}

/** Streams weight bytes into one data file, each weight page-aligned, one tensor in memory at a time. */
class ExternalWriter {
  private offset = 0;
  private written = 0;
  private readonly fd: number;
  constructor(
    private readonly path: string,
    private readonly inlineBelow: number,
  ) {
    this.fd = openSync(path, 'w');
  }
  /** Structural constants and small tensors stay inline (decided from dims: nothing is read). */
  takes(decl: InitializerDecl): boolean {
    return !decl.structural && numelOf(decl.dims) * BYTES_PER[decl.dtype] >= this.inlineBelow;
  }
  /** True once any weight went to the file. */
  get used(): boolean {
    return this.written > 0;
  }
  write(decl: InitializerDecl): OnnxTypes.ITensorProto {
    this.written++;
    const bytes = bytesOf(resolve(decl));
    const pad = (EXTERNAL_ALIGNMENT - (this.offset % EXTERNAL_ALIGNMENT)) % EXTERNAL_ALIGNMENT;
    if (pad) this.writeAll(new Uint8Array(pad));
    this.offset += pad;
    this.writeAll(bytes);
    const proto: OnnxTypes.ITensorProto = {
      name: decl.name,
      dataType: ONNX_DTYPE[decl.dtype],
      dims: decl.dims,
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: [
        { key: 'location', value: basename(this.path) },
        { key: 'offset', value: String(this.offset) },
        { key: 'length', value: String(bytes.byteLength) },
      ],
    };
    this.offset += bytes.byteLength;
    return proto;
  }
  close(): void {
    closeSync(this.fd);
  }
  /** writeSync may write less than asked (a 1 GB embedding table in one call): loop until done. */
  private writeAll(bytes: Uint8Array): void {
    for (let done = 0; done < bytes.byteLength; ) done += writeSync(this.fd, bytes, done);
  }
}

function modelProto(g: GraphBuilder, opts: ModelOptions, external?: ExternalWriter): OnnxTypes.IModelProto {
  const domains = new Set(collectDomains(g));
  const opsetImport: OnnxTypes.IOperatorSetIdProto[] = [{ domain: '', version: opts.opset ?? 21 }];
  if (domains.has('com.microsoft')) opsetImport.push({ domain: 'com.microsoft', version: 1 });
  return {
    irVersion: IR_VERSION,
    producerName: opts.producer ?? 'harmon-platform',
    docString: opts.docString,
    opsetImport,
    metadataProps: Object.entries(opts.metadata ?? {}).map(([key, value]) => ({ key, value })),
    graph: graphProto(g, true, external),
  };
}

function* collectDomains(g: GraphBuilder): Generator<string> {
  for (const n of g.nodes) {
    yield n.domain;
    for (const a of Object.values(n.attrs)) if (a instanceof GraphBuilder) yield* collectDomains(a);
  }
}

/** Encodes the model with all weights inline (fine below 2 GiB; used by tests and tiny models). */
export function toModelBytes(g: GraphBuilder, opts: ModelOptions = {}): Uint8Array {
  return onnx.ModelProto.encode(modelProto(g, opts)).finish();
}

/** Writes `<path>` (and `<path>.data` when external) and returns the files written. */
export async function saveModel(g: GraphBuilder, path: string, opts: SaveOptions = {}): Promise<string[]> {
  const useExternal = opts.externalData ?? estimateBytes(g) > EXTERNAL_THRESHOLD;
  if (!useExternal) {
    await writeFile(path, toModelBytes(g, opts));
    return [path];
  }
  const dataPath = `${path}.data`;
  const writer = new ExternalWriter(dataPath, opts.inlineBelowBytes ?? INLINE_BELOW_BYTES);
  try {
    await writeFile(path, onnx.ModelProto.encode(modelProto(g, opts, writer)).finish());
  } finally {
    writer.close();
  }
  if (writer.used) return [path, dataPath];
  await rm(dataPath); // every initializer was small: no data file
  return [path];
}

const BYTES_PER: Record<string, number> = {
  float32: 4,
  float16: 2,
  int64: 8,
  int32: 4,
  uint8: 1,
  int8: 1,
  bool: 1,
  float64: 8,
};

export function estimateBytes(g: GraphBuilder): number {
  return g.initializers.reduce((sum, i) => sum + numelOf(i.dims) * BYTES_PER[i.dtype], 0);
}
