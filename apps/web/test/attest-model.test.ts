/** The attestation screen's logic: requests from the form, the events a claim can point at, what a file reveals. */
import { ATTESTATION_KINDS, type Attestation, eventIdFrom } from '@backchannel/client/browser';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  attestationFileName,
  canBuild,
  deliveryChoices,
  disclosureChoices,
  EMPTY_FORM,
  kindInfo,
  requestOf,
  revealsOf,
} from '../src/attest-model.ts';
import { A, B, channel, rnd, type Step } from './fixture.ts';

const nameOf = (p: string) => (p === A ? 'Ministry' : 'Envoy');

const opening: Step[] = [
  [A, { kind: 'outreach', from: A, to: B, note: 'hello' }],
  [B, { kind: 'channel.accept' }],
];

describe('the attestation form', () => {
  it('turns each kind it knows into the SDK request, and says what is missing', () => {
    expect(requestOf(EMPTY_FORM)).toEqual({ ok: true, request: { kind: 'outreach', which: 'first' } });
    expect(requestOf({ ...EMPTY_FORM, kind: 'liveness', withinHours: '48' })).toEqual({
      ok: true,
      request: { kind: 'liveness', withinHours: 48 },
    });
    for (const bad of ['0', '1.5', 'soon', '', String(24 * 367)]) {
      const r = requestOf({ ...EMPTY_FORM, kind: 'liveness', withinHours: bad });
      expect(r.ok ? 'accepted' : r.error).toContain('whole number of hours');
    }
    const noEvent = requestOf({ ...EMPTY_FORM, kind: 'disclosure' });
    expect(noEvent.ok ? 'accepted' : noEvent.error).toContain('Choose the event to disclose');
    expect(requestOf({ ...EMPTY_FORM, kind: 'delivery', event: 'e_x', receipt: 'read' })).toEqual({
      ok: true,
      request: { kind: 'delivery', event: 'e_x', receipt: 'read' },
    });
    const doc = 'e_AAAAAAAAAAAAAAAAAAAAAA';
    expect(requestOf({ ...EMPTY_FORM, kind: 'agreed', agreed: `${doc}#4` })).toEqual({
      ok: true,
      request: { kind: 'agreed', doc, revision: 4 },
    });
    for (const bad of ['', doc, `${doc}#`, `${doc}#x`, 'e_short#1']) {
      const r = requestOf({ ...EMPTY_FORM, kind: 'agreed', agreed: bad });
      expect(r.ok ? 'accepted' : r.error).toContain('Choose the agreed revision');
    }
  });

  it('refuses, in words, a kind of claim it has no form for', () => {
    expect(canBuild('agreed-someday')).toBe(false);
    const r = requestOf({ ...EMPTY_FORM, kind: 'agreed-someday' });
    expect(r.ok ? 'accepted' : r.error).toContain('cannot build a “agreed-someday” attestation yet');
  });

  it('describes every kind of claim the protocol knows', () => {
    for (const k of ATTESTATION_KINDS) {
      expect(kindInfo(k).claims).not.toContain(`A “${k}” claim`);
      expect(kindInfo(k).reveals).not.toBe('');
    }
  });
});

describe('the events a claim can point at', () => {
  it('a disclosure offers every readable event but receipts and heartbeats, newest first, and only verified ones as provable', () => {
    const view = channel([
      ...opening,
      [B, { kind: 'message', text: 'first word' }],
      [A, { kind: 'heartbeat', intervalMs: 60_000 }],
      [A, { kind: 'points', title: 'Conditions', items: ['one'] }],
    ]);
    const choices = disclosureChoices(view.timeline, 4, nameOf);
    expect(choices.map((c) => [c.label, c.verified])).toEqual([
      ['points from Ministry: Conditions', false],
      ['message from Envoy: first word', true],
      ['channel.accept from Envoy', true],
      ['outreach from Ministry: hello', true],
    ]);
  });

  it('a delivery offers only events another party acknowledged (read, when asked for read)', () => {
    const steps: Step[] = [
      ...opening,
      [A, { kind: 'message', text: 'delivered only' }],
      [A, { kind: 'message', text: 'read too' }],
      [A, { kind: 'message', text: 'not acknowledged' }],
    ];
    const view = channel(steps);
    const acked = chainWithReceipts(steps);
    expect(deliveryChoices(acked.timeline, acked.state, 99, 'delivered', nameOf).map((c) => c.label)).toEqual(
      ['message from Ministry: read too', 'message from Ministry: delivered only'],
    );
    expect(deliveryChoices(acked.timeline, acked.state, 99, 'read', nameOf).map((c) => c.label)).toEqual([
      'message from Ministry: read too',
    ]);
    expect(deliveryChoices(view.timeline, view.state, 99, 'delivered', nameOf)).toEqual([]);
  });
});

/** The steps, then B's receipts: "delivered" for the third and fourth events, "read" for the fourth. */
function chainWithReceipts(steps: readonly Step[]) {
  const ids = steps.map(() => eventIdFrom(rnd(16)));
  return channel([
    ...steps.map(([p, e], i): Step => [p, { ...e, id: ids[i] }]),
    [B, { kind: 'receipt', type: 'delivered', of: [ids[2], ids[3]] }],
    [B, { kind: 'receipt', type: 'read', of: [ids[3]] }],
  ]);
}

describe('what a finished file reveals', () => {
  it('reads the disclosures, entries and certificates from the signed document itself', () => {
    const text = readFileSync(
      join(import.meta.dirname, '..', '..', '..', 'docs', 'examples', 'attestation-outreach.json'),
      'utf8',
    );
    const doc = JSON.parse(text) as Attestation;
    const lines = revealsOf(doc);
    expect(lines[0]).toMatch(/^The full content of one outreach event \(“.+”\)/);
    expect(lines.join('\n')).toContain(`${doc.entries.length} log entr`);
    expect(lines.join('\n')).toContain("The relay's checkpoint");
    expect(attestationFileName(doc)).toMatch(
      /^attestation-outreach-c_[A-Za-z0-9_-]+-\d{4}-\d\d-\d\d-\d{6}\.json$/,
    );
  });
});
