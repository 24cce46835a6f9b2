#!/bin/sh
# Entrypoint of the API and worker images:
#  1. DATABASE_URL from the DB_* fields ECS injects from the Aurora secret (ECS cannot template),
#  2. model weights from WEIGHTS_S3_URI into WEIGHTS_CACHE_DIR (worker only; checksummed, cached),
#  3. exec the command (CMD: `harmon worker` / `harmon serve --no-worker`) so it gets SIGTERM.
set -eu

if [ -z "${DATABASE_URL:-}" ] && [ -n "${DB_HOST:-}" ]; then
  DATABASE_URL=$(node -e '
    const e = process.env, enc = encodeURIComponent;
    process.stdout.write(`postgres://${enc(e.DB_USER)}:${enc(e.DB_PASSWORD)}@${e.DB_HOST}:${e.DB_PORT || 5432}/${enc(e.DB_NAME || "harmon")}?sslmode=verify-full`);
  ')
  export DATABASE_URL
fi

if [ -n "${WEIGHTS_S3_URI:-}" ]; then
  node --import tsx /app/infra/docker/fetch-weights.ts
fi

exec "$@"
