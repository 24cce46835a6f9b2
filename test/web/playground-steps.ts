/**
 * Steps the browser tests take in the playground (sign in, generate, reload mid-job, describe),
 * shared by the Postgres-backed and the embedded-mode suites. Every wait is bounded.
 */
import assert from 'node:assert/strict';
import type { Page, WebSocket } from 'playwright-core';
import sharp from 'sharp';
import { type Browser, waitFor } from './harness.ts';

export const JOB_TIMEOUT = 120_000;

export async function signIn(page: Page, key: string): Promise<void> {
  await page.fill('#api-key', key);
  await page.click('button:has-text("Save key")');
}

/** Opens the generate view, starts recording shown previews, fills the form and submits it. */
export async function generate(page: Page, baseUrl: string, fields: Record<string, string>): Promise<void> {
  await page.goto(`${baseUrl}/#/generate`);
  // Records every preview the page shows: a tiny-model job can finish between two polls.
  await page.evaluate(`(() => {
    window.previewsShown = [];
    new MutationObserver(() => {
      const i = document.querySelector('img.preview');
      if (i && !i.hidden && i.src && window.previewsShown.at(-1) !== i.src) window.previewsShown.push(i.src);
    }).observe(document.body, { subtree: true, attributes: true, attributeFilter: ['src', 'hidden'] });
  })()`);
  for (const [name, value] of Object.entries(fields)) await page.fill(`#gen-${name}`, value);
  await page.click('form button[type=submit]:has-text("Generate")');
}

export const previewsShown = (page: Page) => page.evaluate('window.previewsShown') as Promise<string[]>;

export const progressValue = (page: Page) =>
  page.$eval('#gen-progress', (el) => Number((el as unknown as { value: number }).value));

/**
 * The 64 px generate job of both suites ends well: SUCCEEDED, its final image loaded, progress
 * full, and at least one preview (an http URL of a step image) shown before that.
 */
export async function assertFinishedWithPreviews(page: Page, what = 'the final 64 px image'): Promise<void> {
  await page.waitForSelector('.job-panel[data-status="SUCCEEDED"] .result img', { timeout: JOB_TIMEOUT });
  await waitFor(
    page,
    `(() => { const i = document.querySelector('.result img'); return i && i.complete && i.naturalWidth === 64; })()`,
    15_000,
    what,
  );
  assert.equal(await progressValue(page), 1);
  const previews = await previewsShown(page);
  assert.ok(previews.length >= 1, 'at least one preview shown before the final image');
  assert.ok(
    previews.every((u) => u.startsWith('http') && u.includes('step-')),
    previews.join('\n'),
  );
}

/** No console errors so far; the HTTP errors are attached to explain a failure. */
export const assertNoConsoleErrors = (browser: Browser) =>
  assert.deepEqual(browser.consoleErrors, [], browser.httpErrors.join('\n'));

/** Waits until the shown job has a loaded preview image. */
export const waitForLoadedPreview = (page: Page, timeoutMs = JOB_TIMEOUT) =>
  waitFor(
    page,
    `(() => { const i = document.querySelector('img.preview'); return i && !i.hidden && i.complete && i.naturalWidth > 0; })()`,
    timeoutMs,
    'a loaded preview',
  );

export type Resumed = { before: number; restored: number; afterSeq: number };

/**
 * Reloads the page on a running job and checks that it comes back on the same job with its
 * progress restored at once (snapshot + saved preview), then resubscribes with afterSeq > 0.
 */
export async function reloadMidJob(page: Page): Promise<Resumed> {
  const jobUrl = page.url();
  assert.match(jobUrl, /#\/generate\/[\w-]+$/);
  const before = await progressValue(page);
  // What the page asks for after the reload: jobEvents with afterSeq = the last seq it showed.
  const frames: string[] = [];
  const onFrame = (f: { payload: string | Buffer }) => void frames.push(String(f.payload));
  const onSocket = (ws: WebSocket) => ws.on('framesent', onFrame);
  page.on('websocket', onSocket);
  try {
    await page.reload();
    assert.equal(page.url(), jobUrl);
    await page.waitForSelector('.job-panel:not([hidden])', { timeout: 15_000 });
    const restored = await progressValue(page);
    assert.ok(restored >= before, `progress restored after reload (${restored} >= ${before})`);
    // The subscription may go out a moment after the panel shows the snapshot.
    const deadline = Date.now() + 15_000;
    const resubscribed = () => frames.map((f) => /"afterSeq":(\d+)/.exec(f)).find(Boolean);
    while (!resubscribed()) {
      if (Date.now() > deadline || (await page.$('.job-panel[data-status="SUCCEEDED"]'))) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const m = resubscribed();
    assert.ok(m && Number(m[1]) > 0, `resubscribed with afterSeq > 0: ${frames.join(' | ').slice(0, 500)}`);
    return { before, restored, afterSeq: Number(m[1]) };
  } finally {
    page.off('websocket', onSocket);
  }
}

/** A plain 64x64 red PNG to describe. */
export const redPng = () =>
  sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 200, g: 30, b: 30 } } })
    .png()
    .toBuffer();

/**
 * On the describe view: chooses `png` in the file input, submits, and waits for streamed text
 * and the job's success. Returns the text shown.
 */
export async function describeFile(page: Page, png: Buffer, maxTokens = 8): Promise<string> {
  await page.setInputFiles('#desc-image', { name: 'red.png', mimeType: 'image/png', buffer: png });
  await page.fill('#desc-max-tokens', String(maxTokens));
  await page.click('form button[type=submit]:has-text("Describe")');
  await waitFor(
    page,
    `(() => { const t = document.querySelector('.view:not([hidden]) .job-text'); return t && t.textContent.length > 0; })()`,
    JOB_TIMEOUT,
    'streamed description text',
  );
  await page.waitForSelector('.view:not([hidden]) .job-panel[data-status="SUCCEEDED"]', {
    timeout: JOB_TIMEOUT,
  });
  return (await page.textContent('.view:not([hidden]) .job-text')) ?? '';
}
