import assert from 'node:assert/strict';
import { test } from 'node:test';
import { escapeXml, renderStageChart, type StageRow, stageOrder } from '../../src/bench/chart.ts';
import { parseXml } from './xml-check.ts';

const rows: StageRow[] = [
  {
    label: 'generate tiny (64px, 8 steps)',
    stageMs: { prefill: 10, mar_encoder: 20, diffusion_sampler: 60, vae_decode: 5, encode: 1 },
    totalMs: 100,
  },
  { label: 'describe <tiny> & "quoted"', stageMs: { vae_encode: 30, prefill: 20, decode: 50 }, totalMs: 100 },
];

test('the checker itself rejects malformed XML', () => {
  assert.throws(() => parseXml('<a><b></a></b>'), /closes/);
  assert.throws(() => parseXml('<a x="1" x="2"/>'), /duplicate/);
  assert.throws(() => parseXml('<a>1 & 2</a>'), /bare/);
  assert.throws(() => parseXml('<a/><b/>'), /root/);
  assert.throws(() => parseXml('<a x=1/>'), /attributes/);
  assert.equal(parseXml('<a><b c="&amp;"/></a>').length, 2);
});

test('the stage chart is well-formed SVG with one bar segment per stage and row', () => {
  const svg = renderStageChart(rows);
  const els = parseXml(svg);
  assert.equal(els[0].name, 'svg');
  assert.equal(els[0].attrs.xmlns, 'http://www.w3.org/2000/svg');
  const segs = els.filter((e) => e.name === 'rect' && e.attrs['data-stage']);
  // row 1: five stages + "outside stages" (4 ms unaccounted); row 2: three stages, nothing left over
  assert.deepEqual(
    segs.map((e) => e.attrs['data-stage']),
    [
      'prefill',
      'mar_encoder',
      'diffusion_sampler',
      'vae_decode',
      'encode',
      'outside stages',
      'prefill',
      'vae_encode',
      'decode',
    ],
  );
  const widths = segs.slice(0, 6).map((e) => Number(e.attrs.width));
  const total = widths.reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(widths[2] / total - 0.6) < 1e-3, 'a segment is proportional to its stage time');
  assert.ok(svg.includes('describe &lt;tiny&gt; &amp; &quot;quoted&quot;'), 'labels are escaped');
  // a legend entry per stage
  for (const s of stageOrder(rows))
    assert.ok(
      els.some((e) => e.name === 'text' && e.text === s),
      `legend for ${s}`,
    );
});

test('stage order is first-seen, "outside stages" last, empty stages dropped', () => {
  assert.deepEqual(
    stageOrder([
      { label: 'a', stageMs: { x: 1, y: 0 }, totalMs: 10 },
      { label: 'b', stageMs: { z: 2 } },
    ]),
    ['x', 'z', 'outside stages'],
  );
  assert.equal(escapeXml(`<&>"'`), '&lt;&amp;&gt;&quot;&apos;');
});
