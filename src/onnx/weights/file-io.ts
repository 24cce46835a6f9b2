/** Positional reads shared by the readers: never load a whole checkpoint, only the bytes asked for. */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { AppError } from '../../shared/errors.ts';

export class RandomAccessFile {
  readonly size: number;
  private fd: number | undefined;

  constructor(readonly path: string) {
    try {
      this.fd = openSync(path, 'r');
    } catch (cause) {
      throw new AppError('WEIGHTS_INVALID', `cannot open weights file ${path}`, { cause });
    }
    this.size = fstatSync(this.fd).size;
  }

  /** Reads exactly `length` bytes at `position` into a fresh (8-byte aligned) buffer. */
  read(position: number, length: number): Uint8Array {
    if (this.fd === undefined) throw new AppError('INTERNAL', `${this.path} was read after close()`);
    if (position < 0 || position + length > this.size) {
      throw new AppError(
        'WEIGHTS_INVALID',
        `${this.path} is truncated or corrupt: wanted bytes ${position}..${position + length} of a ${this.size}-byte file`,
      );
    }
    const out = new Uint8Array(length);
    let done = 0;
    // readSync may return short counts and caps one call at ~2 GiB, so loop in chunks.
    while (done < length) {
      const n = readSync(this.fd, out, done, Math.min(length - done, 1 << 30), position + done);
      if (n <= 0)
        throw new AppError(
          'WEIGHTS_INVALID',
          `${this.path}: unexpected end of file at byte ${position + done}`,
        );
      done += n;
    }
    return out;
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}
