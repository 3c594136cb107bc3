#!/usr/bin/env node
// The `backchannel` command. It runs the bundle `npm ci` builds (dist/cli.mjs, see
// scripts/build-cli.mjs) when no source file of the CLI is newer than it; otherwise (a checkout
// being edited, or an install without scripts) the TypeScript sources through tsx.
import { readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const at = (p) => fileURLToPath(new URL(p, import.meta.url));

/** The newest modification time under `dir` (0 when it is missing). */
function newest(dir) {
  let t = 0;
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = `${dir}/${e.name}`;
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
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

if (fresh) {
  await import('../dist/cli.mjs');
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.node.ts');
}
