/**
 * The README's dependency rules ("Architecture"), checked over every import in src/ (type-only
 * imports included: a type import still couples two rooms). A room is a top-level folder of src/
 * (or lambda.ts); src/generated is the Prisma client.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, test } from 'node:test';
import ts from 'typescript';

const SRC = resolve(import.meta.dirname, '../../src');

/** Which rooms each room may import (besides itself). Wiring rooms (cli, lambda.ts, bench) may import any. */
const ALLOWED: Record<string, string[]> = {
  shared: [],
  config: ['shared'],
  model: ['shared'],
  generated: [],
  onnx: ['model', 'shared'],
  runtime: ['model', 'shared'],
  harmon: ['runtime', 'model', 'shared'],
  storage: ['config', 'shared', 'generated'],
  tenancy: ['storage', 'config', 'shared', 'generated'],
  events: ['storage', 'config', 'shared', 'generated'],
  net: ['config', 'shared'],
  embedded: ['config', 'shared'],
  server: ['embedded', 'storage', 'config', 'shared'],
  jobs: ['harmon', 'model', 'storage', 'tenancy', 'events', 'net', 'config', 'shared', 'generated'],
  api: ['jobs', 'events', 'net', 'model', 'storage', 'tenancy', 'server', 'config', 'shared', 'generated'],
  web: ['shared'],
};
const WIRING = new Set(['cli', 'lambda.ts', 'bench']);
/** The api reaches jobs only for its commands: enqueue, cancel (a lifecycle transition), the queue producer. */
const API_JOBS_ENTRIES = new Set([
  'jobs/enqueue.ts',
  'jobs/job-lifecycle.ts',
  'jobs/queue/create-queue.ts',
  'jobs/queue/port.ts',
]);
/** Packages only one room may import. */
const PACKAGE_HOMES: Record<string, string[]> = {
  'onnxruntime-node': ['runtime'],
  'onnxruntime-common': ['runtime'],
  '@apollo/server': ['api', 'cli', 'lambda.ts', 'bench'],
};

export interface Edge {
  from: string; // path relative to src/
  to: string; // relative path, or a package name
  package: boolean;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return name === 'generated' ? [] : sourceFiles(p);
    return /\.tsx?$/.test(name) && !name.endsWith('.d.ts') ? [p] : [];
  });
}

function importsOf(): Edge[] {
  return sourceFiles(SRC).flatMap((file) =>
    ts.preProcessFile(readFileSync(file, 'utf8'), true, true).importedFiles.map(({ fileName }) => {
      const from = relative(SRC, file);
      if (!fileName.startsWith('.')) {
        const parts = fileName.split('/');
        return { from, to: fileName.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0], package: true };
      }
      return { from, to: relative(SRC, resolve(dirname(file), fileName)), package: false };
    }),
  );
}

const roomOf = (path: string) => path.split('/')[0];

/** Every broken rule, as a readable line; empty when the rules hold. */
export function violations(edges: Edge[]): string[] {
  const out: string[] = [];
  for (const e of edges) {
    const from = roomOf(e.from);
    if (e.package) {
      const homes = PACKAGE_HOMES[e.to];
      if (homes && !homes.includes(from))
        out.push(`${e.from} imports ${e.to} (only ${homes.join(', ')} may)`);
      continue;
    }
    const to = roomOf(e.to);
    if (to === 'cli' || to === 'lambda.ts') {
      if (from !== 'cli' || to !== 'cli') out.push(`${e.from} imports ${e.to}: nothing imports the wiring`);
      continue;
    }
    if (from === to || WIRING.has(from)) continue;
    const allowed = ALLOWED[from];
    if (!allowed) out.push(`${e.from}: room "${from}" has no rule; add it to ALLOWED and the README`);
    else if (!allowed.includes(to)) out.push(`${e.from} imports ${e.to}: ${from} may not import ${to}`);
    else if (from === 'api' && to === 'jobs' && !API_JOBS_ENTRIES.has(e.to))
      out.push(
        `${e.from} imports ${e.to}: the api reaches jobs only through ${[...API_JOBS_ENTRIES].join(', ')}`,
      );
  }
  return out;
}

/** Strongly connected components with more than one member (Tarjan): the import cycles. */
export function cycles(edges: Array<[string, string]>): string[][] {
  const next = new Map<string, string[]>();
  for (const [a, b] of edges) {
    if (a === b) continue;
    next.set(a, [...(next.get(a) ?? []), b]);
    if (!next.has(b)) next.set(b, []);
  }
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string) => {
    index.set(v, index.size);
    low.set(v, index.get(v) as number);
    stack.push(v);
    onStack.add(v);
    for (const w of next.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v) as number, index.get(w) as number));
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop() as string;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1) found.push(scc.sort());
    }
  };
  for (const v of next.keys()) if (!index.has(v)) visit(v);
  return found;
}

describe('import rules (README "Architecture")', () => {
  const edges = importsOf();
  const local = edges.filter((e) => !e.package);

  test('every import follows the room rules', () => {
    assert.ok(local.length > 300, `found only ${local.length} imports: is the scanner broken?`);
    assert.deepEqual(violations(edges), []);
  });

  test('no import cycle between rooms', () => {
    assert.deepEqual(cycles(local.map((e) => [roomOf(e.from), roomOf(e.to)])), []);
  });

  test('no import cycle between files', () => {
    assert.deepEqual(cycles(local.map((e) => [e.from, e.to])), []);
  });

  test('the checks catch broken rules', () => {
    const broken: Edge[] = [
      { from: 'api/resolvers/mutation.ts', to: 'harmon/engine.ts', package: false },
      { from: 'api/mount.ts', to: 'jobs/worker.ts', package: false },
      { from: 'jobs/worker.ts', to: 'cli/main.ts', package: false },
      { from: 'harmon/generate.ts', to: 'onnxruntime-node', package: true },
      { from: 'newroom/x.ts', to: 'shared/errors.ts', package: false },
    ];
    assert.equal(violations(broken).length, broken.length);
    assert.deepEqual(
      cycles([
        ['a', 'b'],
        ['b', 'c'],
        ['c', 'a'],
        ['c', 'd'],
      ]),
      [['a', 'b', 'c']],
    );
  });
});
