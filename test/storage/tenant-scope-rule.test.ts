/**
 * The mechanical half of the tenant-isolation rule in src/storage/tenant-scope.ts: resolvers never
 * touch a tenant-owned Prisma model directly, and job code resolves client-given upload ids only
 * through forTenant (the retention sweep deletes uploads it selected itself, by id).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

const OWNED = ['job', 'jobEvent', 'asset', 'upload', 'usageRecord', 'webhookDelivery', 'apiKey'];

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** `<anything>.prisma.<model>.` / `tx.<model>.` uses of the given models, as "file:line". */
function directUses(paths: string[], models: string[]): string[] {
  const re = new RegExp(`\\b(prisma|tx)\\s*\\.\\s*(${models.join('|')})\\s*\\.`);
  return paths.flatMap((f) =>
    readFileSync(f, 'utf8')
      .split('\n')
      .flatMap((line, i) => (re.test(line) ? [`${f}:${i + 1}`] : [])),
  );
}

test('resolvers reach tenant-owned rows only through forTenant (ctx.db) or tenant-keyed functions', () => {
  const resolvers = files('src/api/resolvers');
  assert.ok(resolvers.length > 0);
  assert.deepEqual(directUses(resolvers, OWNED), []);
  for (const f of resolvers) assert.doesNotMatch(readFileSync(f, 'utf8'), /\$(queryRaw|executeRaw)/, f);
});

test('job code reads client-named uploads only through forTenant', () => {
  const jobCode = [...files('src/jobs'), ...files('src/events')].filter((f) => !f.endsWith('retention.ts'));
  assert.deepEqual(directUses(jobCode, ['upload']), []);
  assert.match(
    readFileSync('src/jobs/image-source.ts', 'utf8'),
    /forTenant\(deps\.prisma, tenantId\)\.uploads/,
  );
});
