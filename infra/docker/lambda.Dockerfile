# syntax=docker/dockerfile:1.7
# Optional HTTP-only GraphQL Lambda (context graphqlLambda=true). Runs src/lambda.ts through
# lambda-entry.mjs, which registers tsx first; the handler itself is owned by the API code.
ARG LAMBDA_IMAGE=public.ecr.aws/lambda/nodejs:20

FROM ${LAMBDA_IMAGE} AS deps
WORKDIR /build
COPY package.json package-lock.json prisma.config.ts ./
COPY scripts ./scripts
COPY prisma ./prisma
ENV ONNXRUNTIME_NODE_INSTALL=skip
RUN npm ci --no-audit --no-fund

FROM ${LAMBDA_IMAGE}
ADD --chmod=644 https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem /etc/ssl/certs/rds-global-bundle.pem
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/rds-global-bundle.pem NODE_ENV=production
COPY --from=deps /build/node_modules ${LAMBDA_TASK_ROOT}/node_modules
COPY package.json tsconfig.json schema.graphql ${LAMBDA_TASK_ROOT}/
COPY src ${LAMBDA_TASK_ROOT}/src
COPY prisma ${LAMBDA_TASK_ROOT}/prisma
COPY infra/docker/lambda-entry.mjs ${LAMBDA_TASK_ROOT}/
CMD ["lambda-entry.handler"]
