/** The caller's jobs, newest first, a page at a time (Relay `jobs` connection) with status badges. */
import type { ApiError } from '../lib/api-error.ts';
import type { GraphQLClient } from '../lib/graphql-client.ts';
import { JOBS_QUERY, type JobSummary } from '../lib/operations.ts';
import { hashFor } from '../lib/session.ts';
import { fill, h } from './dom.ts';
import { statusBadge } from './job-panel.ts';

type Page = {
  jobs: {
    edges: { cursor: string; node: JobSummary }[];
    pageInfo: { hasNextPage: boolean; endCursor?: string | null };
  };
};

export type HistoryView = { element: HTMLElement; refresh(): void };

export function createHistoryView(client: GraphQLClient, pageSize = 10): HistoryView {
  const rows = h('tbody', {});
  const message = h('p', { role: 'status' });
  let cursor: string | null | undefined;
  const more = h(
    'button',
    { type: 'button', class: 'secondary', hidden: true, onclick: () => void load(false) },
    'Load more',
  );
  const refreshButton = h(
    'button',
    { type: 'button', class: 'secondary', onclick: () => void load(true) },
    'Refresh',
  );

  const load = async (reset: boolean) => {
    if (reset) cursor = undefined;
    more.disabled = true;
    try {
      const { jobs } = await client.request<Page>(JOBS_QUERY, { first: pageSize, after: cursor ?? null });
      if (reset) fill(rows);
      for (const { node } of jobs.edges) rows.append(row(node));
      cursor = jobs.pageInfo.endCursor;
      more.hidden = !jobs.pageInfo.hasNextPage;
      message.textContent = rows.childElementCount ? `${rows.childElementCount} jobs shown.` : 'No jobs yet.';
    } catch (e) {
      const err = e as ApiError;
      message.textContent = `Could not load jobs: ${err.message} (${err.code})`;
    } finally {
      more.disabled = false;
    }
  };

  const element = h(
    'section',
    { class: 'view card', 'aria-labelledby': 'history-h' },
    h('div', { class: 'row' }, h('h2', { id: 'history-h' }, 'History'), refreshButton),
    h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        {},
        h('caption', { class: 'visually-hidden' }, 'Your jobs, newest first'),
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            h('th', { scope: 'col' }, 'Created'),
            h('th', { scope: 'col' }, 'Kind'),
            h('th', { scope: 'col' }, 'Status'),
            h('th', { scope: 'col' }, 'Job'),
          ),
        ),
        rows,
      ),
    ),
    message,
    more,
  );
  return { element, refresh: () => void load(true) };
}

function row(job: JobSummary): HTMLTableRowElement {
  const tab = job.kind === 'DESCRIBE' ? 'describe' : 'generate';
  return h(
    'tr',
    {},
    h('td', {}, h('time', { datetime: job.createdAt }, new Date(job.createdAt).toLocaleString())),
    h('td', {}, job.kind === 'DESCRIBE' ? 'Describe' : 'Generate'),
    h(
      'td',
      {},
      statusBadge(job.status),
      job.error ? h('span', { class: 'hint' }, ` ${job.error.code}`) : null,
    ),
    h('td', {}, h('a', { href: hashFor(tab, job.id) }, `Open ${job.id.slice(0, 8)}`)),
  );
}
