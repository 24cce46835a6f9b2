/**
 * What every weight reader returns: a lazy index of named tensors. Nothing is read until
 * `read()` is called, so a converter can stream a multi-GB checkpoint tensor by tensor instead of
 * holding it twice (once parsed, once serialised).
 */
import { numelOf, type StoredDType } from './dtype.ts';

export interface WeightEntry {
  readonly name: string;
  /** dtype as stored in the file (converted on read). */
  readonly dtype: StoredDType;
  readonly shape: readonly number[];
  /** Reads the tensor and converts it to float32 (the builders' working type). */
  read(): Float32Array;
}

export interface WeightSource {
  /** Every tensor name in the file, in file order. */
  names(): string[];
  get(name: string): WeightEntry | undefined;
  close(): void;
}

/** An in-memory source, used by `harmon tiny` (seeded random weights) and by tests. */
export class MemoryWeights implements WeightSource {
  private readonly map = new Map<string, WeightEntry>();

  set(name: string, shape: readonly number[], data: Float32Array): this {
    const n = numelOf(shape);
    if (n !== data.length)
      throw new Error(`MemoryWeights.set(${name}): shape ${shape} needs ${n} values, got ${data.length}`);
    this.map.set(name, { name, dtype: 'float32', shape: [...shape], read: () => data });
    return this;
  }

  /**
   * A tensor made on each read and not kept: a 1.5B random model (10 GB of fp32) then never
   * exists in memory at once, only the tensor being written. `make` must be deterministic.
   */
  setLazy(name: string, shape: readonly number[], make: () => Float32Array): this {
    const n = numelOf(shape);
    const read = () => {
      const data = make();
      if (data.length !== n)
        throw new Error(
          `MemoryWeights.setLazy(${name}): shape ${shape} needs ${n} values, got ${data.length}`,
        );
      return data;
    };
    this.map.set(name, { name, dtype: 'float32', shape: [...shape], read });
    return this;
  }

  names(): string[] {
    return [...this.map.keys()];
  }

  get(name: string): WeightEntry | undefined {
    return this.map.get(name);
  }

  close(): void {}
}
