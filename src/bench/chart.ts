/**
 * Stage-breakdown chart of `harmon bench`: one horizontal stacked bar per model config, each
 * segment a pipeline stage's share of the generate request, as a hand-written SVG string (no
 * charting dependency; the picture is simple and must render on GitHub as a plain file).
 *
 * Each segment is a <rect data-stage="…"> with a <title> tooltip, so tests and readers can find
 * a stage's bar without guessing from colours.
 */

export interface StageRow {
  /** Bar label, e.g. "tiny (64 px, 8 steps)". */
  label: string;
  /** Milliseconds per stage (median request). */
  stageMs: Record<string, number>;
  /**
   * Whole request; the part not covered by stages is drawn as "outside stages": host work between
   * timed stages (e.g. drawing sampler noise, logits post-processing), plus the slack of taking
   * the total's and each stage's median separately.
   */
  totalMs?: number;
}

// Twenty distinguishable colours: generate and describe together have ~13 stages, and a colour
// that repeats within one chart would make two stages look like one.
const PALETTE = [
  '#4e79a7',
  '#f28e2b',
  '#e15759',
  '#76b7b2',
  '#59a14f',
  '#edc948',
  '#b07aa1',
  '#ff9da7',
  '#9c755f',
  '#79706e',
  '#a0cbe8',
  '#ffbe7d',
  '#8cd17d',
  '#b6992d',
  '#499894',
  '#86bcb6',
  '#d37295',
  '#fabfd2',
  '#d4a6c8',
  '#f1ce63',
];
const OTHER = 'outside stages';

/** Dark text on light segments, white on dark ones (relative luminance of an #rrggbb colour). */
function labelColor(hex: string): string {
  const [r, g, b] = [1, 3, 5].map((i) => Number.parseInt(hex.slice(i, i + 2), 16) / 255);
  return 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.6 ? '#222222' : '#ffffff';
}

export function escapeXml(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

/** Stage list in first-seen order across rows, "outside stages" last; non-positive times dropped. */
export function stageOrder(rows: readonly StageRow[]): string[] {
  const seen: string[] = [];
  for (const r of rows) {
    for (const [k, v] of Object.entries(withOther(r))) if (v > 0 && !seen.includes(k)) seen.push(k);
  }
  return [...seen.filter((s) => s !== OTHER), ...seen.filter((s) => s === OTHER)];
}

function withOther(r: StageRow): Record<string, number> {
  const sum = Object.values(r.stageMs).reduce((a, b) => a + Math.max(0, b), 0);
  const rest = r.totalMs !== undefined ? r.totalMs - sum : 0;
  // Below 0.5 % of the request the remainder is timer noise, not a stage worth a segment.
  return rest > 0.005 * (r.totalMs ?? 0) ? { ...r.stageMs, [OTHER]: rest } : { ...r.stageMs };
}

const fmtMs = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));

export function renderStageChart(
  rows: readonly StageRow[],
  title = 'Time per pipeline stage (median request)',
): string {
  const stages = stageOrder(rows);
  const color = (s: string) => (s === OTHER ? '#cccccc' : PALETTE[stages.indexOf(s) % PALETTE.length]);
  const width = 820;
  // ~7 px per character of 12 px sans-serif, so the longest label fits left of the bars.
  const left = Math.max(120, 16 + 7 * Math.max(0, ...rows.map((r) => r.label.length)));
  const barW = width - left - 20;
  const barH = 26;
  const gap = 18;
  const top = 40;
  const legendTop = top + rows.length * (barH + gap) + 6;
  const legendCols = 4;
  const height = legendTop + Math.ceil(stages.length / legendCols) * 20 + 12;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<title>${escapeXml(title)}</title>`,
    `<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="10" y="22" font-size="15" font-weight="bold">${escapeXml(title)}</text>`,
  ];
  rows.forEach((r, i) => {
    const y = top + i * (barH + gap);
    const parts = withOther(r);
    const total = Object.values(parts).reduce((a, b) => a + Math.max(0, b), 0);
    out.push(`<g data-row="${escapeXml(r.label)}">`);
    out.push(`<text x="${left - 8}" y="${y + barH / 2 + 4}" text-anchor="end">${escapeXml(r.label)}</text>`);
    let x = left;
    for (const s of stages) {
      const v = parts[s] ?? 0;
      if (!(v > 0) || total <= 0) continue;
      const w = (v / total) * barW;
      const share = (100 * v) / total;
      out.push(
        `<rect data-stage="${escapeXml(s)}" x="${x.toFixed(2)}" y="${y}" width="${w.toFixed(2)}" height="${barH}" fill="${color(s)}"><title>${escapeXml(`${s}: ${fmtMs(v)} ms (${share.toFixed(1)} %)`)}</title></rect>`,
      );
      if (w > 34)
        out.push(
          `<text x="${(x + w / 2).toFixed(2)}" y="${y + barH / 2 + 4}" text-anchor="middle" fill="${labelColor(color(s))}">${share.toFixed(0)}%</text>`,
        );
      x += w;
    }
    out.push(
      `<text x="${left}" y="${y + barH + 12}" font-size="10" fill="#555555">${escapeXml(`total ${fmtMs(total)} ms`)}</text>`,
    );
    out.push('</g>');
  });
  stages.forEach((s, i) => {
    const x = 10 + (i % legendCols) * 185;
    const y = legendTop + Math.floor(i / legendCols) * 20;
    out.push(`<rect x="${x}" y="${y}" width="12" height="12" fill="${color(s)}"/>`);
    out.push(`<text x="${x + 17}" y="${y + 10}">${escapeXml(s)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
