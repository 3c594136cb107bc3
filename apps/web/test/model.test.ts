/** The channel list's badges and unread counts, from states folded by the SDK's reducer. */
import { eventIdFrom, type PartyId } from '@backchannel/client/browser';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { badgeOf, unreadIds } from '../src/model.ts';
import { claimRows, parseKeysFile, refusalTitle, verifyFiles } from '../src/verify-model.ts';
import { A, B, channel, rnd, T0 } from './fixture.ts';

const outreach: [PartyId, Record<string, unknown>] = [A, { kind: 'outreach', from: A, to: B, note: 'hello' }];
const accept: [PartyId, Record<string, unknown>] = [B, { kind: 'channel.accept' }];

describe('channel badges', () => {
  it('an outreach waits for the party it was sent to, and is "proposed" for its sender', () => {
    const v = channel([outreach]);
    expect(badgeOf(v.state, B, T0)).toBe('outreach waiting');
    expect(badgeOf(v.state, A, T0)).toBe('proposed');
  });

  it('an open channel is open, then quiet, then silent as the other party stays unheard', () => {
    const v = channel([outreach, accept, [B, { kind: 'heartbeat', intervalMs: 60_000 }]]);
    const heard = v.state.lastHeard[B] as number;
    expect(badgeOf(v.state, A, heard + 30_000)).toBe('open');
    expect(badgeOf(v.state, A, heard + 90_000)).toBe('quiet');
    expect(badgeOf(v.state, A, heard + 10 * 60_000)).toBe('silent');
  });

  it('suspended and closed channels say so', () => {
    const suspended = channel([outreach, accept, [A, { kind: 'channel.suspend', reason: 'strike' }]]);
    expect(badgeOf(suspended.state, A, T0)).toBe('suspended');
    const closed = channel([outreach, accept, [A, { kind: 'channel.close' }]]);
    expect(badgeOf(closed.state, B, T0)).toBe('closed');
  });

  it('counts what the other party said until this party reads it', () => {
    const one = eventIdFrom(rnd(16));
    const two = eventIdFrom(rnd(16));
    const said: Array<[PartyId, Record<string, unknown>]> = [
      outreach,
      accept,
      [B, { kind: 'message', text: 'one', id: one }],
      [B, { kind: 'message', text: 'two', id: two }],
    ];
    const v = channel(said);
    expect(unreadIds(v.state, A).sort()).toEqual([one, two].sort());
    expect(unreadIds(v.state, B)).toEqual([]);
    const read = channel([...said, [A, { kind: 'receipt', type: 'read', of: [one] }]]);
    expect(unreadIds(read.state, A)).toEqual([two]);
  });
});

describe('the public verifier (verify-model)', () => {
  const examples = join(import.meta.dirname, '..', '..', '..', 'docs', 'examples');
  const read = (f: string) => readFileSync(join(examples, f), 'utf8');
  const keys = read('public-keys.json');
  const outreach = read('attestation-outreach.json');
  // The verifier's clock just after the example was issued, so the test does not age.
  const now = (JSON.parse(outreach) as { issuedAt: number }).issuedAt + 60_000;

  it('reads the public-keys file the CLI writes', () => {
    const k = parseKeysFile(keys);
    expect(k.ok && k.value.parties.map((p) => p.party)).toEqual([
      'p_lILigVkq3f9t2iatwgERig',
      'p_7fLzvAh448WmrL8dAwEqcg',
    ]);
    expect(k.ok && k.value.witnesses.length).toBe(2);
  });

  it('refuses keys files that are not JSON, of another type, or with a malformed key', () => {
    expect(parseKeysFile('nope')).toMatchObject({ ok: false, error: expect.stringContaining('not JSON') });
    expect(parseKeysFile('{"type":"other","parties":{}}')).toMatchObject({ ok: false });
    const bad = { ...(JSON.parse(keys) as Record<string, unknown>), relayKeys: ['relay+00000000+AAAA'] };
    expect(parseKeysFile(JSON.stringify(bad))).toMatchObject({
      ok: false,
      error: expect.stringContaining('not an Ed25519 checkpoint key'),
    });
  });

  it('verifies both example attestations with the noble backend', () => {
    for (const f of ['attestation-outreach.json', 'attestation-delivery.json']) {
      const o = verifyFiles(read(f), keys, now);
      expect(o.kind === 'attestation' && o.verdict.valid, f).toBe(true);
    }
    const o = verifyFiles(outreach, keys, now);
    if (o.kind !== 'attestation' || !o.verdict.valid) throw new Error('expected a valid verdict');
    expect(o.verdict.witnesses.map((w) => w.name)).toEqual(['witness.a.example', 'witness.b.example']);
    expect(o.checkpoint?.origin).toBe('backchannel.local/c_ga02JQsp7YgqVev101wqmg');
    expect(claimRows(o.verdict.claim)).toContainEqual({
      label: 'At (relay time)',
      value: '2026-11-25 12:31:12 UTC',
    });
  });

  it('refuses a tampered copy with the reason and code, and explains files it cannot check', () => {
    const o = verifyFiles(outreach.replace('"at": 1795609872338', '"at": 1795609872339'), keys, now);
    expect(o).toMatchObject({ kind: 'attestation', verdict: { valid: false, code: 'SIG_INVALID' } });
    expect(refusalTitle('SIG_INVALID')).toContain('Bad signature');
    expect(verifyFiles(outreach, keys, now - 24 * 3_600_000)).toMatchObject({
      verdict: { valid: false, code: 'TIME_OUTSIDE_WINDOW' },
    });
    expect(verifyFiles('not json', keys, now)).toMatchObject({ kind: 'error' });
    expect(verifyFiles(outreach, undefined, now)).toMatchObject({
      kind: 'error',
      message: expect.stringContaining('public-keys file'),
    });
    expect(verifyFiles('{"type":"something/else"}', keys, now)).toMatchObject({ kind: 'error' });
  });
});
