/**
 * Static check of the Dockerfiles (no hadolint or Docker here: apt has no hadolint, the npm
 * wrapper downloads a binary). A small parser turns each file into instructions and the tests
 * assert what issue 6 requires plus the hadolint rules that matter for these images. Also runs
 * the worker image's exact `npm ci` flags against package.json + package-lock.json offline.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface Instruction {
  op: string;
  args: string;
  stage: number;
}

/** Joins `\` continuations, drops comments and the parser directive, splits into instructions. */
export function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let stage = -1;
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (pending === '' && (line.startsWith('#') || line === '')) continue;
    if (line.startsWith('#')) continue; // comment inside a continued RUN
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const full = (pending + line).trim();
    pending = '';
    const m = /^(\w+)\s+([\s\S]*)$/.exec(full);
    assert.ok(m, `unparseable line: ${full}`);
    const op = m[1].toUpperCase();
    if (op === 'FROM') stage++;
    out.push({ op, args: m[2], stage });
  }
  return out;
}

function load(name: string) {
  const ins = parseDockerfile(readFileSync(join(ROOT, 'infra/docker', name), 'utf8'));
  const args = new Map<string, string>();
  for (const i of ins.filter((x) => x.op === 'ARG' && x.stage === -1)) {
    const [k, v] = i.args.split('=');
    if (v !== undefined) args.set(k, v);
  }
  const resolve = (s: string) => s.replace(/\$\{(\w+)\}/g, (_, k: string) => args.get(k) ?? '');
  const last = Math.max(...ins.map((i) => i.stage));
  return { ins, resolve, final: ins.filter((i) => i.stage === last), last };
}

/** hadolint-style rules shared by every image. */
function commonRules(name: string): void {
  const { ins, resolve, final } = load(name);
  for (const from of ins.filter((i) => i.op === 'FROM')) {
    const image = resolve(from.args.split(/\s+/)[0]);
    assert.match(image, /:[\w.-]+$/, `${name}: FROM ${image} needs an explicit tag (DL3006)`);
    assert.doesNotMatch(image, /:latest$/, `${name}: FROM ${image} uses latest (DL3007)`);
  }
  for (const run of ins.filter((i) => i.op === 'RUN')) {
    if (run.args.includes('apt-get install')) {
      assert.match(
        run.args,
        /apt-get update/,
        `${name}: apt-get install without update in the same RUN (DL3009)`,
      );
      assert.match(
        run.args,
        /--no-install-recommends/,
        `${name}: apt-get without --no-install-recommends (DL3015)`,
      );
      assert.match(run.args, /-y\b/, `${name}: apt-get install without -y (DL3014)`);
      assert.match(run.args, /rm -rf \/var\/lib\/apt\/lists/, `${name}: apt lists not removed (DL3009)`);
    }
    assert.doesNotMatch(run.args, /\bsudo\b/, `${name}: sudo (DL3004)`);
    assert.doesNotMatch(run.args, /npm install\b/, `${name}: use npm ci from the lock file`);
    assert.doesNotMatch(run.args, /(^|\s)cd\s/, `${name}: use WORKDIR instead of cd (DL3003)`);
  }
  for (const w of ins.filter((i) => i.op === 'WORKDIR'))
    assert.match(resolve(w.args), /^\//, `${name}: relative WORKDIR`);
  for (const add of ins.filter((i) => i.op === 'ADD')) {
    assert.match(add.args, /https:\/\//, `${name}: ADD for local files, use COPY (DL3020)`);
  }
  for (const op of ['CMD', 'ENTRYPOINT']) {
    const found = final.filter((i) => i.op === op);
    // The Lambda base image brings its own ENTRYPOINT (the runtime interface client).
    if (op === 'ENTRYPOINT' && found.length === 0 && name.startsWith('lambda')) continue;
    assert.equal(found.length, 1, `${name}: one ${op} in the final stage (DL4003/DL4004)`);
    assert.doesNotThrow(() => JSON.parse(found[0].args), `${name}: ${op} must be JSON form (DL3025)`);
  }
  if (!name.startsWith('lambda')) {
    const users = final.filter((i) => i.op === 'USER');
    assert.ok(users.length > 0, `${name}: no USER in the final stage`);
    assert.doesNotMatch(users[users.length - 1].args, /^(root|0)(:|$)/, `${name}: runs as root (DL3002)`);
    const health = final.filter((i) => i.op === 'HEALTHCHECK');
    assert.equal(health.length, 1, `${name}: needs a HEALTHCHECK`);
    assert.match(health[0].args, /healthcheck\.mjs/);
  }
  // Every local COPY source exists and passes the <Dockerfile>.dockerignore allow-list.
  const allow = readFileSync(join(ROOT, 'infra/docker', `${name}.dockerignore`), 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('!'))
    .map((l) => l.slice(1).replace(/\/\*\*$/, ''));
  for (const copy of ins.filter((i) => i.op === 'COPY' && !i.args.includes('--from='))) {
    const parts = copy.args.split(/\s+/).filter((p) => !p.startsWith('--'));
    for (const src of parts.slice(0, -1)) {
      assert.ok(existsSync(join(ROOT, src)), `${name}: COPY source ${src} does not exist`);
      assert.ok(
        allow.some((a) => src === a || src.startsWith(`${a}/`)),
        `${name}: COPY source ${src} is excluded by ${name}.dockerignore`,
      );
    }
  }
}

describe('Dockerfiles (static check)', () => {
  test('worker: CUDA 12 + cuDNN runtime, Node 20, npm ci with cuda12, non-root, harmon worker', () => {
    commonRules('worker.Dockerfile');
    const { ins, resolve, final } = load('worker.Dockerfile');
    const froms = ins.filter((i) => i.op === 'FROM').map((i) => resolve(i.args.split(/\s+/)[0]));
    assert.ok(
      froms.some((f) => /^nvidia\/cuda:12\.[\d.]+-cudnn-runtime-/.test(f)),
      `CUDA 12 cuDNN runtime base: ${froms}`,
    );
    assert.equal(
      resolve(final[0].args.split(/\s+/)[0]).startsWith('nvidia/cuda:12'),
      true,
      'final stage on CUDA',
    );
    assert.ok(
      froms.some((f) => /^node:20[.-]/.test(f)),
      'Node 20 comes from the official node:20 image',
    );
    const npmCi = only(ins.filter((i) => i.op === 'RUN' && /\bnpm ci\b/.test(i.args)));
    const env = ins.filter(
      (i) => i.op === 'ENV' && i.stage === npmCi.stage && ins.indexOf(i) < ins.indexOf(npmCi),
    );
    assert.ok(
      env.some((e) => /ONNXRUNTIME_NODE_INSTALL=cuda12/.test(e.args)),
      'ONNXRUNTIME_NODE_INSTALL=cuda12 before npm ci',
    );
    assert.deepEqual(JSON.parse(only(final.filter((i) => i.op === 'CMD')).args), ['harmon', 'worker']);
    assert.match(only(final.filter((i) => i.op === 'ENTRYPOINT')).args, /entrypoint\.sh/);
    // Weights are pulled at start, never baked in.
    for (const c of ins.filter((i) => i.op === 'COPY')) assert.doesNotMatch(c.args, /\.onnx|models?\//);
    assert.ok(final.some((i) => i.op === 'ENV' && /WEIGHTS_CACHE_DIR=/.test(i.args)));
  });

  test('api: slim Node 20 running harmon serve --no-worker as non-root', () => {
    commonRules('api.Dockerfile');
    const { ins, resolve, final } = load('api.Dockerfile');
    for (const f of ins.filter((i) => i.op === 'FROM'))
      assert.match(resolve(f.args.split(/\s+/)[0]), /^node:20-[\w-]*slim$/);
    assert.deepEqual(JSON.parse(only(final.filter((i) => i.op === 'CMD')).args), [
      'harmon',
      'serve',
      '--no-worker',
    ]);
    assert.doesNotMatch(ins.map((i) => i.args).join('\n'), /cuda/i);
  });

  test('lambda: Lambda Node 20 base, handler module present', () => {
    commonRules('lambda.Dockerfile');
    const { final, resolve } = load('lambda.Dockerfile');
    assert.match(resolve(final[0].args.split(/\s+/)[0]), /^public\.ecr\.aws\/lambda\/nodejs:20$/);
    assert.ok(existsSync(join(ROOT, 'infra/docker/lambda-entry.mjs')));
    assert.deepEqual(JSON.parse(only(final.filter((i) => i.op === 'CMD')).args), ['lambda-entry.handler']);
  });

  test('entrypoint builds DATABASE_URL from the injected secret fields and execs the command', () => {
    const sh = join(ROOT, 'infra/docker/entrypoint.sh');
    assert.equal(spawnSync('sh', ['-n', sh]).status, 0, 'shell syntax');
    const r = spawnSync('sh', [sh, 'node', '-e', 'process.stdout.write(process.env.DATABASE_URL)'], {
      env: {
        PATH: process.env.PATH,
        DB_HOST: 'db.internal',
        DB_PORT: '5432',
        DB_USER: 'harmon',
        DB_PASSWORD: 'p@ss/w:rd?',
        DB_NAME: 'harmon',
      },
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(
      r.stdout,
      'postgres://harmon:p%40ss%2Fw%3Ard%3F@db.internal:5432/harmon?sslmode=verify-full',
    );
    const keep = spawnSync('sh', [sh, 'node', '-e', 'process.stdout.write(process.env.DATABASE_URL)'], {
      env: { PATH: process.env.PATH, DATABASE_URL: 'postgres://given', DB_HOST: 'ignored' },
      encoding: 'utf8',
    });
    assert.equal(keep.stdout, 'postgres://given', 'an explicit DATABASE_URL wins');
  });
});

describe('worker image install step', () => {
  const workerNpmCi = () => {
    const run = only(
      load('worker.Dockerfile').ins.filter((i) => i.op === 'RUN' && /\bnpm ci\b/.test(i.args)),
    );
    const flags = run.args
      .replace(/^.*\bnpm ci\b/, '')
      .trim()
      .split(/\s+/)
      .filter(Boolean);
    assert.ok(
      flags.every((f) => f.startsWith('--')),
      `unexpected npm ci arguments: ${flags}`,
    );
    return flags;
  };
  // A private, empty npm cache: the outcome must not depend on what this machine happened to
  // download before (a fresh machine has no left-pad cached, a developer's may have).
  const npmCi = (dir: string, flags: string[]) =>
    spawnSync('npm', ['ci', ...flags, '--ignore-scripts', '--dry-run', '--offline'], {
      cwd: dir,
      env: {
        ...process.env,
        ONNXRUNTIME_NODE_INSTALL: 'skip',
        npm_config_update_notifier: 'false',
        npm_config_cache: join(dir, '.npm-cache'),
      },
      encoding: 'utf8',
      timeout: 60_000,
    });

  test('the lock file installs with the worker image npm ci flags (ONNXRUNTIME_NODE_INSTALL=skip)', () => {
    const flags = workerNpmCi();
    const dir = mkdtempSync(join(tmpdir(), 'harmon-npm-ci-'));
    try {
      copyFileSync(join(ROOT, 'package.json'), join(dir, 'package.json'));
      copyFileSync(join(ROOT, 'package-lock.json'), join(dir, 'package-lock.json'));
      const ok = npmCi(dir, flags);
      assert.equal(ok.status, 0, ok.stderr);
      const added = /added (\d+) packages/.exec(ok.stdout);
      assert.ok(added && Number(added[1]) > 100, ok.stdout.slice(-500));
      assert.match(ok.stdout, /add onnxruntime-node 1\.30\.0/);
      // Proof that the check validates the lock: a dependency the lock lacks must fail it.
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
      pkg.dependencies['left-pad'] = '1.3.0';
      writeFileSync(join(dir, 'package.json'), JSON.stringify(pkg));
      const bad = npmCi(dir, flags);
      assert.notEqual(bad.status, 0, 'npm ci --dry-run accepted a package.json out of sync with the lock');
      // Offline with an empty cache npm reports the unlocked package as not cached (ENOTCACHED);
      // with it cached, as out of sync. Either way it names the package the lock lacks.
      assert.match(bad.stderr, /left-pad/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

function only<T>(xs: T[]): T {
  assert.equal(xs.length, 1, `expected exactly one, got ${xs.length}`);
  return xs[0];
}
