/**
 * What a device added to a channel after it opened is disclosed (sdk/join.ts): the lifecycle and
 * tracks, the documents, and the proposals and notices its party has still to answer, so that it
 * can take part in them; and how the disclosures are cut into join.context events.
 */
import type { ChannelEvent, ChannelId, DeviceId, EventId, PartyId } from '@backchannel/protocol';
import { decodeEvent, initialState, MAX_EVENT_BYTES, MAX_JOIN_DISCLOSURES } from '@backchannel/protocol';
import { describe, expect, it } from 'vitest';
import { JOINT_STATEMENT } from '../src/cli/demo-documents.node.ts';
import type { DraftEvent } from '../src/sdk/channel.ts';
import type { EventRecord } from '../src/sdk/channel-record.ts';
import { Documents } from '../src/sdk/documents.ts';
import { joinDisclosures } from '../src/sdk/join.ts';
import { inProcessRelay, openChannel } from './in-process.ts';

const kindsOf = (timeline: readonly EventRecord[]) =>
  timeline.flatMap((t) => ('event' in t && t.status === 'ok' ? [t.event.kind] : []));

describe('a device added after the channel opened', () => {
  it('is disclosed the documents and the proposals and notices its party has not answered, and takes part in them', {
    timeout: 120_000,
  }, async () => {
    const r = inProcessRelay('bc-join-disclose-');
    const a = await r.device('a');
    const b = await r.device('b');
    const { chA, chB } = await openChannel(a, b);
    await chB.sync();
    const open = (await chB.send({
      kind: 'proposal',
      title: 'Venue',
      text: 'Muscat.',
    } as DraftEvent)) as EventId;
    const answered = (await chB.send({
      kind: 'proposal',
      title: 'Date',
      text: 'May.',
    } as DraftEvent)) as EventId;
    const notice = (await chB.send({
      kind: 'notice',
      title: 'Statement',
      text: 'We publish at noon.',
      ackBy: Date.now() + 3_600_000,
    } as DraftEvent)) as EventId;
    await chB.send({ kind: 'message', text: 'a private word' } as DraftEvent);
    await b.outbox.flush();
    await chA.sync();
    await chA.send({ kind: 'response', to: answered, stance: 'accept', text: 'May suits us.' } as DraftEvent);
    await chA.send({ kind: 'proposal', title: 'Agenda', text: 'Three items.' } as DraftEvent);
    const docA = new Documents(a, chA);
    const doc = await docA.create(JOINT_STATEMENT);
    await a.outbox.flush();
    await chB.sync();
    const docB = new Documents(b, chB);
    await docB.comment(doc, 'resume', 'We prefer "welcome".', 'en');
    await docB.edit(doc, [
      { op: 'bracket', clause: 'talks', lang: 'en', phrase: 'Geneva', alternatives: ['Muscat'] },
    ]);
    await b.outbox.flush();
    await chA.sync();
    // A revision as large as the SDK drafts is still one a join.context can carry; a larger one
    // (though under one event's size), or one the event schema refuses (a segment over 10,000
    // characters), is refused before it is sent.
    const annex = (lengths: number[]) => ({
      type: 'non-paper' as const,
      title: 'Annex',
      languages: ['en'],
      clauses: lengths.map((chars, i) => ({ id: `c${i}`, text: { en: 'z'.repeat(chars) } })),
    });
    const large = [...Array(6).fill(10_000), 2_800];
    await expect(docA.create(annex([...Array(6).fill(10_000), 4_000]))).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
    await expect(docA.create(annex([10_001]))).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringContaining('not valid'),
    });
    const bigDoc = await docA.create(annex(large));
    await a.outbox.flush();
    await chA.sync();

    // A enrolls its minister's phone and adds it to the channel.
    const minister = await a.addDevice('minister', 'principal');
    const m = await r.device('m');
    await m.enroll(minister);
    expect(await a.addNewDevices()).toEqual([{ channel: chA.id, devices: [minister.device] }]);
    await a.outbox.flush();
    expect(await m.checkInbox()).toEqual([chA.id]);
    const chM = await m.channel(chA.id);
    await chM.sync();

    // It holds B's open proposal and notice (not the one A answered, nor A's own, nor any
    // message) and the whole document, with the state B has of it.
    const disclosed = chM.view.timeline.filter(
      (t) => 'disclosedBy' in t && t.disclosedBy === a.identity.device,
    );
    expect(disclosed.every((t) => t.status === 'ok')).toBe(true);
    expect(kindsOf(disclosed)).toEqual([
      'outreach',
      'channel.accept',
      'proposal',
      'notice',
      'doc.revision',
      'doc.comment',
      'doc.revision',
      'doc.revision',
    ]);
    expect(new Documents(m, chM).show(bigDoc).clauses.map((c) => c.text.en?.length)).toEqual(large);
    // The large revision went in a join.context of its own.
    expect(
      chM.view.timeline.flatMap((t) =>
        'event' in t && t.event.kind === 'join.context' ? [t.event.disclosures.length] : [],
      ),
    ).toEqual([7, 1]);
    expect(disclosed.flatMap((t) => ('event' in t ? [t.event.id] : []))).toEqual(
      expect.arrayContaining([open, notice]),
    );
    expect(kindsOf(chM.view.timeline)).not.toContain('message');
    const docM = new Documents(m, chM);
    await chB.sync();
    expect(docM.show(doc)).toEqual(docB.show(doc));
    expect(chM.view.state.notices[notice]).toEqual(chB.view.state.notices[notice]);

    // It answers the proposal and the notice, and revises the document: B accepts all three.
    await chM.send({ kind: 'response', to: open, stance: 'accept', text: 'Muscat it is.' } as DraftEvent);
    await chM.send({ kind: 'response', to: notice, stance: 'note', text: 'Noted.' } as DraftEvent);
    await docM.edit(doc, [{ op: 'resolve', clause: 'talks', lang: 'en', bracket: 0, choose: 1 }]);
    await m.outbox.flush();
    await chB.sync();
    await chM.sync();
    for (const ch of [chB, chM]) {
      const fromM = ch.view.timeline.filter((t) => t.sender === minister.device && 'event' in t);
      expect(
        fromM.map((t) => [t.status, 'event' in t ? t.event.kind : '']),
        ch.id,
      ).toEqual([
        ['ok', 'response'],
        ['ok', 'response'],
        ['ok', 'doc.revision'],
      ]);
    }
    expect(chB.view.state.notices[notice]?.acknowledged[a.identity.party]).toBeDefined();
    expect(docB.show(doc).head.n).toBe(2);
    expect(docM.show(doc)).toEqual(docB.show(doc));
    for (const d of [a, b, m]) d.close();
  });
});

describe('the disclosures of one join', () => {
  const A = `p_${'A'.repeat(22)}` as PartyId;
  const B = `p_${'B'.repeat(22)}` as PartyId;
  const at = 1_800_000_000_000;
  let n = 0;
  const proposal = (party: PartyId, text: string): EventRecord => {
    n++;
    const id = `e_${String(n).padStart(22, '0')}` as EventId;
    return {
      seq: n,
      receivedAt: at + n,
      sender: `d_${party.slice(2)}` as DeviceId,
      party,
      role: 'principal',
      status: 'ok',
      event: { v: 1, at: at + n, kind: 'proposal', id, title: 'T', text } as ChannelEvent,
      salt: new Uint8Array(16),
    };
  };
  // joinDisclosures reads the timeline only: the records as a device accepted them.
  const view = (timeline: EventRecord[]) => ({
    state: initialState(`c_${'C'.repeat(22)}` as ChannelId),
    timeline,
    size: n + 1,
    beforeJoin: 0,
    joinedEpoch: 0,
  });

  it('go in join.context events of at most 100 disclosures and of at most one event size', () => {
    const big = Array.from({ length: 7 }, () => proposal(B, 'x'.repeat(20_000)));
    const small = Array.from({ length: 250 }, () => proposal(B, 'y'));
    const own = proposal(A, 'ours');
    const chunks = joinDisclosures(view([...big, ...small, own]), A);
    // 3 large events fill one join.context; the small ones go 100 at a time.
    expect(chunks.map((c) => c.length)).toEqual([3, 3, 1 + 99, 100, 51]);
    for (const c of chunks) {
      expect(c.length).toBeLessThanOrEqual(MAX_JOIN_DISCLOSURES);
      expect(c.reduce((s, d) => s + d.event.length + 16 + 16, 0)).toBeLessThan(MAX_EVENT_BYTES - 1024);
      for (const d of c) expect(decodeEvent(d.event).ok).toBe(true);
    }
    // Each once, in transcript order, none of A's own.
    const seqs = chunks.flat().map((d) => d.seq);
    expect(seqs).toEqual([...big, ...small].map((r) => r.seq));
  });

  it('with nothing to disclose, still one (empty) join.context: it names the new devices', () => {
    expect(joinDisclosures(view([]), A)).toEqual([[]]);
  });
});

describe('a disclosure', () => {
  it('counts only where the disclosed entry carries its sender’s valid envelope signature', async () => {
    const {
      commitEvent,
      channelIdFrom,
      deviceIdFromKey,
      encodeEvent: enc,
      eventIdFrom,
      keyPairFromSeed,
      signEnvelope,
    } = await import('@backchannel/protocol');
    const { disclosedRecords } = await import('../src/sdk/join.ts');
    const rnd = (n: number) => new Uint8Array(n).map(() => Math.floor(Math.random() * 256));
    const channel = channelIdFrom(rnd(16));
    const other = keyPairFromSeed(rnd(32));
    const otherDevice = deviceIdFromKey(other.publicKey);
    const A = `p_${'A'.repeat(22)}` as PartyId;
    const B = `p_${'B'.repeat(22)}` as PartyId;
    const me = { party: A, device: `d_${'M'.repeat(22)}` as DeviceId };
    const at = Date.now();
    const proposal = {
      v: 1,
      kind: 'proposal',
      id: eventIdFrom(rnd(16)),
      at,
      title: 'Venue',
      text: 'Muscat.',
    } as ChannelEvent;
    const salt = rnd(16);
    const envelope = signEnvelope(
      {
        v: 1,
        channel,
        sender: otherDevice,
        msgId: proposal.id,
        epoch: 1,
        kind: 'application',
        mls: rnd(64),
        commitment: commitEvent(proposal, salt),
        sentAt: at,
      },
      other.secretKey,
    );
    const entryOf = (env: typeof envelope) => ({
      entry: { v: 1 as const, seq: 3, channel, sender: otherDevice, receivedAt: at, envelope: env.wire },
      envelope: env,
    });
    const cert = {
      body: { party: B, role: 'principal', device: otherDevice, devicePublicKey: other.publicKey },
    };
    const ctx = {
      identity: me,
      certs: { parties: () => [A, B], find: async () => cert, check: () => undefined },
      sha256: (await import('@noble/hashes/sha2.js')).sha256,
      suite: undefined,
      now: () => at,
    } as never;
    const context = {
      seq: 9,
      receivedAt: at,
      sender: `d_${'S'.repeat(22)}` as DeviceId,
      party: A,
      role: 'admin',
      status: 'ok',
      event: {
        v: 1,
        kind: 'join.context',
        id: eventIdFrom(rnd(16)),
        at,
        devices: [me.device],
        disclosures: [{ seq: 3, event: enc(proposal), salt }],
      },
      salt: rnd(16),
    } as EventRecord;
    const good = await disclosedRecords(ctx, channel, 5, context, async () => entryOf(envelope));
    expect(good.map((r) => ('event' in r ? r.event.id : ''))).toEqual([proposal.id]);
    // The same entry with its signature altered (a relay's forgery): the disclosure is ignored.
    const sig = envelope.sig.slice();
    sig[0] = (sig[0] as number) ^ 1;
    const forged = await disclosedRecords(ctx, channel, 5, context, async () =>
      entryOf({ ...envelope, sig }),
    );
    expect(forged).toEqual([]);
  });
});
