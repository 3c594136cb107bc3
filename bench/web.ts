/**
 * `npm run bench:web`: the web app's budgets.
 *  1. Initial JS: the production build's entry script and its module preloads, gzipped
 *     (zlib level 9), against ≤ 300 KB. Lazily loaded chunks are listed separately.
 *  2. First render of a 1,000-event channel in headless Chromium, against ≤ 1 s: navigation
 *     start → timeline painted, for a page that loads the app's styles and Timeline component,
 *     folds 1,000 synthetic events with the SDK's reducer and renders them (median of 5 cold
 *     loads, each in a fresh browser context), with the page's main-thread busy time (CDP
 *     Performance.getMetrics TaskDuration) and its CPU time (ThreadTime) beside the wall time.
 */
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { cpus, loadavg } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { gzipSync } from 'node:zlib';
import { build } from 'vite';
import { buildApp, launchChromium, tempDir, WEB_ROOT } from '../apps/web/test/harness.ts';

const RUNS = 5;
const N = Number(process.argv[process.argv.indexOf('--n') + 1] || 1000) || 1000;
const gz = (b: Buffer) => gzipSync(b, { level: 9 }).length;
const kb = (n: number) => Math.round(n / 102.4) / 10;

function initialJs(dist: string): { initial: number; initialRaw: number; total: number; files: string[] } {
  const html = readFileSync(join(dist, 'index.html'), 'utf8');
  const refs = [
    ...html.matchAll(/<(?:script[^>]*\ssrc|link[^>]*rel="modulepreload"[^>]*\shref)="([^"]+\.js)"/g),
  ].map((m) => m[1] as string);
  let initial = 0;
  let initialRaw = 0;
  for (const r of refs) {
    const b = readFileSync(join(dist, r));
    initial += gz(b);
    initialRaw += b.length;
  }
  let total = 0;
  for (const f of readdirSync(join(dist, 'assets'))) {
    if (f.endsWith('.js')) total += gz(readFileSync(join(dist, 'assets', f)));
  }
  return { initial, initialRaw, total, files: refs };
}

const MIME: Record<string, string> = {
  '.html': 'text/html',
  '.js': 'text/javascript',
  '.css': 'text/css',
};

function serve(dir: string): Promise<{ url: string; close: () => void }> {
  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname));
    const file = join(dir, path === '/' ? 'index.html' : path);
    if (!file.startsWith(dir) || !statSync(file, { throwIfNoEntry: false })?.isFile()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': MIME[extname(file)] ?? 'application/octet-stream' });
    res.end(readFileSync(file));
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      const a = server.address();
      const port = typeof a === 'object' && a !== null ? a.port : 0;
      resolve({ url: `http://127.0.0.1:${port}`, close: () => server.close() });
    }),
  );
}

interface Sample {
  mainThreadMs?: number;
  mainThreadCpuMs?: number;
  foldMs: number;
  renderMs: number;
  sinceNavigationMs: number;
  events: number;
  items: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

const appDist = tempDir('bc-web-bench-app-');
const benchDist = tempDir('bc-web-bench-page-');
try {
  await buildApp(appDist);
  const size = initialJs(appDist);
  await build({
    root: WEB_ROOT,
    configFile: join(WEB_ROOT, 'vite.config.ts'),
    logLevel: 'error',
    build: { outDir: benchDist, emptyOutDir: true, rollupOptions: { input: join(WEB_ROOT, 'bench.html') } },
  });
  const server = await serve(benchDist);
  const browser = await launchChromium();
  const samples: Sample[] = [];
  try {
    for (let i = 0; i < RUNS; i++) {
      const ctx = await browser.newContext();
      const page = await ctx.newPage();
      const cdp = await ctx.newCDPSession(page);
      await cdp.send('Performance.enable');
      await page.goto(`${server.url}/bench.html?n=${N}`);
      await page.waitForFunction(() => window.__bench !== undefined, undefined, { timeout: 60_000 });
      const sample = (await page.evaluate(() => window.__bench)) as Sample;
      // Main-thread busy time (CPU work of the page's tasks): less sensitive than wall time to
      // other processes competing for the machine's two cores.
      const { metrics } = await cdp.send('Performance.getMetrics');
      const metric = (name: string) => (metrics.find((m) => m.name === name)?.value ?? Number.NaN) * 1000;
      samples.push({
        ...sample,
        mainThreadMs: metric('TaskDuration'),
        mainThreadCpuMs: metric('ThreadTime'),
      });
      await ctx.close();
    }
  } finally {
    await browser.close();
    server.close();
  }
  const meta = {
    date: new Date().toISOString(),
    node: process.version,
    cores: cpus().length,
    cpu: cpus()[0]?.model ?? 'unknown',
    chromium: browser.version(),
    loadavg1m: Math.round((loadavg()[0] ?? 0) * 100) / 100,
  };
  const rows = [
    {
      bench: 'web initial JS (gzip -9)',
      kb: kb(size.initial),
      rawKb: kb(size.initialRaw),
      allChunksKb: kb(size.total),
      target: '≤ 300 KB',
      ok: size.initial <= 300 * 1024,
    },
    {
      bench: `web first render, ${N}-event channel`,
      medianMs: Math.round(median(samples.map((s) => s.sinceNavigationMs))),
      foldMs: Math.round(median(samples.map((s) => s.foldMs))),
      renderMs: Math.round(median(samples.map((s) => s.renderMs))),
      mainThreadMs: Math.round(median(samples.map((s) => s.mainThreadMs ?? Number.NaN))),
      mainThreadCpuMs: Math.round(median(samples.map((s) => s.mainThreadCpuMs ?? Number.NaN))),
      items: samples[0]?.items,
      target: '≤ 1000 ms',
      ok: median(samples.map((s) => s.sinceNavigationMs)) <= 1000,
    },
  ];
  for (const r of rows) console.log(JSON.stringify({ ...r, ...meta }));
  console.table(rows);
} finally {
  rmSync(appDist, { recursive: true, force: true });
  rmSync(benchDist, { recursive: true, force: true });
}
