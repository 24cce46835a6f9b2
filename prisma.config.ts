// Prisma 7 CLI config. Only `prisma generate` runs here (see scripts/prisma-generate.mjs); the
// URL is optional because generation never connects, and migrations are applied by
// src/storage/migrate.ts rather than the Prisma CLI (its native engine is unavailable offline).
import { defineConfig } from 'prisma/config';

export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
  ...(process.env.DATABASE_URL ? { datasource: { url: process.env.DATABASE_URL } } : {}),
});
