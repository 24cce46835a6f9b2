/**
 * The CDK app: `cd infra && npx cdk synth` (offline, no Docker) or `npx cdk deploy --all`.
 * Deploy order: HarmonStateful first (VPC, Aurora, S3, SQS, secrets), then HarmonStateless.
 */
import { buildApp } from '../lib/build-app.ts';

buildApp().app.synth();
