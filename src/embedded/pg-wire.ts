/**
 * Postgres wire-protocol framing for the embedded server (pglite-server.ts): splitting the
 * client's byte stream into messages and batches, reading the SQL of Query/Parse messages for
 * LISTEN/UNLISTEN, and pulling NotificationResponse messages out of PGlite's output so they can
 * be routed to the connection that listens instead of the one whose query produced them.
 */

export const SSL_REQUEST_CODE = 80877103;
export const GSSENC_REQUEST_CODE = 80877104;
export const CANCEL_REQUEST_CODE = 80877102;

/** One frontend message; `type` is null for the untyped startup-phase messages. */
export type Frame = { type: string | null; bytes: Buffer };

/**
 * Messages after which the client waits for an answer: everything up to one of them is a batch
 * that must run against PGlite without another connection's messages in between. Copy
 * completion ('c', 'f') ends the CopyData stream of COPY FROM STDIN.
 */
const BATCH_END = new Set(['S', 'Q', 'H', 'X', 'c', 'f']);

export function endsBatch(frame: Frame): boolean {
  return frame.type === null || BATCH_END.has(frame.type);
}

/**
 * Incremental splitter for one connection. Before the startup message, messages have no type
 * byte (SSLRequest, GSSENCRequest, CancelRequest, StartupMessage); after it, every message is
 * type byte + int32 length (which counts itself but not the type byte).
 */
export class FrontendSplitter {
  #buf: Buffer = Buffer.alloc(0);
  #started = false;

  push(chunk: Buffer): Frame[] {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    const frames: Frame[] = [];
    let off = 0;
    for (;;) {
      const rest = this.#buf.length - off;
      if (this.#started) {
        if (rest < 5) break;
        const len = 1 + this.#buf.readInt32BE(off + 1);
        if (len < 5) throw new Error(`invalid message length ${len - 1}`);
        if (rest < len) break;
        const bytes = this.#buf.subarray(off, off + len);
        frames.push({ type: String.fromCharCode(bytes[0] ?? 0), bytes });
        off += len;
      } else {
        if (rest < 8) break;
        const len = this.#buf.readInt32BE(off);
        if (len < 8 || len > 10_000) throw new Error(`invalid startup packet length ${len}`);
        if (rest < len) break;
        const bytes = this.#buf.subarray(off, off + len);
        const code = bytes.readInt32BE(4);
        // SSL/GSS/Cancel requests precede (or replace) the startup message; anything else is it.
        if (code !== SSL_REQUEST_CODE && code !== GSSENC_REQUEST_CODE && code !== CANCEL_REQUEST_CODE) {
          this.#started = true;
        }
        frames.push({ type: null, bytes });
        off += len;
      }
    }
    // Copy the tail so the (possibly large) consumed chunk can be collected.
    this.#buf = off === 0 ? this.#buf : Buffer.from(this.#buf.subarray(off));
    return frames;
  }
}

function cstring(buf: Buffer, start: number): { value: string; next: number } {
  const end = buf.indexOf(0, start);
  const stop = end === -1 ? buf.length : end;
  return { value: buf.toString('utf8', start, stop), next: stop + 1 };
}

/** The SQL text of a Query ('Q') or Parse ('P') message; undefined for every other message. */
export function sqlOf(frame: Frame): string | undefined {
  if (frame.type === 'Q') return cstring(frame.bytes, 5).value;
  if (frame.type === 'P') {
    const name = cstring(frame.bytes, 5);
    return cstring(frame.bytes, name.next).value;
  }
  return undefined;
}

export type ListenChange = { op: 'listen' | 'unlisten'; channel: string };

/** Strips comments and string literals so that `SELECT 'LISTEN x'` is not read as a LISTEN. */
function stripLiterals(sql: string): string {
  return sql
    .replace(/--[^\n]*/g, ' ')
    .replace(/\/\*[\s\S]*?\*\//g, ' ')
    .replace(/\$([A-Za-z_]\w*)?\$[\s\S]*?\$\1\$/g, "''")
    .replace(/[Ee]?'(?:[^']|'')*'/g, "''");
}

const LISTEN_STATEMENT = /(?:^|;)\s*(UN)?LISTEN\s+("(?:[^"]|"")+"|[A-Za-z_][\w$]*|\*)/gi;

/**
 * LISTEN/UNLISTEN statements in `sql`, in order, with the channel as Postgres names it:
 * unquoted identifiers fold to lower case, quoted ones keep their case ("" -> "). UNLISTEN *
 * has channel '*'.
 */
export function listenChanges(sql: string): ListenChange[] {
  if (!/listen/i.test(sql)) return [];
  const changes: ListenChange[] = [];
  for (const m of stripLiterals(sql).matchAll(LISTEN_STATEMENT)) {
    const raw = m[2] ?? '';
    const channel = raw.startsWith('"') ? raw.slice(1, -1).replaceAll('""', '"') : raw.toLowerCase();
    const op = m[1] ? 'unlisten' : 'listen';
    if (op === 'listen' && channel === '*') continue;
    changes.push({ op, channel });
  }
  return changes;
}

/** `"ch"` with embedded quotes doubled, for re-issuing LISTEN on PGlite's shared backend. */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

export type Notification = { channel: string; payload: string; bytes: Buffer };

/**
 * Incremental splitter of PGlite's output for one batch: PGlite hands out chunks that need not
 * end on message boundaries, so a message is only released (or recognised as a notification)
 * once it is complete.
 */
export class BackendFilter {
  #tail: Buffer = Buffer.alloc(0);
  /** Message types seen, so the server can tell e.g. that COPY FROM STDIN started ('G'). */
  readonly seen = new Set<string>();

  /** Splits `chunk` into the bytes to forward (whole messages only) and the notifications. */
  push(chunk: Uint8Array): { forward: Buffer; notifications: Notification[] } {
    const buf = this.#tail.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.#tail, chunk]);
    const keep: Buffer[] = [];
    const notifications: Notification[] = [];
    let off = 0;
    let runStart = 0;
    while (buf.length - off >= 5) {
      const len = 1 + buf.readInt32BE(off + 1);
      if (buf.length - off < len) break;
      const type = String.fromCharCode(buf[off] ?? 0);
      this.seen.add(type);
      if (type === 'A') {
        if (off > runStart) keep.push(buf.subarray(runStart, off));
        const bytes = Buffer.from(buf.subarray(off, off + len));
        const channel = cstring(bytes, 9);
        const payload = cstring(bytes, channel.next);
        notifications.push({ channel: channel.value, payload: payload.value, bytes });
        runStart = off + len;
      }
      off += len;
    }
    if (off > runStart) keep.push(buf.subarray(runStart, off));
    this.#tail = Buffer.from(buf.subarray(off));
    return { forward: keep.length === 1 ? (keep[0] as Buffer) : Buffer.concat(keep), notifications };
  }

  /** Bytes of an incomplete message left at the end of the batch (PGlite never leaves any). */
  get pending(): number {
    return this.#tail.length;
  }
}

function message(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeInt32BE(4 + body.length, 1);
  return Buffer.concat([head, body]);
}

export function queryMessage(sql: string): Buffer {
  return message('Q', Buffer.from(`${sql}\0`, 'utf8'));
}

export const SYNC_MESSAGE = message('S', Buffer.alloc(0));

/** ErrorResponse with severity, SQLSTATE and message, as a server sends before closing. */
export function errorResponse(severity: 'FATAL' | 'ERROR', sqlState: string, text: string): Buffer {
  const field = (code: string, value: string) => Buffer.from(`${code}${value}\0`, 'utf8');
  return message(
    'E',
    Buffer.concat([
      field('S', severity),
      field('V', severity),
      field('C', sqlState),
      field('M', text),
      Buffer.alloc(1),
    ]),
  );
}
