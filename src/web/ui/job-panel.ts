/**
 * Live view of one job: status line (polite live region), progress bar, the latest preview,
 * final images with download buttons, streamed text, and a cancel button while it runs.
 */
import type { GraphQLClient } from '../lib/graphql-client.ts';
import { fraction, isTerminal, type JobView } from '../lib/job-state.ts';
import { CANCEL_JOB_MUTATION } from '../lib/operations.ts';
import { fill, h } from './dom.ts';

export type JobPanel = { element: HTMLElement; render(v: JobView | undefined): void };

const STATUS_WORDS: Record<string, string> = {
  QUEUED: 'Queued',
  RUNNING: 'Running',
  SUCCEEDED: 'Done',
  FAILED: 'Failed',
  CANCELED: 'Canceled',
};

export function statusBadge(status: string): HTMLElement {
  return h('span', { class: `badge badge-${status.toLowerCase()}` }, STATUS_WORDS[status] ?? status);
}

export function createJobPanel(
  prefix: string,
  client: GraphQLClient,
  onError: (e: unknown) => void,
): JobPanel {
  const status = h('p', { class: 'job-status', role: 'status', 'aria-live': 'polite' });
  const progress = h('progress', { id: `${prefix}-progress`, max: 1, value: 0 });
  const progressLabel = h('label', { for: `${prefix}-progress` }, 'Progress');
  const preview = h('img', { class: 'preview', alt: '', width: 256, height: 256, hidden: true });
  const results = h('div', { class: 'results' });
  const text = h('p', { class: 'job-text', 'aria-live': 'polite' });
  const title = h('h3', {});
  let jobId = '';
  const cancel = h(
    'button',
    {
      type: 'button',
      class: 'secondary',
      onclick: () => {
        cancel.disabled = true;
        client.request(CANCEL_JOB_MUTATION, { id: jobId }).catch(onError);
      },
    },
    'Cancel job',
  );
  const element = h(
    'section',
    { class: 'job-panel', hidden: true, 'aria-label': 'Current job' },
    title,
    status,
    h('div', { class: 'progress-row' }, progressLabel, progress),
    preview,
    text,
    results,
    cancel,
  );

  return {
    element,
    render(v) {
      element.hidden = !v;
      if (!v) return;
      if (v.jobId !== jobId) {
        jobId = v.jobId;
        cancel.disabled = false;
        fill(results);
      }
      element.dataset.status = v.status;
      fill(title, 'Job ', h('code', {}, v.jobId.slice(0, 8)), ' ', statusBadge(v.status));
      const steps = v.totalSteps ? `step ${v.step} of ${v.totalSteps}` : '';
      const err = v.error ? ` ${v.error.code}: ${v.error.message}` : '';
      status.textContent = `${STATUS_WORDS[v.status] ?? v.status}${steps && !isTerminal(v) ? ` — ${steps}` : ''}.${err}`;
      progress.value = fraction(v);
      progress.textContent = `${Math.round(fraction(v) * 100)}%`;
      const showPreview =
        !!v.previewUrl && v.kind === 'GENERATE' && !(v.status === 'SUCCEEDED' && v.images.length);
      preview.hidden = !showPreview;
      if (showPreview && preview.getAttribute('src') !== v.previewUrl) {
        preview.src = v.previewUrl ?? '';
        preview.alt = `Preview after step ${v.step} of ${v.totalSteps}`;
      }
      text.hidden = v.kind !== 'DESCRIBE';
      text.textContent = v.text;
      cancel.hidden = isTerminal(v);
      if (v.images.length && results.childElementCount !== v.images.length)
        fill(results, ...v.images.map((img, i) => resultFigure(v.jobId, img, i)));
    },
  };
}

function resultFigure(jobId: string, img: JobView['images'][number], i: number): HTMLElement {
  const ext = img.contentType.split('/')[1] ?? 'png';
  const name = `harmon-${jobId.slice(0, 8)}-${i + 1}.${ext}`;
  const link = h('a', { href: img.url, download: name, class: 'button' }, `Download image ${i + 1}`);
  // `download` is ignored for cross-origin URLs (S3), so fetch the bytes and save a blob instead;
  // if that fails (no CORS on the bucket) the browser simply opens the image.
  link.addEventListener('click', async (e) => {
    e.preventDefault();
    try {
      const res = await fetch(img.url);
      if (!res.ok) throw new Error(String(res.status));
      const url = URL.createObjectURL(await res.blob());
      const a = h('a', { href: url, download: name });
      a.click();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch {
      window.open(img.url, '_blank', 'noopener');
    }
  });
  return h(
    'figure',
    { class: 'result' },
    h('img', {
      src: img.url,
      alt: `Generated image ${i + 1}`,
      width: img.width ?? 256,
      height: img.height ?? 256,
    }),
    h(
      'figcaption',
      {},
      `${img.width ?? '?'}×${img.height ?? '?'} ${ext.toUpperCase()}, ${Math.round(img.bytes / 1024)} KiB `,
      link,
    ),
  );
}
