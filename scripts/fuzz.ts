/**
 * `npm run fuzz`: runs the fuzz targets of the protocol, the relay and the SDK's relay client
 * (packages/{protocol,server,client}/test/fuzz) for
 * many cases — by default 1,000,000 in total, shared by target weight — and exits non-zero on any
 * failure, printing the fast-check counterexample and the seed that replays it.
 *
 *   npm run fuzz -- [--cases N] [--seed S] [--target name[,name…]] [--slow-ms MS] [--list]
 *
 * A case slower than --slow-ms (default 10 s) counts as a hang. The vitest files in the same
 * folders run the same targets briefly with a fixed seed in `npm test`.
 */
import { cpus } from 'node:os';
import fc from 'fast-check';
import { clientTargets } from '../packages/client/test/fuzz/targets.ts';
import { FuzzBug, type FuzzTarget, protocolTargets } from '../packages/protocol/test/fuzz/targets.ts';
import { openServerTargets } from '../packages/server/test/fuzz/targets.ts';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? undefined : process.argv[i + 1];
}

const totalCases = Number(arg('cases') ?? 1_000_000);
const seed = Number(arg('seed') ?? Date.now() % 2 ** 31);
const only = arg('target')?.split(',');
const slowMs = Number(arg('slow-ms') ?? 10_000);

const server = await openServerTargets();
const all: FuzzTarget[] = [...protocolTargets, ...server.targets, ...clientTargets];
if (process.argv.includes('--list')) {
  for (const t of all) console.log(`${t.name}\tweight ${t.weight}`);
  await server.close();
  process.exit(0);
}
const chosen = only === undefined ? all : all.filter((t) => only.includes(t.name));
if (chosen.length === 0 || (only !== undefined && chosen.length !== only.length)) {
  console.error(`unknown target; known: ${all.map((t) => t.name).join(', ')}`);
  process.exit(2);
}
const weights = chosen.reduce((n, t) => n + t.weight, 0);

console.log(
  `fuzz: ${totalCases.toLocaleString('en')} cases over ${chosen.length} targets, seed ${seed}, ` +
    `node ${process.version}, ${cpus().length} cores (${cpus()[0]?.model ?? '?'})`,
);
let failures = 0;
let done = 0;
const t0 = performance.now();
for (const t of chosen) {
  const numRuns = Math.max(1, Math.round((totalCases * t.weight) / weights));
  let slowest = 0;
  const timed = async (x: unknown) => {
    const s = performance.now();
    await t.check(x);
    const ms = performance.now() - s;
    if (ms > slowest) slowest = ms;
    if (ms > slowMs) throw new FuzzBug(`a case took ${ms.toFixed(0)} ms (over --slow-ms ${slowMs})`);
  };
  const start = performance.now();
  const r = await fc.check(
    fc.asyncProperty(t.input, (x) => timed(x)),
    { numRuns, seed, endOnFailure: false },
  );
  const secs = (performance.now() - start) / 1000;
  done += r.numRuns;
  const rate = Math.round(r.numRuns / secs);
  console.log(
    `${t.name.padEnd(22)} ${String(r.numRuns).padStart(9)} cases ${secs.toFixed(1).padStart(7)} s ` +
      `${String(rate).padStart(7)} cases/s  slowest ${slowest.toFixed(0)} ms  ${r.failed ? 'FAILED' : 'ok'}`,
  );
  if (r.failed) {
    failures++;
    console.log(
      `  seed ${r.seed}, path ${r.counterexamplePath ?? '?'} (replay: --target ${t.name} --seed ${r.seed})`,
    );
    console.log(
      `  error: ${r.errorInstance instanceof Error ? r.errorInstance.message : String(r.errorInstance)}`,
    );
    console.log(`  counterexample: ${fc.stringify(r.counterexample).slice(0, 2000)}`);
  }
}
await server.close();
const secs = (performance.now() - t0) / 1000;
console.log(
  `total ${done.toLocaleString('en')} cases in ${secs.toFixed(0)} s (${Math.round(done / secs)} cases/s), ` +
    `${failures} failing target(s)`,
);
process.exit(failures === 0 ? 0 : 1);
