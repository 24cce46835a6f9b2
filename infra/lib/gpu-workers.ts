import { Duration, Stack } from 'aws-cdk-lib';
import * as appscaling from 'aws-cdk-lib/aws-applicationautoscaling';
import * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import type { InfraConfig } from './config.ts';
import { containerImage } from './images.ts';
import { workerReservationMiB } from './memory.ts';
import { containerHealthCheck, sharedEnvironment, sharedSecrets } from './runtime-env.ts';
import type { StatefulStack } from './stateful-stack.ts';

export interface GpuWorkersProps {
  config: InfraConfig;
  stateful: StatefulStack;
  cluster: ecs.Cluster;
}

/** Minutes of empty queue before the last GPU task (and then its instance) goes away. */
const IDLE_MINUTES_BEFORE_SCALE_TO_ZERO = 10;

/**
 * GPU workers (`harmon worker`) as an ECS service on an EC2 Auto Scaling group of single-GPU
 * instances, scaled from zero on queue backlog:
 *
 *   SQS backlog (visible + in flight) --step scaling, exact capacity--> service desired count
 *   pending tasks --capacity provider managed scaling--> ASG instances (min 0)
 *
 * With no jobs the service has 0 tasks and the ASG 0 instances: no GPU cost at idle.
 */
export class GpuWorkers extends Construct {
  readonly service: ecs.Ec2Service;
  readonly autoScalingGroup: autoscaling.AutoScalingGroup;
  readonly capacityProvider: ecs.AsgCapacityProvider;
  readonly securityGroup: ec2.SecurityGroup;

  constructor(scope: Construct, id: string, props: GpuWorkersProps) {
    super(scope, id);
    const { config, stateful, cluster } = props;
    const vpc = stateful.vpc;

    // Instances need no inbound traffic at all; tasks get their own ENI (awsvpc) and group.
    const instanceSg = new ec2.SecurityGroup(this, 'InstanceSg', {
      vpc,
      description: 'GPU instances: no ingress',
    });
    const launchTemplate = new ec2.LaunchTemplate(this, 'LaunchTemplate', {
      instanceType: new ec2.InstanceType(config.gpuInstanceType),
      // The ECS GPU AMI ships the NVIDIA driver and container toolkit; resolved from SSM at
      // deploy time, so synth needs no lookup.
      machineImage: ecs.EcsOptimizedImage.amazonLinux2(ecs.AmiHardwareType.GPU),
      userData: ec2.UserData.forLinux(),
      role: new iam.Role(this, 'InstanceRole', {
        assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'),
        managedPolicies: [
          iam.ManagedPolicy.fromAwsManagedPolicyName('service-role/AmazonEC2ContainerServiceforEC2Role'),
          iam.ManagedPolicy.fromAwsManagedPolicyName('AmazonSSMManagedInstanceCore'),
        ],
      }),
      securityGroup: instanceSg,
      requireImdsv2: true,
      blockDevices: [
        {
          // Room for the image (~10 GB with CUDA) plus the model weights cache.
          deviceName: '/dev/xvda',
          volume: ec2.BlockDeviceVolume.ebs(100, {
            volumeType: ec2.EbsDeviceVolumeType.GP3,
            encrypted: true,
          }),
        },
      ],
    });

    this.autoScalingGroup = new autoscaling.AutoScalingGroup(this, 'Asg', {
      vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      launchTemplate,
      minCapacity: 0,
      maxCapacity: config.maxWorkers,
    });
    if (config.warmPool) {
      // A stopped, already-booted instance with the image pulled starts in ~1 minute instead
      // of ~4; while stopped only its EBS volume is billed.
      this.autoScalingGroup.addWarmPool({
        minSize: 1,
        poolState: autoscaling.PoolState.STOPPED,
        reuseOnScaleIn: true,
      });
      this.autoScalingGroup.addUserData('echo ECS_WARM_POOLS_CHECK=true >> /etc/ecs/ecs.config');
    }
    this.capacityProvider = new ecs.AsgCapacityProvider(this, 'CapacityProvider', {
      autoScalingGroup: this.autoScalingGroup,
      enableManagedScaling: true,
      targetCapacityPercent: 100,
      // Instances running a task are not terminated by scale-in.
      enableManagedTerminationProtection: true,
    });
    cluster.addAsgCapacityProvider(this.capacityProvider);

    const task = new ecs.Ec2TaskDefinition(this, 'Task', { networkMode: ecs.NetworkMode.AWS_VPC });
    const weightsS3Uri =
      config.weightsS3Uri ?? `s3://${stateful.bucket.bucketName}/models/${config.modelVariant}/`;
    task.addContainer('worker', {
      image: containerImage('worker', config.workerImage),
      gpuCount: 1,
      // What loading the model needs in host RAM (memory.ts; readConfig has checked it fits).
      memoryReservationMiB: workerReservationMiB(config),
      environment: {
        ...sharedEnvironment(stateful),
        MODEL_VARIANT: config.modelVariant,
        WEIGHTS_S3_URI: weightsS3Uri,
        WEIGHTS_CACHE_DIR: '/cache/models',
        HARMON_MODEL: `/cache/models/${config.modelVariant}`,
        EXECUTION_PROVIDERS: 'cuda,cpu',
      },
      secrets: sharedSecrets(stateful),
      // First start downloads the weights before the process answers /healthz.
      healthCheck: containerHealthCheck(600),
      logging: ecs.LogDrivers.awsLogs({ streamPrefix: 'worker', logRetention: logs.RetentionDays.ONE_MONTH }),
      // SIGTERM -> finish or release the running job (queue port stop()); 2 min is the ECS max.
      stopTimeout: Duration.seconds(120),
    });
    // The weights cache lives on the instance, so a task restarted on the same (or a warm-pool)
    // instance skips the download.
    task.addVolume({ name: 'model-cache', host: { sourcePath: '/var/cache/harmon-models' } });
    task.defaultContainer?.addMountPoints({
      containerPath: '/cache/models',
      sourceVolume: 'model-cache',
      readOnly: false,
    });

    stateful.bucket.grantReadWrite(task.taskRole);
    stateful.jobQueue.grantConsumeMessages(task.taskRole);
    stateful.deadLetterQueue.grantSendMessages(task.taskRole);
    stateful.jobQueue.grant(task.taskRole, 'sqs:GetQueueAttributes');
    grantWeightsRead(task.taskRole, weightsS3Uri, stateful);
    // A busy worker marks its task protected so service scale-in never stops a running job.
    task.taskRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['ecs:GetTaskProtection', 'ecs:UpdateTaskProtection'],
        resources: ['*'],
      }),
    );

    this.securityGroup = new ec2.SecurityGroup(this, 'TaskSg', {
      vpc,
      description: 'GPU worker tasks: no ingress',
    });
    this.service = new ecs.Ec2Service(this, 'Service', {
      cluster,
      taskDefinition: task,
      desiredCount: 0,
      minHealthyPercent: 0,
      maxHealthyPercent: 100,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      securityGroups: [this.securityGroup],
      capacityProviderStrategies: [
        { capacityProvider: this.capacityProvider.capacityProviderName, weight: 1 },
      ],
      circuitBreaker: { rollback: true },
    });

    this.#scaleOnBacklog(config, stateful);
  }

  /**
   * desired tasks = ceil(backlog / backlogPerTask), capped at maxWorkers, where backlog counts
   * queued and running jobs, so a task is not removed under its own running job. Exact-capacity
   * step scaling works from zero, which target tracking on "backlog per task" cannot (0 tasks
   * makes the per-task metric undefined).
   */
  #scaleOnBacklog(config: InfraConfig, stateful: StatefulStack): void {
    const target = new appscaling.ScalableTarget(this, 'ScalableTarget', {
      serviceNamespace: appscaling.ServiceNamespace.ECS,
      scalableDimension: 'ecs:service:DesiredCount',
      resourceId: `service/${this.service.cluster.clusterName}/${this.service.serviceName}`,
      minCapacity: 0,
      maxCapacity: config.maxWorkers,
    });
    const period = Duration.minutes(1);
    const backlog = new cloudwatch.MathExpression({
      expression: 'visible + inflight',
      usingMetrics: {
        visible: stateful.jobQueue.metricApproximateNumberOfMessagesVisible({ period, statistic: 'Maximum' }),
        inflight: stateful.jobQueue.metricApproximateNumberOfMessagesNotVisible({
          period,
          statistic: 'Maximum',
        }),
      },
      period,
      label: 'Harmon jobs queued or running',
    });

    const scaleOut = new appscaling.StepScalingAction(this, 'ScaleOutOnBacklog', {
      scalingTarget: target,
      adjustmentType: appscaling.AdjustmentType.EXACT_CAPACITY,
      metricAggregationType: appscaling.MetricAggregationType.MAXIMUM,
      cooldown: Duration.seconds(60),
    });
    // Bounds are relative to the alarm threshold (backlog >= 1).
    const per = config.backlogPerTask;
    for (let tasks = 1; tasks <= config.maxWorkers; tasks++) {
      scaleOut.addAdjustment({
        lowerBound: (tasks - 1) * per,
        upperBound: tasks === config.maxWorkers ? undefined : tasks * per,
        adjustment: tasks,
      });
    }
    new cloudwatch.Alarm(this, 'BacklogHigh', {
      alarmDescription: 'Harmon jobs waiting or running: set GPU worker count from the backlog',
      metric: backlog,
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    }).addAlarmAction(new cwActions.ApplicationScalingAction(scaleOut));

    const scaleToZero = new appscaling.StepScalingAction(this, 'ScaleToZeroWhenIdle', {
      scalingTarget: target,
      adjustmentType: appscaling.AdjustmentType.EXACT_CAPACITY,
      metricAggregationType: appscaling.MetricAggregationType.MAXIMUM,
      cooldown: Duration.seconds(60),
    });
    scaleToZero.addAdjustment({ upperBound: 0, adjustment: 0 });
    new cloudwatch.Alarm(this, 'BacklogEmpty', {
      alarmDescription: `No Harmon jobs for ${IDLE_MINUTES_BEFORE_SCALE_TO_ZERO} minutes: scale GPU workers to zero`,
      metric: backlog,
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: IDLE_MINUTES_BEFORE_SCALE_TO_ZERO,
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
    }).addAlarmAction(new cwActions.ApplicationScalingAction(scaleToZero));
  }
}

function grantWeightsRead(role: iam.IRole, uri: string, stateful: StatefulStack): void {
  const match = /^s3:\/\/([^/]+)\/(.*)$/.exec(uri);
  if (!match || match[1] === stateful.bucket.bucketName) return; // own bucket: already granted
  const [, bucket, prefix] = match;
  const arn = `arn:${Stack.of(stateful).partition}:s3:::${bucket}`;
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: [`${arn}/${prefix}*`] }),
  );
  role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['s3:ListBucket'], resources: [arn] }));
}
