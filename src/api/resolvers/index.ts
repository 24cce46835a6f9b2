import type { ResolverMap } from '../schema.ts';
import { jobEventFieldResolvers, jobFieldResolvers } from './job-fields.ts';
import { mutationResolvers } from './mutation.ts';
import { queryResolvers } from './query.ts';
import { subscriptionResolvers } from './subscription.ts';

export const resolvers: ResolverMap = {
  Query: queryResolvers,
  Mutation: mutationResolvers,
  Subscription: subscriptionResolvers,
  Job: jobFieldResolvers,
  JobEvent: jobEventFieldResolvers,
};
