// The web playground end to end: real `harmon serve` (real Postgres in a fresh schema, embedded
// s3rver, in-process worker on the tiny demo model) driven through Debian's Chromium. Screenshots of each state go to test-artifacts/screenshots/.
// Chromium failing to start fails the suite (no skip): the browser is part of what is tested.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { type FreshDatabase, freshDatabase } from '../helpers/pg.ts';
import {
  type Browser,
  createKey,
  ensureWebBuild,
  type Served,
  shot,
  startServeAndBrowser,
  waitFor,
} from './harness.ts';
import {
  assertFinishedWithPreviews,
  assertNoConsoleErrors,
  describeFile,
  generate as generateIn,
  JOB_TIMEOUT,
  progressValue,
  redPng,
  reloadMidJob,
  signIn as signInOn,
  waitForLoadedPreview,
} from './playground-steps.ts';

// The in-process worker previews every step so a short job still shows previews before its end.
const SERVE_ARGS = ['--preview-every', '1'];

let db: FreshDatabase;
let served: Served;
let browser: Browser;
let page: Page;

/** Labels, focus and names of every form control, read from the live DOM. */
const unlabelledControls = (p: Page) =>
  p.evaluate(`(() => {
    const bad = [];
    for (const el of document.querySelectorAll('input, select, textarea, button')) {
      const id = el.id;
      const labelled = (id && document.querySelector('label[for="' + CSS.escape(id) + '"]')) || el.closest('label')
        || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby')
        || (el.tagName === 'BUTTON' && el.textContent.trim());
      if (!labelled) bad.push(el.outerHTML.slice(0, 120));
    }
    return bad;
  })()`) as Promise<string[]>;

const signIn = (key: string) => signInOn(page, key);
const generate = (p: Page, fields: Record<string, string>) => generateIn(p, served.url, fields);
const noConsoleErrors = () => assertNoConsoleErrors(browser);

async function gql(key: string, query: string, variables: Record<string, unknown> = {}) {
  const res = await fetch(`${served.url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({ query, variables }),
  });
  return (await res.json()) as { data?: Record<string, { id: string }>; errors?: unknown[] };
}

describe('web playground in Chromium', { timeout: 600_000 }, () => {
  before(async () => {
    ensureWebBuild();
    // Real Postgres, as deployed; playground-embedded.test.ts drives the quick-start embedded mode.
    db = await freshDatabase({ migrate: false });
    try {
      ({ served, browser } = await startServeAndBrowser(SERVE_ARGS, { DATABASE_URL: db.url }));
    } catch (e) {
      await db.drop();
      throw e;
    }
    page = await browser.newPage();
  });
  after(async () => {
    await browser?.close();
    await served?.stop();
    await db?.drop();
  });

  test('page loads, key is accepted and kept, demo model announced, controls labelled, no console errors', async () => {
    await page.goto(`${served.url}/`);
    await signIn(served.key);
    await page.waitForSelector('.key-status:has-text("Signed in as web-e2e")', { timeout: 15_000 });
    assert.match((await page.textContent('.demo-banner')) ?? '', /random weights/);
    assert.deepEqual(await unlabelledControls(page), []);
    await page.reload();
    assert.equal(await page.inputValue('#api-key'), served.key, 'key kept in localStorage');
    await page.waitForSelector('.key-status:has-text("Signed in")', { timeout: 15_000 });
    for (const tab of ['describe', 'history']) {
      await page.goto(`${served.url}/#/${tab}`);
      assert.deepEqual(await unlabelledControls(page), [], `${tab} view`);
    }
    await page.goto(`${served.url}/#/generate`);
    await shot(page, '1-form');
    noConsoleErrors();
  });

  test('keyboard: Tab moves through the form with a visible focus ring', async () => {
    await page.goto(`${served.url}/#/generate`);
    await page.focus('#gen-prompt');
    await page.keyboard.press('Tab');
    const focused = await page.evaluate(`(() => {
      const el = document.activeElement;
      const s = getComputedStyle(el);
      return { id: el.id, outline: s.outlineStyle, width: s.outlineWidth };
    })()`);
    assert.deepEqual(focused, { id: 'gen-seed', outline: 'solid', width: '3px' });
  });

  test('generate on the tiny model: live progress, at least one preview, then the final image', async () => {
    await generate(page, { prompt: 'a red square on a blue sky', seed: '7', steps: '8', size: '64' });
    await assertFinishedWithPreviews(page);
    assert.match((await page.textContent('.result figcaption')) ?? '', /64×64 PNG/);
    assert.match((await page.getAttribute('.result a', 'download')) ?? '', /^harmon-.*\.png$/);
    const [download] = await Promise.all([
      page.waitForEvent('download', { timeout: 15_000 }),
      page.click('.result a'),
    ]);
    assert.match(download.suggestedFilename(), /^harmon-.*-1\.png$/);
    await shot(page, '3-done');
    noConsoleErrors();
  });

  test('reload mid-job resumes following the job from where it was', async () => {
    await generate(page, { prompt: 'a long walk', seed: '3', steps: '32', size: '128' });
    await waitFor(
      page,
      `(() => { const p = document.querySelector('#gen-progress'); return p && p.value > 0 && p.value < 0.4; })()`,
      JOB_TIMEOUT,
    );
    await waitForLoadedPreview(page);
    await shot(page, '2-in-progress');
    // Restored at once from the job snapshot and the saved preview, not from zero.
    await reloadMidJob(page);
    await page.waitForSelector('.job-panel[data-status="SUCCEEDED"] .result img', { timeout: JOB_TIMEOUT });
    assert.equal(await progressValue(page), 1);
    noConsoleErrors();
  });

  test('describe: drop or choose a PNG, upload it through createUpload, see streamed text', async () => {
    const png = await redPng();
    await page.goto(`${served.url}/#/describe`);
    // Drag and drop: a real DataTransfer with the file, dispatched on the drop zone.
    await page.evaluate(`(async (b64) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], 'dropped.png', { type: 'image/png' }));
      document.querySelector('.dropzone').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    })(${JSON.stringify(png.toString('base64'))})`);
    await page.waitForSelector('.dropzone:has-text("dropped.png")', { timeout: 5_000 });
    // The file input path too (this one is submitted).
    const text = await describeFile(page, png);
    assert.ok(text.trim().length > 0, 'described text shown');
    await shot(page, '4-describe-result');
    noConsoleErrors();
  });

  test('history lists the jobs with status badges, a page at a time', async () => {
    // Its own tenant with room for a burst, so two pages' worth of jobs never meets the limits.
    const key = await createKey(served.home, 'history', { DATABASE_URL: db.url });
    await db.prisma.tenant.update({
      where: { name: 'history' },
      data: { ratePerMinute: 1000, maxConcurrentJobs: 20 },
    });
    for (let i = 0; i < 12; i++) {
      const r = await gql(key, 'mutation($i: GenerateInput!) { generate(input: $i) { id } }', {
        i: { prompt: `job ${i}`, steps: 1, size: 64 },
      });
      assert.ok(r.data?.generate.id, JSON.stringify(r.errors));
      // Every other job canceled: the list shows more than one kind of badge.
      if (i % 2)
        await gql(key, 'mutation($id: ID!) { cancelJob(id: $id) { id } }', { id: r.data.generate.id });
    }
    await page.goto(`${served.url}/#/history`);
    await signIn(key);
    await waitFor(page, `document.querySelectorAll('tbody tr').length === 10`, 15_000, '10 rows');
    const more = page.locator('button:has-text("Load more")');
    assert.ok(await more.isVisible());
    await more.click();
    await waitFor(page, `document.querySelectorAll('tbody tr').length === 12`, 15_000, '12 rows');
    assert.ok(await more.isHidden());
    const badges = await page.$$eval('tbody .badge', (els) => els.map((e) => e.textContent));
    assert.equal(badges.filter((b) => b === 'Canceled').length, 6, badges.join(','));
    await shot(page, '7-history');
    // A row opens its job in the generate view (the oldest one ran: 'job 0').
    await page.click('tbody tr:last-child a');
    await page.waitForSelector('.view:not([hidden]) .job-panel[data-status="SUCCEEDED"]', {
      timeout: JOB_TIMEOUT,
    });
    await signIn(served.key);
    noConsoleErrors();
  });

  test('works at 360 px: no horizontal scrolling', async () => {
    await page.setViewportSize({ width: 360, height: 800 });
    for (const tab of ['generate', 'describe', 'history']) {
      await page.goto(`${served.url}/#/${tab}`);
      await page.waitForSelector('.key-status:has-text("Signed in")', { timeout: 15_000 });
      const width = await page.evaluate('document.documentElement.scrollWidth');
      assert.ok((width as number) <= 360, `${tab} is ${width}px wide`);
    }
    await page.goto(`${served.url}/#/generate`);
    await shot(page, '5-narrow-360');
    await page.setViewportSize({ width: 1024, height: 900 });
  });

  test('bad input is shown next to the field; an invalid key shows the auth error', async () => {
    const before = browser.consoleErrors.length;
    await generate(page, { prompt: 'x', size: '17', steps: '4' });
    await page.waitForSelector('#gen-size-error:not([hidden])', { timeout: 15_000 });
    assert.equal(await page.getAttribute('#gen-size', 'aria-invalid'), 'true');
    assert.equal(await page.getAttribute('.error-box', 'data-code'), 'BAD_USER_INPUT');

    await signIn('hmn_000000000000_notarealkeynotarealkeynotarealkeynotarealkey0');
    await page.waitForSelector('.key-status.error', { timeout: 15_000 });
    assert.match((await page.textContent('.key-status')) ?? '', /UNAUTHENTICATED/);
    await page.click('form button[type=submit]:has-text("Generate")');
    await page.waitForSelector('.error-box[data-code="UNAUTHENTICATED"]', { timeout: 15_000 });
    assert.match((await page.textContent('.error-box')) ?? '', /API key/);
    await shot(page, '6-error');
    // Only the expected HTTP error responses may be logged here, never script errors.
    const errs = browser.consoleErrors.slice(before);
    assert.ok(
      errs.every((e) => /status of (400|401)/.test(e)),
      errs.join('\n'),
    );
  });

  test('rate limit: a retry countdown keeps Generate disabled; an exhausted quota is named', async () => {
    const before = browser.consoleErrors.length;
    const limitedKey = await createKey(served.home, 'limited', { DATABASE_URL: db.url });
    await db.prisma.tenant.update({ where: { name: 'limited' }, data: { ratePerMinute: 2 } });
    await page.goto(`${served.url}/#/generate`);
    await signIn(limitedKey);
    const submit = page.locator('form button[type=submit]:has-text("Generate")');
    await page.fill('#gen-prompt', 'over the limit');
    await page.fill('#gen-steps', '1');
    await page.fill('#gen-size', '64');
    // The viewer check and one job use the 2 requests; at the latest the third click is refused.
    for (let i = 0; i < 3 && !(await page.locator('.error-box[data-code="RATE_LIMITED"]').isVisible()); i++) {
      await submit.click();
      // Settled: either refused with the countdown, or accepted and the button enabled again.
      await waitFor(
        page,
        `!!document.querySelector('.error-box[data-code="RATE_LIMITED"]') || !document.querySelector('.view:not([hidden]) form button[type=submit]').disabled`,
        15_000,
      );
    }
    await page.waitForSelector('.error-box[data-code="RATE_LIMITED"]', { timeout: 15_000 });
    assert.match((await page.textContent('.error-box .countdown')) ?? '', /try again in \d+ s/);
    assert.ok(await submit.isDisabled(), 'submit disabled during the countdown');
    await shot(page, '8-rate-limited');

    const broke = await createKey(served.home, 'broke', { DATABASE_URL: db.url });
    await db.prisma.tenant.update({ where: { name: 'broke' }, data: { monthlyImageQuota: 0 } });
    // A new key drops the other tenant's job; a fresh page drops its countdown.
    await signIn(broke);
    await page.reload();
    await page.fill('#gen-prompt', 'over the quota');
    await submit.click();
    await page.waitForSelector('.error-box[data-code="QUOTA_EXCEEDED"]', { timeout: 15_000 });
    assert.match((await page.textContent('.error-box')) ?? '', /quota/i);
    assert.ok(await submit.isEnabled(), 'a month-long wait is shown as a time, not a disabled button');
    const errs = browser.consoleErrors.slice(before);
    assert.ok(
      errs.every((e) => /status of (400|401|429)/.test(e)),
      errs.join('\n'),
    );
  });
});
