/**
 * Browser-test harness: builds the SPA if it is missing or stale, runs the real `harmon serve`
 * (embedded PGlite + s3rver under a temp HARMON_HOME, free port), creates an API key through the
 * CLI, and launches Debian's Chromium through playwright-core with a fresh profile. Every wait is
 * bounded; a Chromium that cannot start is an error (the tests fail, they never skip).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BrowserContext, chromium, type Page } from 'playwright-core';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin/harmon.js');
export const SCREENSHOTS = join(ROOT, 'test-artifacts/screenshots');
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

function newestMtime(dir: string): number {
  let t = 0;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const s = statSync(p);
    t = Math.max(t, s.isDirectory() ? newestMtime(p) : s.mtimeMs);
  }
  return t;
}

/** `npm run build:web` when dist/web is absent or older than src/web (a direct test run). */
export function ensureWebBuild(): void {
  const index = join(ROOT, 'dist/web/index.html');
  if (existsSync(index) && statSync(index).mtimeMs >= newestMtime(join(ROOT, 'src/web'))) return;
  const r = spawnSync(
    process.execPath,
    [join(ROOT, 'node_modules/vite/bin/vite.js'), 'build', '--config', 'src/web/vite.config.ts'],
    {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 120_000,
    },
  );
  if (r.status !== 0) throw new Error(`vite build failed: ${r.stderr || r.stdout}`);
}

const baseEnv = (home: string, extra: Record<string, string> = {}) => ({
  PATH: process.env.PATH ?? '',
  HOME: process.env.HOME ?? '',
  HARMON_HOME: home,
  LOG_LEVEL: 'warn',
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  ...extra,
});

export type Served = { url: string; home: string; key: string; logs(): string; stop(): Promise<void> };

/** Starts `harmon serve --port 0` and waits (bounded) for its "listening on" line. */
export async function startServe(
  args: string[] = [],
  env: Record<string, string> = {},
  timeoutMs = 90_000,
): Promise<Served> {
  const home = mkdtempSync(join(tmpdir(), 'harmon-web-e2e-'));
  const child: ChildProcess = spawn(process.execPath, [BIN, 'serve', '--port', '0', ...args], {
    cwd: ROOT,
    env: baseEnv(home, env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (d) => (out += d));
  child.stderr?.on('data', (d) => (out += d));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(t);
    }
    rmSync(home, { recursive: true, force: true });
  };
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const t = setTimeout(
        () => reject(new Error(`harmon serve did not start within ${timeoutMs} ms:\n${out}`)),
        timeoutMs,
      );
      const check = () => {
        const m = /harmon listening on (http:\/\/\S+)/.exec(out);
        if (m) {
          clearTimeout(t);
          resolve(m[1]);
        }
      };
      child.stdout?.on('data', check);
      child.once('exit', (code) => {
        clearTimeout(t);
        reject(new Error(`harmon serve exited with ${code}:\n${out}`));
      });
    });
    const key = await createKey(home, 'web-e2e', env);
    return { url, home, key, logs: () => out, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** `harmon keys create` against the running embedded server (found through server.json). */
export async function createKey(
  home: string,
  tenant: string,
  env: Record<string, string> = {},
): Promise<string> {
  const r = spawnSync(process.execPath, [BIN, 'keys', 'create', '--tenant', tenant], {
    cwd: ROOT,
    env: baseEnv(home, env),
    encoding: 'utf8',
    timeout: 60_000,
  });
  const key = r.stdout.trimEnd().split('\n').at(-1) ?? '';
  if (r.status !== 0 || !key.startsWith('hmn_'))
    throw new Error(`keys create failed (${r.status}): ${r.stderr}${r.stdout}`);
  return key;
}

export type Browser = {
  context: BrowserContext;
  consoleErrors: string[];
  /** Every HTTP response >= 400 with the start of its body, to explain a failure. */
  httpErrors: string[];
  newPage(width?: number): Promise<Page>;
  close(): Promise<void>;
};

/** Debian's Chromium, fresh profile; console errors and page errors of every page are collected. */
export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM))
    throw new Error(
      `Chromium not found at ${CHROMIUM}: install Debian's chromium (apt-get install -y chromium)`,
    );
  const profile = mkdtempSync(join(tmpdir(), 'harmon-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    args: CHROMIUM_ARGS,
    headless: true,
    timeout: 60_000,
    viewport: { width: 1024, height: 900 },
  });
  context.setDefaultTimeout(30_000);
  const consoleErrors: string[] = [];
  const httpErrors: string[] = [];
  const watch = (page: Page) => {
    page.on('response', async (r) => {
      if (r.status() < 400) return;
      const body = await r.text().catch(() => '');
      httpErrors.push(`${r.status()} ${r.request().method()} ${r.url()} ${body.slice(0, 300)}`);
    });
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(`${m.text()} @ ${m.location().url}`);
    });
    page.on('pageerror', (e) => consoleErrors.push(`pageerror: ${e.message}`));
  };
  context.on('page', watch);
  for (const p of context.pages()) watch(p);
  mkdirSync(SCREENSHOTS, { recursive: true });
  return {
    context,
    consoleErrors,
    httpErrors,
    async newPage(width = 1024) {
      const page = context.pages().find((p) => p.url() === 'about:blank') ?? (await context.newPage());
      await page.setViewportSize({ width, height: 900 });
      return page;
    },
    async close() {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/**
 * `harmon serve` and Chromium started at once (each takes seconds on 2 cores). If either fails,
 * the one that did start is stopped before the first failure is rethrown, so no process leaks.
 */
export async function startServeAndBrowser(
  args: string[] = [],
  env: Record<string, string> = {},
): Promise<{ served: Served; browser: Browser }> {
  const [s, b] = await Promise.allSettled([startServe(args, env), launchBrowser()]);
  if (s.status === 'rejected' || b.status === 'rejected') {
    if (s.status === 'fulfilled') await s.value.stop();
    if (b.status === 'fulfilled') await b.value.close();
    throw s.status === 'rejected' ? s.reason : (b as PromiseRejectedResult).reason;
  }
  return { served: s.value, browser: b.value };
}

export const shot = (page: Page, name: string) =>
  page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });

/**
 * Polls a JavaScript expression in the page until it is truthy. Unlike page.waitForFunction with
 * a string, this goes through the DevTools protocol and so is not blocked by the page's CSP.
 */
export async function waitFor(
  page: Page,
  expression: string,
  timeoutMs: number,
  what = expression,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await page.evaluate(expression)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
