#!/usr/bin/env node
// The `backchannel` command. It runs the bundle `npm ci` builds (dist/cli.mjs, see
// scripts/build-cli.mjs) when no source file of the CLI is newer than it; otherwise (a checkout
// being edited, or an install without scripts) the TypeScript sources through tsx.
import { lstatSync, readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const at = (p) => fileURLToPath(new URL(p, import.meta.url));

/**
 * The newest modification time under `dir` (0 when it is missing), folders' own included: a file
 * deleted or renamed changes its folder's time, not a file's.
 */
function newest(dir) {
  let t = lstatSync(dir, { throwIfNoEntry: false })?.mtimeMs ?? 0;
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = `${dir}/${e.name}`;
    // lstat: an editor's lock link (.#file -> user@host) points nowhere; its own time counts.
    t = Math.max(t, e.isDirectory() ? newest(p) : (lstatSync(p, { throwIfNoEntry: false })?.mtimeMs ?? 0));
  }
  return t;
}

const bundle = statSync(at('../dist/cli.mjs'), { throwIfNoEntry: false });
const sources = [at('../src'), at('../../protocol/src')];
const manifests = [at('../package.json'), at('../../protocol/package.json')];
const fresh =
  bundle !== undefined &&
  process.env.BACKCHANNEL_CLI_FROM_SOURCE !== '1' &&
  Math.max(...sources.map(newest), ...manifests.map((m) => statSync(m).mtimeMs)) <= bundle.mtimeMs;

// Under npx (npm exec), npm passes a SIGTERM on to the shell it ran this command in, and the shell
// ends without passing it on: a long-running command (relay, watch, heartbeat --daemon, witness)
// would live on with its parent gone. Noticing the parent go, it stops as on SIGTERM.
const args = process.argv.slice(2);
const longRunning =
  ['relay', 'watch', 'witness'].some((c) => args.includes(c)) ||
  (args.includes('heartbeat') && args.includes('--daemon'));
if (process.env.npm_command === 'exec' && longRunning) {
  const parent = process.ppid;
  const watch = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(watch);
    process.kill(process.pid, 'SIGTERM');
  }, 500);
  watch.unref();
}

if (fresh) {
  await import('../dist/cli.mjs');
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.node.ts');
}
