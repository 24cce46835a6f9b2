/** `harmon db migrate`: applies pending migrations to the configured (or embedded) database. */
import type { Command } from 'commander';
import { loadConfig } from '../../config/config.ts';
import { resolveDatabase } from '../../embedded/resolve.ts';
import { migrate } from '../../storage/migrate.ts';

export function register(program: Command): void {
  const db = program.command('db').description('database maintenance');
  db.command('migrate')
    .description('apply pending migrations from prisma/migrations')
    .action(async () => {
      const resolved = await resolveDatabase(loadConfig(), 'client');
      try {
        const r = await migrate(resolved.url);
        for (const name of r.applied) process.stdout.write(`applied ${name}\n`);
        process.stdout.write(
          r.applied.length ? `${r.applied.length} migration(s) applied\n` : 'database is up to date\n',
        );
      } finally {
        await resolved.stop();
      }
    });
}
