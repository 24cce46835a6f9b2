#!/usr/bin/env node
// Generates the Prisma 7 client without the native schema engine, which cannot be downloaded on
// these machines: `prisma generate` only needs the engine binary to exist, so a stub stands in.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

if (!existsSync('prisma/schema.prisma')) {
  console.log('prisma-generate: no prisma/schema.prisma yet, nothing to generate');
  process.exit(0);
}
const stubDir = mkdtempSync(join(tmpdir(), 'prisma-stub-'));
const stub = join(stubDir, 'schema-engine');
writeFileSync(stub, '#!/bin/sh\necho "schema engine stub: not available offline" >&2\nexit 1\n');
chmodSync(stub, 0o755);
const env = {
  ...process.env,
  PRISMA_SCHEMA_ENGINE_BINARY: process.env.PRISMA_SCHEMA_ENGINE_BINARY ?? stub,
  PRISMA_HIDE_UPDATE_MESSAGE: '1',
  CHECKPOINT_DISABLE: '1',
};
const r = spawnSync(process.execPath, ['node_modules/prisma/build/index.js', 'generate'], {
  stdio: 'inherit',
  env,
});
process.exit(r.status ?? 1);
