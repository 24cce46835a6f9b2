/**
 * `$HARMON_HOME/server.json`: how a running embedded server can be reached. PGlite's data dir can
 * be opened by one process only, so CLI commands read this file and connect to the running
 * server's database socket instead of opening the files themselves.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type ServerInfo = {
  pid: number;
  dbPort?: number;
  s3Port?: number;
  httpPort?: number;
  startedAt: string;
};

export const serverInfoPath = (harmonHome: string) => join(harmonHome, 'server.json');

export function writeServerInfo(harmonHome: string, info: ServerInfo): void {
  writeFileSync(serverInfoPath(harmonHome), `${JSON.stringify(info, null, 2)}\n`);
}

/** The info of a server that is still alive, or null (a stale file from a crash is ignored). */
export function readLiveServerInfo(harmonHome: string): ServerInfo | null {
  const p = serverInfoPath(harmonHome);
  if (!existsSync(p)) return null;
  try {
    const info = JSON.parse(readFileSync(p, 'utf8')) as ServerInfo;
    return typeof info.pid === 'number' && isAlive(info.pid) ? info : null;
  } catch {
    return null;
  }
}

/** Removes the file only if it still describes this process (a newer server may own it). */
export function removeServerInfo(harmonHome: string, pid = process.pid): void {
  const p = serverInfoPath(harmonHome);
  try {
    if ((JSON.parse(readFileSync(p, 'utf8')) as ServerInfo).pid === pid) rmSync(p, { force: true });
  } catch {
    // Already gone or unreadable: nothing to clean.
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
