/**
 * Merges several finished GraphBuilders into one graph (spec §6.10: mar_encoder → llm_image_step
 * → mar_decoder as `mar_step.onnx`), so intermediate tensors stay inside one session instead of
 * crossing the host between runs.
 *
 *   part "a" (inputs x, y; outputs u)       part "b" (inputs u, w; output z)
 *        x ◄── composite input "x"               u ◄── link a:u
 *        y ◄── composite input "y"               w ◄── composite input "y" (fan-out)
 *                                                z ──► composite output "z"
 *
 * Naming (why): every part was built with its own name space, so two parts may both hold
 * `const_int64_0` or `/mar/Add`. Each part's node, value and initializer names get the path
 * prefix `/<part>` (`/mar_encoder/mar/image/Add`, `/llm_image_step/llm.model.norm.weight`).
 * The exception is an initializer whose name appears in several parts with the same dtype, dims
 * and data (same array or function object, else byte-equal content): it is kept once under its
 * original name, so a weight two parts read is stored once. Part inputs are replaced by the
 * composite input or linked output they are bound to; a composite output takes over the name of
 * the part value it exposes (no Identity node).
 */
import { AppError } from '../../shared/errors.ts';
import type { GraphDType } from './dtypes.ts';
import {
  type AttrValue,
  type Dim,
  GraphBuilder,
  type InitializerDecl,
  type NodeDecl,
  type TensorData,
} from './graph-builder.ts';

/** `"<part>:<port>"`: ports may contain dots (`past_key_values.0.key`), part names may not contain ':'. */
export type PortRef = string;

export interface ComposeSpec {
  name: string;
  /** Parts in execution order: a link may only go from an earlier part to a later one. */
  parts: Array<{ name: string; graph: GraphBuilder }>;
  /** [from output, to input]: `['mar_encoder:llm_in', 'llm_image_step:inputs_embeds']`. */
  links: Array<[PortRef, PortRef]>;
  /** Composite inputs; one may feed several part inputs (all must share its dtype). */
  inputs: Array<{ name: string; to: PortRef[]; dims?: Dim[] }>;
  outputs: Array<{ name: string; from: PortRef; dims?: Dim[] }>;
}

function bad(message: string): AppError {
  return new AppError('BAD_CONFIG', `compose: ${message}`);
}

function parsePort(ref: PortRef): { part: string; port: string } {
  const i = ref.indexOf(':');
  if (i <= 0 || i === ref.length - 1) throw bad(`"${ref}" is not of the form part:port`);
  return { part: ref.slice(0, i), port: ref.slice(i + 1) };
}

function prefixed(part: string, name: string): string {
  return name.startsWith('/') ? `/${part}${name}` : `/${part}/${name}`;
}

function bytesOf(d: TensorData): Uint8Array {
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

function resolve(d: InitializerDecl['data']): TensorData {
  return typeof d === 'function' ? d() : d;
}

/** "Same source": same dtype/dims and the same data object, else identical bytes (resolved lazily, collisions only). */
function sameInitializer(a: InitializerDecl, b: InitializerDecl): boolean {
  if (a.dtype !== b.dtype || a.dims.length !== b.dims.length || a.dims.some((d, i) => d !== b.dims[i]))
    return false;
  if (a.data === b.data) return true;
  const x = bytesOf(resolve(a.data));
  const y = bytesOf(resolve(b.data));
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

export function composeGraphs(spec: ComposeSpec): GraphBuilder {
  const order = new Map(spec.parts.map((p, i) => [p.name, i]));
  if (order.size !== spec.parts.length) throw bad('part names must be unique');
  for (const p of spec.parts) if (p.name.includes(':')) throw bad(`part name "${p.name}" contains ':'`);
  const graphOf = (part: string): GraphBuilder => {
    const i = order.get(part);
    if (i === undefined) throw bad(`unknown part "${part}"`);
    return spec.parts[i].graph;
  };
  const inputDecl = (ref: PortRef) => {
    const { part, port } = parsePort(ref);
    const d = graphOf(part).inputs.find((v) => v.name === port);
    if (!d) throw bad(`part ${part} has no input "${port}"`);
    return { part, port, decl: d };
  };
  const outputDecl = (ref: PortRef) => {
    const { part, port } = parsePort(ref);
    const d = graphOf(part).outputs.find((v) => v.name === port);
    if (!d) throw bad(`part ${part} has no output "${port}"`);
    return { part, port, decl: d };
  };

  // Per part: original name -> composite name, for the names that are not simply prefixed.
  const renames = new Map<string, Map<string, string>>(spec.parts.map((p) => [p.name, new Map()]));
  const bindInput = (ref: PortRef, value: string, dtype: GraphDType) => {
    const { part, port, decl } = inputDecl(ref);
    const map = renames.get(part)!;
    if (map.has(port)) throw bad(`input ${ref} is bound twice`);
    if (decl.dtype !== dtype) throw bad(`input ${ref} is ${decl.dtype}, bound to a ${dtype} value`);
    map.set(port, value);
  };

  const g = new GraphBuilder(spec.name);
  for (const input of spec.inputs) {
    if (!input.to.length) throw bad(`composite input ${input.name} feeds nothing`);
    const first = inputDecl(input.to[0]).decl;
    for (const ref of input.to) bindInput(ref, input.name, first.dtype);
    g.input(input.name, first.dtype, input.dims ?? first.dims);
  }

  // Composite outputs take the exposed value's name; a second exposure of one value gets an Identity.
  const direct = new Set<string>(); // composite output names that renamed their part value
  const seen = new Set<string>();
  for (const out of spec.outputs) {
    const { part, port } = outputDecl(out.from);
    const key = `${part}:${port}`;
    if (seen.has(key)) continue;
    seen.add(key);
    direct.add(out.name);
    renames.get(part)!.set(port, out.name);
  }
  const valueName = (part: string, port: string): string =>
    renames.get(part)!.get(port) ?? prefixed(part, port);

  for (const [from, to] of spec.links) {
    const src = outputDecl(from);
    const dst = inputDecl(to);
    if (order.get(src.part)! >= order.get(dst.part)!) throw bad(`link ${from} -> ${to} does not go forward`);
    bindInput(to, valueName(src.part, src.port), src.decl.dtype);
  }
  for (const p of spec.parts) {
    for (const i of p.graph.inputs) {
      if (!renames.get(p.name)!.has(i.name))
        throw bad(`input ${p.name}:${i.name} is neither a composite input nor linked`);
    }
  }

  // Initializers: shared when genuinely the same tensor in every part that names it.
  const byName = new Map<string, InitializerDecl[]>();
  for (const p of spec.parts)
    for (const init of p.graph.initializers) byName.set(init.name, [...(byName.get(init.name) ?? []), init]);
  const shared = new Set<string>();
  for (const [name, decls] of byName) {
    if (decls.length > 1 && decls.every((d) => sameInitializer(d, decls[0]))) shared.add(name);
  }
  for (const p of spec.parts) {
    const map = renames.get(p.name)!;
    for (const init of p.graph.initializers) {
      if (shared.has(init.name)) {
        map.set(init.name, init.name);
        if (!g.initializers.some((i) => i.name === init.name))
          g.initializer(init.name, init.dtype, init.dims, init.data);
      } else {
        g.initializer(prefixed(p.name, init.name), init.dtype, init.dims, init.data);
      }
    }
  }

  for (const p of spec.parts) {
    const rename = (v: string) => (v === '' ? '' : valueName(p.name, v));
    copyNodes(g, p.graph.nodes, p.name, rename);
  }
  for (const out of spec.outputs) {
    const { part, port, decl } = outputDecl(out.from);
    const dims = out.dims ?? decl.dims;
    if (direct.has(out.name)) g.outputs.push({ name: out.name, dtype: decl.dtype, dims });
    else g.output(valueName(part, port), out.name, decl.dtype, dims);
  }
  return g;
}

/** Copies nodes with renamed values; Loop/If bodies are rebuilt under the same renaming. */
function copyNodes(
  target: GraphBuilder,
  nodes: NodeDecl[],
  part: string,
  rename: (v: string) => string,
): void {
  for (const n of nodes) {
    const attrs: Record<string, AttrValue> = {};
    for (const [k, v] of Object.entries(n.attrs))
      attrs[k] = v instanceof GraphBuilder ? copySubgraph(target, v, part, rename) : v;
    target.op(n.opType, n.inputs.map(rename), {
      name: prefixed(part, n.name),
      outputs: n.outputs.map(rename),
      attrs,
      domain: n.domain,
    });
  }
}

function copySubgraph(
  parent: GraphBuilder,
  body: GraphBuilder,
  part: string,
  rename: (v: string) => string,
): GraphBuilder {
  const sub = parent.subgraph(body.name);
  for (const i of body.inputs) sub.inputs.push({ ...i, name: rename(i.name) });
  for (const o of body.outputs) sub.outputs.push({ ...o, name: rename(o.name) });
  copyNodes(sub, body.nodes, part, rename);
  return sub;
}
