/**
 * Test-only: emits protocol-2 pickle bytes the way CPython's Pickler does for the small set of
 * objects torch.save writes (dicts, OrderedDict via REDUCE, tuples, ints, floats, strings,
 * globals with BINPUT/BINGET memoisation, persistent ids).
 */
export class PickleWriter {
  private readonly out: number[] = [];
  private memoNext = 0;
  private readonly globals = new Map<string, number>();

  proto(): this {
    this.out.push(0x80, 2);
    return this;
  }

  raw(...bytes: number[]): this {
    this.out.push(...bytes);
    return this;
  }

  private u32(n: number): void {
    this.out.push(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff);
  }

  /** BINPUT / LONG_BINPUT the value on top of the stack. */
  put(): number {
    const i = this.memoNext++;
    if (i < 256) this.out.push(0x71, i);
    else {
      this.out.push(0x72);
      this.u32(i);
    }
    return i;
  }

  get(i: number): this {
    if (i < 256) this.out.push(0x68, i);
    else {
      this.out.push(0x6a);
      this.u32(i);
    }
    return this;
  }

  /** GLOBAL the first time (memoised), BINGET afterwards, as CPython does. */
  global(module: string, name: string): this {
    const key = `${module}\n${name}`;
    const seen = this.globals.get(key);
    if (seen !== undefined) return this.get(seen);
    this.out.push(0x63, ...Buffer.from(`${module}\n${name}\n`, 'latin1'));
    this.globals.set(key, this.put());
    return this;
  }

  str(s: string): this {
    const b = Buffer.from(s, 'utf8');
    this.out.push(0x58);
    this.u32(b.length);
    this.out.push(...b);
    this.put();
    return this;
  }

  int(n: number): this {
    if (n >= 0 && n < 256) this.out.push(0x4b, n);
    else if (n >= 0 && n < 65536) this.out.push(0x4d, n & 0xff, n >>> 8);
    else if (n >= -(2 ** 31) && n < 2 ** 31) {
      this.out.push(0x4a);
      this.u32(n >>> 0);
    } else {
      // LONG1 little-endian two's complement, as pickle writes ints beyond 32 bits.
      let v = BigInt(n);
      const bytes: number[] = [];
      do {
        bytes.push(Number(v & 0xffn));
        v >>= 8n;
      } while (
        !(v === 0n && (bytes[bytes.length - 1] & 0x80) === 0) &&
        !(v === -1n && (bytes[bytes.length - 1] & 0x80) !== 0)
      );
      this.out.push(0x8a, bytes.length, ...bytes);
    }
    return this;
  }

  float(x: number): this {
    const b = Buffer.alloc(8);
    b.writeDoubleBE(x);
    this.out.push(0x47, ...b);
    return this;
  }

  none(): this {
    return this.raw(0x4e);
  }

  bool(v: boolean): this {
    return this.raw(v ? 0x88 : 0x89);
  }

  mark(): this {
    return this.raw(0x28);
  }

  /** A tuple of the values written by `body` (TUPLE1/2/3 for short ones, MARK..TUPLE otherwise). */
  tuple(n: number, body: () => void): this {
    if (n === 0) return this.raw(0x29);
    if (n > 3) this.mark();
    body();
    this.out.push(n === 1 ? 0x85 : n === 2 ? 0x86 : n === 3 ? 0x87 : 0x74);
    this.put();
    return this;
  }

  ints(xs: number[]): this {
    return this.tuple(xs.length, () => {
      for (const x of xs) this.int(x);
    });
  }

  emptyDict(): this {
    this.raw(0x7d);
    this.put();
    return this;
  }

  emptyList(): this {
    this.raw(0x5d);
    this.put();
    return this;
  }

  /** `collections.OrderedDict()` as protocol 2 writes it: GLOBAL, (), REDUCE. */
  orderedDict(): this {
    this.global('collections', 'OrderedDict').raw(0x29, 0x52);
    this.put();
    return this;
  }

  setitems(body: () => void): this {
    this.mark();
    body();
    return this.raw(0x75);
  }

  appends(body: () => void): this {
    this.mark();
    body();
    return this.raw(0x65);
  }

  reduce(): this {
    this.raw(0x52);
    this.put();
    return this;
  }

  build(): this {
    return this.raw(0x62);
  }

  binpersid(): this {
    return this.raw(0x51);
  }

  stop(): Uint8Array {
    this.out.push(0x2e);
    return Uint8Array.from(this.out);
  }
}
