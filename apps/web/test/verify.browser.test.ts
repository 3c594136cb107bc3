/**
 * The public verifier in real Chromium: a fresh browser context (no device, nothing unlocked)
 * opens /verify, cuts the network, and checks the example attestation, a tampered copy and a
 * file that is not JSON, entirely in the page. Screenshots go to test-artifacts/web/verify-*.png.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanArtifacts, jsonFile, shot, WAIT, WEB_ROOT, WebApp } from './harness.ts';

const EXAMPLES = join(WEB_ROOT, '..', '..', 'docs', 'examples');

const attestationText = readFileSync(join(EXAMPLES, 'attestation-outreach.json'), 'utf8');
const keysText = readFileSync(join(EXAMPLES, 'public-keys.json'), 'utf8');

let app: WebApp;
let page: Page;
/** Requests the page makes once the network is cut (the verifier must make none). */
const offlineRequests: string[] = [];
let offline = false;

async function verdictTitle(): Promise<string> {
  const title = page.locator('#verdict-title');
  await title.waitFor(WAIT);
  return (await title.textContent()) ?? '';
}

beforeAll(async () => {
  cleanArtifacts(/^verify-.*\.png$/);
  app = await WebApp.start('bc-web-verify-dist-');
  page = await app.open('verifier');
  page.on('request', (r) => {
    if (offline) offlineRequests.push(r.url());
  });
}, 180_000);

afterAll(async () => {
  await app?.stop();
});

describe('the public verifier at /verify', () => {
  it('opens without a device or unlock, and works with the network cut', { timeout: 120_000 }, async () => {
    await page.goto(`${app.url}/verify`);
    await page.getByRole('heading', { name: 'Verify an attestation' }).waitFor(WAIT);
    // Public: no onboarding, no lock screen, no app navigation needing a device.
    expect(await page.getByRole('button', { name: 'Create the party' }).count()).toBe(0);
    expect(await page.getByRole('button', { name: 'Lock' }).count()).toBe(0);
    // Keyboard: Tab goes from the one link to the two file pickers, in order.
    const focusedLabel = () =>
      page.evaluate(() => {
        const el = document.activeElement;
        return el instanceof HTMLInputElement ? (el.labels?.[0]?.textContent ?? '') : (el?.textContent ?? '');
      });
    await page.keyboard.press('Tab');
    expect(await focusedLabel()).toBe('Open the app');
    await page.keyboard.press('Tab');
    expect(await focusedLabel()).toBe('Attestation file');
    await page.keyboard.press('Tab');
    expect(await focusedLabel()).toBe('Public-keys file');
    await page.context().setOffline(true);
    offline = true;
  });

  it('shows what the example outreach attestation proves', { timeout: 120_000 }, async () => {
    await page
      .getByLabel('Attestation file')
      .setInputFiles(jsonFile('attestation-outreach.json', attestationText));
    // Without keys, the page asks for them rather than guessing.
    expect(await verdictTitle()).toBe('Cannot check this file');
    await expect.poll(() => page.getByRole('alert').textContent(), WAIT).toContain('public-keys file');

    // The keys arrive by drag and drop onto their drop zone.
    const dt = await page.evaluateHandle((text) => {
      const d = new DataTransfer();
      d.items.add(new File([text], 'public-keys.json', { type: 'application/json' }));
      return d;
    }, keysText);
    await page.getByTestId('drop-keys').dispatchEvent('drop', { dataTransfer: dt });

    await expect.poll(verdictTitle, WAIT).toBe('Valid outreach attestation');
    const verdict = page.locator('section.verdict');
    const text = (await verdict.textContent()) ?? '';
    expect(await verdict.getAttribute('role')).toBe('status');
    // Who claimed what, when, which checkpoint, which witnesses.
    expect(text).toContain('p_7fLzvAh448WmrL8dAwEqcg');
    expect(text).toContain('From party');
    expect(text).toContain('p_lILigVkq3f9t2iatwgERig');
    expect(text).toContain(`${new Date(1795609872338).toISOString().slice(0, 10)}`);
    expect(text).toContain('Relay checkpoint');
    expect(text).toContain('c_ga02JQsp7YgqVev101wqmg');
    const witnesses = (await page.getByTestId('verdict-witnesses').textContent()) ?? '';
    expect(witnesses).toContain('witness.a.example');
    expect(witnesses).toContain('witness.b.example');
    expect((await page.getByTestId('verdict-statement').textContent()) ?? '').not.toBe('');
    await shot(page, 'verify-valid.png');
  });

  it('refuses a copy whose claimed time was changed by one character', { timeout: 120_000 }, async () => {
    const tampered = attestationText.replace('"at": 1795609872338', '"at": 1795609872339');
    expect(tampered).not.toBe(attestationText);
    await page.getByLabel('Attestation file').setInputFiles(jsonFile('tampered.json', tampered));
    await expect.poll(verdictTitle, WAIT).toMatch(/^Not valid: Bad signature/);
    expect(await page.getByTestId('verdict-code').textContent()).toBe('SIG_INVALID');
    expect(await page.getByTestId('verdict-reason').textContent()).toContain('altered');
    expect(await page.locator('section.verdict').getAttribute('role')).toBe('alert');
    await shot(page, 'verify-tampered.png');
  });

  it('refuses when a required witness key is not in the checkpoint', { timeout: 120_000 }, async () => {
    const keys = JSON.parse(keysText) as { witnesses: string[] };
    // A third witness (a well-formed cosignature/v1 key, alg 0x04) that never co-signed.
    const name = 'witness.c.example';
    const pub = new Uint8Array(32).fill(7);
    const id = createHash('sha256')
      .update(Buffer.concat([Buffer.from(name, 'utf8'), Buffer.from([0x0a, 4]), pub]))
      .digest()
      .subarray(0, 4)
      .toString('hex');
    const extra = `${name}+${id}+${Buffer.from([4, ...pub]).toString('base64')}`;
    const withExtra = { ...keys, witnesses: [...keys.witnesses, extra] };
    await page
      .getByLabel('Public-keys file')
      .setInputFiles(jsonFile('keys-3.json', JSON.stringify(withExtra)));
    await page
      .getByLabel('Attestation file')
      .setInputFiles(jsonFile('attestation-outreach.json', attestationText));
    await expect.poll(verdictTitle, WAIT).toMatch(/^Not valid: A required witness/);
    expect(await page.getByTestId('verdict-code').textContent()).toBe('WITNESS_MISSING');
    expect(await page.getByTestId('verdict-reason').textContent()).toContain('witness.c.example');
    await page.getByLabel('Public-keys file').setInputFiles(jsonFile('public-keys.json', keysText));
    await expect.poll(verdictTitle, WAIT).toBe('Valid outreach attestation');
  });

  it('says clearly when a file is not JSON, with no console errors and no requests', {
    timeout: 120_000,
  }, async () => {
    await page.getByLabel('Attestation file').setInputFiles({
      name: 'notes.txt',
      mimeType: 'text/plain',
      buffer: Buffer.from('this is not an attestation {', 'utf8'),
    });
    await expect.poll(verdictTitle, WAIT).toBe('Cannot check this file');
    expect(await page.locator('section.verdict').textContent()).toContain('not JSON');
    await shot(page, 'verify-not-json.png');
    expect(app.problems).toEqual([]);
    expect(app.dialogs).toEqual([]);
    expect(offlineRequests).toEqual([]);
  });
});
