import { App } from 'aws-cdk-lib';
import { readConfig } from './config.ts';
import { StatefulStack } from './stateful-stack.ts';
import { StatelessStack } from './stateless-stack.ts';

/** Builds both stacks from the app's context; shared by bin/app.ts and the assertion tests. */
export function buildApp(app: App = new App()): {
  app: App;
  stateful: StatefulStack;
  stateless: StatelessStack;
} {
  const config = readConfig((key) => app.node.tryGetContext(key));
  // Environment-agnostic unless CDK_DEFAULT_* are set (cdk deploy with credentials sets them),
  // so synth works offline without an account lookup.
  const env =
    process.env.CDK_DEFAULT_ACCOUNT && process.env.CDK_DEFAULT_REGION
      ? { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION }
      : undefined;
  const stateful = new StatefulStack(app, 'HarmonStateful', {
    env,
    config,
    description: 'Harmon: data and network',
  });
  const stateless = new StatelessStack(app, 'HarmonStateless', {
    env,
    config,
    stateful,
    description: 'Harmon: API and GPU workers',
  });
  stateless.addStackDependency(stateful);
  return { app, stateful, stateless };
}
