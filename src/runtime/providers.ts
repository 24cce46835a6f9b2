/**
 * Execution-provider selection. A requested provider that cannot run here is an error, never a
 * quiet fall back to CPU: a GPU worker that runs on CPU is ~100x slower and still looks healthy.
 *
 * `listSupportedBackends()` only says what this onnxruntime-node build knows (it lists `cuda` on
 * every Linux x64 install, whether or not the CUDA libraries were installed), so each requested
 * non-CPU provider is probed by creating a one-node session with it alone: that is what loads
 * its shared library and opens the device, and it fails the same way a real graph would.
 */
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { AppError } from '../shared/errors.ts';

// onnx-proto is CommonJS: take the namespace off the default export (named ESM import fails).
const { onnx } = onnxProto;

/** y = Identity(x), x: float[1]. The smallest model every provider accepts. */
function probeModel(): Uint8Array {
  const value = (name: string) => ({
    name,
    type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: [{ dimValue: 1 }] } } },
  });
  return onnx.ModelProto.encode({
    irVersion: 10,
    opsetImport: [{ domain: '', version: 21 }],
    graph: {
      name: 'provider_probe',
      node: [{ opType: 'Identity', input: ['x'], output: ['y'] }],
      input: [value('x')],
      output: [value('y')],
    },
  }).finish();
}

// One probe per provider per thread: several model directories share the answer.
const probes = new Map<string, Promise<string | undefined>>();

/** undefined when `provider` works here, else why not (onnxruntime's first line). */
function probe(provider: string): Promise<string | undefined> {
  let p = probes.get(provider);
  if (!p) {
    p = ort.InferenceSession.create(probeModel(), { executionProviders: [provider] }).then(
      async (s) => {
        await s.release();
        return undefined;
      },
      (e: unknown) => (e instanceof Error ? e.message : String(e)).split('\n')[0],
    );
    probes.set(provider, p);
  }
  return p;
}

/**
 * The providers to create sessions with: `requested` in order (CPU appended, since onnxruntime
 * places the nodes a device provider lacks kernels for on CPU). Throws
 * EXECUTION_PROVIDER_UNAVAILABLE naming every requested provider that cannot run here.
 */
export async function selectExecutionProviders(requested: readonly string[]): Promise<string[]> {
  const wanted = [...new Set(requested.map((p) => p.trim().toLowerCase()).filter(Boolean))];
  const known = ort.listSupportedBackends().map((b) => b.name);
  const problems: string[] = [];
  const missing: string[] = [];
  for (const p of wanted) {
    if (p === 'cpu') continue;
    const why = known.includes(p) ? await probe(p) : `not a provider this onnxruntime-node build knows`;
    if (why !== undefined) {
      missing.push(p);
      problems.push(`${p} (${why})`);
    }
  }
  if (missing.length) {
    const usable = ['cpu', ...wanted.filter((p) => p !== 'cpu' && !missing.includes(p))];
    throw new AppError(
      'EXECUTION_PROVIDER_UNAVAILABLE',
      `execution provider ${problems.join('; ')} is not available here; available: ${usable.join(', ')} ` +
        `(this build knows: ${known.join(', ')}). Install the provider's runtime, or set ` +
        `EXECUTION_PROVIDERS=cpu to run on CPU on purpose.`,
      { details: { requested: wanted, unavailable: missing, available: usable, known } },
    );
  }
  return wanted.includes('cpu') ? wanted : [...wanted, 'cpu'];
}
