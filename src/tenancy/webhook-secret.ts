/**
 * A tenant's webhook signing secret (Tenant.webhookSecret): jobs/webhooks.ts signs every delivery
 * with it and delivers nothing for a tenant without one. Rotating replaces it at once; the new
 * secret is returned to the caller once (CLI `harmon tenants webhook-secret`, GraphQL
 * `rotateWebhookSecret`) and never shown again.
 */
import { randomBytes } from 'node:crypto';
import { AppError } from '../shared/errors.ts';
import type { Prisma } from '../storage/db.ts';

export async function rotateWebhookSecret(
  prisma: Prisma,
  tenant: { id: string } | { name: string },
): Promise<{ tenantId: string; secret: string; createdAt: Date }> {
  // 256 bits, like API keys; the prefix makes a leaked secret recognisable in logs and scanners.
  const secret = `whsec_${randomBytes(32).toString('base64url')}`;
  const r = await prisma.tenant.updateMany({ where: tenant, data: { webhookSecret: secret } });
  const what = 'id' in tenant ? tenant.id : tenant.name;
  if (r.count === 0) throw new AppError('NOT_FOUND', `tenant ${what} was not found`);
  const row = await prisma.tenant.findFirstOrThrow({ where: tenant, select: { id: true } });
  return { tenantId: row.id, secret, createdAt: new Date() };
}
