/**
 * A minimal pickle VM for checkpoint files, written from the pickle opcode table (protocols 0-4,
 * minus the text-quoted string opcodes and the extension registry). It executes no Python:
 * GLOBAL only names a class, REDUCE/NEWOBJ/BUILD call a caller-supplied hook (torch tensor
 * rebuilders) and otherwise produce an opaque PyObject, so optimizer state, epoch counters or
 * Lightning hyper-parameters parse without crashing and are simply not tensors.
 *
 * Value mapping: None -> null, bool, int -> number (bigint beyond 2^53), float -> number,
 * str -> string, bytes -> Uint8Array, list and tuple -> array, dict/OrderedDict -> Map.
 */
import { AppError } from '../../shared/errors.ts';

export class PyGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
  get qualname(): string {
    return `${this.module}.${this.name}`;
  }
}

/** Anything we do not model: the call that would have built it, kept for debugging. */
export class PyObject {
  state: PyValue = null;
  constructor(
    readonly callable: PyValue,
    readonly args: PyValue,
  ) {}
}

export type PyValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PyValue[]
  | Map<PyValue, PyValue>
  | PyGlobal
  | PyObject
  | { readonly kind: string }; // values produced by hooks (tensor and storage references)

export interface UnpickleHooks {
  /** BINPERSID / PERSID: turn a persistent id (torch: a storage tuple) into a value. */
  persistentLoad?(pid: PyValue): PyValue;
  /** REDUCE with a GLOBAL callable; return undefined to fall back to the default handling. */
  reduce?(fn: PyGlobal, args: PyValue[]): PyValue | undefined;
}

class Mark {}
const MARK = new Mark();

function fail(why: string, truncated = false): AppError {
  return new AppError('WEIGHTS_INVALID', `checkpoint pickle is corrupt or unsupported: ${why}`, {
    details: { truncated },
  });
}

/** Runs one pickle starting at `start`; returns the value and the offset just past STOP. */
export function unpickle(
  data: Uint8Array,
  hooks: UnpickleHooks = {},
  start = 0,
): { value: PyValue; end: number } {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const stack: (PyValue | Mark)[] = [];
  const marks: number[] = [];
  const memo = new Map<number, PyValue>();
  let p = start;

  const need = (n: number) => {
    if (p + n > data.length) throw fail(`unexpected end of data at byte ${p}`, true);
  };
  /** Advances past `n` bytes and returns where they start. */
  const take = (n: number): number => {
    need(n);
    p += n;
    return p - n;
  };
  const u8 = () => data[take(1)];
  const u16 = () => view.getUint16(take(2), true);
  const u32 = () => view.getUint32(take(4), true);
  const i32 = () => view.getInt32(take(4), true);
  const u64 = () => Number(view.getBigUint64(take(8), true));
  const bytes = (n: number) => {
    const at = take(n);
    return data.slice(at, at + n);
  };
  const utf8 = (n: number) => Buffer.from(bytes(n)).toString('utf8');
  const line = () => {
    const end = data.indexOf(0x0a, p);
    if (end < 0) throw fail('unterminated text opcode', true);
    const s = Buffer.from(data.subarray(p, end)).toString('latin1');
    p = end + 1;
    return s;
  };
  const pop = (): PyValue => {
    const v = stack.pop();
    if (v === undefined || v instanceof Mark) throw fail('stack underflow');
    return v;
  };
  const top = (): PyValue => {
    const v = stack[stack.length - 1];
    if (v === undefined || v instanceof Mark) throw fail('stack underflow');
    return v;
  };
  const popMark = (): PyValue[] => {
    const m = marks.pop();
    if (m === undefined) throw fail('MARK missing');
    const items = stack.splice(m) as PyValue[];
    items.shift(); // the Mark itself
    return items;
  };
  const longLE = (b: Uint8Array): number | bigint => {
    if (b.length === 0) return 0;
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
    if (b[b.length - 1] & 0x80) v -= 1n << BigInt(8 * b.length);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const setItems = (d: PyValue, kv: PyValue[]) => {
    if (!(d instanceof Map)) return; // setting items on an opaque object: nothing to keep
    for (let i = 0; i + 1 < kv.length; i += 2) d.set(kv[i], kv[i + 1]);
  };
  const call = (fn: PyValue, args: PyValue): PyValue => {
    const argv = Array.isArray(args) ? args : [];
    if (fn instanceof PyGlobal) {
      const hooked = hooks.reduce?.(fn, argv);
      if (hooked !== undefined) return hooked;
      if (fn.qualname === 'collections.OrderedDict' || fn.qualname === 'builtins.dict') return new Map();
      // Protocol 2 pickles Python 3 bytes as _codecs.encode(text, 'latin1').
      if (fn.qualname === '_codecs.encode' && typeof argv[0] === 'string')
        return new Uint8Array(Buffer.from(argv[0], 'latin1'));
    }
    return new PyObject(fn, args);
  };

  for (;;) {
    const op = u8();
    // biome-ignore format: one line per opcode reads as the opcode table it implements
    switch (op) {
      case 0x80: u8(); break; // PROTO
      case 0x95: u64(); break; // FRAME: framing is only a read-ahead hint
      case 0x2e: return { value: pop(), end: p }; // STOP
      case 0x28: marks.push(stack.length); stack.push(MARK); break; // MARK
      case 0x30: pop(); break; // POP
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: stack.push(top()); break; // DUP
      case 0x7d: stack.push(new Map()); break; // EMPTY_DICT
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x29: stack.push([]); break; // EMPTY_TUPLE
      case 0x8f: stack.push(new PyObject(new PyGlobal('builtins', 'set'), [])); break; // EMPTY_SET
      case 0x90: popMark(); break; // ADDITEMS (sets are opaque)
      case 0x91: stack.push(new PyObject(new PyGlobal('builtins', 'frozenset'), popMark())); break; // FROZENSET
      case 0x64: { const m = new Map(); setItems(m, popMark()); stack.push(m); break; } // DICT
      case 0x6c: case 0x74: stack.push(popMark()); break; // LIST, TUPLE
      case 0x85: stack.push([pop()]); break; // TUPLE1
      case 0x86: { const b = pop(); stack.push([pop(), b]); break; } // TUPLE2
      case 0x87: { const c = pop(); const b = pop(); stack.push([pop(), b, c]); break; } // TUPLE3
      case 0x73: { const v = pop(); const k = pop(); setItems(top(), [k, v]); break; } // SETITEM
      case 0x75: { const kv = popMark(); setItems(top(), kv); break; } // SETITEMS
      case 0x61: { const v = pop(); const l = top(); if (Array.isArray(l)) l.push(v); break; } // APPEND
      case 0x65: { const vs = popMark(); const l = top(); if (Array.isArray(l)) l.push(...vs); break; } // APPENDS
      case 0x58: stack.push(utf8(u32())); break; // BINUNICODE
      case 0x8c: stack.push(utf8(u8())); break; // SHORT_BINUNICODE
      case 0x8d: stack.push(utf8(u64())); break; // BINUNICODE8
      case 0x54: stack.push(Buffer.from(bytes(u32())).toString('latin1')); break; // BINSTRING (py2 str)
      case 0x55: stack.push(Buffer.from(bytes(u8())).toString('latin1')); break; // SHORT_BINSTRING
      case 0x42: stack.push(bytes(u32())); break; // BINBYTES
      case 0x43: stack.push(bytes(u8())); break; // SHORT_BINBYTES
      case 0x8e: case 0x96: stack.push(bytes(u64())); break; // BINBYTES8, BYTEARRAY8
      case 0x4a: stack.push(i32()); break; // BININT
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(u16()); break; // BININT2
      case 0x8a: stack.push(longLE(bytes(u8()))); break; // LONG1
      case 0x8b: stack.push(longLE(bytes(u32()))); break; // LONG4
      case 0x49: { const s = line(); stack.push(s === '01' ? true : s === '00' ? false : Number.parseInt(s, 10)); break; } // INT
      case 0x4c: stack.push(Number.parseInt(line().replace(/L$/, ''), 10)); break; // LONG (text)
      case 0x47: stack.push(view.getFloat64(take(8), false)); break; // BINFLOAT (big-endian)
      case 0x46: stack.push(Number.parseFloat(line())); break; // FLOAT (text)
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x4e: stack.push(null); break; // NONE
      case 0x71: memo.set(u8(), top()); break; // BINPUT
      case 0x72: memo.set(u32(), top()); break; // LONG_BINPUT
      case 0x70: memo.set(Number.parseInt(line(), 10), top()); break; // PUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x68: case 0x6a: case 0x67: { // BINGET, LONG_BINGET, GET
        const k = op === 0x68 ? u8() : op === 0x6a ? u32() : Number.parseInt(line(), 10);
        if (!memo.has(k)) throw fail(`memo key ${k} missing`);
        stack.push(memo.get(k) as PyValue);
        break;
      }
      case 0x63: { const mod = line(); stack.push(new PyGlobal(mod, line())); break; } // GLOBAL
      case 0x93: { const name = pop(); const mod = pop(); stack.push(new PyGlobal(String(mod), String(name))); break; } // STACK_GLOBAL
      case 0x52: { const args = pop(); stack.push(call(pop(), args)); break; } // REDUCE
      case 0x81: { const args = pop(); stack.push(call(pop(), args)); break; } // NEWOBJ
      case 0x92: { pop(); const args = pop(); stack.push(call(pop(), args)); break; } // NEWOBJ_EX (kwargs dropped)
      case 0x6f: { const items = popMark(); stack.push(call(items[0] ?? null, items.slice(1))); break; } // OBJ
      case 0x69: { const mod = line(); const g = new PyGlobal(mod, line()); stack.push(call(g, popMark())); break; } // INST
      case 0x62: { // BUILD: state goes onto opaque objects; dict attributes (OrderedDict._metadata) are dropped
        const state = pop();
        const obj = top();
        if (obj instanceof PyObject) obj.state = state;
        break;
      }
      case 0x51: { const pid = pop(); stack.push(hooks.persistentLoad ? hooks.persistentLoad(pid) : pid); break; } // BINPERSID
      case 0x50: { const pid = line(); stack.push(hooks.persistentLoad ? hooks.persistentLoad(pid) : pid); break; } // PERSID
      default:
        throw fail(`opcode 0x${op.toString(16).padStart(2, '0')} at byte ${p - 1} is not supported`);
    }
  }
}
