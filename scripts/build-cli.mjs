/**
 * Builds the `backchannel` CLI into one JavaScript file, packages/client/dist/cli.mjs, which the
 * bin runs when no source is newer (packages/client/bin/backchannel.mjs). Run by `npm ci`
 * (postinstall) and `npm start`; by hand: `node scripts/build-cli.mjs`. The TypeScript of the
 * client and of @backchannel/protocol is bundled; npm dependencies stay imports. Without tsx
 * compiling sources at every start, a command starts in ~0.8 s instead of ~2 s.
 *
 * A failure here never fails the install: the bin then runs the sources through tsx, as before.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outfile = join(root, 'packages/client/dist/cli.mjs');

const depsOf = (pkg) =>
  Object.keys(JSON.parse(readFileSync(join(root, pkg, 'package.json'), 'utf8')).dependencies ?? {});
const external = [...new Set([...depsOf('packages/client'), ...depsOf('packages/protocol')])].filter(
  (d) => !d.startsWith('@backchannel/'),
);

try {
  const { build } = await import('esbuild');
  await build({
    entryPoints: [join(root, 'packages/client/src/cli/main.node.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external,
    logLevel: 'warning',
  });
  process.stdout.write(`${relative(root, outfile)}\n`);
} catch (e) {
  process.stderr.write(
    `note: the CLI bundle was not built (${e instanceof Error ? e.message : String(e)}); \`backchannel\` runs from its sources\n`,
  );
}
