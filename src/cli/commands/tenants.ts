/**
 * `harmon tenants webhook-secret --tenant NAME`: creates (or replaces) the tenant's webhook
 * signing secret and prints it once, alone on the last stdout line.
 */
import type { Command } from 'commander';
import { loadConfig } from '../../config/config.ts';
import { rotateWebhookSecret } from '../../tenancy/webhook-secret.ts';
import { withDatabase } from './with-database.ts';

export function register(program: Command): void {
  const tenants = program.command('tenants').description('manage tenants');
  tenants
    .command('webhook-secret')
    .description("create or rotate the tenant's webhook signing secret; prints it once")
    .requiredOption('--tenant <name>', 'tenant name')
    .action(async (opts: { tenant: string }) => {
      const r = await withDatabase(loadConfig(), (prisma) =>
        rotateWebhookSecret(prisma, { name: opts.tenant }),
      );
      process.stdout.write(
        `webhook secret for tenant ${opts.tenant} (${r.tenantId}); it is shown only now, store it safely. ` +
          'Deliveries are signed with it from now on (header Harmon-Signature: t=<unix>,v1=hex HMAC-SHA256 of "<t>.<body>"):\n',
      );
      process.stdout.write(`${r.secret}\n`);
    });
}
