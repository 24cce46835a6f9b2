/**
 * What a GPU worker needs, per model size and storage dtype, against what an instance type has:
 * host RAM while the model loads and GPU memory while it serves. Weight bytes come from the
 * model layout (src/onnx/weight-budget.ts), so this math follows the layout when it changes;
 * readConfig refuses a combination that does not fit, and infra/README.md's table is checked
 * against memoryNeeds() by test/infra/memory.test.ts.
 *
 * Not measured on a GPU (none is available where this was written): the constants below are
 * stated assumptions, and the activation term (activations.ts) is an estimate of each session's
 * largest run, checked against the CPU provider's real peaks by scripts/measure-run-memory.sh.
 */
import { type HarmonConfig, VARIANTS, type VariantName } from '../../src/model/config.ts';
import { SERVING_GRAPHS, type StorageDType, weightBudget } from '../../src/onnx/weight-budget.ts';
import { activationBreakdown } from './activations.ts';

export const GIB = 1024 ** 3;

export interface GpuInstance {
  gpu: string;
  /** What CUDA can allocate (nvidia-smi's total less the driver's reserve), GiB. */
  gpuGiB: number;
  ramGiB: number;
}

const SIZES = ['xlarge', '2xlarge', '4xlarge', '8xlarge', '16xlarge'] as const;
const G5_G6_RAM = [16, 32, 64, 128, 256];
const G6E_RAM = [32, 64, 128, 256, 512];

/** The single-GPU sizes readConfig accepts (one GPU task per instance). */
export const GPU_INSTANCES: Readonly<Record<string, GpuInstance>> = Object.fromEntries(
  SIZES.flatMap((s, i) => [
    [`g5.${s}`, { gpu: 'A10G 24 GB', gpuGiB: 22.4, ramGiB: G5_G6_RAM[i] }],
    [`g6.${s}`, { gpu: 'L4 24 GB', gpuGiB: 22.4, ramGiB: G5_G6_RAM[i] }],
    [`g6e.${s}`, { gpu: 'L40S 48 GB', gpuGiB: 44.9, ramGiB: G6E_RAM[i] }],
  ]),
);

/** Host memory the OS, the ECS agent and the GPU driver keep on every instance. */
export const INSTANCE_RESERVED_GIB = 2;
/** Node, onnxruntime with the CUDA/cuDNN/cuBLAS host libraries, tokenizer, DB and S3 clients. */
export const HOST_BASE_GIB = 1.5;
/** CUDA context, cuBLAS/cuDNN handles and workspaces. */
export const GPU_BASE_GIB = 1;
/**
 * GPU activations: each session's largest single run under the run budget
 * (src/model/run-budget.ts), summed, because each session's arena stays at its own peak
 * (activations.ts holds the formulas and the tensor shapes they follow).
 */
export function activationBytes(c: HarmonConfig): number {
  return activationBreakdown(c).total;
}

export interface MemoryNeeds {
  variant: VariantName;
  dtype: StorageDType;
  /** Model directory weight bytes (download, disk). */
  dirBytes: number;
  /** Weights the serving sessions hold (fp32: fp16 storage is widened at load). */
  residentBytes: number;
  activationBytes: number;
  /** Host RAM while loading on a GPU: base + the largest graph's weights in host memory. */
  hostLoadBytes: number;
  /** Host RAM of a CPU-only worker (EXECUTION_PROVIDERS=cpu): everything lives there. */
  hostCpuServeBytes: number;
  /** GPU memory while serving. */
  gpuServeBytes: number;
}

export function memoryNeeds(variant: VariantName, dtype: StorageDType): MemoryNeeds {
  const config = VARIANTS[variant];
  const w = weightBudget(config, dtype, SERVING_GRAPHS);
  const act = activationBytes(config);
  return {
    variant,
    dtype,
    dirBytes: w.dirBytes,
    residentBytes: w.residentBytes,
    activationBytes: act,
    hostLoadBytes: HOST_BASE_GIB * GIB + w.largestLoadBytes,
    hostCpuServeBytes: HOST_BASE_GIB * GIB + w.residentBytes + act,
    gpuServeBytes: GPU_BASE_GIB * GIB + w.residentBytes + act,
  };
}

/** `harmon-1.5b`, `harmon-0.5b-fp16`, `harmon-1.5b-o` -> the registered size the name starts with. */
export function variantOf(modelVariant: string): VariantName | undefined {
  const m = /^harmon-(0\.5b|1\.5b|tiny|small)(?:$|[-_.])/.exec(modelVariant);
  return m ? (m[1] as VariantName) : undefined;
}

export interface Fit {
  needs: MemoryNeeds;
  instance: GpuInstance;
  /** Task memory reservation: the host RAM the load needs, rounded up to 256 MiB. */
  reservationMiB: number;
  /** What the task may reserve on this instance. */
  availableMiB: number;
  problems: string[];
}

export function fitOn(instanceType: string, variant: VariantName, dtype: StorageDType): Fit {
  const instance = GPU_INSTANCES[instanceType];
  if (!instance) throw new Error(`no memory figures for instance type ${instanceType}`);
  const needs = memoryNeeds(variant, dtype);
  const reservationMiB = Math.ceil(needs.hostLoadBytes / 2 ** 28) * 256;
  const availableMiB = (instance.ramGiB - INSTANCE_RESERVED_GIB) * 1024;
  const gib = (b: number) => `${(b / GIB).toFixed(1)} GiB`;
  const problems: string[] = [];
  if (reservationMiB > availableMiB)
    problems.push(
      `loading needs ${gib(needs.hostLoadBytes)} of host RAM, ${instanceType} leaves ${gib(availableMiB * 2 ** 20)}`,
    );
  if (needs.gpuServeBytes > instance.gpuGiB * GIB)
    problems.push(
      `serving needs ${gib(needs.gpuServeBytes)} of GPU memory, the ${instance.gpu} of ${instanceType} has ${instance.gpuGiB} GiB`,
    );
  return { needs, instance, reservationMiB, availableMiB, problems };
}

/** The worker task's memory reservation for a (validated) deployment config. */
export function workerReservationMiB(c: {
  gpuInstanceType: string;
  modelVariant: string;
  modelDtype: 'fp16' | 'fp32';
}): number {
  const size = variantOf(c.modelVariant);
  if (!size) throw new Error(`modelVariant ${c.modelVariant} names no registered size`);
  return fitOn(c.gpuInstanceType, size, c.modelDtype === 'fp16' ? 'float16' : 'float32').reservationMiB;
}
