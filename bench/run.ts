/**
 * `npm run bench`: the protocol and end-to-end encryption benchmarks, as JSON lines and a table.
 * The relay workload W1 runs separately: `npm run bench:relay` (see docs/PERFORMANCE.md).
 */
import { cpus, loadavg } from 'node:os';
import { benchAttest } from './attest.ts';
import { benchE2ee } from './e2ee.ts';
import { benchProtocol } from './protocol.ts';

const json = process.argv.includes('--json');
const meta = {
  node: process.version,
  cores: cpus().length,
  cpu: cpus()[0]?.model ?? 'unknown',
  date: new Date().toISOString(),
  /** 1-minute load average when the run started: above ~1 per core, other work shared the CPU. */
  load1: Number(loadavg()[0]?.toFixed(2)),
};
const rows = [...benchProtocol(), ...benchAttest(), ...(await benchE2ee())].map((r) => ({ ...r, ...meta }));
for (const r of rows) console.log(JSON.stringify(r));
if (!json) {
  console.log('');
  console.table(rows.map(({ node: _n, cores: _c, cpu: _p, date: _d, ...r }) => r));
}
