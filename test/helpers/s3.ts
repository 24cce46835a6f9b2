/**
 * S3 for tests: s3rver on 127.0.0.1 (random port) over a temp folder, bucket created.
 *
 *   const s3 = await startS3();
 *   after(() => s3.stop());
 *   await s3.blobStore.put('tenants/t1/x', 'hello');
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { S3Config } from '../../src/config/config.ts';
import { startEmbeddedS3 } from '../../src/embedded/s3.ts';
import { type BlobStore, createBlobStore } from '../../src/storage/blob-store.ts';

export type TestS3 = {
  endpoint: string;
  bucket: string;
  s3: S3Config;
  blobStore: BlobStore;
  stop(): Promise<void>;
};

export async function startS3(bucket = 'test-bucket'): Promise<TestS3> {
  const dir = mkdtempSync(join(tmpdir(), 'harmon-s3-'));
  const server = await startEmbeddedS3(dir, { bucket });
  const blobStore = createBlobStore(server.s3);
  await blobStore.ensureBucket();
  return {
    endpoint: server.endpoint,
    bucket,
    s3: server.s3,
    blobStore,
    async stop() {
      blobStore.close();
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
