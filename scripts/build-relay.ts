/**
 * Builds the relay into one JavaScript file, packages/server/dist/relay.mjs (`npm run build:relay`;
 * run it with `node packages/server/dist/relay.mjs`, same flags and environment as `npm start`).
 * The TypeScript of the server and of @backchannel/protocol is bundled; npm dependencies stay
 * imports (resolved from node_modules as before). Without tsx compiling sources in the process,
 * the relay starts faster and holds ~50 MB less memory (docs/PERFORMANCE.md).
 *
 * `import.meta.url` in a bundled source file keeps meaning that file's own location, so the
 * migrations and the web app are read from where they are in the repository.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outfile = join(root, 'packages/server/dist/relay.mjs');

const depsOf = (pkg: string): string[] =>
  Object.keys(
    (JSON.parse(readFileSync(join(root, pkg, 'package.json'), 'utf8')) as { dependencies?: object })
      .dependencies ?? {},
  );
const external = [...new Set([...depsOf('packages/server'), ...depsOf('packages/protocol')])].filter(
  (d) => !d.startsWith('@backchannel/'),
);

/** Rewrites `import.meta.url` in each source file to that file's URL, relative to the bundle. */
const sourceUrls: Plugin = {
  name: 'source-urls',
  setup(b) {
    b.onLoad({ filter: /\.ts$/ }, async (args) => {
      const text = await readFile(args.path, 'utf8');
      if (!text.includes('import.meta.url')) return { contents: text, loader: 'ts' };
      const rel = relative(dirname(outfile), args.path).split(sep).join('/');
      const url = `new URL(${JSON.stringify(rel)}, import.meta.url).href`;
      return { contents: text.replaceAll('import.meta.url', url), loader: 'ts' };
    });
  },
};

export async function buildRelay(): Promise<string> {
  await build({
    entryPoints: [join(root, 'packages/server/src/main.node.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external,
    plugins: [sourceUrls],
    logLevel: 'warning',
  });
  return outfile;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.stdout.write(`${relative(root, await buildRelay())}\n`);
}
