/**
 * For the browser tests and the budget script: build the app with Vite into a temporary
 * directory, run a relay process that serves it, and launch Debian's Chromium through
 * playwright-core. `WebApp` bundles the three for a browser test file, with the steps the
 * browser tests share (browser contexts that record errors, onboarding, enrollment, files).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type Browser, type BrowserContext, chromium, type Locator, type Page } from 'playwright-core';
import { build } from 'vite';

export const WEB_ROOT = resolve(import.meta.dirname, '..');
const REPO = resolve(WEB_ROOT, '..', '..');
/** Where the browser tests put their screenshots (each test its own file-name prefix). */
export const ARTIFACTS = join(REPO, 'test-artifacts', 'web');
export const WAIT = { timeout: 60_000 };
const RELAY_MAIN = join(REPO, 'packages', 'server', 'src', 'main.node.ts');
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export async function buildApp(outDir: string): Promise<void> {
  await build({
    root: WEB_ROOT,
    configFile: join(WEB_ROOT, 'vite.config.ts'),
    logLevel: 'error',
    build: { outDir, emptyOutDir: true },
  });
}

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => res(typeof a === 'object' && a !== null ? a.port : 0));
    });
  });
}

export interface Relay {
  readonly url: string;
  stop(): Promise<void>;
}

export async function startRelay(webDist: string): Promise<Relay> {
  const dataDir = mkdtempSync(join(tmpdir(), 'bc-web-relay-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', RELAY_MAIN], {
    cwd: REPO,
    stdio: ['ignore', 'ignore', 'inherit'],
    env: {
      ...process.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      BACKCHANNEL_DATA: dataDir,
      BACKCHANNEL_WEB_DIST: webDist,
      LOG_LEVEL: 'error',
    },
  });
  const until = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`relay exited with ${child.exitCode}`);
    try {
      if ((await fetch(`${url}/readyz`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > until) throw new Error('relay did not become ready');
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}: install it with \`apt-get install -y chromium\``);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** The built app behind a relay process, and Chromium: one per browser test file. */
export class WebApp {
  /** Console errors and uncaught page errors, from every page opened with `open`. */
  readonly problems: string[] = [];
  /** Dialogs (alert, confirm…) any page opened; each is dismissed. */
  readonly dialogs: string[] = [];
  readonly #contexts: BrowserContext[] = [];
  readonly #dist: string;
  readonly #relay: Relay;
  readonly #browser: Browser;

  private constructor(dist: string, relay: Relay, browser: Browser) {
    this.#dist = dist;
    this.#relay = relay;
    this.#browser = browser;
  }

  /** Builds the app into a temporary directory, starts a relay serving it, launches Chromium. */
  static async start(distPrefix = 'bc-web-dist-'): Promise<WebApp> {
    const dist = tempDir(distPrefix);
    let relay: Relay | undefined;
    try {
      await buildApp(dist);
      relay = await startRelay(dist);
      return new WebApp(dist, relay, await launchChromium());
    } catch (e) {
      await relay?.stop();
      rmSync(dist, { recursive: true, force: true });
      throw e;
    }
  }

  get url(): string {
    return this.#relay.url;
  }

  /**
   * A page in a fresh browser context (its own IndexedDB), whose console errors, page errors
   * and dialogs are recorded under `name`; `ignore` passes over console errors expected at the time.
   */
  async open(name: string, ignore?: (consoleText: string) => boolean): Promise<Page> {
    const ctx = await this.#browser.newContext({
      viewport: { width: 1200, height: 900 },
      acceptDownloads: true,
    });
    this.#contexts.push(ctx);
    const page = await ctx.newPage();
    page.on('console', (m) => {
      if (m.type() === 'error' && ignore?.(m.text()) !== true) {
        this.problems.push(`${name} console: ${m.text()}`);
      }
    });
    page.on('pageerror', (e) => this.problems.push(`${name} page error: ${e.message}`));
    page.on('dialog', (d) => {
      this.dialogs.push(`${name}: ${d.message()}`);
      void d.dismiss();
    });
    return page;
  }

  /** Onboarding: creates a party from this page; returns its party id. */
  async createParty(
    page: Page,
    p: { readonly party: string; readonly device: string; readonly passphrase: string },
  ): Promise<string> {
    await page.goto(this.url);
    await page.getByRole('tab', { name: 'Create a party' }).waitFor(WAIT);
    await page.getByLabel('Party name').fill(p.party);
    await page.getByLabel('This device').fill(p.device);
    await page.getByLabel('Passphrase (encrypts').fill(p.passphrase);
    await page.getByLabel('Repeat the passphrase').fill(p.passphrase);
    await page.getByRole('button', { name: 'Create the party' }).click();
    const id = page.getByTestId('party-id');
    await id.waitFor(WAIT);
    return (await id.textContent()) ?? '';
  }

  /**
   * Enrollment: the admin page invites a device from its Members screen; a new browser, recorded
   * as `name`, enrolls with the invite and its code. Returns the enrolled page.
   */
  async enroll(
    admin: Page,
    p: {
      readonly device: string;
      readonly role: 'principal' | 'staff';
      readonly name: string;
      readonly passphrase: string;
    },
  ): Promise<Page> {
    await admin.getByRole('link', { name: 'Members & devices' }).click();
    await admin.getByLabel('Member and device name').fill(p.device);
    await admin.getByLabel('Role').selectOption(p.role);
    await admin.getByRole('button', { name: 'Create invite' }).click();
    const inviteBox = admin.getByLabel('Invite (send it by one route)');
    await inviteBox.waitFor(WAIT);
    const invite = await inviteBox.inputValue();
    const code = (await admin.locator('strong.code').textContent()) ?? '';
    const page = await this.open(p.name);
    await page.goto(this.url);
    await page.getByRole('tab', { name: 'Enroll with an invite' }).click();
    await page.getByLabel('Invite (the text your admin sent you)').fill(invite);
    await page.getByLabel('One-time code').fill(code);
    await page.getByLabel('Passphrase (encrypts').fill(p.passphrase);
    await page.getByLabel('Repeat the passphrase').fill(p.passphrase);
    await page.getByRole('button', { name: 'Enroll this browser' }).click();
    await page.getByTestId('party-id').waitFor(WAIT);
    return page;
  }

  async stop(): Promise<void> {
    for (const c of this.#contexts) await c.close().catch(() => undefined);
    await this.#browser.close();
    await this.#relay.stop();
    rmSync(this.#dist, { recursive: true, force: true });
  }
}

/** From the Channels screen, reaches out to a party; waits until the channel shows as proposed. */
export async function sendOutreach(page: Page, to: string, text: string): Promise<void> {
  await page.getByRole('link', { name: 'Channels' }).click();
  await page.getByLabel('Their party id').fill(to);
  await page.getByLabel('What the outreach says').fill(text);
  await page.getByRole('button', { name: 'Send outreach' }).click();
  await page.locator('.channel-head .badge[data-status="proposed"]').waitFor(WAIT);
}

/** On the Attestations screen, picks the first channel once the list has it. */
export async function pickFirstChannel(page: Page): Promise<void> {
  const channelPick = page.getByRole('combobox', { name: /^Channel/ });
  await channelPick
    .locator('option')
    .nth(1)
    .waitFor({ state: 'attached', ...WAIT });
  await channelPick.selectOption({ index: 1 });
}

/** Makes ARTIFACTS and removes the screenshots a previous run of this test left there. */
export function cleanArtifacts(mine: RegExp): void {
  mkdirSync(ARTIFACTS, { recursive: true });
  for (const f of readdirSync(ARTIFACTS)) if (mine.test(f)) rmSync(join(ARTIFACTS, f));
}

export async function shot(page: Page, file: string): Promise<void> {
  await page.screenshot({ path: join(ARTIFACTS, file), fullPage: true });
}

/** A JSON file for `setInputFiles`. */
export function jsonFile(name: string, text: string) {
  return { name, mimeType: 'application/json', buffer: Buffer.from(text, 'utf8') };
}

/**
 * Clicks a download link (by its name on `page`, or a locator) and returns the file's suggested
 * name and text; with `keep`, a copy is left in ARTIFACTS.
 */
export async function download(
  page: Page,
  link: string | Locator,
  keep = false,
): Promise<{ readonly name: string; readonly text: string }> {
  const [dl] = await Promise.all([
    page.waitForEvent('download'),
    (typeof link === 'string' ? page.getByRole('link', { name: link }) : link).click(),
  ]);
  const path = await dl.path();
  const name = dl.suggestedFilename();
  if (keep) copyFileSync(path, join(ARTIFACTS, name));
  return { name, text: readFileSync(path, 'utf8') };
}
