// The README's quick start in a real browser: `harmon serve` with no DATABASE_URL and no S3_*
// (embedded PGlite behind PgliteWireServer + embedded s3rver, in-process worker on the tiny demo
// model), a key made with `harmon keys create` while it runs, driven through Debian's Chromium.
// Reloading the page during a job opens a burst of new connections (HTTP, WebSocket, presigned
// reads) while the worker writes progress: with pglite-socket this failed at random, so it is
// done three times here. Screenshots go to test-artifacts/screenshots/embedded-*.png.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { serverInfoPath } from '../../src/embedded/server-info.ts';
import { type Browser, ensureWebBuild, type Served, shot, startServeAndBrowser, waitFor } from './harness.ts';
import {
  assertFinishedWithPreviews,
  assertNoConsoleErrors,
  describeFile,
  generate,
  JOB_TIMEOUT,
  progressValue,
  redPng,
  reloadMidJob,
  signIn,
  waitForLoadedPreview,
} from './playground-steps.ts';

// Every step previews, so even a short job shows previews and a long one moves visibly.
const SERVE_ARGS = ['--preview-every', '1'];
const RELOADS = 3;
// Long enough on 2 cores for three reloads, each after live progress was seen.
const LONG_JOB = { steps: '48', size: '128' };

let served: Served;
let browser: Browser;
let page: Page;

const isSucceeded = async (p: Page) => !!(await p.$('.job-panel[data-status="SUCCEEDED"]'));

/** pino lines at error level or above (50+) that the server printed. */
const serverErrors = () =>
  served
    .logs()
    .split('\n')
    .filter((l) => /"level":(5|6)\d/.test(l))
    .map((l) => l.slice(0, 600));

describe('web playground in Chromium, embedded mode (quick start)', { timeout: 600_000 }, () => {
  before(async () => {
    ensureWebBuild();
    // No env beyond PATH/HOME/HARMON_HOME reaches the server (see harness baseEnv): no
    // DATABASE_URL, no S3_*, exactly `npm start` on a fresh checkout. startServe also runs
    // `harmon keys create`, which reaches the running server's database through server.json.
    ({ served, browser } = await startServeAndBrowser(SERVE_ARGS));
    page = await browser.newPage();
  });
  after(async () => {
    await browser?.close();
    await served?.stop();
  });

  test('serve runs the embedded database and storage and the key from `keys create` signs in', async () => {
    const info = JSON.parse(readFileSync(serverInfoPath(served.home), 'utf8')) as Record<string, number>;
    assert.ok(info.dbPort > 0 && info.s3Port > 0, `embedded ports in server.json: ${JSON.stringify(info)}`);
    await page.goto(`${served.url}/`);
    await signIn(page, served.key);
    await page.waitForSelector('.key-status:has-text("Signed in as web-e2e")', { timeout: 15_000 });
    assert.match((await page.textContent('.demo-banner')) ?? '', /random weights/);
    assertNoConsoleErrors(browser);
  });

  test('generate on the tiny model: previews, then the final image', async () => {
    await generate(page, served.url, {
      prompt: 'a red square on a blue sky',
      seed: '7',
      steps: '8',
      size: '64',
    });
    await assertFinishedWithPreviews(page, 'the final 64 px image loaded from embedded S3');
    await shot(page, 'embedded-1-generated');
    assertNoConsoleErrors(browser);
  });

  test(`reload ${RELOADS} times mid-job: progress resumes live after each`, async (t) => {
    let reloads = 0;
    let lastSeq = 0;
    let jobs = 0;
    // Normally one job holds all the reloads; a machine fast enough to finish it early gets a
    // second one rather than a test that depends on speed.
    for (let job = 1; reloads < RELOADS; job++) {
      assert.ok(job <= 2, `two jobs ended before ${RELOADS} reloads (only ${reloads})`);
      lastSeq = 0;
      jobs = job;
      await generate(page, served.url, { prompt: `a long walk ${job}`, seed: String(job), ...LONG_JOB });
      await waitForLoadedPreview(page);
      while (reloads < RELOADS) {
        // Live progress beyond what the page showed after the previous reload (or the start):
        // the event stream really resumed, not just the snapshot.
        const from = await progressValue(page);
        await waitFor(
          page,
          `(() => { const p = document.querySelector('#gen-progress');
            return p.value > ${from} || !!document.querySelector('.job-panel[data-status="SUCCEEDED"]'); })()`,
          JOB_TIMEOUT,
          `progress beyond ${from}`,
        );
        // Too close to the end, the job could finish during the reload: no resubscription then.
        if ((await isSucceeded(page)) || (await progressValue(page)) > 0.8) break;
        const r = await reloadMidJob(page);
        assert.ok(r.afterSeq >= lastSeq, `afterSeq ${r.afterSeq} not behind the previous ${lastSeq}`);
        lastSeq = r.afterSeq;
        reloads++;
        if (reloads === 1) {
          await waitForLoadedPreview(page, 15_000);
          await shot(page, 'embedded-2-after-reload');
        }
      }
      await page.waitForSelector('.job-panel[data-status="SUCCEEDED"] .result img', { timeout: JOB_TIMEOUT });
      assert.equal(await progressValue(page), 1);
    }
    assert.equal(reloads, RELOADS);
    t.diagnostic(`${reloads} reloads over ${jobs} job(s)`);
    assertNoConsoleErrors(browser);
    assert.deepEqual(serverErrors(), [], 'no server errors during the reloads');
  });

  test('describe an uploaded PNG: text is streamed back', async () => {
    await page.goto(`${served.url}/#/describe`);
    const text = await describeFile(page, await redPng());
    assert.ok(text.trim().length > 0, 'described text shown');
    await shot(page, 'embedded-3-described');
    assertNoConsoleErrors(browser);
    assert.deepEqual(serverErrors(), []);
  });
});
