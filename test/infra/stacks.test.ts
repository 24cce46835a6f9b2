/**
 * Assertion tests of the synthesized CloudFormation (aws-cdk-lib/assertions), one block per
 * acceptance point of issue 6, on the app test/infra/synth.ts builds.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Stack } from 'aws-cdk-lib';
import { Match, type Template } from 'aws-cdk-lib/assertions';
import { readConfig } from '../../infra/lib/config.ts';
import { cdkJson, synth } from './synth.ts';

type Resources = Record<string, { Type: string; Properties?: Record<string, unknown> }>;
const resourcesOf = (t: Template, type: string) => t.findResources(type) as Resources;
const only = <T>(values: T[], what: string): T => {
  assert.equal(values.length, 1, `expected exactly one ${what}`);
  return values[0];
};

describe('CDK app', () => {
  const { stateful, data, compute } = synth();

  test('cdk.json runs the app with tsx and sets the launch-template and no-bundling context', () => {
    assert.equal(cdkJson.app, 'npx tsx bin/app.ts');
    assert.equal(
      cdkJson.context['@aws-cdk/aws-autoscaling:generateLaunchTemplateInsteadOfLaunchConfig'],
      true,
    );
    assert.deepEqual(cdkJson.context['aws:cdk:bundling-stacks'], []);
  });

  test('GPU instance type is in the launch template (and follows the context)', () => {
    compute.hasResourceProperties('AWS::EC2::LaunchTemplate', {
      LaunchTemplateData: Match.objectLike({
        InstanceType: 'g6e.xlarge',
        MetadataOptions: { HttpTokens: 'required' },
      }),
    });
    compute.resourceCountIs('AWS::AutoScaling::LaunchConfiguration', 0);
    synth({ gpuInstanceType: 'g5.2xlarge', modelVariant: 'harmon-0.5b' }).compute.hasResourceProperties(
      'AWS::EC2::LaunchTemplate',
      { LaunchTemplateData: Match.objectLike({ InstanceType: 'g5.2xlarge' }) },
    );
    assert.throws(() => readConfig((k) => (k === 'gpuInstanceType' ? 'p4d.24xlarge' : undefined)), /g5\/g6/);
  });

  test('capacity provider: ASG min 0, managed scaling and termination protection on', () => {
    compute.hasResourceProperties('AWS::AutoScaling::AutoScalingGroup', {
      MinSize: '0',
      MaxSize: '4',
      NewInstancesProtectedFromScaleIn: true,
    });
    compute.hasResourceProperties('AWS::ECS::CapacityProvider', {
      AutoScalingGroupProvider: Match.objectLike({
        ManagedScaling: Match.objectLike({ Status: 'ENABLED', TargetCapacity: 100 }),
        ManagedTerminationProtection: 'ENABLED',
      }),
    });
    compute.resourceCountIs('AWS::AutoScaling::WarmPool', 0);
    synth({ warmPool: 'true' }).compute.resourceCountIs('AWS::AutoScaling::WarmPool', 1);
  });

  test('worker task definition requests exactly 1 GPU and runs on the capacity provider', () => {
    compute.hasResourceProperties('AWS::ECS::TaskDefinition', {
      RequiresCompatibilities: ['EC2'],
      ContainerDefinitions: [
        Match.objectLike({
          ResourceRequirements: [{ Type: 'GPU', Value: '1' }],
          Environment: Match.arrayWith([
            { Name: 'QUEUE_BACKEND', Value: 'sqs' },
            { Name: 'MODEL_VARIANT', Value: 'harmon-1.5b' },
            { Name: 'EXECUTION_PROVIDERS', Value: 'cuda,cpu' },
          ]),
          HealthCheck: Match.objectLike({ Command: ['CMD', 'node', '/app/infra/docker/healthcheck.mjs'] }),
        }),
      ],
    });
    compute.hasResourceProperties('AWS::ECS::Service', {
      CapacityProviderStrategy: [Match.objectLike({ Weight: 1 })],
      DesiredCount: 0,
    });
    const custom = synth({
      modelVariant: 'harmon-0.5b',
      weightsS3Uri: 's3://weights-bucket/exports/h05/',
    }).compute;
    custom.hasResourceProperties('AWS::ECS::TaskDefinition', {
      ContainerDefinitions: [
        Match.objectLike({
          Environment: Match.arrayWith([
            { Name: 'WEIGHTS_S3_URI', Value: 's3://weights-bucket/exports/h05/' },
          ]),
        }),
      ],
    });
  });

  test('worker service scales from zero on SQS backlog (exact capacity per backlogPerTask)', () => {
    compute.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', {
      ScalableDimension: 'ecs:service:DesiredCount',
      MinCapacity: 0,
      MaxCapacity: 4,
    });
    const policies = Object.values(resourcesOf(compute, 'AWS::ApplicationAutoScaling::ScalingPolicy'))
      .map(
        (p) =>
          p.Properties?.StepScalingPolicyConfiguration as
            | {
                AdjustmentType: string;
                StepAdjustments: { ScalingAdjustment: number; MetricIntervalLowerBound?: number }[];
              }
            | undefined,
      )
      .filter((c) => c?.AdjustmentType === 'ExactCapacity');
    assert.equal(policies.length, 2, 'a scale-out and a scale-to-zero policy');
    const out = policies.find((p) => p?.StepAdjustments.length === 4);
    assert.deepEqual(
      out?.StepAdjustments.map((s) => [s.MetricIntervalLowerBound, s.ScalingAdjustment]),
      [
        [0, 1],
        [4, 2],
        [8, 3],
        [12, 4],
      ],
    );
    assert.ok(
      policies.some((p) => p?.StepAdjustments.length === 1 && p.StepAdjustments[0].ScalingAdjustment === 0),
    );
    // Both alarms read visible + in-flight messages of the job queue and trigger those policies.
    const queueName = importOf(stateful, stateful.jobQueue, 'QueueName');
    const alarms = Object.values(resourcesOf(compute, 'AWS::CloudWatch::Alarm')).filter((a) =>
      JSON.stringify(a.Properties?.Metrics ?? []).includes('ApproximateNumberOfMessagesNotVisible'),
    );
    assert.equal(alarms.length, 2);
    for (const a of alarms) {
      const text = JSON.stringify(a.Properties);
      assert.ok(text.includes('ApproximateNumberOfMessagesVisible') && text.includes(queueName), text);
      assert.match(JSON.stringify(a.Properties?.AlarmActions), /ScalingPolicy|ScaleOutOnBacklog|ScaleToZero/);
    }
  });

  test('bucket blocks public access, enforces TLS, encrypts and expires by retention tag', () => {
    data.hasResourceProperties('AWS::S3::Bucket', {
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
      },
      LifecycleConfiguration: {
        Rules: Match.arrayWith([
          Match.objectLike({ Id: 'uploads', Prefix: 'uploads/', ExpirationInDays: 1 }),
          Match.objectLike({
            Id: 'retention-30d',
            ExpirationInDays: 30,
            TagFilters: [{ Key: 'harmon-retention', Value: '30d' }],
          }),
        ]),
      },
    });
    data.hasResourceProperties('AWS::S3::BucketPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
  });

  test('Aurora PostgreSQL is Serverless v2, encrypted, private, able to pause at 0 ACU', () => {
    data.hasResourceProperties('AWS::RDS::DBCluster', {
      Engine: 'aurora-postgresql',
      StorageEncrypted: true,
      ServerlessV2ScalingConfiguration: Match.objectLike({ MinCapacity: 0, MaxCapacity: 4 }),
    });
    data.hasResourceProperties('AWS::RDS::DBInstance', {
      DBInstanceClass: 'db.serverless',
      PubliclyAccessible: false,
    });
  });

  test('SQS job queue redrives to its DLQ after maxAttempts; both deny non-TLS access', () => {
    data.hasResourceProperties('AWS::SQS::Queue', {
      VisibilityTimeout: 120,
      RedrivePolicy: Match.objectLike({ maxReceiveCount: 3 }),
    });
    const policies = Object.values(resourcesOf(data, 'AWS::SQS::QueuePolicy'));
    assert.equal(policies.length, 2);
    for (const p of policies) assert.match(JSON.stringify(p.Properties), /aws:SecureTransport/);
  });

  test('alarms: DLQ depth and job latency notify the alarm topic', () => {
    const dlqName = importOf(stateful, stateful.deadLetterQueue, 'QueueName');
    const alarms = Object.values(resourcesOf(compute, 'AWS::CloudWatch::Alarm'));
    const dlqAlarm = only(
      alarms.filter((a) => a.Properties?.MetricName === 'ApproximateNumberOfMessagesVisible'),
      'DLQ depth alarm',
    );
    assert.ok(JSON.stringify(dlqAlarm.Properties?.Dimensions).includes(dlqName), 'DLQ alarm watches the DLQ');
    assert.equal(dlqAlarm.Properties?.Threshold, 1);
    const latency = only(
      alarms.filter((a) => a.Properties?.MetricName === 'ApproximateAgeOfOldestMessage'),
      'job latency alarm',
    );
    assert.equal(latency.Properties?.Threshold, 600);
    for (const a of [dlqAlarm, latency])
      assert.match(JSON.stringify(a.Properties?.AlarmActions), /AlarmsTopic/);
  });

  test('nothing is publicly reachable except the ALB', () => {
    const lbs = Object.entries(resourcesOf(compute, 'AWS::ElasticLoadBalancingV2::LoadBalancer'));
    const [, lb] = only(lbs, 'load balancer');
    assert.equal(lb.Properties?.Scheme, 'internet-facing');
    const albGroups = JSON.stringify(lb.Properties?.SecurityGroups);
    // Every world-open ingress rule, inline or standalone, belongs to the ALB's security group.
    const openInline = [data, compute].flatMap((t) =>
      Object.entries(resourcesOf(t, 'AWS::EC2::SecurityGroup')).filter(([, sg]) =>
        JSON.stringify(sg.Properties?.SecurityGroupIngress ?? []).match(
          /"CidrIp(v6)?":"(0\.0\.0\.0\/0|::\/0)"/,
        ),
      ),
    );
    assert.equal(openInline.length, 1);
    assert.ok(albGroups.includes(openInline[0][0]), 'the only world-open group is the ALB group');
    for (const t of [data, compute]) {
      for (const rule of Object.values(resourcesOf(t, 'AWS::EC2::SecurityGroupIngress'))) {
        assert.ok(
          !JSON.stringify(rule.Properties).match(/0\.0\.0\.0\/0|::\/0/),
          'standalone open ingress rule',
        );
      }
    }
    for (const svc of Object.values(resourcesOf(compute, 'AWS::ECS::Service'))) {
      const net = svc.Properties?.NetworkConfiguration as {
        AwsvpcConfiguration?: { AssignPublicIp?: string };
      };
      assert.ok(net?.AwsvpcConfiguration, 'every service uses awsvpc networking');
      assert.notEqual(net.AwsvpcConfiguration.AssignPublicIp, 'ENABLED');
    }
    const lt = JSON.stringify(resourcesOf(compute, 'AWS::EC2::LaunchTemplate'));
    assert.ok(!lt.includes('"AssociatePublicIpAddress":true'));
    data.hasResourceProperties('AWS::RDS::DBInstance', { PubliclyAccessible: false });
    for (const type of ['AWS::Lambda::Url', 'AWS::ApiGateway::RestApi', 'AWS::ApiGatewayV2::Api']) {
      compute.resourceCountIs(type, 0);
    }
  });

  test('API: Fargate behind the ALB with a WebSocket-friendly idle timeout and autoscaling', () => {
    compute.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', {
      LoadBalancerAttributes: Match.arrayWith([{ Key: 'idle_timeout.timeout_seconds', Value: '3600' }]),
    });
    compute.hasResourceProperties('AWS::ECS::Service', { LaunchType: 'FARGATE' });
    compute.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
      HealthCheckPath: '/healthz',
      Port: 4000,
    });
    compute.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', {
      MinCapacity: 1,
      MaxCapacity: 10,
    });
    compute.hasResourceProperties('AWS::ApplicationAutoScaling::ScalingPolicy', {
      PolicyType: 'TargetTrackingScaling',
      TargetTrackingScalingPolicyConfiguration: Match.objectLike({
        PredefinedMetricSpecification: { PredefinedMetricType: 'ECSServiceAverageCPUUtilization' },
      }),
    });
  });

  test('optional GraphQL Lambda stays off by default and sits behind the ALB when on', () => {
    compute.resourceCountIs('AWS::Lambda::Function', 0);
    const withLambda = synth({ graphqlLambda: 'true' }).compute;
    withLambda.resourceCountIs('AWS::Lambda::Function', 1);
    withLambda.hasResourceProperties('AWS::ElasticLoadBalancingV2::ListenerRule', {
      Conditions: [{ Field: 'path-pattern', PathPatternConfig: { Values: ['/lambda/graphql'] } }],
    });
    withLambda.resourceCountIs('AWS::Lambda::Url', 0);
  });
});

/** The Fn::ImportValue name the stateless stack uses for an attribute of a stateful resource. */
function importOf(stack: Stack, construct: { node: { defaultChild?: unknown } }, attribute: string): string {
  const logicalId = stack.getLogicalId(construct.node.defaultChild as never);
  return `${logicalId}${attribute}`;
}
