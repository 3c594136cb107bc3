/**
 * Negotiation documents in the web app, in real Chromium: party A and party B (each an admin
 * browser that creates the party and a principal browser it enrolls, since only principals sign
 * a signed text) open a channel, draft a two-language joint statement with bracketed clauses
 * through several revisions, compare revisions, agree clause by clause, sign, export, and see an
 * edit after signature clear the touched clause. Screenshots go to test-artifacts/web/docs-*.png.
 */
import { verifyDocumentBundle } from '@backchannel/protocol';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
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
const TITLE = 'Joint statement on the resumption of contact';

let app: WebApp;

function createParty(page: Page, party: string, passphrase: string): Promise<string> {
  return app.createParty(page, { party, device: 'admin desk', passphrase });
}

/** The admin browser invites a principal device; a new browser enrolls with the invite. */
function enrollPrincipal(admin: Page, device: string, name: string): Promise<Page> {
  return app.enroll(admin, {
    device,
    role: 'principal',
    name,
    passphrase: `${name} passphrase, long enough`,
  });
}

async function downloadText(page: Page, link: string): Promise<string> {
  return (await download(page, link)).text;
}

const clause = (page: Page, id: string) => page.locator(`li.clause[data-clause="${id}"]`);
const lang = (page: Page, id: string, l: string) =>
  clause(page, id).locator(`section.lang[data-lang="${l}"]`);
const statusOf = (page: Page, id: string, l: string) => lang(page, id, l).locator('.clause-status');
const revision = (page: Page, n: number) => page.locator(`ol.revisions li[data-n="${n}"]`);

/** Opens a clause's tools (they close when a new revision re-renders the draft). */
async function tools(page: Page, id: string): Promise<void> {
  const d = clause(page, id).locator('details.clause-tools');
  if ((await d.getAttribute('open')) === null) await d.locator('summary').click();
}

beforeAll(async () => {
  cleanArtifacts(/^docs-.*\.png$/);
  app = await WebApp.start();
}, 180_000);

afterAll(async () => {
  await app?.stop();
});

describe('negotiation documents in the web app', () => {
  it('A and B draft a two-language signed text with brackets through revisions, compare, agree, sign, export; a later edit clears the touched clause', {
    timeout: 600_000,
  }, async () => {
    const aAdmin = await app.open('A admin');
    const bAdmin = await app.open('B admin');
    const aId = await createParty(aAdmin, 'Foreign Ministry', 'passphrase of A, long enough');
    const bId = await createParty(bAdmin, "Special Envoy's Office", 'passphrase of B, long enough');
    const a = await enrollPrincipal(aAdmin, 'minister', 'A minister');
    const b = await enrollPrincipal(bAdmin, 'envoy', 'B envoy');

    // A's minister reaches out to B; B's envoy accepts.
    await sendOutreach(a, bId, 'Shall we draft the statement?');
    await b.getByRole('link', { name: 'Channels' }).click();
    const waiting = b.locator('ul.channels .badge[data-status="outreach waiting"]');
    await waiting.waitFor(WAIT);
    await waiting.click();
    await b.getByRole('button', { name: 'Accept outreach' }).click();
    await b.locator('.channel-head .badge[data-status="open"]').waitFor(WAIT);
    await a.locator('.channel-head .badge[data-status="open"]').waitFor(WAIT);

    // Revision 0 by A: a signed text in en + fr, the verb bracketed in both languages.
    await a.getByRole('link', { name: 'Documents' }).click();
    await a.getByRole('heading', { name: 'New document' }).waitFor(WAIT);
    await a.getByLabel('Type').selectOption('signed-text');
    await a.getByLabel('Title').fill(TITLE);
    await a.getByLabel('Languages').fill('en, fr');
    await a.getByLabel('Clause 1 id', { exact: true }).fill('resume');
    await a
      .getByLabel('Clause 1 text (en)')
      .fill('The parties {{welcome | note}} the resumption of direct contact.');
    await a
      .getByLabel('Clause 1 text (fr)')
      .fill('Les parties {{se félicitent de | prennent acte de}} la reprise du contact direct.');
    await a.getByRole('button', { name: 'Add a clause' }).click();
    await a.getByLabel('Clause 2 id', { exact: true }).fill('talks');
    await a.getByLabel('Clause 2 text (en)').fill('Talks will continue in Geneva.');
    await a.getByLabel('Clause 2 text (fr)').fill('Les pourparlers se poursuivront à Genève.');
    await shot(a, 'docs-01-new-document.png');
    await a.getByRole('button', { name: 'Create the document' }).click();
    await a.getByRole('heading', { name: TITLE }).waitFor(WAIT);
    expect(a.url()).toMatch(/\/documents\/c_[\w-]+\/e_[\w-]+$/);

    // The type is shown with the document; brackets are visible as [A's wording] / [B's wording].
    expect(await a.locator('h1 .doctype').textContent()).toBe('Signed text');
    expect(await lang(a, 'resume', 'en').locator('mark.alt').allTextContents()).toEqual([
      '[welcome]',
      '[note]',
    ]);
    expect(await lang(a, 'resume', 'en').locator('.clause-text .bracket').textContent()).toBe(
      'Bracketed alternatives: [welcome] / [note]',
    );
    expect(await statusOf(a, 'resume', 'en').getAttribute('data-status')).toBe('bracketed');
    expect(await statusOf(a, 'talks', 'en').textContent()).toContain('open');
    // The two language versions sit side by side.
    const en = await lang(a, 'resume', 'en').boundingBox();
    const fr = await lang(a, 'resume', 'fr').boundingBox();
    expect(en !== null && fr !== null && Math.abs(en.y - fr.y) < 2 && fr.x > en.x + en.width / 2).toBe(true);
    await shot(a, 'docs-02-draft-revision-0.png');

    // B's envoy finds it in the list (type shown there too), brackets the venue and comments.
    await b.getByRole('link', { name: 'Documents' }).click();
    const row = b.locator('ul.doc-list li').filter({ hasText: TITLE });
    await row.waitFor(WAIT);
    expect(await row.locator('.doctype').textContent()).toBe('Signed text');
    await shot(b, 'docs-03-list.png');
    await row.getByRole('link').click();
    await b.getByRole('heading', { name: TITLE }).waitFor(WAIT);
    await tools(b, 'talks');
    await b.getByLabel('Phrase to bracket in talks').fill('Geneva');
    await b.getByLabel('Alternative wording for talks').fill('Muscat');
    await b.getByRole('button', { name: 'Bracket against the alternative' }).click();
    await revision(b, 1).waitFor(WAIT);
    expect(await lang(b, 'talks', 'en').locator('mark.alt').allTextContents()).toEqual([
      '[Geneva]',
      '[Muscat]',
    ]);
    await tools(b, 'resume');
    await b.getByLabel('Comment on resume').fill(`We prefer the neutral verb. ${XSS}`);
    await b.getByRole('button', { name: 'Comment on clause resume' }).click();
    await clause(b, 'resume').locator('.comment-text').filter({ hasText: XSS }).waitFor(WAIT);

    // A resolves the brackets (revisions 2, 3 and 4), each as a new revision.
    await revision(a, 1).waitFor(WAIT);
    const comment = clause(a, 'resume').locator('.comment-text');
    await comment.waitFor(WAIT);
    expect(await comment.textContent()).toBe(`We prefer the neutral verb. ${XSS}`);
    expect(await a.locator('main.draft img').count()).toBe(0);
    await tools(a, 'resume');
    await a.getByRole('button', { name: 'Accept “note” (en)' }).click();
    await revision(a, 2).waitFor(WAIT);
    await tools(a, 'resume');
    await a.getByRole('button', { name: 'Accept “prennent acte de” (fr)' }).click();
    await revision(a, 3).waitFor(WAIT);
    await tools(a, 'talks');
    await a.getByRole('button', { name: 'Accept “Geneva” (en)' }).click();
    await revision(a, 4).waitFor(WAIT);
    expect(await a.locator('li.clause mark.alt').count()).toBe(0);
    expect(await lang(a, 'resume', 'en').locator('.clause-text').textContent()).toBe(
      'The parties note the resumption of direct contact.',
    );

    // The revision chain and a word diff between revisions 0 and 4.
    expect(await revision(a, 4).textContent()).toContain('Foreign Ministry');
    expect(await revision(a, 1).textContent()).toContain("Special Envoy's Office");
    expect(await revision(a, 1).textContent()).toContain('parent');
    await a.getByLabel('Compare from revision').selectOption('0');
    await a.getByLabel('Compare to revision').selectOption('4');
    const d = a.locator('ul.diffs li[data-clause="resume"][data-lang="en"]');
    await d.waitFor(WAIT);
    expect(await d.getAttribute('data-change')).toBe('changed');
    expect(await d.locator('del').allTextContents()).toEqual(['[welcome] / [note]']);
    expect(await d.locator('ins').allTextContents()).toEqual(['note']);
    // The venue was bracketed, then Geneva kept: unchanged between 0 and 4, so not listed.
    expect(await a.locator('ul.diffs li[data-clause="talks"]').count()).toBe(0);
    await a.getByLabel('Compare from revision').selectOption('0');
    await a.getByLabel('Compare to revision').selectOption('1');
    expect(await a.locator('ul.diffs li[data-clause="talks"][data-lang="en"] ins').allTextContents()).toEqual(
      ['[Geneva] / [Muscat].'],
    );
    await a.getByLabel('Compare to revision').selectOption('4');
    await a.locator('section.compare').scrollIntoViewIfNeeded();
    await shot(a, 'docs-04-revisions-and-diff.png');

    // Clause-by-clause agreement, per party.
    await a.getByRole('button', { name: 'Agree every open clause in every language' }).click();
    const aAgreed = lang(a, 'talks', 'fr').locator(`.per-party li[data-party="${aId}"][data-agreed="true"]`);
    await aAgreed.waitFor(WAIT);
    expect(await statusOf(a, 'talks', 'fr').textContent()).toContain('agreed by Foreign Ministry');
    expect(
      await lang(a, 'talks', 'fr').locator(`.per-party li[data-party="${bId}"]`).getAttribute('data-agreed'),
    ).toBe('false');
    await shot(a, 'docs-05-agreed-by-a.png');
    await revision(b, 4).waitFor(WAIT);
    await lang(b, 'resume', 'en')
      .locator(`.per-party li[data-party="${aId}"][data-agreed="true"]`)
      .waitFor(WAIT);
    await b.getByRole('button', { name: 'Agree every open clause in every language' }).click();
    for (const page of [a, b])
      for (const id of ['resume', 'talks'])
        for (const l of ['en', 'fr'])
          await lang(page, id, l).locator('.clause-status[data-status="agreed"]').waitFor(WAIT);
    expect(await statusOf(a, 'resume', 'fr').textContent()).toContain('agreed by all');

    // Both principals sign revision 4: the document is agreed.
    await a.getByRole('button', { name: 'Sign revision 4' }).click();
    await a.locator(`.signoff tr[data-party="${aId}"][data-levels="sign"]`).waitFor(WAIT);
    await b.locator(`.signoff tr[data-party="${aId}"][data-levels="sign"]`).waitFor(WAIT);
    await b.getByRole('button', { name: 'Sign revision 4' }).click();
    for (const page of [a, b]) await page.locator('.doc-agreed[data-agreed="true"]').waitFor(WAIT);
    expect(await a.getByTestId('doc-stage').textContent()).toBe('agreed');
    await shot(b, 'docs-06-signed-agreed.png');

    // Export: Markdown, Akoma Ntoso per language and the bundle, which verifies offline.
    await a.getByRole('button', { name: 'Export the agreed text' }).click();
    const links = a.getByRole('list', { name: 'Exported files' }).getByRole('link');
    await links.first().waitFor(WAIT);
    const files: Record<string, string> = {};
    for (const link of await links.all()) {
      const { name, text } = await download(a, link);
      files[name] = text;
    }
    const bundleName = Object.keys(files).find((n) => n.endsWith('.bundle.json')) ?? '';
    const { [bundleName]: bundleText, ...exported } = files;
    expect(Object.keys(exported).sort()).toEqual([
      'joint-statement-on-the-resumption-of-contact.en.akn.xml',
      'joint-statement-on-the-resumption-of-contact.fr.akn.xml',
      'joint-statement-on-the-resumption-of-contact.md',
    ]);
    const bundle: unknown = JSON.parse(bundleText ?? 'null');
    expect(verifyDocumentBundle(bundle, exported).ok).toBe(true);
    const md = 'joint-statement-on-the-resumption-of-contact.md';
    const changed = { ...exported, [md]: (exported[md] ?? '').replace('Geneva', 'Vienna') };
    expect(verifyDocumentBundle(bundle, changed).ok).toBe(false);

    // Both browsers become duty devices: their heartbeats after the signatures state the channel
    // was open when each was logged, which an agreed-text attestation needs from every side.
    for (const page of [a, b]) {
      await page.getByRole('link', { name: 'Members & devices' }).click();
      await page.getByLabel('Duty device: heartbeat every (seconds)').fill('1');
      await page.getByRole('button', { name: 'Save' }).click();
    }
    await b.goBack();
    await b.getByRole('heading', { name: TITLE }).waitFor(WAIT);
    // An agreed-text attestation made through the UI by A's minister, verified in a fresh browser.
    await a.getByRole('link', { name: 'Attestations' }).click();
    await pickFirstChannel(a);
    await a.getByRole('radio', { name: 'Agreed text' }).check();
    const revPick = a.getByLabel('Agreed revision');
    const rev4 = revPick.locator('option').filter({ hasText: 'revision 4, signed by all' });
    await rev4.waitFor({ state: 'attached', ...WAIT });
    await expect.poll(() => rev4.isDisabled(), WAIT).toBe(false); // inside a verified checkpoint
    await revPick.selectOption((await rev4.getAttribute('value')) ?? '');
    // Until both sides' heartbeats are inside a verified checkpoint the claim cannot be made yet.
    const ready = a.getByRole('heading', { name: 'Attestation ready: agreed text' });
    await expect
      .poll(async () => {
        if (!(await ready.isVisible())) {
          await a.getByRole('button', { name: 'Create the attestation' }).click();
          await ready.waitFor({ timeout: 3_000 }).catch(() => undefined);
        }
        return ready.isVisible();
      }, WAIT)
      .toBe(true);
    expect(await a.getByTestId('attest-selfcheck').textContent()).toContain('valid.');
    await shot(a, 'docs-09-attestation-agreed.png');
    const agreedText = await downloadText(a, 'Download the attestation');
    const keysText = await downloadText(a, 'Download the public-keys file');
    expect(JSON.parse(agreedText)).toMatchObject({
      claim: { kind: 'agreed', revision: 4, parties: expect.arrayContaining([aId, bId]) },
    });
    const v = await app.open('verifier');
    await v.goto(`${app.url}/verify`);
    const verdict = v.locator('#verdict-title');
    await v.getByLabel('Public-keys file').setInputFiles(jsonFile('public-keys.json', keysText));
    await v.getByLabel('Attestation file').setInputFiles(jsonFile('agreed.json', agreedText));
    await expect.poll(() => verdict.textContent(), WAIT).toBe('Valid agreed attestation');
    expect(await v.locator('table.agreed-text').textContent()).toContain('Geneva');
    await shot(v, 'docs-10-verify-agreed.png');
    // One word of the disclosed text changed: the file no longer verifies.
    const tampered = agreedText.replace('Geneva', 'Vienna');
    expect(tampered).not.toBe(agreedText);
    await v.getByLabel('Attestation file').setInputFiles(jsonFile('tampered.json', tampered));
    await expect.poll(() => verdict.textContent(), WAIT).toMatch(/^Not valid/);
    await shot(v, 'docs-11-verify-agreed-tampered.png');
    await a.getByRole('link', { name: 'Documents', exact: true }).click();
    await a.locator('ul.doc-list li').filter({ hasText: TITLE }).getByRole('link').click();
    await a.getByRole('heading', { name: TITLE }).waitFor(WAIT);

    // An edit after signature (B, revision 5) clears agreement on exactly the touched clause.
    await tools(b, 'talks');
    await b.getByLabel('Text of talks (en)').fill('Talks will continue in Geneva next month.');
    await b.getByRole('button', { name: 'Save clause talks as a new revision' }).click();
    await revision(a, 5).waitFor(WAIT);
    const cleared = lang(a, 'talks', 'en').locator('.cleared');
    await cleared.waitFor(WAIT);
    expect(await cleared.textContent()).toContain('Foreign Ministry');
    expect(await cleared.textContent()).toContain("Special Envoy's Office");
    expect(await statusOf(a, 'talks', 'en').getAttribute('data-status')).toBe('open');
    expect(await statusOf(a, 'talks', 'fr').getAttribute('data-status')).toBe('agreed');
    expect(await statusOf(a, 'resume', 'en').getAttribute('data-status')).toBe('agreed');
    expect(await clause(a, 'talks').getAttribute('data-status')).toBe('agreed-by-some');
    expect(await a.locator('.doc-agreed').getAttribute('data-agreed')).toBe('false');
    expect(await a.getByRole('note').first().textContent()).toContain('cleared agreement on talks (en)');
    await shot(a, 'docs-07-edit-clears-clause.png');

    // The channel's timeline names each document event by the document's title (a link to it),
    // not by its raw kind.
    await b.getByRole('link', { name: 'Channels' }).click();
    await b.locator('ul.channels a.channel-row').first().click(WAIT);
    const opened = b.locator('li.event[data-kind="doc.revision"] p.meta').first();
    await opened.waitFor(WAIT);
    expect(await opened.textContent()).toMatch(/^Opened the document “.+”: revision 0$/);
    await b
      .locator('li.event[data-kind="doc.sign"] p.meta')
      .filter({ hasText: /^Signed “.+”$/ })
      .first()
      .waitFor(WAIT);
    expect(
      await b
        .locator('li.event p.meta')
        .filter({ hasText: /^doc\./ })
        .count(),
    ).toBe(0);

    // Phone width: no sideways scrolling.
    await a.setViewportSize({ width: 390, height: 844 });
    expect(await a.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await shot(a, 'docs-08-phone-width.png');
    await b.getByRole('link', { name: 'Documents', exact: true }).click();
    await b.locator('ul.doc-list li[data-stage="draft"]').waitFor(WAIT);

    expect(app.dialogs).toEqual([]);
    expect(app.problems).toEqual([]);
  });
});
