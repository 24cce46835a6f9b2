import { Duration, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as rds from 'aws-cdk-lib/aws-rds';
import * as s3 from 'aws-cdk-lib/aws-s3';
import type * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import type { InfraConfig } from './config.ts';

export interface StatefulStackProps extends StackProps {
  config: InfraConfig;
}

/**
 * Everything that holds data and must survive a redeploy of the services: network, database,
 * object storage, the job queue and secrets. Deployed first and rarely; retained on delete.
 */
export class StatefulStack extends Stack {
  readonly vpc: ec2.Vpc;
  readonly database: rds.DatabaseCluster;
  readonly databaseSecret: secretsmanager.ISecret;
  readonly bucket: s3.Bucket;
  readonly jobQueue: sqs.Queue;
  readonly deadLetterQueue: sqs.Queue;

  constructor(scope: Construct, id: string, props: StatefulStackProps) {
    super(scope, id, props);
    const { config } = props;

    // Public subnets hold only the ALB and the NAT gateway; tasks and GPU instances live in
    // private subnets; the database in isolated ones with no route out at all.
    this.vpc = new ec2.Vpc(this, 'Vpc', {
      maxAzs: 2,
      natGateways: config.natGateways,
      subnetConfiguration: [
        { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
        { name: 'private', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 20 },
        { name: 'isolated', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 24 },
      ],
      // Model weights and outputs are S3 traffic: the free gateway endpoint keeps them off the
      // NAT gateway, which bills per GB.
      gatewayEndpoints: { S3: { service: ec2.GatewayVpcEndpointAwsService.S3 } },
    });

    this.database = new rds.DatabaseCluster(this, 'Database', {
      engine: rds.DatabaseClusterEngine.auroraPostgres({ version: rds.AuroraPostgresEngineVersion.VER_16_8 }),
      writer: rds.ClusterInstance.serverlessV2('writer'),
      serverlessV2MinCapacity: config.dbMinAcu,
      serverlessV2MaxCapacity: config.dbMaxAcu,
      // With 0 ACU minimum the cluster pauses after this much idle time (no compute billed).
      serverlessV2AutoPauseDuration: config.dbMinAcu === 0 ? Duration.minutes(10) : undefined,
      defaultDatabaseName: 'harmon',
      credentials: rds.Credentials.fromGeneratedSecret('harmon'),
      vpc: this.vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
      storageEncrypted: true,
      backup: { retention: Duration.days(7) },
      deletionProtection: true,
      removalPolicy: RemovalPolicy.SNAPSHOT,
    });
    if (!this.database.secret) throw new Error('Aurora cluster was created without a credentials secret');
    this.databaseSecret = this.database.secret;

    this.bucket = new s3.Bucket(this, 'Assets', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      versioned: false,
      removalPolicy: RemovalPolicy.RETAIN,
      cors: [
        {
          // Browsers upload input images straight to presigned PUT URLs (createUpload).
          allowedMethods: [s3.HttpMethods.PUT, s3.HttpMethods.GET],
          allowedOrigins: config.corsOrigins,
          allowedHeaders: ['*'],
          maxAge: 3600,
        },
      ],
      lifecycleRules: [
        { id: 'abort-incomplete-multipart', abortIncompleteMultipartUploadAfter: Duration.days(1) },
        // Uploads are consumed by one job; previews only matter while a job runs.
        { id: 'uploads', prefix: 'uploads/', expiration: Duration.days(1) },
        { id: 'previews', prefix: 'previews/', expiration: Duration.days(1) },
        // Tenant retention: the worker tags each output with its tenant's retention class.
        ...config.retentionDays.map((days) => ({
          id: `retention-${days}d`,
          tagFilters: { 'harmon-retention': `${days}d` },
          expiration: Duration.days(days),
        })),
      ],
    });

    this.deadLetterQueue = new sqs.Queue(this, 'JobsDlq', {
      retentionPeriod: Duration.days(14),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
    });
    this.jobQueue = new sqs.Queue(this, 'Jobs', {
      visibilityTimeout: Duration.seconds(config.visibilityTimeoutSeconds),
      retentionPeriod: Duration.days(4),
      receiveMessageWaitTime: Duration.seconds(20),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      // Safety net behind the worker's own dead-lettering (see src/jobs/queue/sqs-queue.ts).
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: config.maxAttempts },
    });
  }
}
