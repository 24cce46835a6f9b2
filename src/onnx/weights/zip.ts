/**
 * Just enough of the zip format to read a `torch.save` archive lazily: the central directory
 * (with zip64 for checkpoints over 4 GiB), then each entry's data offset from its local header.
 * torch writes entries STORED (and 64-byte aligned), so a tensor is one positional read;
 * a DEFLATED entry (a re-zipped archive) is inflated whole when read.
 */
import { inflateRawSync } from 'node:zlib';
import { AppError } from '../../shared/errors.ts';
import type { RandomAccessFile } from './file-io.ts';

export interface ZipEntry {
  name: string;
  method: number; // 0 STORED, 8 DEFLATED
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

const EOCD_SIG = 0x06054b50;
const ZIP64_LOCATOR_SIG = 0x07064b50;
const ZIP64_EOCD_SIG = 0x06064b50;
const CENTRAL_SIG = 0x02014b50;
const LOCAL_SIG = 0x04034b50;

function bad(path: string, why: string): AppError {
  return new AppError('WEIGHTS_INVALID', `${path} is not a readable zip checkpoint: ${why}`);
}

function u64(v: DataView, off: number): number {
  return Number(v.getBigUint64(off, true));
}

export class ZipReader {
  readonly entries = new Map<string, ZipEntry>();
  private readonly dataOffsets = new Map<string, number>();

  constructor(private readonly file: RandomAccessFile) {
    this.readCentralDirectory();
  }

  private readCentralDirectory(): void {
    const { file } = this;
    // The end record is in the last 22 + 65535 (comment) bytes.
    const tailLen = Math.min(file.size, 22 + 65535 + 20);
    if (tailLen < 22) throw bad(file.path, 'file too small');
    const tailStart = file.size - tailLen;
    const tail = file.read(tailStart, tailLen);
    const tv = new DataView(tail.buffer);
    let eocd = -1;
    for (let i = tailLen - 22; i >= 0; i--) {
      if (tv.getUint32(i, true) === EOCD_SIG) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) throw bad(file.path, 'no end-of-central-directory record (truncated?)');
    let count = tv.getUint16(eocd + 10, true);
    let cdSize = tv.getUint32(eocd + 12, true);
    let cdOffset = tv.getUint32(eocd + 16, true);
    if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
      const loc = eocd - 20;
      if (loc < 0 || tv.getUint32(loc, true) !== ZIP64_LOCATOR_SIG)
        throw bad(file.path, 'zip64 locator missing');
      const z64Off = u64(tv, loc + 8);
      const z = new DataView(file.read(z64Off, 56).buffer);
      if (z.getUint32(0, true) !== ZIP64_EOCD_SIG) throw bad(file.path, 'zip64 end record missing');
      count = u64(z, 32);
      cdSize = u64(z, 40);
      cdOffset = u64(z, 48);
    }
    if (cdOffset + cdSize > file.size)
      throw bad(file.path, 'central directory lies past the end of the file (truncated?)');
    const cd = file.read(cdOffset, cdSize);
    const v = new DataView(cd.buffer);
    let p = 0;
    for (let i = 0; i < count; i++) {
      if (p + 46 > cdSize || v.getUint32(p, true) !== CENTRAL_SIG)
        throw bad(file.path, `central directory entry ${i} is corrupt`);
      const method = v.getUint16(p + 10, true);
      let compressedSize = v.getUint32(p + 20, true);
      let size = v.getUint32(p + 24, true);
      const nameLen = v.getUint16(p + 28, true);
      const extraLen = v.getUint16(p + 30, true);
      const commentLen = v.getUint16(p + 32, true);
      let localHeaderOffset = v.getUint32(p + 42, true);
      const name = Buffer.from(cd.subarray(p + 46, p + 46 + nameLen)).toString('utf8');
      // zip64 extended info (id 1) holds, in order, only the fields that overflowed above.
      let e = p + 46 + nameLen;
      const extraEnd = e + extraLen;
      while (e + 4 <= extraEnd) {
        const id = v.getUint16(e, true);
        const len = v.getUint16(e + 2, true);
        if (id === 1) {
          let q = e + 4;
          if (size === 0xffffffff) {
            size = u64(v, q);
            q += 8;
          }
          if (compressedSize === 0xffffffff) {
            compressedSize = u64(v, q);
            q += 8;
          }
          if (localHeaderOffset === 0xffffffff) localHeaderOffset = u64(v, q);
        }
        e += 4 + len;
      }
      this.entries.set(name, { name, method, compressedSize, size, localHeaderOffset });
      p = extraEnd + commentLen;
    }
  }

  /** Absolute file offset of an entry's (possibly compressed) bytes. */
  dataOffset(entry: ZipEntry): number {
    const cached = this.dataOffsets.get(entry.name);
    if (cached !== undefined) return cached;
    const h = new DataView(this.file.read(entry.localHeaderOffset, 30).buffer);
    if (h.getUint32(0, true) !== LOCAL_SIG)
      throw bad(this.file.path, `local header of ${entry.name} is corrupt`);
    // The local extra field can differ from the central one (torch pads it for alignment).
    const off = entry.localHeaderOffset + 30 + h.getUint16(26, true) + h.getUint16(28, true);
    if (off + entry.compressedSize > this.file.size)
      throw bad(this.file.path, `${entry.name} runs past the end of the file (truncated?)`);
    this.dataOffsets.set(entry.name, off);
    return off;
  }

  /** Reads `length` uncompressed bytes at `start` inside an entry. */
  readRange(entry: ZipEntry, start: number, length: number): Uint8Array {
    if (start < 0 || start + length > entry.size) {
      throw bad(
        this.file.path,
        `read of bytes ${start}..${start + length} is outside ${entry.name} (${entry.size} bytes)`,
      );
    }
    if (entry.method === 0) return this.file.read(this.dataOffset(entry) + start, length);
    if (entry.method !== 8)
      throw bad(this.file.path, `${entry.name} uses unsupported compression method ${entry.method}`);
    const raw = this.file.read(this.dataOffset(entry), entry.compressedSize);
    let inflated: Buffer;
    try {
      inflated = inflateRawSync(raw);
    } catch (cause) {
      throw new AppError('WEIGHTS_INVALID', `${this.file.path}: ${entry.name} does not inflate`, { cause });
    }
    // Copy into a fresh buffer so the caller gets an aligned, 0-offset view.
    return new Uint8Array(inflated.subarray(start, start + length));
  }

  readAll(entry: ZipEntry): Uint8Array {
    return this.readRange(entry, 0, entry.size);
  }
}
