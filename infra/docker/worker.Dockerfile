# syntax=docker/dockerfile:1.7
# GPU worker image: CUDA 12 + cuDNN 9 runtime, Node 20, onnxruntime-node with its CUDA execution
# provider fetched at install time. Model weights are NOT baked in: entrypoint.sh pulls them from
# WEIGHTS_S3_URI into WEIGHTS_CACHE_DIR (checksummed, cached on the instance) before starting.
# Build from the repository root:  docker build -f infra/docker/worker.Dockerfile -t harmon-worker .
ARG NODE_IMAGE=node:20-bookworm-slim
ARG CUDA_IMAGE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu22.04

FROM ${NODE_IMAGE} AS node

# ---- dependencies: needs the network (npm registry, onnxruntime CUDA binaries) ----
FROM ${CUDA_IMAGE} AS deps
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules /usr/local/lib/node_modules
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# Manifests first so the install layer is cached until the lock file changes. The postinstall
# script generates the Prisma client, so the schema comes along.
COPY package.json package-lock.json prisma.config.ts ./
COPY scripts ./scripts
COPY prisma ./prisma
# cuda12 makes onnxruntime-node's install script add the CUDA execution provider libraries.
# Keep these flags in sync with test/infra/docker.test.ts, which runs the same `npm ci` offline.
ENV ONNXRUNTIME_NODE_INSTALL=cuda12
RUN npm ci --no-audit --no-fund

# ---- runtime ----
FROM ${CUDA_IMAGE} AS runtime
COPY --from=node /usr/local/bin/node /usr/local/bin/node
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 harmon \
 && useradd --system --uid 10001 --gid harmon --home-dir /app --shell /usr/sbin/nologin harmon \
 && mkdir -p /cache/models \
 && chown harmon:harmon /cache/models
# Aurora requires TLS; Node's CA store lacks the RDS roots.
ADD --chmod=644 https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem /etc/ssl/certs/rds-global-bundle.pem
WORKDIR /app
COPY --from=deps --chown=harmon:harmon /app/node_modules ./node_modules
COPY --chown=harmon:harmon package.json package-lock.json tsconfig.json prisma.config.ts schema.graphql ./
COPY --chown=harmon:harmon bin ./bin
COPY --chown=harmon:harmon src ./src
COPY --chown=harmon:harmon prisma ./prisma
COPY --chown=harmon:harmon --chmod=755 infra/docker/entrypoint.sh ./infra/docker/entrypoint.sh
COPY --chown=harmon:harmon infra/docker/fetch-weights.ts infra/docker/healthcheck.mjs ./infra/docker/
RUN chmod 755 bin/harmon.js && ln -s /app/bin/harmon.js /usr/local/bin/harmon
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=4000 \
    WEIGHTS_CACHE_DIR=/cache/models \
    EXECUTION_PROVIDERS=cuda,cpu \
    NODE_EXTRA_CA_CERTS=/etc/ssl/certs/rds-global-bundle.pem \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
USER harmon
EXPOSE 4000
# The first start downloads several GB of weights before /healthz answers.
HEALTHCHECK --interval=30s --timeout=5s --start-period=600s --retries=3 \
  CMD ["node", "/app/infra/docker/healthcheck.mjs"]
# tini forwards SIGTERM to node, which then finishes or releases its job (graceful shutdown).
ENTRYPOINT ["/usr/bin/tini", "--", "/app/infra/docker/entrypoint.sh"]
CMD ["harmon", "worker"]
