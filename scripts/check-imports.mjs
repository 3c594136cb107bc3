// Enforces the one-way dependency rule of STYLE.md (web → client → protocol ← server),
// keeps node: imports out of packages/protocol, and fails on circular relative imports.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

const roots = {
  protocol: 'packages/protocol/src',
  server: 'packages/server/src',
  client: 'packages/client/src',
  web: 'apps/web/src',
};
const forbidden = {
  protocol: [/^@backchannel\/(server|client|web)/, /^node:/, /^(better-sqlite3|ws|pino|hono)/],
  server: [/^@backchannel\/(client|web)/],
  client: [/^@backchannel\/(server|web)/],
  web: [/^@backchannel\/server/, /^node:/, /\.node(\.ts)?$/],
};

function* walk(dir) {
  let names = [];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) yield* walk(p);
    else if (/\.(ts|tsx)$/.test(name)) yield p;
  }
}

const importRe =
  /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;
const problems = [];
const graph = new Map();
for (const [pkg, dir] of Object.entries(roots)) {
  for (const file of walk(dir)) {
    const src = readFileSync(file, 'utf8');
    const edges = [];
    for (const m of src.matchAll(importRe)) {
      const spec = m[1] ?? m[2];
      if (spec === undefined) continue;
      for (const re of forbidden[pkg]) {
        if (re.test(spec)) problems.push(`${file}: imports '${spec}' (not allowed in ${pkg})`);
      }
      if (spec.startsWith('.')) edges.push(resolve(dirname(file), spec));
    }
    graph.set(resolve(file), edges);
  }
}

// Circular-import check over relative imports (type-only imports included: they still couple modules).
const state = new Map();
const stack = [];
function visit(node) {
  state.set(node, 1);
  stack.push(node);
  for (const next of graph.get(node) ?? []) {
    if (!graph.has(next)) continue;
    if (state.get(next) === 1) {
      const cycle = stack.slice(stack.indexOf(next)).concat(next);
      problems.push(`circular import: ${cycle.map((p) => p.replace(`${process.cwd()}/`, '')).join(' → ')}`);
    } else if (state.get(next) === undefined) visit(next);
  }
  stack.pop();
  state.set(node, 2);
}
for (const node of graph.keys()) if (state.get(node) === undefined) visit(node);

// Browser code: nothing reachable from the web app's SDK entry may be Node-only.
const browserEntries = [resolve('packages/client/src/sdk/browser.dom.ts')];
const nodeOnly = /^(node:|better-sqlite3$|ws$|pino$)/;
const seen = new Set();
const todo = [...browserEntries].filter((f) => graph.has(f));
while (todo.length > 0) {
  const file = todo.pop();
  if (seen.has(file)) continue;
  seen.add(file);
  if (file.endsWith('.node.ts'))
    problems.push(`${file}: Node-only file reachable from the browser SDK entry`);
  for (const m of readFileSync(file, 'utf8').matchAll(importRe)) {
    const spec = m[1] ?? m[2];
    if (spec !== undefined && nodeOnly.test(spec))
      problems.push(`${file}: imports '${spec}', reachable from the browser SDK entry`);
  }
  for (const next of graph.get(file) ?? []) if (graph.has(next)) todo.push(next);
}

if (problems.length > 0) {
  for (const p of problems) console.error(p);
  process.exit(1);
}
console.log(`imports ok: ${graph.size} files, no forbidden or circular imports`);
