# syntax=docker/dockerfile:1.7
# API image: slim Node 20 running the GraphQL service without the in-process worker
# (GPU workers run from worker.Dockerfile). No CUDA, no weights.
# Build from the repository root:  docker build -f infra/docker/api.Dockerfile -t harmon-api .
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json prisma.config.ts ./
COPY scripts ./scripts
COPY prisma ./prisma
# The API never loads a model: skip onnxruntime's execution-provider download.
ENV ONNXRUNTIME_NODE_INSTALL=skip
RUN npm ci --no-audit --no-fund

FROM ${NODE_IMAGE} AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 harmon \
 && useradd --system --uid 10001 --gid harmon --home-dir /app --shell /usr/sbin/nologin harmon
ADD --chmod=644 https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem /etc/ssl/certs/rds-global-bundle.pem
WORKDIR /app
COPY --from=deps --chown=harmon:harmon /app/node_modules ./node_modules
COPY --chown=harmon:harmon package.json package-lock.json tsconfig.json prisma.config.ts schema.graphql ./
COPY --chown=harmon:harmon bin ./bin
COPY --chown=harmon:harmon src ./src
COPY --chown=harmon:harmon prisma ./prisma
COPY --chown=harmon:harmon --chmod=755 infra/docker/entrypoint.sh ./infra/docker/entrypoint.sh
COPY --chown=harmon:harmon infra/docker/healthcheck.mjs ./infra/docker/
RUN chmod 755 bin/harmon.js && ln -s /app/bin/harmon.js /usr/local/bin/harmon
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=4000 \
    NODE_EXTRA_CA_CERTS=/etc/ssl/certs/rds-global-bundle.pem
USER harmon
EXPOSE 4000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "/app/infra/docker/healthcheck.mjs"]
ENTRYPOINT ["/usr/bin/tini", "--", "/app/infra/docker/entrypoint.sh"]
CMD ["harmon", "serve", "--no-worker"]
