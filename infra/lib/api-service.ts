import { Duration } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as targets from 'aws-cdk-lib/aws-elasticloadbalancingv2-targets';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import type { InfraConfig } from './config.ts';
import { containerImage, lambdaImage } from './images.ts';
import { APP_PORT, containerHealthCheck, sharedEnvironment, sharedSecrets } from './runtime-env.ts';
import type { StatefulStack } from './stateful-stack.ts';

export interface ApiServiceProps {
  config: InfraConfig;
  stateful: StatefulStack;
  cluster: ecs.Cluster;
}

/**
 * The GraphQL API: Fargate tasks (`harmon serve --no-worker`) in private subnets behind the only
 * internet-facing component, an ALB. WebSocket (graphql-ws) and SSE (graphql-sse) sessions are
 * long-lived HTTP connections, so the ALB idle timeout is an hour instead of 60 s; events fan
 * out across tasks through Postgres, so no sticky sessions are needed.
 */
/**
 * HARMON_MODEL for the API and the Lambda, which hold no weights: with no manifest there,
 * src/api/models.ts takes the directory name as the model id, which is the exported model's id
 * (`harmon-<variant>`, as the workers load it). Without it the API would offer only the demo
 * model's id, which no GPU worker serves.
 */
function apiModelDir(config: InfraConfig): string {
  return `/models/${config.modelVariant}`;
}

export class ApiService extends Construct {
  readonly alb: elbv2.ApplicationLoadBalancer;
  readonly service: ecs.FargateService;
  readonly listener: elbv2.ApplicationListener;
  readonly targetGroup: elbv2.ApplicationTargetGroup;
  /** Security groups allowed to reach the database. */
  readonly databaseClients: ec2.ISecurityGroup[] = [];

  constructor(scope: Construct, id: string, props: ApiServiceProps) {
    super(scope, id);
    const { config, stateful, cluster } = props;
    const vpc = stateful.vpc;

    this.alb = new elbv2.ApplicationLoadBalancer(this, 'Alb', {
      vpc,
      internetFacing: true,
      vpcSubnets: { subnetType: ec2.SubnetType.PUBLIC },
      idleTimeout: Duration.seconds(3600),
      dropInvalidHeaderFields: true,
    });
    if (config.certificateArn) {
      this.listener = this.alb.addListener('Https', {
        port: 443,
        certificates: [elbv2.ListenerCertificate.fromArn(config.certificateArn)],
        sslPolicy: elbv2.SslPolicy.RECOMMENDED_TLS,
      });
      this.alb.addRedirect({ sourcePort: 80, targetPort: 443 });
    } else {
      // Development only: without a certificate API keys would cross the internet in clear text.
      this.listener = this.alb.addListener('Http', { port: 80 });
    }

    const task = new ecs.FargateTaskDefinition(this, 'Task', {
      cpu: 512,
      memoryLimitMiB: 1024,
      runtimePlatform: {
        cpuArchitecture: ecs.CpuArchitecture.X86_64,
        operatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
      },
    });
    task.addContainer('api', {
      image: containerImage('api', config.apiImage),
      // The ALB appends the client's address to X-Forwarded-For (failed-auth throttling keys on it).
      environment: {
        ...sharedEnvironment(stateful),
        HARMON_MODEL: apiModelDir(config),
        TRUSTED_PROXY_HOPS: '1',
      },
      secrets: sharedSecrets(stateful),
      portMappings: [{ containerPort: APP_PORT }],
      healthCheck: containerHealthCheck(60),
      logging: ecs.LogDrivers.awsLogs({ streamPrefix: 'api', logRetention: logs.RetentionDays.ONE_MONTH }),
      stopTimeout: Duration.seconds(30),
    });
    stateful.bucket.grantReadWrite(task.taskRole);
    stateful.jobQueue.grantSendMessages(task.taskRole);
    // Queue depth for /metrics and Query.viewer.
    stateful.jobQueue.grant(task.taskRole, 'sqs:GetQueueAttributes');
    stateful.deadLetterQueue.grant(task.taskRole, 'sqs:GetQueueAttributes');

    const sg = new ec2.SecurityGroup(this, 'TaskSg', {
      vpc,
      description: 'API tasks: ingress from the ALB only',
    });
    this.databaseClients.push(sg);
    this.service = new ecs.FargateService(this, 'Service', {
      cluster,
      taskDefinition: task,
      desiredCount: 1,
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
      assignPublicIp: false,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      securityGroups: [sg],
      circuitBreaker: { rollback: true },
    });
    this.targetGroup = this.listener.addTargets('Api', {
      port: APP_PORT,
      protocol: elbv2.ApplicationProtocol.HTTP,
      targets: [this.service],
      healthCheck: { path: '/healthz', healthyHttpCodes: '200', interval: Duration.seconds(15) },
      // Long-lived subscriptions get this long to move to another task on deploys.
      deregistrationDelay: Duration.seconds(30),
    });

    const scaling = this.service.autoScaleTaskCount({ minCapacity: 1, maxCapacity: 10 });
    scaling.scaleOnCpuUtilization('Cpu', { targetUtilizationPercent: 60 });
    scaling.scaleOnRequestCount('Requests', { requestsPerTarget: 1000, targetGroup: this.targetGroup });

    if (config.graphqlLambda) this.#addLambda(config, stateful);
  }

  /**
   * Optional HTTP-only GraphQL (queries and mutations, no subscriptions) on Lambda, for tenants
   * who want per-request billing. It sits behind the same ALB (`/lambda/graphql`) so the ALB
   * stays the only public entry point; src/lambda.ts must export `handler` built with
   * @as-integrations/aws-lambda's ALB request handler.
   */
  #addLambda(config: InfraConfig, stateful: StatefulStack): void {
    const sg = new ec2.SecurityGroup(this, 'LambdaSg', { vpc: stateful.vpc, description: 'GraphQL Lambda' });
    this.databaseClients.push(sg);
    const fn = new lambda.DockerImageFunction(this, 'GraphqlLambda', {
      code: lambdaImage(),
      memorySize: 1024,
      timeout: Duration.seconds(29),
      vpc: stateful.vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      securityGroups: [sg],
      environment: {
        ...sharedEnvironment(stateful),
        // Lambda cannot inject secret fields; the handler reads these secrets at cold start.
        DATABASE_SECRET_ARN: stateful.databaseSecret.secretArn,
        MODEL_VARIANT: config.modelVariant,
        HARMON_MODEL: apiModelDir(config),
      },
    });
    stateful.databaseSecret.grantRead(fn);
    stateful.bucket.grantReadWrite(fn);
    stateful.jobQueue.grantSendMessages(fn);
    this.listener.addTargets('GraphqlLambda', {
      priority: 10,
      conditions: [elbv2.ListenerCondition.pathPatterns(['/lambda/graphql'])],
      targets: [new targets.LambdaTarget(fn)],
    });
  }
}
