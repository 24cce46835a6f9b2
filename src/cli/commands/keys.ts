/** `harmon keys create --tenant NAME`: the new key is printed once, alone on the last stdout line. */
import type { Command } from 'commander';
import { loadConfig } from '../../config/config.ts';
import { createApiKey, DEFAULT_SCOPES, revokeApiKey } from '../../tenancy/api-keys.ts';
import { withDatabase } from './with-database.ts';

export function register(program: Command): void {
  const keys = program.command('keys').description('manage API keys');
  keys
    .command('create')
    .description('create an API key (and the tenant, if new); prints the key once')
    .requiredOption('--tenant <name>', 'tenant name')
    .option('--scopes <list>', 'comma-separated scopes', DEFAULT_SCOPES.join(','))
    .action(async (opts: { tenant: string; scopes: string }) => {
      const config = loadConfig();
      const scopes = opts.scopes
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      const created = await withDatabase(config, (prisma) => createApiKey(prisma, opts.tenant, scopes));
      if (created.tenantCreated)
        process.stdout.write(`created tenant ${opts.tenant} (${created.tenantId})\n`);
      process.stdout.write(
        `API key ${created.prefix} for tenant ${opts.tenant}; it is shown only now, store it safely:\n`,
      );
      process.stdout.write(`${created.key}\n`);
    });
  keys
    .command('revoke')
    .description('revoke an API key by its prefix (the part after hmn_)')
    .argument('<prefix>')
    .action(async (prefix: string) => {
      await withDatabase(loadConfig(), (prisma) => revokeApiKey(prisma, prefix));
      process.stdout.write(`revoked ${prefix}\n`);
    });
}
