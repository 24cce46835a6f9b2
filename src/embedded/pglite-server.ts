/**
 * A Postgres wire-protocol server over one embedded PGlite, correct for many connections.
 *
 * PGlite is a single backend: every connection shares its session (prepared statements, the
 * unnamed portal, the open transaction, LISTEN state). pglite-socket 0.2.17 ran each protocol
 * MESSAGE of each connection as its own queue item, so the Parse/Bind/Execute/Sync batches of two
 * pg clients interleaved ("bind message supplies 4 parameters, but prepared statement requires
 * 3", parameters of one query bound to another's statement), and NotificationResponses went to
 * whichever connection's query happened to be running.
 *
 * Here the unit of execution is a BATCH (messages up to Sync, Query, Flush, Terminate, copy end,
 * or the startup message), run whole inside `db.runExclusive`. A server-wide session lock decides
 * whose batch runs: a connection keeps it while it has an open transaction, an unfinished
 * extended-protocol sequence (Flush without Sync) or a COPY FROM STDIN in progress; otherwise the
 * next connection in FIFO order gets it. Notifications are cut out of PGlite's output and sent to
 * the connections that issued LISTEN for that channel.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { PGlite } from '@electric-sql/pglite';
import { logger } from '../shared/logger.ts';
import {
  BackendFilter,
  CANCEL_REQUEST_CODE,
  endsBatch,
  errorResponse,
  type Frame,
  FrontendSplitter,
  GSSENC_REQUEST_CODE,
  type ListenChange,
  listenChanges,
  type Notification,
  queryMessage,
  quoteIdent,
  SSL_REQUEST_CODE,
  SYNC_MESSAGE,
  sqlOf,
} from './pg-wire.ts';
import { SessionLock } from './session-lock.ts';

export type PgliteWireServerOptions = {
  db: PGlite;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Connections beyond this get FATAL 53300 "too many clients", like Postgres. */
  maxConnections?: number;
};

const log = logger.child({ component: 'pglite-server' });

class Connection {
  readonly splitter = new FrontendSplitter();
  /** Messages of the batch still being received. */
  partial: Frame[] = [];
  readonly batches: Frame[][] = [];
  readonly listening = new Set<string>();
  pump: Promise<void> | null = null;
  closed = false;
  /** Extended-protocol messages sent since the last Sync: the unnamed statement is theirs. */
  awaitingSync = false;
  copyIn = false;
  /** LISTEN/UNLISTEN ran inside a transaction: re-check PGlite's LISTEN state once it ends. */
  listenDirty = false;

  constructor(
    readonly id: number,
    readonly socket: Socket,
  ) {}

  write(bytes: Uint8Array): void {
    if (!this.closed && this.socket.writable) this.socket.write(bytes);
  }
}

export class PgliteWireServer {
  readonly #db: PGlite;
  readonly #host: string;
  readonly #requestedPort: number;
  readonly #maxConnections: number;
  readonly #conns = new Set<Connection>();
  readonly #lock = new SessionLock<Connection>();
  #server: Server | null = null;
  #nextId = 1;
  #port = 0;

  constructor(options: PgliteWireServerOptions) {
    this.#db = options.db;
    this.#host = options.host ?? '127.0.0.1';
    this.#requestedPort = options.port ?? 0;
    this.#maxConnections = options.maxConnections ?? 10;
  }

  get port(): number {
    return this.#port;
  }

  async start(): Promise<number> {
    const server = createServer((socket) => this.#accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#requestedPort, this.#host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.#server = server;
    const address = server.address();
    this.#port = typeof address === 'object' && address ? address.port : this.#requestedPort;
    return this.#port;
  }

  /** Closes every connection (rolling back an open transaction) and stops listening. */
  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    const closed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    for (const conn of this.#conns) conn.socket.destroy();
    // Let the close handlers finish their rollbacks before the caller closes PGlite.
    await Promise.all([...this.#conns].map((c) => this.#onClose(c)));
    await closed;
  }

  #accept(socket: Socket): void {
    socket.setNoDelay(true);
    if (this.#conns.size >= this.#maxConnections) {
      // Destroy once flushed: a client that ignores the error must not keep the server open.
      socket.on('error', () => {});
      socket.end(errorResponse('FATAL', '53300', 'sorry, too many clients already'), () => socket.destroy());
      return;
    }
    const conn = new Connection(this.#nextId++, socket);
    this.#conns.add(conn);
    socket.on('data', (chunk: Buffer) => this.#onData(conn, chunk));
    socket.on('error', (err) => log.debug({ err, conn: conn.id }, 'embedded database socket error'));
    socket.on('close', () => void this.#onClose(conn));
  }

  #onData(conn: Connection, chunk: Buffer): void {
    let frames: Frame[];
    try {
      frames = conn.splitter.push(chunk);
    } catch (err) {
      conn.write(errorResponse('FATAL', '08P01', `invalid frontend message: ${String(err)}`));
      conn.socket.end();
      return;
    }
    for (const frame of frames) {
      if (frame.type === null) {
        const code = frame.bytes.readInt32BE(4);
        // No TLS on loopback: 'N' tells the client to go on in plain text.
        if (code === SSL_REQUEST_CODE || code === GSSENC_REQUEST_CODE) conn.write(Buffer.from('N'));
        // PGlite has no backend to signal; a cancel connection expects no reply, just a close.
        else if (code === CANCEL_REQUEST_CODE) conn.socket.end();
        else conn.batches.push([frame]);
        continue;
      }
      conn.partial.push(frame);
      if (endsBatch(frame)) {
        conn.batches.push(conn.partial);
        conn.partial = [];
      }
    }
    if (conn.batches.length > 0 && !conn.pump) conn.pump = this.#drain(conn);
  }

  async #drain(conn: Connection): Promise<void> {
    try {
      while (!conn.closed && conn.batches.length > 0) {
        const batch = conn.batches.shift() as Frame[];
        await this.#lock.acquire(conn);
        if (conn.closed) break;
        try {
          await this.#runBatch(conn, batch);
        } catch (err) {
          // PGlite threw outside the protocol (no ErrorResponse was produced): the session state
          // is unknown, so drop this connection rather than answer its next query wrongly.
          log.error({ err, conn: conn.id }, 'embedded database batch failed; closing the connection');
          conn.socket.destroy();
          break;
        }
        if (!this.#holdsSession(conn)) this.#lock.release(conn);
      }
    } finally {
      conn.pump = null;
    }
    if (conn.closed) await this.#cleanup(conn);
  }

  #holdsSession(conn: Connection): boolean {
    return this.#db.isInTransaction() || conn.awaitingSync || conn.copyIn;
  }

  async #runBatch(conn: Connection, batch: Frame[]): Promise<void> {
    const changes: ListenChange[] = [];
    const filter = new BackendFilter();
    const onRawData = (chunk: Uint8Array) => {
      const { forward, notifications } = filter.push(chunk);
      if (forward.length > 0) conn.write(forward);
      for (const n of notifications) this.#deliver(n);
    };
    await this.#db.runExclusive(async () => {
      for (const [i, frame] of batch.entries()) {
        if (frame.type === 'X') {
          conn.socket.end();
          break;
        }
        const sql = sqlOf(frame);
        if (sql !== undefined) changes.push(...listenChanges(sql));
        if (frame.type === 'S') conn.awaitingSync = false;
        else if (frame.type !== null && 'PBDECH'.includes(frame.type)) conn.awaitingSync = true;
        if (frame.type === 'c' || frame.type === 'f') conn.copyIn = false;
        // Only the batch's last message waits for the file system: the client sees nothing
        // before the batch ends anyway.
        await this.#db.execProtocolRawStream(frame.bytes, { syncToFs: i === batch.length - 1, onRawData });
      }
      if (filter.seen.has('G')) conn.copyIn = true;
      this.#applyListenChanges(conn, changes);
      if (conn.listenDirty && !this.#db.isInTransaction()) await this.#relisten(conn);
    });
  }

  #applyListenChanges(conn: Connection, changes: ListenChange[]): void {
    for (const { op, channel } of changes) {
      if (op === 'listen') conn.listening.add(channel);
      else if (channel === '*') conn.listening.clear();
      else conn.listening.delete(channel);
    }
    if (changes.some((c) => c.op === 'unlisten')) conn.listenDirty = true;
  }

  /**
   * PGlite has ONE listen set for all connections, so one connection's UNLISTEN (or UNLISTEN *,
   * which pg-boss and poolers send on release) would silence the channels others still listen
   * on. After it, LISTEN again on every channel some connection still wants.
   */
  async #relisten(conn: Connection): Promise<void> {
    conn.listenDirty = false;
    const wanted = new Set<string>();
    for (const c of this.#conns) if (!c.closed) for (const ch of c.listening) wanted.add(ch);
    if (wanted.size === 0) return;
    const sql = [...wanted].map((ch) => `LISTEN ${quoteIdent(ch)}`).join('; ');
    await this.#db.execProtocolRawStream(queryMessage(sql), { syncToFs: false, onRawData: () => {} });
  }

  /**
   * Sends a notification to every connection listening on its channel. Only one batch runs at
   * a time and batches write whole messages, so every socket is at a message boundary here: the
   * running connection's own copy lands exactly where Postgres would have put it.
   */
  #deliver(n: Notification): void {
    for (const c of this.#conns) if (c.listening.has(n.channel)) c.write(n.bytes);
  }

  async #onClose(conn: Connection): Promise<void> {
    if (!this.#conns.has(conn)) return;
    this.#conns.delete(conn);
    conn.closed = true;
    conn.batches.length = 0;
    if (!conn.pump) await this.#cleanup(conn);
    else await conn.pump;
  }

  /**
   * A connection that went away while holding the session leaves its transaction (or its
   * half-sent extended sequence) open in PGlite's only backend: roll it back so that others can
   * proceed, as Postgres does when a backend's client disconnects.
   */
  async #cleanup(conn: Connection): Promise<void> {
    // Not the owner: it held nothing (a closed connection still waiting in the queue breaks
    // out of #drain only once granted, and then is the owner here).
    if (this.#lock.owner !== conn) return;
    try {
      await this.#db.runExclusive(async () => {
        const discard = { syncToFs: false, onRawData: () => {} };
        if (conn.copyIn)
          await this.#db.execProtocolRawStream(Buffer.from('f\0\0\0\x0bclosed\0', 'latin1'), discard);
        if (conn.awaitingSync) await this.#db.execProtocolRawStream(SYNC_MESSAGE, discard);
        if (this.#db.isInTransaction())
          await this.#db.execProtocolRawStream(queryMessage('ROLLBACK'), discard);
        conn.listening.clear();
      });
    } catch (err) {
      log.error({ err, conn: conn.id }, 'could not roll back a closed connection');
    } finally {
      this.#lock.release(conn);
    }
  }
}
