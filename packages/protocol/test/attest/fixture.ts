/**
 * A synthetic but fully signed channel transcript for protocol-level attestation tests and the
 * benchmark: real device certificates, envelopes, commitments, Merkle log, relay checkpoint and
 * witness cosignatures — only the MLS ciphertext is stand-in bytes (the verifier never opens it).
 */
import {
  type ChannelEvent,
  type ChannelId,
  type ChannelState,
  channelIdFrom,
  fold,
  initialState,
  commitEvent,
  type DeviceCertificate,
  decodeEntry,
  encodeEntry,
  type EventId,
  eventIdFrom,
  issueDeviceCertificate,
  keyPairFromSeed,
  type PartyId,
  partyIdFromKey,
  signEnvelope,
} from '../../src/index.ts';
import type { TranscriptRecord, TranscriptSnapshot } from '../../src/attest/create.ts';
import { firstRevision, nextRevision } from '../../src/documents/edit.ts';
import { type RevisionBody, revisionHash } from '../../src/documents/model.ts';
import { signSignoff } from '../../src/documents/signoff.ts';
import { readoutCommitment } from '../../src/attest/readout.ts';
import {
  cosign,
  cosignatureKey,
  encodeCheckpoint,
  encodeVerifierKey,
  leafHash,
  MemoryNodeStore,
  makeVerifierKey,
  signNote,
  treeRoot,
} from '../../src/transcript/index.ts';

const seed = (n: number) => new Uint8Array(32).fill(n);
const rnd16 = (n: number) => new Uint8Array(16).fill(n);

/** The relay's note-signing seed (its key is named relay.test) and the two witnesses'. */
export const RELAY_SEED = seed(7);
export const WITNESSES: ReadonlyArray<{ readonly name: string; readonly seed: Uint8Array }> = [
  { name: 'witness.a.example', seed: seed(11) },
  { name: 'witness.b.example', seed: seed(12) },
];

/**
 * The relay's signed checkpoint of a channel's log with these leaf hashes, co-signed by each of
 * `cosigners` at `cosignedAt` (Unix seconds).
 */
export function relayCheckpoint(
  channel: ChannelId,
  leaves: readonly Uint8Array[],
  cosigners: readonly { readonly name: string; readonly seed: Uint8Array }[] = [],
  cosignedAt = 0,
): string {
  const tree = new MemoryNodeStore();
  for (const l of leaves) tree.append(l);
  const text = encodeCheckpoint({
    origin: `relay.test/${channel}`,
    size: leaves.length,
    root: treeRoot(tree.state),
    extensions: [],
  });
  const note = signNote(text, [{ name: 'relay.test', seed: RELAY_SEED }]);
  return note + cosigners.map((w) => cosign(text, w, cosignedAt)).join('');
}

export interface Fixture {
  readonly snap: TranscriptSnapshot;
  readonly channel: ChannelId;
  readonly A: PartyId;
  readonly B: PartyId;
  readonly roots: Uint8Array[];
  readonly relayKey: string;
  readonly witnessKeys: string[];
  readonly issuerA: { certificate: DeviceCertificate; secretKey: Uint8Array };
  readonly issuerB: { certificate: DeviceCertificate; secretKey: Uint8Array };
  readonly ids: { points: EventId; message: EventId; doc: EventId };
  readonly now: number;
  /** The channel state every member computes from the transcript, and what it refused. */
  readonly state: ChannelState;
  readonly refused: ReadonlyArray<{ readonly index: number; readonly code: string }>;
  /** Where the final sign-offs of revision 1 and the heartbeats after them are. */
  readonly at: { readonly signA: number; readonly signB: number; readonly beats: readonly number[] };
}

/** A lifecycle change party A makes (accepted or not, as the reducer decides), or a heartbeat from each party. */
export type LifecycleStep = 'suspend' | 'reopen' | 'beats';

export interface FixtureOptions {
  /**
   * Lifecycle changes by A around the final sign-offs: before A signs revision 1, between A's and
   * B's signatures, and after B's (before the closing heartbeats).
   */
  readonly lifecycle?: readonly [
    readonly LifecycleStep[],
    readonly LifecycleStep[],
    readonly LifecycleStep[],
  ];
  /** A view B's closing heartbeat states instead of its own (a lie every member refuses). */
  readonly bView?: { readonly seen: number; readonly lifecycle: number };
  /** A document id of the creator's choosing instead of the one derived from the header. */
  readonly docId?: EventId;
}

export function buildFixture(t0 = 1_800_000_000_000, options: FixtureOptions = {}): Fixture {
  const rootA = keyPairFromSeed(seed(1));
  const rootB = keyPairFromSeed(seed(2));
  const devA = keyPairFromSeed(seed(3));
  const devB = keyPairFromSeed(seed(4));
  const cert = (root: typeof rootA, dev: typeof devA, name: string) =>
    issueDeviceCertificate({
      rootSecretKey: root.secretKey,
      rootPublicKey: root.publicKey,
      devicePublicKey: dev.publicKey,
      name,
      role: 'principal',
      notBefore: 0,
      notAfter: t0 + 365 * 86_400_000,
    });
  const certA = cert(rootA, devA, 'minister');
  const certB = cert(rootB, devB, 'envoy');
  const A = partyIdFromKey(rootA.publicKey);
  const B = partyIdFromKey(rootB.publicKey);
  const channel = channelIdFrom(rnd16(9));
  const records: TranscriptRecord[] = [];
  let state = initialState(channel);
  const refused: Array<{ index: number; code: string }> = [];
  let n = 0;
  const add = (who: 'A' | 'B', kind: 'commit' | 'welcome' | 'application', event?: ChannelEvent) => {
    const dev = who === 'A' ? devA : devB;
    const cert = who === 'A' ? certA : certB;
    const seq = records.length;
    const salt = rnd16(100 + seq);
    const msgId = event?.id ?? eventIdFrom(rnd16(200 + seq));
    const env = signEnvelope(
      {
        v: 1,
        channel,
        sender: cert.body.device,
        msgId,
        epoch: 1,
        kind,
        mls: new Uint8Array(200).fill(seq),
        ...(event === undefined ? {} : { commitment: commitEvent(event, salt) }),
        sentAt: t0 + seq * 60_000,
        ...(kind === 'welcome' ? { to: [B, A] } : {}),
      },
      dev.secretKey,
    );
    const entry = encodeEntry({
      v: 1,
      seq,
      channel,
      sender: cert.body.device,
      receivedAt: t0 + seq * 60_000,
      envelope: env.wire,
    });
    const d = decodeEntry(entry);
    if (!d.ok) throw new Error(d.message);
    if (event !== undefined) {
      const r = fold(state, {
        event,
        sender: { device: cert.body.device, party: who === 'A' ? A : B, role: 'principal' },
        seq,
        receivedAt: t0 + seq * 60_000,
      });
      if (r.ok) state = r.state;
      else refused.push({ index: seq, code: r.code });
    }
    records.push({
      index: seq,
      entry,
      decoded: d.value,
      party: who === 'A' ? A : B,
      ...(event === undefined ? {} : { event, salt }),
    });
  };
  const ev = (fields: Record<string, unknown>): ChannelEvent => {
    n++;
    return { v: 1, id: eventIdFrom(rnd16(n)), at: t0 + records.length * 60_000, ...fields } as ChannelEvent;
  };
  add('A', 'commit');
  add('A', 'welcome');
  add('A', 'application', ev({ kind: 'outreach', from: A, to: B, note: 'Shall we talk?' }));
  add('B', 'application', ev({ kind: 'channel.accept' }));
  add('A', 'application', ev({ kind: 'heartbeat', intervalMs: 60_000 }));
  add('B', 'application', ev({ kind: 'heartbeat', intervalMs: 60_000 }));
  const points = ev({ kind: 'points', title: 'Conditions', items: ['one', 'two'] });
  add('B', 'application', points);
  add('A', 'application', ev({ kind: 'receipt', type: 'read', of: [points.id] }));
  const message = ev({ kind: 'message', text: 'We accept point 2 in principle.' });
  add('A', 'application', message);
  const saltA = rnd16(50);
  const saltB = rnd16(51);
  const textA = 'Frank and useful talks.';
  const textB = 'Frank talks; we meet again.';
  add(
    'A',
    'application',
    ev({ kind: 'readout', round: 'r1', commitment: readoutCommitment('r1', textA, saltA) }),
  );
  add(
    'B',
    'application',
    ev({ kind: 'readout', round: 'r1', commitment: readoutCommitment('r1', textB, saltB) }),
  );
  add('A', 'application', ev({ kind: 'readout', round: 'r1', text: textA, salt: saltA }));
  add('B', 'application', ev({ kind: 'readout', round: 'r1', text: textB, salt: saltB }));
  for (let i = 0; i < 50; i++)
    add(i % 2 === 0 ? 'A' : 'B', 'application', ev({ kind: 'message', text: `filler ${i}` }));
  // A signed text: B signs revision 0, A amends it (revision 1), then both sign revision 1.
  const rev0 = firstRevision({
    channel,
    nonce: rnd16(77),
    type: 'signed-text',
    title: 'Joint statement',
    languages: ['en', 'fr'],
    author: A,
    channelParties: [A, B],
    clauses: [
      {
        id: 'resume',
        text: {
          en: ['The parties note the resumption of contact.'],
          fr: ['Les parties prennent acte de la reprise du contact.'],
        },
      },
      {
        id: 'talks',
        text: { en: ['Talks continue in Geneva.'], fr: ['Les pourparlers se poursuivent à Genève.'] },
      },
    ],
  });
  const doc = options.docId ?? rev0.doc;
  const rev1 = nextRevision({ ...rev0, doc }, A, [
    { op: 'set', clause: 'talks', lang: 'en', segments: ['Talks continue in Geneva next month.'] },
    {
      op: 'set',
      clause: 'talks',
      lang: 'fr',
      segments: ['Les pourparlers se poursuivent à Genève le mois prochain.'],
    },
  ]);
  const sign = (who: 'A' | 'B', rev: RevisionBody) =>
    ev({
      kind: 'doc.sign',
      ...signSignoff(
        { doc, revision: revisionHash(rev), level: 'sign', signedAt: t0 + records.length * 60_000 },
        who === 'A' ? certA : certB,
        (who === 'A' ? devA : devB).secretKey,
      ),
    });
  // A heartbeat stating the sender's view as the SDK does: the last entry folded and the last
  // lifecycle change up to there.
  const beat = (who: 'A' | 'B', view?: { seen: number; lifecycle: number }) =>
    add(
      who,
      'application',
      ev({
        kind: 'heartbeat',
        intervalMs: 60_000,
        view: view ?? { seen: records.length - 1, lifecycle: state.lifecycleHistory.at(-1)?.seq ?? 0 },
      }),
    );
  const change = (step: LifecycleStep) => {
    if (step === 'beats') {
      beat('A');
      beat('B');
    } else
      add(
        'A',
        'application',
        ev(
          step === 'suspend'
            ? { kind: 'channel.suspend', reason: 'consultations' }
            : { kind: 'channel.reopen' },
        ),
      );
  };
  const [before = [], between = [], after = []] = options.lifecycle ?? [];
  add('A', 'application', ev({ kind: 'doc.revision', ...rev0, doc }));
  add('B', 'application', sign('B', { ...rev0, doc }));
  add('A', 'application', ev({ kind: 'doc.revision', ...rev1 }));
  before.forEach(change);
  const signA = records.length;
  add('A', 'application', sign('A', rev1));
  between.forEach(change);
  const signB = records.length;
  add('B', 'application', sign('B', rev1));
  after.forEach(change);
  const beats = [records.length, records.length + 1];
  beat('A');
  beat('B', options.bView);

  const relay = makeVerifierKey('relay.test', keyPairFromSeed(RELAY_SEED).publicKey);
  const cosigTime = Math.floor((t0 + records.length * 60_000) / 1000) + 60;
  const checkpoint = relayCheckpoint(
    channel,
    records.map((r) => leafHash(r.entry)),
    WITNESSES,
    cosigTime,
  );
  const certs = new Map([
    [certA.body.device as string, certA],
    [certB.body.device as string, certB],
  ]);
  return {
    snap: { channel, records, checkpoint, certificate: (d) => certs.get(d) },
    channel,
    A,
    B,
    roots: [rootA.publicKey, rootB.publicKey],
    relayKey: encodeVerifierKey(relay),
    witnessKeys: WITNESSES.map((w) =>
      encodeVerifierKey(cosignatureKey(w.name, keyPairFromSeed(w.seed).publicKey)),
    ),
    issuerA: { certificate: certA, secretKey: devA.secretKey },
    issuerB: { certificate: certB, secretKey: devB.secretKey },
    ids: { points: points.id, message: message.id, doc },
    now: t0 + 365 * 86_400_000 - 1,
    state,
    refused,
    at: { signA, signB, beats },
  };
}
