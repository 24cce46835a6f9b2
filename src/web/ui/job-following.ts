/**
 * Glue between a view, its job panel, the URL hash and saved session state: starting a job puts
 * its id in the hash; every event saves the last seq and preview; following an id (on load or on
 * hash change) resumes from what was saved for it.
 */
import type { ApiError } from '../lib/api-error.ts';
import { type Follower, followJob } from '../lib/follow-job.ts';
import type { GraphQLClient } from '../lib/graphql-client.ts';
import { isTerminal } from '../lib/job-state.ts';
import { hashFor, type Session, type Tab } from '../lib/session.ts';
import type { JobPanel } from './job-panel.ts';

export type JobSlot = { start(jobId: string): void; follow(jobId: string | undefined): void };
export type JobFollowing = {
  slot(tab: Exclude<Tab, 'history'>, panel: JobPanel, onError: (e: ApiError) => void): JobSlot;
};

export function createJobFollowing(client: GraphQLClient, session: Session): JobFollowing {
  return {
    slot(tab, panel, onError) {
      let current: { id: string; follower: Follower } | undefined;
      const follow = (jobId: string | undefined) => {
        if (current?.id === jobId) return;
        current?.follower.stop();
        current = undefined;
        panel.render(undefined);
        if (!jobId) return;
        const saved = session.savedJob(tab, jobId);
        const follower = followJob(client, jobId, {
          resume: saved,
          onView: (v) => {
            panel.render(v);
            session.saveJob(tab, {
              id: jobId,
              seq: v.seq,
              previewUrl: isTerminal(v) ? undefined : v.previewUrl,
              text: v.text || undefined,
            });
          },
          onError,
        });
        current = { id: jobId, follower };
      };
      return {
        follow,
        start(jobId) {
          session.saveJob(tab, { id: jobId, seq: 0 });
          // Update the address first so a reload from here on resumes this job.
          history.replaceState(null, '', hashFor(tab, jobId));
          follow(jobId);
        },
      };
    },
  };
}
