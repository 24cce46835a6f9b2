/**
 * Embedded S3: s3rver on loopback with its objects under a local folder. Used by `harmon serve`
 * when no S3 is configured, and by tests.
 */
import { mkdirSync } from 'node:fs';
import S3rver from 's3rver';
import type { S3Config } from '../config/config.ts';

export const EMBEDDED_BUCKET = 'harmon';

const BROWSER_CORS = `<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin>
<AllowedMethod>GET</AllowedMethod><AllowedMethod>PUT</AllowedMethod><AllowedMethod>HEAD</AllowedMethod>
<AllowedHeader>*</AllowedHeader><MaxAgeSeconds>3000</MaxAgeSeconds></CORSRule></CORSConfiguration>`;

export type EmbeddedS3 = { endpoint: string; s3: S3Config; stop(): Promise<void> };

export async function startEmbeddedS3(
  directory: string,
  options: { port?: number; bucket?: string } = {},
): Promise<EmbeddedS3> {
  mkdirSync(directory, { recursive: true });
  const bucket = options.bucket ?? EMBEDDED_BUCKET;
  const server = new S3rver({
    address: '127.0.0.1',
    port: options.port ?? 0,
    silent: true,
    directory,
    // Browsers (the web playground) PUT uploads and GET outputs through presigned URLs on this
    // other origin; the signature is the authorisation, so any origin may use a valid URL.
    configureBuckets: [{ name: bucket, configs: [BROWSER_CORS] }],
  });
  const addr = await server.run();
  const endpoint = `http://127.0.0.1:${addr.port}`;
  return {
    endpoint,
    s3: {
      endpoint,
      bucket,
      region: 'us-east-1',
      // s3rver's fixed credentials.
      accessKeyId: 'S3RVER',
      secretAccessKey: 'S3RVER',
      forcePathStyle: true,
    },
    stop: () => server.close(),
  };
}
