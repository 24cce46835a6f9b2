/**
 * What survives a reload: the API key and, per view, the job being followed with the last seq
 * and preview shown (so a reload resubscribes with `afterSeq` and shows the latest preview at
 * once). The job id also lives in the URL hash, so a link to a job opens it.
 */
export type Tab = 'generate' | 'describe' | 'history';
export type SavedJob = { id: string; seq: number; previewUrl?: string; text?: string };

const KEY = 'harmon.apiKey';
const jobKey = (tab: Tab) => `harmon.job.${tab}`;

export type StorageLike = Pick<Storage, 'getItem' | 'setItem' | 'removeItem'>;

export function createSession(storage: StorageLike) {
  return {
    apiKey: (): string => storage.getItem(KEY) ?? '',
    setApiKey(key: string) {
      if (key) storage.setItem(KEY, key);
      else storage.removeItem(KEY);
    },
    savedJob(tab: Tab, id: string): SavedJob | undefined {
      try {
        const j = JSON.parse(storage.getItem(jobKey(tab)) ?? 'null') as SavedJob | null;
        return j && j.id === id && Number.isInteger(j.seq) ? j : undefined;
      } catch {
        return undefined;
      }
    },
    /** Id of the job last followed in a view (to reopen it when the hash names none). */
    lastJobId(tab: Tab): string | undefined {
      try {
        const j = JSON.parse(storage.getItem(jobKey(tab)) ?? 'null') as SavedJob | null;
        return typeof j?.id === 'string' ? j.id : undefined;
      } catch {
        return undefined;
      }
    },
    saveJob(tab: Tab, job: SavedJob | undefined) {
      if (job) storage.setItem(jobKey(tab), JSON.stringify(job));
      else storage.removeItem(jobKey(tab));
    },
  };
}
export type Session = ReturnType<typeof createSession>;

/** `#/generate`, `#/describe/<jobId>`, `#/history`; anything else is the generate view. */
export function parseHash(hash: string): { tab: Tab; jobId?: string } {
  const [, tab, jobId] = /^#\/(generate|describe|history)(?:\/([\w-]{1,100}))?$/.exec(hash) ?? [];
  if (!tab) return { tab: 'generate' };
  return tab === 'history' ? { tab } : { tab: tab as Tab, jobId };
}

export const hashFor = (tab: Tab, jobId?: string): string => `#/${tab}${jobId ? `/${jobId}` : ''}`;
