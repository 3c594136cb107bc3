/**
 * A real scenario transcript for the proofs tests, built quickly: SDK devices with encrypted
 * stores and real MLS, against an in-process relay (createRelay + SQLite) through app.request().
 */
import { rmSync } from 'node:fs';
import type { EventId, PartyId } from '@backchannel/protocol';
import { parseVerifierKey } from '@backchannel/protocol/transcript';
import type { RelayCore } from '@backchannel/server';
import { JOINT_STATEMENT, onDocuments } from '../src/cli/demo-documents.node.ts';
import type { Channel, DraftEvent } from '../src/sdk/channel.ts';
import type { Backchannel } from '../src/sdk/client.ts';
import type { Documents } from '../src/sdk/documents.ts';
import { commitReadout, revealReadout } from '../src/sdk/proofs.ts';
import {
  newWitnessState,
  relaySource,
  type WitnessState,
  witnessRound,
  witnessVerifierKey,
} from '../src/sdk/witness.ts';
import { inProcessRelay, RELAY_URL, random } from './in-process.ts';

export { RELAY_URL };

export interface Scenario {
  readonly relay: RelayCore;
  readonly a: Backchannel;
  readonly b: Backchannel;
  readonly A: { party: PartyId; root: Uint8Array };
  readonly B: { party: PartyId; root: Uint8Array };
  readonly channel: string;
  readonly other: string;
  readonly pointsId: EventId;
  readonly messageId: EventId;
  /** A signed text: B signed revision 1, A amended it (revision 2), both signed revision 2. */
  readonly docId: EventId;
  /** The delivery bound the outreach stated (ms). */
  readonly boundMs: number;
  readonly witnesses: { A: WitnessState; B: WitnessState };
  readonly witnessKeys: string[];
  readonly relayKey: string;
  close(): Promise<void>;
}

export async function send(bc: Backchannel, ch: Channel, draft: Record<string, unknown>): Promise<EventId> {
  await ch.sync();
  const id = await ch.send(draft as DraftEvent);
  await bc.outbox.flush();
  return id;
}

/** Syncs until every device holds the relay's whole log and nothing is left to acknowledge. */
export async function settle(devices: readonly Backchannel[], channel: string): Promise<void> {
  for (let round = 0; round < 5; round++) {
    for (const d of devices) await d.syncAll();
    const sizes = await Promise.all(
      devices.map(async (d) => (await d.channel(channel)).record.checkpointSize),
    );
    const relaySize = Number((await devices[0]!.relay.getCheckpoint(channel)).checkpoint.split('\n')[1]);
    if (sizes.every((s) => s === relaySize)) return;
  }
  throw new Error('devices did not settle');
}

export async function buildScenario(): Promise<Scenario> {
  const { dir, relay, device } = inProcessRelay('bc-proofs-');
  const a = await device('A');
  const b = await device('B');
  const idA = await a.createParty({
    partyName: 'Foreign Ministry (A)',
    deviceName: 'minister',
    role: 'principal',
    relays: [RELAY_URL],
  });
  const idB = await b.createParty({
    partyName: "Special Envoy's Office (B)",
    deviceName: 'envoy',
    role: 'principal',
    relays: [RELAY_URL],
  });

  // The outreach, stating the relay's delivery bound; B accepts.
  const boundMs = 60_000;
  const chA = await a.outreach(idB.party, 'In light of the unrest we propose to resume contact.', {
    mediator: 'blind',
    deliveryBoundMs: boundMs,
  });
  const channel = chA.id;
  await b.checkInbox();
  const chB = await b.channel(channel);
  await send(b, chB, { kind: 'channel.accept', reason: 'We accept to resume.' });
  await a.syncAll();
  // Heartbeats from both sides; B's points, acknowledged by A; a message from A.
  await send(a, chA, { kind: 'heartbeat', intervalMs: 60_000 });
  await send(b, chB, { kind: 'heartbeat', intervalMs: 60_000 });
  const pointsId = await send(b, chB, {
    kind: 'points',
    title: 'Conditions for a de-escalation',
    items: ['Halt enrichment above 5%', 'Inspectors return within 30 days'],
  });
  await a.syncAll();
  await send(a, chA, { kind: 'receipt', type: 'read', of: [pointsId] });
  const messageId = await send(a, chA, { kind: 'message', text: 'We accept point 2 in principle.' });
  // Round 1 of read-outs, done properly: both commit, then both reveal.
  await settle([a, b], channel);
  await commitReadout(a, channel, 'round 1', 'Talks were frank and useful. Both sides agreed to meet again.');
  await b.syncAll();
  await commitReadout(
    b,
    channel,
    'round 1',
    'Talks were frank. Both sides agreed to meet again next week in Oman.',
  );
  await a.syncAll();
  await revealReadout(a, channel, 'round 1');
  await revealReadout(b, channel, 'round 1');
  // Round 2, done wrong: A publishes its read-out before B has committed.
  const salt = random(16);
  const { readoutCommitment } = await import('@backchannel/protocol/attest');
  const early = 'We conceded nothing.';
  await send(a, chA, {
    kind: 'readout',
    round: 'round 2',
    commitment: readoutCommitment('round 2', early, salt),
  });
  await send(a, chA, { kind: 'readout', round: 'round 2', text: early, salt });
  await b.syncAll();
  await commitReadout(b, channel, 'round 2', 'They conceded on inspections.');
  await revealReadout(b, channel, 'round 2');
  // A signed text: A drafts with a bracket; B resolves it and signs; A amends; both sign.
  const act = <T>(bc: Backchannel, fn: (d: Documents) => Promise<T>): Promise<T> =>
    onDocuments(bc, channel, fn);
  // The demo's joint statement without its third clause.
  const docId = await act(a, (d) =>
    d.create({ ...JOINT_STATEMENT, clauses: JOINT_STATEMENT.clauses.slice(0, 2) }),
  );
  await act(b, (d) =>
    d.edit(docId, [
      { op: 'resolve', clause: 'resume', lang: 'en', bracket: 0, choose: 1 },
      { op: 'resolve', clause: 'resume', lang: 'fr', bracket: 0, choose: 1 },
    ]),
  );
  await act(b, (d) => d.signRevision(docId, 'sign'));
  await act(a, (d) =>
    d.edit(docId, [
      { op: 'set', clause: 'talks', lang: 'en', segments: ['Talks will continue in Geneva next month.'] },
      {
        op: 'set',
        clause: 'talks',
        lang: 'fr',
        segments: ['Les pourparlers se poursuivront à Genève le mois prochain.'],
      },
    ]),
  );
  await act(a, (d) => d.signRevision(docId, 'sign'));
  await act(b, (d) => d.signRevision(docId, 'sign'));
  await settle([a, b], channel);
  // Each side's next heartbeat states the channel was open when it saw the signatures.
  await send(a, chA, { kind: 'heartbeat', intervalMs: 60_000 });
  await send(b, chB, { kind: 'heartbeat', intervalMs: 60_000 });
  await settle([a, b], channel);

  // A second channel (for "checkpoint of another log" forgeries).
  const other = (await a.outreach(idB.party, 'A second line.')).id;
  await b.syncAll();
  await a.syncAll();

  // Each party's witness co-signs the checkpoint both devices verified.
  const relayKey = a.relayKey as string;
  const key = parseVerifierKey(relayKey);
  if (!key.ok) throw new Error('bad relay key');
  let wA = newWitnessState('witness.a.example', random(32), relayKey);
  let wB = newWitnessState('witness.b.example', random(32), relayKey);
  wA = (
    await witnessRound({
      source: relaySource(a.relay),
      state: wA,
      relayKey: key.value,
      channels: [channel, other],
      now: Date.now(),
    })
  ).state;
  wB = (
    await witnessRound({
      source: relaySource(b.relay),
      state: wB,
      relayKey: key.value,
      channels: [channel],
      now: Date.now(),
    })
  ).state;

  return {
    relay,
    a,
    b,
    A: { party: idA.party, root: idA.rootPublicKey },
    B: { party: idB.party, root: idB.rootPublicKey },
    channel,
    other,
    pointsId,
    messageId,
    docId: docId as EventId,
    boundMs,
    witnesses: { A: wA, B: wB },
    witnessKeys: [witnessVerifierKey(wA), witnessVerifierKey(wB)],
    relayKey,
    async close() {
      a.close();
      b.close();
      await relay.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
