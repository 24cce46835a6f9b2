/**
 * The CDK app synthesized for assertion tests: infra/cdk.json's context plus per-test overrides;
 * images are given as URIs so synth stays fast (asset staging is covered by `cdk synth`).
 */
import { readFileSync } from 'node:fs';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { buildApp } from '../../infra/lib/build-app.ts';

export const cdkJson = JSON.parse(readFileSync(new URL('../../infra/cdk.json', import.meta.url), 'utf8')) as {
  app: string;
  context: Record<string, unknown>;
};

export function synth(overrides: Record<string, unknown> = {}) {
  const app = new App({
    context: {
      ...cdkJson.context,
      apiImage: 'registry.example/harmon-api:test',
      workerImage: 'registry.example/harmon-worker:test',
      ...overrides,
    },
  });
  const { stateful, stateless } = buildApp(app);
  return { stateful, stateless, data: Template.fromStack(stateful), compute: Template.fromStack(stateless) };
}
