/**
 * A channel's members in the web app, in real Chromium: A and B open a channel; the member list
 * on each side shows both parties' devices. A staff laptop enrolled afterwards is added by A's
 * admin browser (an MLS Add), appears on both sides, and is told it joined late and what it
 * cannot read. A's admin revokes it (step 8 of the reference scenario): it leaves both lists.
 * Screenshots go to test-artifacts/web/members-*.png.
 */
import type { Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanArtifacts, sendOutreach, shot, WAIT, WebApp } from './harness.ts';

const A_NAME = 'Foreign Ministry';
const B_NAME = "Special Envoy's Office";

let app: WebApp;

function members(page: Page): Locator {
  return page.getByRole('region', { name: 'Members' });
}

/** The device list of one party in the channel's Members section, once the party's name is known. */
function devicesOf(page: Page, party: string): Locator {
  return members(page).getByRole('list', { name: `Devices of ${party}` });
}

/** The device names of one party's list, in order (each item starts with the device's name). */
async function deviceNames(page: Page, party: string): Promise<string[]> {
  return devicesOf(page, party).locator('li strong').allTextContents();
}

/** From the Channels screen, opens the one channel (once this device has it). */
async function openChannel(page: Page): Promise<void> {
  await page.getByRole('link', { name: 'Channels' }).click();
  await page.locator('ul.channels a.channel-row').first().click(WAIT);
  await members(page).waitFor(WAIT);
}

beforeAll(async () => {
  cleanArtifacts(/^members-.*\.png$/);
  app = await WebApp.start();
}, 180_000);

afterAll(async () => {
  await app?.stop();
});

describe("a channel's members in the web app", () => {
  it('both parties see both parties’ devices; a device added later shows on both sides and is told what it cannot read; a revoked one leaves the list', {
    timeout: 600_000,
  }, async () => {
    const a = await app.open('A');
    const b = await app.open('B');
    await app.createParty(a, { party: A_NAME, device: 'A desk', passphrase: 'passphrase of A, long enough' });
    const bId = await app.createParty(b, {
      party: B_NAME,
      device: 'B desk',
      passphrase: 'passphrase of B, long enough',
    });

    // A reaches out; B accepts and says something before A's staff laptop exists.
    await sendOutreach(a, bId, 'We are ready to talk.');
    await b.getByRole('link', { name: 'Channels' }).click();
    const waiting = b.locator('ul.channels .badge[data-status="outreach waiting"]');
    await waiting.waitFor(WAIT);
    await waiting.click();
    await b.getByRole('button', { name: 'Accept outreach' }).click();
    await b.locator('.channel-head .badge[data-status="open"]').waitFor(WAIT);
    await b.getByLabel('Text').fill('said before the laptop joined');
    await b.getByRole('button', { name: 'Send message' }).click();
    await a.locator('li.event').filter({ hasText: 'said before the laptop joined' }).waitFor(WAIT);

    // Each side lists both parties' devices, under a heading per party, and marks its own device.
    for (const [page, self] of [
      [a, 'A desk'],
      [b, 'B desk'],
    ] as const) {
      await devicesOf(page, A_NAME).waitFor(WAIT);
      await devicesOf(page, B_NAME).waitFor(WAIT);
      expect(await deviceNames(page, A_NAME)).toEqual(['A desk']);
      expect(await deviceNames(page, B_NAME)).toEqual(['B desk']);
      const mine = members(page).locator('li[data-self="true"]');
      expect(await mine.count()).toBe(1);
      expect(await mine.textContent()).toContain(`${self} (this device)`);
      expect(await mine.locator('.role').textContent()).toBe('admin');
      // Devices that were in the channel from its start get no late-join note.
      expect(await page.getByTestId('join-note').count()).toBe(0);
    }
    expect(await members(a).getByRole('heading', { level: 3 }).allTextContents()).toEqual([
      `${A_NAME} (us)`,
      B_NAME,
    ]);
    expect(await members(b).getByRole('heading', { level: 3 }).allTextContents()).toEqual([
      `${B_NAME} (us)`,
      A_NAME,
    ]);
    // The party's fingerprint is the one its "Our party" page shows.
    const aFingerprint = await members(a).locator(`section[data-party] .fingerprint`).first().textContent();
    expect(
      await members(b).locator('section.member-party').nth(1).locator('.fingerprint').textContent(),
    ).toBe(aFingerprint);
    await shot(b, 'members-01-both-parties.png');

    // A's admin enrolls a staff laptop; the admin browser adds it to the channel as it syncs.
    const staff = await app.enroll(a, {
      device: 'staff laptop',
      role: 'staff',
      name: 'A staff',
      passphrase: 'staff passphrase, long enough',
    });
    await openChannel(a);
    await expect.poll(() => deviceNames(a, A_NAME), WAIT).toEqual(['A desk', 'staff laptop']);
    await expect.poll(() => deviceNames(b, A_NAME), WAIT).toEqual(['A desk', 'staff laptop']);
    expect(
      await devicesOf(b, A_NAME)
        .locator('li')
        .filter({ hasText: 'staff laptop' })
        .locator('.role')
        .textContent(),
    ).toBe('staff');

    // The laptop joins through its inbox: it sees everyone, itself marked, and the late-join note.
    await openChannel(staff);
    await expect.poll(() => deviceNames(staff, A_NAME), WAIT).toEqual(['staff laptop', 'A desk']);
    await expect.poll(() => deviceNames(staff, B_NAME), WAIT).toEqual(['B desk']);
    expect(await members(staff).locator('li[data-self="true"]').textContent()).toContain(
      'staff laptop (this device)',
    );
    const note = staff.getByTestId('join-note');
    await note.waitFor(WAIT);
    expect(await note.getAttribute('role')).toBe('note');
    expect(await note.locator('p').first().textContent()).toMatch(
      /^This device joined at epoch \d+; messages before that are not readable on this device \(\d+ earlier entr(y|ies)\)\.$/,
    );
    // What came before its join stays unreadable; the lifecycle disclosed to it says the channel is open.
    await staff.locator('.channel-head .badge[data-status="open"]').waitFor(WAIT);
    expect(await staff.locator('li.event').filter({ hasText: 'said before the laptop joined' }).count()).toBe(
      0,
    );
    // A staff device is offered only what the channel rules accept from staff: it writes, but
    // neither suspends nor closes the channel nor changes tracks.
    expect(await staff.getByRole('button', { name: 'Close channel' }).count()).toBe(0);
    expect(await staff.getByRole('button', { name: 'Suspend channel' }).count()).toBe(0);
    expect(await staff.getByRole('button', { name: 'Open track' }).count()).toBe(0);
    expect(
      await staff.getByText('As staff, this device cannot suspend, reopen or close the channel.').count(),
    ).toBe(1);
    expect(await staff.getByRole('form', { name: 'Compose' }).count()).toBe(1);
    // The admin's device still has them, and its timeline says it added a device (not a raw kind).
    expect(await a.getByRole('button', { name: 'Close channel' }).count()).toBe(1);
    await expect
      .poll(() => a.locator('li.event[data-kind="join.context"]').first().textContent(), WAIT)
      .toContain('Added a device to the channel');
    await shot(staff, 'members-02-late-join.png');

    // Step 8: the staff member leaves; A's admin revokes the laptop, which removes it from the channel.
    await a.getByRole('link', { name: 'Members & devices' }).click();
    await a.getByRole('button', { name: 'Revoke staff laptop' }).click();
    await a.getByLabel('Reason (kept on record)').fill('left the delegation');
    await a.getByRole('button', { name: 'Revoke the device' }).click();
    await a
      .getByRole('row')
      .filter({ hasText: 'staff laptop' })
      .getByRole('cell', { name: 'revoked (left the delegation)' })
      .waitFor(WAIT);
    await openChannel(a);
    await expect.poll(() => deviceNames(a, A_NAME), WAIT).toEqual(['A desk']);
    await expect.poll(() => deviceNames(b, A_NAME), WAIT).toEqual(['A desk']);
    expect(await deviceNames(b, B_NAME)).toEqual(['B desk']);
    await shot(b, 'members-03-after-removal.png');

    // The laptop, still open on the channel, is told it was revoked; what it sends now is refused
    // by the relay, and said so (the composer had cleared as if it were sent).
    await staff.getByLabel('Text').fill('one last word from the laptop');
    await staff.getByRole('button', { name: 'Send message' }).click();
    const refused = staff.locator('.refused-sends');
    await refused.waitFor(WAIT);
    expect(await refused.textContent()).toMatch(
      /Message one last word from the laptop in this channel, refused .*: this device had been revoked \(CERT_REVOKED\)/,
    );
    await staff
      .locator('.revoked')
      .filter({ hasText: 'This device was revoked by your party.' })
      .waitFor(WAIT);
    await shot(staff, 'members-03b-revoked-device.png');
    await refused.getByRole('button', { name: 'Dismiss' }).click();
    await expect.poll(() => refused.count(), WAIT).toBe(0);
    await staff.context().close();

    // A's admin writes the party's recovery kit; then the desk is lost. A new browser restores
    // the party from the kit and its code (same party, same fingerprint) and revokes the lost desk.
    await a.getByRole('link', { name: 'Members & devices' }).click();
    await a.getByRole('button', { name: 'Write the recovery kit' }).click();
    const kitBox = a.getByLabel('Recovery kit (save it as a file');
    await kitBox.waitFor(WAIT);
    const kit = await kitBox.inputValue();
    const code =
      (await a.getByRole('region', { name: 'Recovery kit' }).locator('strong.code').textContent()) ?? '';
    expect(code).toMatch(/^([A-Z2-9]{4}-){6}[A-Z2-9]{4}$/);
    expect(JSON.parse(kit)).toMatchObject({ kind: 'backchannel-recovery-kit', partyName: A_NAME });
    expect(await a.getByRole('link', { name: 'Download the kit' }).getAttribute('download')).toBe(
      'Foreign-Ministry.recovery.json',
    );
    const aParty = await a
      .getByRole('link', { name: 'Our party' })
      .click()
      .then(() => a.getByTestId('party-id').textContent());
    await a.context().close();
    const desk2 = await app.open('A desk 2');
    await desk2.goto(app.url);
    await desk2.getByRole('tab', { name: 'Recover a party' }).click();
    await desk2.getByLabel('Recovery kit (the text of the kit file)').fill(kit);
    await desk2.getByLabel('Recovery code').fill('not the code');
    await desk2.getByLabel('This device').fill('A desk 2');
    await desk2.getByLabel('Passphrase (encrypts').fill('passphrase of A desk 2');
    await desk2.getByLabel('Repeat the passphrase').fill('passphrase of A desk 2');
    await desk2.getByRole('button', { name: 'Recover the party' }).click();
    await desk2.getByRole('alert').filter({ hasText: 'recovery code does not open' }).waitFor(WAIT);
    await desk2.getByLabel('Recovery code').fill(code.toLowerCase());
    await desk2.getByRole('button', { name: 'Recover the party' }).click();
    await desk2.getByTestId('party-id').waitFor(WAIT);
    expect(await desk2.getByTestId('party-id').textContent()).toBe(aParty);
    await desk2.getByRole('link', { name: 'Members & devices' }).click();
    await desk2.getByRole('button', { name: 'Revoke A desk' }).click();
    await desk2.getByLabel('Reason (kept on record)').fill('desk lost');
    await desk2.getByRole('button', { name: 'Revoke the device' }).click();
    await desk2
      .getByRole('row')
      .filter({ hasText: 'A desk' })
      .filter({ hasNotText: 'A desk 2' })
      .getByRole('cell', { name: 'revoked' })
      .waitFor(WAIT);
    expect(
      await desk2
        .getByRole('row')
        .filter({ hasText: 'A desk 2' })
        .getByRole('cell', { name: 'active' })
        .count(),
    ).toBe(1);
    await shot(desk2, 'members-04-recovered.png');

    expect(app.dialogs).toEqual([]);
    // The revoked laptop's requests are refused (403, logged by Chromium itself); nothing else.
    const revokedRefusal =
      'A staff console: Failed to load resource: the server responded with a status of 403 (Forbidden)';
    expect(app.problems.filter((p) => p !== revokedRefusal)).toEqual([]);
  });
});
