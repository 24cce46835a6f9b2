/**
 * Environment from AWS Secrets Manager, for the GraphQL Lambda: ECS injects single secret fields
 * into a container's environment (infra/lib/runtime-env.ts), Lambda cannot, so the Lambda gets the
 * secrets' ARNs and reads them once per cold start. The result uses the same names as the ECS
 * containers (DATABASE_URL as infra/docker/entrypoint.sh builds it).
 */
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { AppError } from '../shared/errors.ts';

/** What the Aurora-generated secret holds (CDK `DatabaseSecret`). */
type DatabaseSecret = {
  host?: string;
  port?: number | string;
  username?: string;
  password?: string;
  dbname?: string;
};

async function readJsonSecret(client: SecretsManagerClient, arn: string): Promise<Record<string, unknown>> {
  let text: string | undefined;
  try {
    text = (await client.send(new GetSecretValueCommand({ SecretId: arn }))).SecretString;
  } catch (cause) {
    throw new AppError('BAD_CONFIG', `Secret ${arn} could not be read: ${(cause as Error).message}`, {
      cause,
    });
  }
  try {
    const v: unknown = JSON.parse(text ?? '');
    if (v && typeof v === 'object') return v as Record<string, unknown>;
  } catch {
    // Reported below with the secret's name, never its value.
  }
  throw new AppError('BAD_CONFIG', `Secret ${arn} is not a JSON object.`);
}

/** postgres:// URL from the secret's fields; TLS with verification, as the ECS entrypoint does. */
export function databaseUrlFromSecret(s: DatabaseSecret): string {
  if (!s.host || !s.username || !s.password)
    throw new AppError('BAD_CONFIG', 'The database secret lacks host, username or password.');
  const enc = encodeURIComponent;
  const port = s.port === undefined || s.port === '' ? 5432 : Number(s.port);
  return `postgres://${enc(s.username)}:${enc(s.password)}@${s.host}:${port}/${enc(s.dbname || 'harmon')}?sslmode=verify-full`;
}

/**
 * Extra environment read from DATABASE_SECRET_ARN. An explicit DATABASE_URL wins (local runs,
 * tests), so nothing is fetched for it.
 */
export async function envFromSecrets(
  env: NodeJS.ProcessEnv,
  client?: SecretsManagerClient,
): Promise<Record<string, string>> {
  const arn = !env.DATABASE_URL && env.DATABASE_SECRET_ARN;
  if (!arn) return {};
  const sm = client ?? new SecretsManagerClient({});
  return { DATABASE_URL: databaseUrlFromSecret((await readJsonSecret(sm, arn)) as DatabaseSecret) };
}
