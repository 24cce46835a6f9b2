/**
 * A small typed graph IR in the spirit of onnxruntime-genai's model builder: builders call
 * `op()` to append nodes to an in-memory graph, name nodes by path
 * (`/llm/layers.3/attn/q_proj/MatMul`) and never touch disk; `serialize.ts` turns the result into
 * a ModelProto. Constants are de-duplicated by content so repeated shapes/axes cost one tensor.
 */
import { createHash } from 'node:crypto';
import type { FloatAttr, FloatsAttr, TensorAttr } from './attributes.ts';
import type { GraphDType } from './dtypes.ts';

export type Dim = number | string;

/** A node attribute; a GraphBuilder value is a subgraph (Loop/Scan/If body). */
export type AttrValue = number | number[] | string | FloatAttr | FloatsAttr | TensorAttr | GraphBuilder;

export interface ValueDecl {
  name: string;
  dtype: GraphDType;
  dims?: Dim[];
}

export interface NodeDecl {
  name: string;
  opType: string;
  domain: string;
  inputs: string[];
  outputs: string[];
  attrs: Record<string, AttrValue>;
}

export type TensorData = Float32Array | Uint16Array | BigInt64Array | Int32Array | Uint8Array;

export interface InitializerDecl {
  name: string;
  dtype: GraphDType;
  dims: number[];
  /** Lazy so a converter can stream weights from the checkpoint straight into the output file. */
  data: TensorData | (() => TensorData);
  /** A shape/axes/index constant: always stored inline, where onnxruntime's shape inference reads it. */
  structural?: boolean;
}

export interface OpOptions {
  /** Node name; defaults to `<scope>/<opType>` made unique. */
  name?: string;
  /** Number of outputs (default 1) or explicit output names ('' = optional output omitted). */
  outputs?: number | string[];
  attrs?: Record<string, AttrValue>;
  domain?: string;
}

export class GraphBuilder {
  readonly nodes: NodeDecl[] = [];
  readonly inputs: ValueDecl[] = [];
  readonly outputs: ValueDecl[] = [];
  /** Initializers live on the root graph only: Loop bodies reference them from the outer scope. */
  readonly initializers: InitializerDecl[] = [];
  private readonly root: GraphBuilder;
  private readonly usedNames = new Set<string>();
  private readonly constantsByHash = new Map<string, string>();
  private scopeStack: string[] = [];

  constructor(
    readonly name: string,
    parent?: GraphBuilder,
  ) {
    this.root = parent ? parent.root : this;
    if (parent) this.scopeStack = [...parent.scopeStack];
  }

  /** The outermost graph: where initializers live and where weight Casts go, so one folds once. */
  get rootGraph(): GraphBuilder {
    return this.root;
  }

  /** A nested graph (Loop/If body) whose initializers and constants go to the root graph. */
  subgraph(name: string): GraphBuilder {
    return new GraphBuilder(name, this);
  }

  /** Runs `fn` with `segment` appended to the node-name path. */
  scope<T>(segment: string, fn: () => T): T {
    this.scopeStack.push(segment);
    try {
      return fn();
    } finally {
      this.scopeStack.pop();
    }
  }

  get path(): string {
    return this.scopeStack.length ? `/${this.scopeStack.join('/')}` : '';
  }

  input(name: string, dtype: GraphDType, dims?: Dim[]): string {
    this.inputs.push({ name, dtype, dims });
    return name;
  }

  /** Declares `value` as a graph output, renaming it through Identity when the names differ. */
  output(value: string, name: string, dtype: GraphDType, dims?: Dim[]): string {
    if (value !== name) this.op('Identity', [value], { name: `/output/${name}`, outputs: [name] });
    this.outputs.push({ name, dtype, dims });
    return name;
  }

  op(opType: string, inputs: string[], options: OpOptions = {}): string[] {
    const name = this.uniqueName(options.name ?? `${this.path}/${opType}`);
    const outputs = Array.isArray(options.outputs)
      ? options.outputs
      : Array.from({ length: options.outputs ?? 1 }, (_, i) => `${name}_output_${i}`);
    this.nodes.push({
      name,
      opType,
      domain: options.domain ?? '',
      inputs,
      outputs,
      attrs: options.attrs ?? {},
    });
    return outputs;
  }

  /** Single-output shorthand. */
  op1(opType: string, inputs: string[], options: Omit<OpOptions, 'outputs'> = {}): string {
    return this.op(opType, inputs, options)[0];
  }

  initializer(name: string, dtype: GraphDType, dims: number[], data: InitializerDecl['data']): string {
    const root = this.root;
    if (root.initializers.some((i) => i.name === name)) throw new Error(`duplicate initializer ${name}`);
    root.initializers.push({ name, dtype, dims, data });
    return name;
  }

  /** A small constant, de-duplicated by dtype + dims + content across the whole model. */
  constant(dtype: 'float32' | 'int64' | 'int32', dims: number[], values: number[] | bigint[]): string {
    const root = this.root;
    const key = createHash('sha1')
      .update(`${dtype}|${dims.join(',')}|${values.map(String).join(',')}`)
      .digest('hex');
    const existing = root.constantsByHash.get(key);
    if (existing) return existing;
    const name = `const_${dtype}_${root.constantsByHash.size}`;
    let data: TensorData;
    if (dtype === 'int64') data = BigInt64Array.from(values.map((v) => BigInt(v)));
    else if (dtype === 'int32') data = Int32Array.from(values.map(Number));
    else data = Float32Array.from(values.map(Number));
    root.initializers.push({ name, dtype, dims, data, structural: true });
    root.constantsByHash.set(key, name);
    return name;
  }

  /** int64 1-D constant: the common case for shapes, axes, starts and ends. */
  ints(values: number[]): string {
    return this.constant('int64', [values.length], values);
  }

  /** float32 scalar constant. */
  scalar(value: number): string {
    return this.constant('float32', [], [value]);
  }

  private uniqueName(base: string): string {
    const taken = this.root.usedNames;
    let name = base;
    for (let i = 1; taken.has(name); i++) name = `${base}_${i}`;
    taken.add(name);
    return name;
  }
}
