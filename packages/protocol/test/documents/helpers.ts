/** A two-party channel folded by the real reducer, with real keys, certificates and sign-offs. */
import {
  type ChannelEvent,
  type ChannelState,
  channelIdFrom,
  clauseHash,
  type DeviceCertificate,
  type EditStep,
  type EventId,
  eventIdFrom,
  type FoldResult,
  fold,
  firstRevision,
  headOf,
  initialState,
  issueDeviceCertificate,
  type KeyPair,
  keyPairFromSeed,
  nextRevision,
  type PartyId,
  partyIdFromKey,
  type Role,
  type RevisionBody,
  type Segment,
  signSignoff,
} from '../../src/index.ts';

export interface Party {
  readonly id: PartyId;
  readonly root: KeyPair;
}
export interface Device {
  readonly party: Party;
  readonly key: KeyPair;
  readonly cert: DeviceCertificate;
  readonly role: Role;
}

let n = 0;
const bytes = (len: number, tag: number) => {
  const b = new Uint8Array(len);
  b[0] = tag;
  b[1] = (n >> 8) & 0xff;
  b[2] = n & 0xff;
  n++;
  return b;
};

export function makeParty(tag: number): Party {
  const root = keyPairFromSeed(new Uint8Array(32).fill(tag));
  return { id: partyIdFromKey(root.publicKey), root };
}

export function makeDevice(party: Party, tag: number, role: Role): Device {
  const key = keyPairFromSeed(new Uint8Array(32).fill(tag));
  const cert = issueDeviceCertificate({
    rootSecretKey: party.root.secretKey,
    rootPublicKey: party.root.publicKey,
    devicePublicKey: key.publicKey,
    name: `${role} ${tag}`,
    role,
    notBefore: 0,
    notAfter: 4_000_000_000_000,
  });
  return { party, key, cert, role };
}

export type Draft = ChannelEvent extends infer E
  ? E extends ChannelEvent
    ? Omit<E, 'v' | 'id' | 'at'>
    : never
  : never;

export class World {
  state: ChannelState;
  seq = 0;
  clock = 1_700_000_000_000;
  readonly A = makeParty(1);
  readonly B = makeParty(2);
  readonly aPrincipal = makeDevice(this.A, 11, 'principal');
  readonly aNegotiator = makeDevice(this.A, 12, 'negotiator');
  readonly aStaff = makeDevice(this.A, 13, 'staff');
  readonly bPrincipal = makeDevice(this.B, 21, 'principal');
  readonly bNegotiator = makeDevice(this.B, 22, 'negotiator');

  constructor() {
    this.state = initialState(channelIdFrom(bytes(16, 0xcc)));
    this.must(this.aPrincipal, { kind: 'outreach', from: this.A.id, to: this.B.id, note: 'hello' });
    this.must(this.bPrincipal, { kind: 'channel.accept' });
  }

  newId(): EventId {
    return eventIdFrom(bytes(16, 0xee));
  }

  send(dev: Device, draft: Draft, id: EventId = this.newId()): FoldResult {
    this.clock += 1000;
    const event = { ...draft, v: 1, id, at: this.clock } as ChannelEvent;
    const r = fold(this.state, {
      event,
      sender: { device: dev.cert.body.device, party: dev.party.id, role: dev.role },
      seq: this.seq++,
      receivedAt: this.clock,
    });
    if (r.ok) this.state = r.state;
    return r;
  }

  must(dev: Device, draft: Draft, id?: EventId): void {
    const r = this.send(dev, draft, id);
    if (!r.ok) throw new Error(`refused ${draft.kind}: ${r.code} ${r.reason}`);
  }

  doc(id: EventId) {
    const d = this.state.documents[id];
    if (d === undefined) throw new Error(`no document ${id}`);
    return d;
  }

  head(id: EventId): RevisionBody {
    return headOf(this.doc(id)).body;
  }

  create(
    dev: Device,
    type: RevisionBody['docType'],
    languages: string[],
    clauses: Array<{ id: string; text: Record<string, Segment[]> }>,
  ): EventId {
    const body = firstRevision({
      channel: this.state.channel,
      nonce: bytes(16, 0xdd),
      type,
      title: 'Joint statement',
      languages,
      clauses,
      author: dev.party.id,
      channelParties: this.state.parties,
    });
    this.must(dev, { kind: 'doc.revision', ...body });
    return body.doc;
  }

  edit(dev: Device, doc: EventId, steps: EditStep[]): FoldResult {
    return this.send(dev, { kind: 'doc.revision', ...nextRevision(this.head(doc), dev.party.id, steps) });
  }

  signoff(
    dev: Device,
    doc: EventId,
    level: 'agree' | 'initial' | 'sign',
    clause?: { id: string; lang: string },
    revision?: number,
  ): FoldResult {
    const d = this.doc(doc);
    const rev = revision === undefined ? headOf(d) : d.revisions[revision];
    if (rev === undefined) throw new Error('no such revision');
    const segs =
      clause === undefined ? undefined : rev.body.clauses.find((c) => c.id === clause.id)?.text[clause.lang];
    const s = signSignoff(
      {
        doc,
        revision: rev.hash,
        level,
        ...(clause === undefined
          ? {}
          : { clause: { ...clause, hash: clauseHash(doc, clause.id, clause.lang, segs ?? []) } }),
        signedAt: this.clock,
      },
      dev.cert,
      dev.key.secretKey,
    );
    return this.send(dev, { kind: 'doc.sign', ...s, doc });
  }
}

export const plain = (s: string): Segment[] => [s];
