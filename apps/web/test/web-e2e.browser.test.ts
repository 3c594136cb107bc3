/**
 * The reference scenario through the web app in real Chromium: two isolated browser contexts
 * are party A and party B, each with its own IndexedDB, against a relay process serving the
 * built app. Screenshots of each main screen go to test-artifacts/web/.
 */
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ARTIFACTS,
  cleanArtifacts,
  download,
  jsonFile,
  pickFirstChannel,
  sendOutreach,
  shot,
  WAIT,
  WebApp,
} from './harness.ts';

const XSS = '<img src=x onerror=alert(1)>';

let app: WebApp;
let offline = false;

/** A party's browser; while the test cuts the network on purpose, failed requests are expected noise. */
function party(name: string): Promise<Page> {
  return app.open(name, (text) => offline && /ERR_INTERNET_DISCONNECTED|WebSocket/.test(text));
}

function createParty(page: Page, party: string, passphrase: string): Promise<string> {
  return app.createParty(page, { party, device: 'desk browser', passphrase });
}

async function downloadText(page: Page, link: string): Promise<string> {
  return (await download(page, link, true)).text;
}

function eventByText(page: Page, text: string) {
  return page.locator('li.event').filter({ hasText: text });
}

beforeAll(async () => {
  // Only this test's own screenshots: other browser tests write theirs here too, in parallel.
  cleanArtifacts(/^\d\d-.*\.png$/);
  app = await WebApp.start();
}, 180_000);

afterAll(async () => {
  await app?.stop();
});

describe('the web app in Chromium', () => {
  it('A reaches out to B, B accepts, points with receipts, offline outbox, a track suspended and revived, enrollment, hostile text stays text, attestations made in the app verified elsewhere', {
    timeout: 600_000,
  }, async () => {
    const a = await party('A');
    const b = await party('B');

    // A's live socket authenticates (its auth frame is signed for the relay's name, PROTOCOL §11).
    const aSocketReady = new Promise<boolean>((resolve) => {
      setTimeout(() => resolve(false), WAIT.timeout).unref();
      a.on('websocket', (ws) =>
        ws.on('framereceived', (f) => {
          if (typeof f.payload === 'string' && f.payload.includes('"type":"ready"')) resolve(true);
        }),
      );
    });

    // Onboarding: each browser creates its party; keys are made in the page.
    await a.goto(app.url);
    await a.getByRole('tab', { name: 'Create a party' }).waitFor(WAIT);
    await shot(a, '01-onboarding.png');
    const aId = await createParty(a, 'Foreign Ministry', 'passphrase of A, long enough');
    const bId = await createParty(b, "Special Envoy's Office", 'passphrase of B, long enough');
    expect(aId).toMatch(/^p_/);
    expect(bId).toMatch(/^p_/);
    expect(await aSocketReady).toBe(true);
    expect(await a.getByTestId('fingerprint').textContent()).toMatch(/\d/);

    // Fingerprint comparison: A looks up B's card and sees the same fingerprint B shows.
    const bFingerprint = (await b.getByTestId('fingerprint').textContent()) ?? '';
    await a.getByLabel('Their party id').fill(bId);
    await a.getByRole('button', { name: 'Look up' }).click();
    await a.getByText(bFingerprint, { exact: true }).first().waitFor(WAIT);
    await shot(a, '02-fingerprints.png');
    // The QR code of our party id and fingerprint renders as an accessible SVG.
    const qr = a.getByRole('img', { name: "QR code of Foreign Ministry's party id and fingerprint" });
    await qr.waitFor(WAIT);
    expect(await qr.evaluate((el) => el.tagName.toLowerCase())).toBe('svg');
    const aFingerprint = (await a.getByTestId('fingerprint').textContent()) ?? '';
    expect(await qr.getAttribute('data-qr-text')).toBe(
      `backchannel:${aId}?fp=${aFingerprint.replaceAll(' ', '')}`,
    );
    expect(((await qr.locator('path').getAttribute('d')) ?? '').length).toBeGreaterThan(1000);
    await a.locator('figure.qr-figure').screenshot({ path: join(ARTIFACTS, '02b-fingerprint-qr.png') });

    // Outreach from A to B's published card.
    await sendOutreach(a, bId, 'We are ready to talk.');

    // B sees the outreach waiting (live), opens it, accepts.
    await b.getByRole('link', { name: 'Channels' }).click();
    const waiting = b.locator('ul.channels .badge[data-status="outreach waiting"]');
    await waiting.waitFor(WAIT);
    await shot(b, '03-channels-outreach-waiting.png');
    await waiting.click();
    await eventByText(b, 'We are ready to talk.').waitFor(WAIT);
    await b.getByRole('button', { name: 'Accept outreach' }).click();
    await b.locator('.channel-head .badge[data-status="open"]').waitFor(WAIT);

    // B opens the "nuclear" track; A's view follows live.
    await b.getByLabel('New track').fill('nuclear');
    await b.getByRole('button', { name: 'Open track' }).click();
    await b.locator('li[data-track="nuclear"][data-track-status="active"]').waitFor(WAIT);
    await a.locator('.channel-head .badge[data-status="open"]').waitFor(WAIT);
    await a.locator('li[data-track="nuclear"]').waitFor(WAIT);

    // B conveys points; A's device acknowledges delivery and reads them; B sees both receipts.
    await b.getByRole('radio', { name: 'points' }).check();
    await b.getByLabel('Title').fill('Conditions');
    await b.getByLabel('Points (one per line)').fill('Halt enrichment above 5%\nInspections resume');
    await b.getByRole('button', { name: 'Send points' }).click();
    const pointsAtA = eventByText(a, 'Conditions');
    await pointsAtA.waitFor(WAIT);
    expect(await pointsAtA.locator('ol > li').allTextContents()).toEqual([
      'Halt enrichment above 5%',
      'Inspections resume',
    ]);
    const pointsAtB = eventByText(b, 'Conditions');
    await pointsAtB.locator('[data-receipt="read"]').waitFor(WAIT);
    expect(await pointsAtB.locator('[data-receipt="read"]').textContent()).toContain(
      'read by Foreign Ministry',
    );
    await shot(b, '04-channel-points-read.png');

    // Another party's hostile text renders as text, never as markup.
    await a.getByLabel('Text').fill(XSS);
    await a.getByRole('button', { name: 'Send message' }).click();
    const xssAtB = b.locator('li.event[data-kind="message"] p.text').filter({ hasText: XSS });
    await xssAtB.waitFor(WAIT);
    expect(await xssAtB.textContent()).toBe(XSS);
    expect(await b.locator('ol.timeline img').count()).toBe(0);
    await eventByText(a, XSS)
      .locator('[data-receipt="delivered"], [data-receipt="read"]')
      .first()
      .waitFor(WAIT);
    // A direction override is shown, not obeyed: "txt.exe" must not read "exe.txt" on screen.
    await a.getByLabel('Text').fill('see the file \u202Etxt.exe');
    await a.getByRole('button', { name: 'Send message' }).click();
    const spoof = b.locator('li.event[data-kind="message"] p.text').filter({ hasText: 'see the file' });
    await spoof.waitFor(WAIT);
    expect(await spoof.textContent()).toBe('see the file [U+202E]txt.exe');

    // Offline: A's browser loses the network; the banner shows, the message waits in the outbox
    // (sealed in IndexedDB) and goes out when the line is back.
    offline = true;
    await a.context().setOffline(true);
    await a.getByText('Offline: the relay cannot be reached').waitFor(WAIT);
    await a.getByLabel('Text').fill('sent while offline');
    await a.getByRole('button', { name: 'Send message' }).click();
    const outbox = a.getByRole('status', { name: 'Outbox' });
    await outbox.filter({ hasText: '1 waiting to send' }).waitFor(WAIT);
    await a.getByText('1 event(s) waiting to send, kept on this device').waitFor(WAIT);
    await shot(a, '05-offline-outbox.png');
    await a.context().setOffline(false);
    await outbox.filter({ hasText: 'all sent' }).waitFor(WAIT);
    await eventByText(b, 'sent while offline').waitFor(WAIT);
    await a.getByText('waiting to send, kept on this device').waitFor({ state: 'detached', ...WAIT });
    await a.getByText('Offline: the relay cannot be reached').waitFor({ state: 'detached', ...WAIT });
    offline = false;

    // A suspends the track with a reason on record; B sees it and revives it; A sees the revival.
    await a.getByRole('button', { name: 'Suspend nuclear' }).click();
    await a.getByLabel('Reason (kept on record)').fill('military strike');
    await a.getByRole('button', { name: 'Suspend the track' }).click();
    const bTrack = b.locator('li[data-track="nuclear"]');
    await b.locator('li[data-track="nuclear"][data-track-status="suspended"]').waitFor(WAIT);
    expect(await bTrack.textContent()).toContain('military strike');
    await shot(b, '06-track-suspended.png');
    await b.getByRole('button', { name: 'Revive nuclear' }).click();
    await a.locator('li[data-track="nuclear"][data-track-status="revived"]').waitFor(WAIT);
    await shot(a, '07-channel-view.png');

    // Steps 2–3 of the reference scenario on the channel itself: B suspends it; months later A
    // reaches out on it (proposing to reopen), and B accepts: the channel is open again.
    await b.getByRole('button', { name: 'Suspend channel' }).click();
    await b.getByLabel('Reason (kept on record)').fill('unrest');
    await b.getByRole('button', { name: 'Suspend the channel' }).click();
    await a.locator('.channel-head .badge[data-status="suspended"]').waitFor(WAIT);
    await a.getByRole('button', { name: 'Propose to reopen' }).click();
    await a.getByLabel('What the outreach says').fill('In light of the unrest we propose to resume contact.');
    await a.getByRole('button', { name: 'Send the outreach' }).click();
    await b.getByRole('button', { name: 'Accept outreach' }).waitFor(WAIT);
    await b.getByRole('button', { name: 'Accept outreach' }).click();
    await a.locator('.channel-head .badge[data-status="open"]').waitFor(WAIT);
    await b.locator('.channel-head .badge[data-status="open"]').waitFor(WAIT);
    // A notice with a deadline, from the app: B sees it with its deadline.
    await a.getByRole('radio', { name: 'notice' }).check();
    await a.getByLabel('Title').fill('Exercises');
    await a.getByLabel('Text').fill('Exercises start on Monday.');
    await a.getByLabel('Acknowledge within (hours)').fill('2');
    await a.getByRole('button', { name: 'Send notice' }).click();
    const notice = b.locator('li.event[data-kind="notice"] p.title').filter({ hasText: 'Exercises' });
    await notice.waitFor(WAIT);
    expect(await notice.textContent()).toMatch(/^Notice: Exercises — acknowledge by /);
    await a.getByRole('radio', { name: 'message' }).check();
    // B answers it; the response names the notice by its title.
    await b.getByRole('radio', { name: 'response' }).check();
    await b.getByLabel('In response to').selectOption({ label: 'notice: Exercises' });
    await b.getByLabel('Text').fill('Noted.');
    await b.getByRole('button', { name: 'Send response' }).click();
    const answer = a.locator('li.event[data-kind="response"] p.title').filter({ hasText: 'Exercises' });
    await answer.waitFor(WAIT);
    expect(await answer.textContent()).toBe('Response (note) to “Exercises”');
    await b.getByRole('radio', { name: 'message' }).check();

    // A draft survives a reload (kept encrypted in the device store, restored after unlock).
    await a.getByLabel('Text').fill('draft: unfinished sentence');
    await a.getByText('Draft saved on this device').waitFor(WAIT);
    expect(await eventByText(a, 'Track “nuclear” suspended').textContent()).toContain('military strike');
    await a.reload();
    await a.getByRole('heading', { name: 'Backchannel is locked' }).waitFor(WAIT);
    await shot(a, '08-lock-screen.png');
    await a.getByLabel('Passphrase').fill('wrong passphrase');
    await a.getByRole('button', { name: 'Unlock' }).click();
    await a.getByRole('alert').filter({ hasText: 'passphrase' }).waitFor(WAIT);
    await a.getByLabel('Passphrase').fill('passphrase of A, long enough');
    await a.getByRole('button', { name: 'Unlock' }).click();
    await expect.poll(() => a.getByLabel('Text').inputValue(), WAIT).toBe('draft: unfinished sentence');

    // A second tab of the same browser profile cannot unlock the device while this one is open.
    const a2 = await a.context().newPage();
    await a2.goto(app.url);
    await a2.getByLabel('Passphrase').fill('passphrase of A, long enough');
    await a2.getByRole('button', { name: 'Unlock' }).click();
    await a2.getByRole('alert').filter({ hasText: 'already unlocked in another tab' }).waitFor(WAIT);
    await a2.close();

    // The other main screens.
    await a.getByRole('link', { name: 'Channels' }).click();
    await a.locator('ul.channels .badge').first().waitFor(WAIT);
    await shot(a, '09-channels.png');
    await a.getByRole('link', { name: 'Members & devices' }).click();
    await a.getByRole('cell', { name: /desk browser/ }).waitFor(WAIT);
    await shot(a, '10-members.png');

    // Enrollment: A's admin browser issues an invite; a third browser enrolls as A's staff device.
    const staff = await app.enroll(a, {
      device: 'staff laptop',
      role: 'staff',
      name: 'A staff',
      passphrase: 'staff passphrase, long enough',
    });
    expect(await staff.getByTestId('party-id').textContent()).toBe(aId);
    await a.getByRole('button', { name: 'Revoke staff laptop' }).waitFor(WAIT);
    await shot(staff, '11-enrolled-device.png');
    await a.getByRole('link', { name: 'Documents' }).click();
    await a.getByRole('heading', { name: 'Documents' }).waitFor(WAIT);
    await shot(a, '12-documents.png');

    // Attestations through the UI: A makes an outreach claim and discloses one of its messages,
    // downloads each file with the public-keys file, and a fresh third browser verifies them.
    await a.getByRole('link', { name: 'Attestations' }).click();
    await a.getByRole('heading', { name: 'Attestations' }).waitFor(WAIT);
    await pickFirstChannel(a);
    await a.getByRole('link', { name: 'Back to the channel' }).waitFor(WAIT);
    expect(a.url()).toMatch(/\/channels\/c_[A-Za-z0-9_-]+\/attest$/);
    await a.getByRole('radio', { name: 'Outreach' }).check();
    await a.getByRole('button', { name: 'Create the attestation' }).click();
    await a.getByRole('heading', { name: 'Attestation ready: outreach' }).waitFor(WAIT);
    expect(await a.getByTestId('attest-selfcheck').textContent()).toContain('valid.');
    expect(await a.getByTestId('attest-statement').textContent()).toContain(
      `Party ${aId} reached out to party ${bId}`,
    );
    expect(await a.getByTestId('attest-reveals').textContent()).toContain('We are ready to talk.');
    await shot(a, '13-attestation-outreach.png');
    const outreachText = await downloadText(a, 'Download the attestation');
    const keysText = await downloadText(a, 'Download the public-keys file');
    expect(JSON.parse(outreachText)).toMatchObject({
      type: 'backchannel/attestation',
      claim: { kind: 'outreach', from: aId, to: bId },
    });
    expect(Object.keys((JSON.parse(keysText) as { parties: object }).parties).sort()).toEqual(
      [aId, bId].sort(),
    );

    await a.getByRole('radio', { name: 'Disclosure' }).check();
    const eventPick = a.getByLabel('Event to disclose');
    const offlineOption = eventPick.locator('option').filter({ hasText: 'sent while offline' });
    await offlineOption.waitFor({ state: 'attached', ...WAIT });
    // Only events inside the checkpoint this device verified can be proven.
    await expect.poll(() => offlineOption.isDisabled(), WAIT).toBe(false);
    await eventPick.selectOption((await offlineOption.getAttribute('value')) ?? '');
    await a.getByRole('button', { name: 'Create the attestation' }).click();
    await a.getByRole('heading', { name: 'Attestation ready: disclosure' }).waitFor(WAIT);
    expect(await a.getByTestId('attest-selfcheck').textContent()).toContain('valid.');
    expect(await a.getByTestId('attest-reveals').textContent()).toContain('sent while offline');
    await shot(a, '14-attestation-disclosure.png');
    const disclosureText = await downloadText(a, 'Download the attestation');

    const v = await party('verifier');
    await v.goto(`${app.url}/verify`);
    await v.getByRole('heading', { name: 'Verify an attestation' }).waitFor(WAIT);
    await shot(v, '15-verify.png');
    const verdict = v.locator('#verdict-title');
    await v.getByLabel('Public-keys file').setInputFiles(jsonFile('public-keys.json', keysText));
    await v.getByLabel('Attestation file').setInputFiles(jsonFile('outreach.json', outreachText));
    await expect.poll(() => verdict.textContent(), WAIT).toBe('Valid outreach attestation');
    await shot(v, '16-verify-outreach-valid.png');
    await v.getByLabel('Attestation file').setInputFiles(jsonFile('disclosure.json', disclosureText));
    await expect.poll(() => verdict.textContent(), WAIT).toBe('Valid disclosure attestation');
    expect(await v.locator('section.verdict').textContent()).toContain('sent while offline');
    // One changed field (the claimed relay time) breaks the issuer's signature.
    const tampered = JSON.parse(outreachText) as { claim: { at: number } };
    tampered.claim.at += 1;
    await v.getByLabel('Attestation file').setInputFiles(jsonFile('tampered.json', JSON.stringify(tampered)));
    await expect.poll(() => verdict.textContent(), WAIT).toMatch(/^Not valid: Bad signature/);
    expect(await v.getByTestId('verdict-code').textContent()).toBe('SIG_INVALID');
    expect(await v.getByTestId('verdict-reason').textContent()).toContain('altered');
    await shot(v, '17-verify-tampered.png');
    await b.setViewportSize({ width: 390, height: 844 });
    await shot(b, '18-channel-phone-width.png');

    expect(app.dialogs).toEqual([]);
    expect(app.problems).toEqual([]);
  });
});
