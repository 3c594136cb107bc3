/**
 * Draws docs/scale-chart.svg from `npm run bench:relay -- --json` lines: throughput (accepted
 * msgs/s) and p99 latency per configuration (store × nodes) and workload, as two bar panels.
 *
 *   node --import tsx bench/scale-chart.ts results.jsonl docs/scale-chart.svg
 */
import { readFileSync, writeFileSync } from 'node:fs';

interface Row {
  workload: string;
  store: string;
  nodes: number;
  /** With several nodes: how writes were spread (bench:relay --route). */
  route?: string | null;
  accepted_per_s: number;
  p99_ms: number | null;
}

const [input, output] = process.argv.slice(2);
if (input === undefined || output === undefined) {
  process.stderr.write('usage: scale-chart.ts results.jsonl out.svg\n');
  process.exit(2);
}
const rows = readFileSync(input, 'utf8')
  .split('\n')
  .filter((l) => l.startsWith('{'))
  .map((l) => JSON.parse(l) as Row);

const configOf = (r: Row) => `${r.store} ×${r.nodes}${r.route ? ` ${r.route}` : ''}`;
const configs = [...new Set(rows.map(configOf))];
const workloads = [...new Set(rows.map((r) => r.workload))];
const colors = ['#4c78a8', '#f58518', '#54a24b', '#e45756'];
const W = 760;
const panelH = 220;
const left = 70;
const barW = 34;
const groupGap = 40;

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

function panel(top: number, title: string, value: (r: Row) => number, unit: string): string {
  const vals = rows.map(value).filter((v) => Number.isFinite(v));
  const max = Math.max(1, ...vals) * 1.15;
  const h = panelH - 50;
  let out = `<text x="${left}" y="${top + 16}" font-size="14" font-weight="bold">${esc(title)}</text>`;
  out += `<line x1="${left}" y1="${top + 30 + h}" x2="${W - 20}" y2="${top + 30 + h}" stroke="#333"/>`;
  let x = left + 10;
  for (const w of workloads) {
    configs.forEach((c, i) => {
      const r = rows.find((q) => q.workload === w && configOf(q) === c);
      const v = r === undefined ? Number.NaN : value(r);
      if (Number.isFinite(v)) {
        const bh = (v / max) * h;
        const y = top + 30 + h - bh;
        out += `<rect x="${x}" y="${y}" width="${barW}" height="${bh}" fill="${colors[i % colors.length]}"/>`;
        out += `<text x="${x + barW / 2}" y="${y - 3}" font-size="10" text-anchor="middle">${Math.round(v)}</text>`;
      }
      x += barW + 4;
    });
    out += `<text x="${x - ((barW + 4) * configs.length) / 2 - 2}" y="${top + 30 + h + 14}" font-size="11" text-anchor="middle">${esc(w)}</text>`;
    x += groupGap;
  }
  out += `<text x="14" y="${top + 30 + h / 2}" font-size="11" transform="rotate(-90 14 ${top + 30 + h / 2})" text-anchor="middle">${esc(unit)}</text>`;
  return out;
}

const legend = configs
  .map(
    (c, i) =>
      `<rect x="${left + i * 170}" y="${2 * panelH + 20}" width="12" height="12" fill="${colors[i % colors.length]}"/><text x="${left + i * 170 + 16}" y="${2 * panelH + 30}" font-size="11">${esc(c)}</text>`,
  )
  .join('');
const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${2 * panelH + 45}" font-family="sans-serif" role="img" aria-labelledby="title">
<title id="title">Relay throughput and p99 latency by configuration (${esc(configs.join(', '))})</title>
<rect width="100%" height="100%" fill="white"/>
${panel(0, 'Throughput (accepted msgs/s, higher is better)', (r) => r.accepted_per_s, 'msgs/s')}
${panel(panelH, 'p99 latency send→delivered (ms, lower is better)', (r) => r.p99_ms ?? Number.NaN, 'ms')}
${legend}
</svg>
`;
writeFileSync(output, svg);
process.stderr.write(`wrote ${output} (${rows.length} rows)\n`);
