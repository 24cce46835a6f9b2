/**
 * A TCP proxy on loopback in front of a real server (Postgres), for outage tests:
 *
 *   const proxy = await startTcpProxy({ host: '127.0.0.1', port: 5432 });
 *   const url = proxy.rewrite(TEST_DATABASE_URL);       // same URL, the proxy's port
 *   await proxy.setMode('refuse');                      // or 'silent', then 'pass' again
 *
 * - pass: bytes flow both ways.
 * - slow: bytes flow both ways, each chunk `delayMs` late (in order): a distant database.
 * - refuse: the port stops listening (new connections get ECONNREFUSED) and open connections are
 *   reset, as when the database is down.
 * - silent: connections are accepted but nothing is answered, and open connections stop
 *   delivering in both directions (held, as TCP would retransmit during a partition), as when
 *   the database host hangs or the network drops packets. Back to pass, the held bytes flow on.
 */
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';

export type ProxyMode = 'pass' | 'slow' | 'refuse' | 'silent';

export type TcpProxy = {
  port: number;
  /** `url` with its host and port replaced by the proxy's. */
  rewrite(url: string): string;
  mode(): ProxyMode;
  setMode(mode: ProxyMode, options?: { delayMs?: number }): Promise<void>;
  close(): Promise<void>;
};

type Pair = { client: Socket; upstream?: Socket; held: { toUpstream: Buffer[]; toClient: Buffer[] } };

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  let mode: ProxyMode = 'pass';
  let delayMs = 0;
  let port = 0;
  const pairs = new Set<Pair>();
  const flowing = () => mode === 'pass' || mode === 'slow';
  /** Writes `chunk` now or, when slow, delayMs later; equal delays keep the order of the chunks. */
  const send = (to: Socket, chunk: Buffer) => {
    if (mode !== 'slow') to.write(chunk);
    else setTimeout(() => to.writable && to.write(chunk), delayMs);
  };

  const openUpstream = (p: Pair) => {
    const up = tcpConnect(target.port, target.host);
    p.upstream = up;
    up.on('data', (chunk: Buffer) => {
      if (flowing()) send(p.client, chunk);
      else p.held.toClient.push(chunk);
    });
    up.on('error', () => p.client.destroy());
    up.on('close', () => p.client.destroy());
    for (const chunk of p.held.toUpstream.splice(0)) send(up, chunk);
  };

  const onConnection = (client: Socket) => {
    const p: Pair = { client, held: { toUpstream: [], toClient: [] } };
    pairs.add(p);
    client.on('data', (chunk: Buffer) => {
      if (flowing() && p.upstream) send(p.upstream, chunk);
      else p.held.toUpstream.push(chunk);
    });
    client.on('error', () => {});
    client.on('close', () => {
      pairs.delete(p);
      p.upstream?.destroy();
    });
    if (flowing()) openUpstream(p);
  };

  let server: Server | undefined;
  const listen = async () => {
    const s = createServer(onConnection);
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => resolve());
    });
    port = (s.address() as { port: number }).port;
    server = s;
  };
  /** Stops accepting and resets every open connection (close() waits for them to end). */
  const stopListening = async () => {
    const s = server;
    server = undefined;
    const closed = s ? new Promise<void>((r) => s.close(() => r())) : Promise.resolve();
    for (const p of pairs) {
      p.client.resetAndDestroy();
      p.upstream?.destroy();
    }
    pairs.clear();
    await closed;
  };
  await listen();

  return {
    get port() {
      return port;
    },
    rewrite(url: string) {
      const u = new URL(url);
      u.hostname = '127.0.0.1';
      u.port = String(port);
      return u.toString();
    },
    mode: () => mode,
    async setMode(next: ProxyMode, options: { delayMs?: number } = {}) {
      const prev = mode;
      mode = next;
      delayMs = options.delayMs ?? 0;
      if (next === 'refuse') await stopListening();
      else if (prev === 'refuse') await listen();
      if (flowing()) {
        for (const p of pairs) {
          if (!p.upstream) openUpstream(p);
          else for (const chunk of p.held.toUpstream.splice(0)) send(p.upstream, chunk);
          for (const chunk of p.held.toClient.splice(0)) send(p.client, chunk);
        }
      }
    },
    close: stopListening,
  };
}
