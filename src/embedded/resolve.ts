/**
 * Decides, per config, whether to use real Postgres/S3 or the embedded ones, and how to reach the
 * embedded ones: a server owns them ('server'), a CLI command borrows the running server's or
 * opens them itself for the duration of the command ('client').
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config, S3Config } from '../config/config.ts';
import { AppError } from '../shared/errors.ts';
import { startEmbeddedDatabase } from './database.ts';
import { EMBEDDED_BUCKET, generateS3Credentials, startEmbeddedS3 } from './s3.ts';
import type { S3Credentials } from './s3-sigv4.ts';
import { readLiveServerInfo } from './server-info.ts';

export type Role = 'server' | 'client';
export type ResolvedDatabase = { url: string; embedded: boolean; port?: number; stop(): Promise<void> };
export type ResolvedS3 = { s3: S3Config; embedded: boolean; port?: number; stop(): Promise<void> };

const noop = async () => {};

export async function resolveDatabase(config: Config, role: Role): Promise<ResolvedDatabase> {
  if (config.databaseUrl) return { url: config.databaseUrl, embedded: false, stop: noop };
  const live = readLiveServerInfo(config.harmonHome);
  if (live && role === 'server') {
    throw new AppError(
      'CONFLICT',
      `another harmon server (pid ${live.pid}) is using HARMON_HOME ${config.harmonHome}; stop it or set another HARMON_HOME`,
    );
  }
  if (live?.dbPort)
    return {
      url: `postgres://postgres@127.0.0.1:${live.dbPort}/postgres`,
      embedded: true,
      port: live.dbPort,
      stop: noop,
    };
  const db = await startEmbeddedDatabase(join(config.harmonHome, 'pgdata'));
  return { url: db.url, embedded: true, port: db.port, stop: db.stop };
}

/**
 * The embedded S3's credentials, made once per HARMON_HOME and kept in a file only this user can
 * read: its front door checks every signature with them, so presigned URLs cannot be forged or
 * edited by anyone who knows s3rver's well-known default pair. Kept across restarts, so URLs
 * handed out before a restart stay valid until they expire; CLI commands sign with the same.
 */
export function embeddedS3Credentials(harmonHome: string): S3Credentials {
  const file = join(harmonHome, 's3-credentials.json');
  if (existsSync(file)) {
    const c = JSON.parse(readFileSync(file, 'utf8')) as Partial<S3Credentials>;
    if (typeof c.accessKeyId === 'string' && typeof c.secretAccessKey === 'string')
      return { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey };
  }
  mkdirSync(harmonHome, { recursive: true });
  const fresh = generateS3Credentials();
  writeFileSync(file, `${JSON.stringify(fresh)}\n`, { mode: 0o600 });
  return fresh;
}

export async function resolveS3(config: Config, role: Role): Promise<ResolvedS3> {
  if (config.s3) return { s3: config.s3, embedded: false, stop: noop };
  const credentials = embeddedS3Credentials(config.harmonHome);
  const live = role === 'client' ? readLiveServerInfo(config.harmonHome) : null;
  if (live?.s3Port) {
    const endpoint = `http://127.0.0.1:${live.s3Port}`;
    const s3 = {
      endpoint,
      bucket: EMBEDDED_BUCKET,
      region: 'us-east-1',
      ...credentials,
      forcePathStyle: true,
    };
    return { s3, embedded: true, port: live.s3Port, stop: noop };
  }
  const server = await startEmbeddedS3(join(config.harmonHome, 's3'), { credentials });
  return { s3: server.s3, embedded: true, port: Number(new URL(server.endpoint).port), stop: server.stop };
}
