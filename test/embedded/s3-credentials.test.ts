/**
 * The credentials of a served embedded S3 (`harmon serve` without S3 settings): generated per
 * HARMON_HOME, kept in a file only this user can read, shared with CLI commands that borrow the
 * running server's store. s3rver's well-known pair signs nothing there.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '../../src/config/config.ts';
import { embeddedS3Credentials, resolveS3 } from '../../src/embedded/resolve.ts';
import { removeServerInfo, writeServerInfo } from '../../src/embedded/server-info.ts';
import { type BlobStore, createBlobStore, tenantKey } from '../../src/storage/blob-store.ts';

test('a served embedded store signs with credentials of its own, kept in HARMON_HOME and shared with CLI clients', async () => {
  const home = mkdtempSync(join(tmpdir(), 'harmon-s3-home-'));
  let stop = async () => {};
  let client: BlobStore | undefined;
  try {
    const config = loadConfig({ HARMON_HOME: home, LOG_LEVEL: 'silent' });
    const served = await resolveS3(config, 'server');
    stop = served.stop;
    assert.notEqual(served.s3.accessKeyId, 'S3RVER', 'not the well-known pair');
    assert.equal(statSync(join(home, 's3-credentials.json')).mode & 0o777, 0o600);
    assert.deepEqual(embeddedS3Credentials(home), {
      accessKeyId: served.s3.accessKeyId,
      secretAccessKey: served.s3.secretAccessKey,
    });
    // s3rver's default pair no longer signs anything here.
    const wellKnown = createBlobStore({ ...served.s3, accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' });
    await assert.rejects(wellKnown.ensureBucket(), (e: { code?: string }) => e.code === 'STORAGE_ERROR');
    wellKnown.close();
    // A CLI command finds the running server and signs with the same credentials.
    writeServerInfo(home, { pid: process.pid, s3Port: served.port, startedAt: new Date().toISOString() });
    const cli = await resolveS3(config, 'client');
    assert.deepEqual(cli.s3, served.s3);
    client = createBlobStore(cli.s3);
    await client.ensureBucket();
    await client.put(tenantKey('t', 'misc'), 'ok');
  } finally {
    client?.close();
    removeServerInfo(home);
    await stop();
    rmSync(home, { recursive: true, force: true });
  }
});
