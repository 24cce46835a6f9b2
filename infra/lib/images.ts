import { fileURLToPath } from 'node:url';
import { IgnoreMode } from 'aws-cdk-lib';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as lambda from 'aws-cdk-lib/aws-lambda';

/** The repository root: the Docker build context of every image. */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Only what the images need goes into the build context (and into cdk.out at synth): an
 * allow-list, so a local node_modules, model exports or test artefacts never get hashed,
 * staged or uploaded.
 */
export const BUILD_CONTEXT_EXCLUDE = [
  '**',
  '!package.json',
  '!package-lock.json',
  '!tsconfig.json',
  '!bin/**',
  '!src/**',
  '!prisma/**',
  '!prisma.config.ts',
  '!schema.graphql',
  '!scripts/**',
  '!infra/docker/**',
];

export type ImageKind = 'api' | 'worker';

/**
 * A prebuilt image URI when CI pushed one (`-c workerImage=...`), otherwise a Docker image asset
 * built at deploy time. Synth never runs Docker either way: assets are only staged.
 */
export function containerImage(kind: ImageKind, prebuilt: string | undefined): ecs.ContainerImage {
  if (prebuilt) return ecs.ContainerImage.fromRegistry(prebuilt);
  return ecs.ContainerImage.fromAsset(REPO_ROOT, {
    file: `infra/docker/${kind}.Dockerfile`,
    exclude: BUILD_CONTEXT_EXCLUDE,
    ignoreMode: IgnoreMode.DOCKER,
  });
}

export function lambdaImage(): lambda.DockerImageCode {
  return lambda.DockerImageCode.fromImageAsset(REPO_ROOT, {
    file: 'infra/docker/lambda.Dockerfile',
    exclude: BUILD_CONTEXT_EXCLUDE,
    ignoreMode: IgnoreMode.DOCKER,
  });
}
