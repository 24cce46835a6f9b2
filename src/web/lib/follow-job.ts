/**
 * Follows one job to its end: a snapshot from `job(id)`, then `jobEvents(afterSeq)` from the last
 * seq already shown, then a final `job(id)` for the outputs (events carry previews and text, the
 * Job carries the signed image URLs). The same path serves a fresh job, a reload mid-job and a
 * dropped connection, which is what makes resuming reliable: there is only one way in.
 */
import type { ApiError } from './api-error.ts';
import type { GraphQLClient } from './graphql-client.ts';
import { applyEvent, isTerminal, type JobView, viewFromJob } from './job-state.ts';
import { JOB_EVENTS_SUBSCRIPTION, JOB_QUERY, type Job, type JobEvent } from './operations.ts';

export type FollowOptions = {
  /** What was already shown (e.g. restored after a reload): events up to `seq` are skipped. */
  resume?: { seq: number; previewUrl?: string; text?: string };
  onView(view: JobView): void;
  onError(e: ApiError): void;
  /** Resubscriptions after transport failures before giving up. */
  maxRetries?: number;
  retryDelayMs?: number;
};

export type Follower = { stop(): void; done: Promise<JobView | undefined> };

export function followJob(client: GraphQLClient, jobId: string, opts: FollowOptions): Follower {
  let stopped = false;
  let unsubscribe: (() => void) | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let view: JobView | undefined;
  let retries = 0;
  let settle: (v: JobView | undefined) => void = () => {};
  const done = new Promise<JobView | undefined>((r) => {
    settle = r;
  });

  const fail = (e: ApiError) => {
    if (stopped) return;
    stopped = true;
    opts.onError(e);
    settle(view);
  };

  const finish = async () => {
    try {
      const { job } = await client.request<{ job: Job }>(JOB_QUERY, { id: jobId });
      if (stopped || !view) return;
      view = {
        ...view,
        status: job.status,
        images: job.images,
        text: job.text ?? view.text,
        error: job.error ?? view.error,
      };
      opts.onView(view);
      stopped = true;
      settle(view);
    } catch (e) {
      fail(e as ApiError);
    }
  };

  const subscribe = () => {
    if (stopped || !view) return;
    unsubscribe = client.subscribe<{ jobEvents: JobEvent }>(
      JOB_EVENTS_SUBSCRIPTION,
      { jobId, afterSeq: view.seq },
      {
        next: ({ jobEvents }) => {
          if (stopped || !view) return;
          const next = applyEvent(view, jobEvents);
          if (next === view) return;
          view = next;
          retries = 0;
          opts.onView(view);
        },
        error: (e) => {
          if (stopped) return;
          if (e.code === 'NETWORK' && retries < (opts.maxRetries ?? 5)) {
            retries += 1;
            timer = setTimeout(subscribe, (opts.retryDelayMs ?? 1000) * 2 ** (retries - 1));
          } else fail(e);
        },
        complete: () => {
          if (stopped || !view) return;
          // The server completes after the terminal event; anything else is a cut stream.
          if (isTerminal(view)) void finish();
          else timer = setTimeout(subscribe, opts.retryDelayMs ?? 1000);
        },
      },
    );
  };

  (async () => {
    try {
      const { job } = await client.request<{ job: Job }>(JOB_QUERY, { id: jobId });
      if (stopped) return;
      view = viewFromJob(job, opts.resume?.seq ?? 0);
      if (opts.resume?.previewUrl && !isTerminal(view)) view.previewUrl = opts.resume.previewUrl;
      if (opts.resume?.text && !view.text) view.text = opts.resume.text;
      opts.onView(view);
      if (isTerminal(view)) {
        stopped = true;
        settle(view);
      } else subscribe();
    } catch (e) {
      fail(e as ApiError);
    }
  })();

  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
      unsubscribe?.();
      settle(view);
    },
    done,
  };
}
