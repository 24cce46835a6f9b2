/**
 * composeGraphs: names are prefixed per part, a weight two parts carry with the same content is
 * stored once, same-named but different constants are kept apart, links and fan-out inputs are
 * wired, Loop bodies survive the renaming, and a bad spec is refused with the port it names.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HARMON_TINY } from '../../src/model/config.ts';
import { buildDiffusionSampler } from '../../src/onnx/builders/diffusion-sampler.ts';
import { type ComposeSpec, composeGraphs } from '../../src/onnx/graph/compose.ts';
import { GraphBuilder } from '../../src/onnx/graph/graph-builder.ts';
import { toModelBytes } from '../../src/onnx/graph/serialize.ts';
import { f32, randomArray, runModel } from '../helpers/ort.ts';
import { randomDiffusionWeights } from '../reference/diffusion.ts';

/** a: y = (x + 1) · w.   b: out = y · w + 2 · s.   Both carry `w` = [3, 5] as separate arrays. */
function parts() {
  const a = new GraphBuilder('a');
  const x = a.input('x', 'float32', ['n', 2]);
  const wa = a.initializer('w', 'float32', [2], Float32Array.of(3, 5));
  const one = a.scalar(1); // const_float32_0 in a
  a.output(a.op1('Mul', [a.scope('shift', () => a.op1('Add', [x, one])), wa]), 'y', 'float32', ['n', 2]);

  const b = new GraphBuilder('b');
  const y = b.input('y', 'float32', ['n', 2]);
  const s = b.input('s', 'float32', ['n', 2]);
  const wb = b.initializer('w', 'float32', [2], Float32Array.of(3, 5));
  const two = b.scalar(2); // also const_float32_0, different value
  b.output(b.op1('Add', [b.op1('Mul', [y, wb]), b.op1('Mul', [s, two])]), 'out', 'float32', ['n', 2]);
  return { a, b };
}

function spec(over: Partial<ComposeSpec> = {}): ComposeSpec {
  const { a, b } = parts();
  return {
    name: 'ab',
    parts: [
      { name: 'a', graph: a },
      { name: 'b', graph: b },
    ],
    links: [['a:y', 'b:y']],
    inputs: [
      { name: 'x', to: ['a:x'] },
      { name: 's', to: ['b:s'] },
    ],
    outputs: [
      { name: 'out', from: 'b:out' },
      { name: 'y', from: 'a:y' },
      { name: 'y_again', from: 'a:y' },
    ],
    ...over,
  };
}

test('prefixes names, shares the identical weight once, keeps same-named constants apart, runs', async () => {
  const g = composeGraphs(spec());
  const inits = g.initializers.map((i) => i.name).sort();
  assert.deepEqual(inits, ['/a/const_float32_0', '/b/const_float32_0', 'w']);
  for (const n of g.nodes) assert.match(n.name, /^\/(a|b|output)\//, n.name);
  assert.ok(g.nodes.some((n) => n.name === '/a/shift/Add'));
  assert.deepEqual(
    g.inputs.map((i) => i.name),
    ['x', 's'],
  );
  assert.deepEqual(
    g.outputs.map((o) => o.name),
    ['out', 'y', 'y_again'],
  );

  const x = Float32Array.of(1, 2, -1, 0.5);
  const s = Float32Array.of(0.25, -1, 4, 2);
  const out = await runModel(toModelBytes(g), { x: f32([2, 2], x), s: f32([2, 2], s) });
  const w = [3, 5];
  const y = Array.from(x, (v, i) => (v + 1) * w[i % 2]);
  assert.deepEqual([...(out.y.data as Float32Array)], y);
  assert.deepEqual([...(out.y_again.data as Float32Array)], y);
  assert.deepEqual(
    [...(out.out.data as Float32Array)],
    y.map((v, i) => v * w[i % 2] + 2 * s[i]),
  );
});

test('a same-named weight with different content is not shared', () => {
  const s = spec();
  s.parts[1].graph.initializers[0].data = Float32Array.of(3, 6);
  const inits = composeGraphs(s).initializers.map((i) => i.name);
  assert.ok(inits.includes('/a/w') && inits.includes('/b/w') && !inits.includes('w'));
});

test('one composite input may feed several parts', async () => {
  const s = spec({
    inputs: [{ name: 'x', to: ['a:x', 'b:s'] }],
  });
  const out = await runModel(toModelBytes(composeGraphs(s)), { x: f32([1, 2], Float32Array.of(1, 1)) });
  assert.deepEqual([...(out.out.data as Float32Array)], [2 * 3 * 3 + 2, 2 * 5 * 5 + 2]);
});

test('bad specs are refused with the offending port', () => {
  const cases: Array<[Partial<ComposeSpec>, RegExp]> = [
    [{ inputs: [{ name: 'x', to: ['a:x'] }] }, /b:s is neither/],
    [{ links: [['a:nope', 'b:y']] }, /part a has no output "nope"/],
    [
      {
        links: [['a:y', 'b:y']],
        inputs: [
          { name: 'x', to: ['a:x'] },
          { name: 's', to: ['b:s', 'b:y'] },
        ],
      },
      /b:y is bound twice/,
    ],
    [
      {
        inputs: [
          { name: 'x', to: ['a:x'] },
          { name: 's', to: ['c:s'] },
        ],
      },
      /unknown part "c"/,
    ],
    [{ inputs: [{ name: 'x', to: ['ax'] }] }, /part:port/],
  ];
  for (const [over, msg] of cases) assert.throws(() => composeGraphs(spec(over)), msg);
  const back = spec();
  back.parts.reverse();
  assert.throws(() => composeGraphs(back), /does not go forward/);
});

test('a Loop body survives renaming: composed sampler gives identical x_0', async () => {
  const cfg = HARMON_TINY;
  const sampler = buildDiffusionSampler(cfg, randomDiffusionWeights(cfg, 4), { cfg: false });
  const names = sampler.inputs.map((i) => i.name);
  const composed = composeGraphs({
    name: 'wrapped',
    parts: [{ name: 'diffusion_sampler', graph: sampler }],
    links: [],
    inputs: names.map((n) => ({ name: n, to: [`diffusion_sampler:${n}`] })),
    outputs: [{ name: 'x_0', from: 'diffusion_sampler:x_0' }],
  });
  assert.ok(composed.nodes.some((n) => n.opType === 'Loop' && n.name.startsWith('/diffusion_sampler/')));
  const n = 2;
  const S = cfg.diffusion.samplingSteps;
  const feeds = {
    c: f32([n, cfg.mar.width], randomArray(n * cfg.mar.width, 1)),
    x_T: f32([n, 16], randomArray(n * 16, 2)),
    noise: f32([S, n, 16], randomArray(S * n * 16, 3)),
    cfg_scale: f32([1], [1]),
    temperature: f32([1], [0.9]),
  };
  const a = await runModel(toModelBytes(sampler), feeds);
  const b = await runModel(toModelBytes(composed), feeds);
  assert.deepEqual([...(b.x_0.data as Float32Array)], [...(a.x_0.data as Float32Array)]);
});
