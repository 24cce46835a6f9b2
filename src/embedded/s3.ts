/**
 * Embedded S3: s3rver on loopback with its objects under a local folder, behind a front door
 * that checks every request's SigV4 signature (s3-front.ts; s3rver checks none). Used by
 * `harmon serve` when no S3 is configured, and by tests.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import S3rver from 's3rver';
import type { S3Config } from '../config/config.ts';
import { startS3Front } from './s3-front.ts';
import { type S3Credentials, sigV4Verifier } from './s3-sigv4.ts';

export const EMBEDDED_BUCKET = 'harmon';
const REGION = 'us-east-1';

/**
 * s3rver's well-known pair: the default for tests and benchmarks only. Anyone can sign with it,
 * so a served embedded store uses generated credentials (`generateS3Credentials`).
 */
export const TEST_S3_CREDENTIALS: S3Credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

export function generateS3Credentials(): S3Credentials {
  return {
    accessKeyId: `HARMON${randomBytes(7).toString('hex').toUpperCase()}`,
    secretAccessKey: randomBytes(30).toString('base64url'),
  };
}

const BROWSER_CORS = `<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin>
<AllowedMethod>GET</AllowedMethod><AllowedMethod>PUT</AllowedMethod><AllowedMethod>HEAD</AllowedMethod>
<AllowedHeader>*</AllowedHeader><MaxAgeSeconds>3000</MaxAgeSeconds></CORSRule></CORSConfiguration>`;

export type EmbeddedS3 = { endpoint: string; s3: S3Config; stop(): Promise<void> };

export async function startEmbeddedS3(
  directory: string,
  options: { port?: number; bucket?: string; credentials?: S3Credentials } = {},
): Promise<EmbeddedS3> {
  mkdirSync(directory, { recursive: true });
  const bucket = options.bucket ?? EMBEDDED_BUCKET;
  const credentials = options.credentials ?? TEST_S3_CREDENTIALS;
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory,
    // Browsers (the web playground) PUT uploads and GET outputs through presigned URLs on this
    // other origin; the signature is the authorisation, so any origin may use a valid URL.
    configureBuckets: [{ name: bucket, configs: [BROWSER_CORS] }],
  });
  const inner = await server.run();
  const front = await startS3Front({
    upstreamPort: inner.port,
    verify: sigV4Verifier(credentials, REGION),
    port: options.port,
  }).catch(async (e) => {
    await server.close();
    throw e;
  });
  const endpoint = `http://127.0.0.1:${front.port}`;
  return {
    endpoint,
    s3: { endpoint, bucket, region: REGION, ...credentials, forcePathStyle: true },
    async stop() {
      await front.close();
      await server.close();
    },
  };
}
