import { Stack, type StackProps } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import type { Construct } from 'constructs';
import { Alarms } from './alarms.ts';
import { ApiService } from './api-service.ts';
import type { InfraConfig } from './config.ts';
import { GpuWorkers } from './gpu-workers.ts';
import type { StatefulStack } from './stateful-stack.ts';

export interface StatelessStackProps extends StackProps {
  config: InfraConfig;
  stateful: StatefulStack;
}

/**
 * Compute that can be destroyed and recreated at will: the ECS cluster, the API service behind
 * its ALB, the GPU worker service with its capacity provider, and the alarms.
 */
export class StatelessStack extends Stack {
  readonly cluster: ecs.Cluster;
  readonly api: ApiService;
  readonly workers: GpuWorkers;
  readonly alarms: Alarms;

  constructor(scope: Construct, id: string, props: StatelessStackProps) {
    super(scope, id, props);
    const { config, stateful } = props;
    this.cluster = new ecs.Cluster(this, 'Cluster', { vpc: stateful.vpc });
    this.api = new ApiService(this, 'Api', { config, stateful, cluster: this.cluster });
    this.workers = new GpuWorkers(this, 'Workers', { config, stateful, cluster: this.cluster });
    this.alarms = new Alarms(this, 'Alarms', { config, stateful, alb: this.api.alb });

    // Database ingress rules live here, next to their clients: created through the cluster's
    // connections they would land in the stateful stack and make it depend on this one (a cycle).
    const dbGroups = stateful.database.connections.securityGroups;
    const clients = [...this.api.databaseClients, this.workers.securityGroup];
    clients.forEach((client, i) => {
      dbGroups.forEach((dbGroup, j) => {
        new ec2.CfnSecurityGroupIngress(this, `DbIngress${i}x${j}`, {
          groupId: dbGroup.securityGroupId,
          sourceSecurityGroupId: client.securityGroupId,
          ipProtocol: 'tcp',
          fromPort: 5432,
          toPort: 5432,
          description: 'Harmon app to Aurora PostgreSQL',
        });
      });
    });
  }
}
