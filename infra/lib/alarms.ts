import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
import type { InfraConfig } from './config.ts';
import type { StatefulStack } from './stateful-stack.ts';

export interface AlarmsProps {
  config: InfraConfig;
  stateful: StatefulStack;
  alb: elbv2.ApplicationLoadBalancer;
}

/** Operator alarms, all sent to one SNS topic (email subscription when alarmEmail is set). */
export class Alarms extends Construct {
  readonly topic: sns.Topic;
  readonly deadLetters: cloudwatch.Alarm;
  readonly jobLatency: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: AlarmsProps) {
    super(scope, id);
    const { config, stateful } = props;
    this.topic = new sns.Topic(this, 'Topic', { displayName: 'Harmon platform alarms', enforceSSL: true });
    if (config.alarmEmail) this.topic.addSubscription(new subscriptions.EmailSubscription(config.alarmEmail));
    const notify = new cwActions.SnsAction(this.topic);

    // Any dead letter is a job that failed maxAttempts times: a bug or a broken GPU node.
    this.deadLetters = stateful.deadLetterQueue
      .metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1), statistic: 'Maximum' })
      .createAlarm(this, 'DeadLetters', {
        alarmDescription: 'Harmon jobs reached the dead-letter queue',
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });

    // Queue wait is the part of job latency infra controls (cold starts, too few workers).
    this.jobLatency = stateful.jobQueue
      .metricApproximateAgeOfOldestMessage({ period: Duration.minutes(1), statistic: 'Maximum' })
      .createAlarm(this, 'JobLatency', {
        alarmDescription: `Oldest queued Harmon job older than ${config.jobLatencyAlarmSeconds} s`,
        threshold: config.jobLatencyAlarmSeconds,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 3,
        datapointsToAlarm: 3,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });

    const api5xx = props.alb.metrics
      .httpCodeTarget(elbv2.HttpCodeTarget.TARGET_5XX_COUNT, {
        period: Duration.minutes(5),
        statistic: 'Sum',
      })
      .createAlarm(this, 'Api5xx', {
        alarmDescription: 'API answered with 5xx',
        threshold: 10,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });

    for (const alarm of [this.deadLetters, this.jobLatency, api5xx]) {
      alarm.addAlarmAction(notify);
      alarm.addOkAction(notify);
    }
  }
}
