/**
 * What each claim kind needs from the proven entries. Every check here runs after the entries
 * were shown to be in the relay-signed log, signed by certified devices, and after each
 * disclosed event was matched to its sender's commitment.
 */
import { constantTimeEqual, toBase64url } from '../bytes/index.ts';
import {
  checkRevisionBody,
  DOCUMENT_TYPE_NAMES,
  documentId,
  renderSegments,
  requiredSignoff,
  revisionBody,
  revisionHash,
  rolesFor,
} from '../documents/model.ts';
import { verifySignoff } from '../documents/signoff.ts';
import { openBrackets } from '../documents/state.ts';
import type { DecodedEntry } from '../envelope/entry.ts';
import type { ProtocolErrorCode } from '../errors.ts';
import type { DocumentType } from '../events/documents.ts';
import type { ChannelEvent, EventOf } from '../events/event.ts';
import type { Role } from '../identity/certificate.ts';
import type { SignatureSuite } from '../identity/keys.ts';
import type { EventId, PartyId } from '../ids.ts';
import type { Claim, ClaimOf } from './document.ts';
import { type DiffPart, renderWordDiff, verifyReadoutCommitment, wordDiff } from './readout.ts';

export interface ReadoutComparison {
  readonly round: string;
  readonly texts: ReadonlyArray<{
    readonly party: PartyId;
    readonly text: string;
    readonly revealedAt: number;
  }>;
  readonly lastCommitAt: number;
  readonly diff: readonly DiffPart[];
}

/** The text an agreed-text attestation proves both sides signed, as people read it. */
export interface AgreedText {
  readonly doc: EventId;
  readonly title: string;
  readonly docType: DocumentType;
  /** The type as people say it ("Signed text"). */
  readonly typeName: string;
  readonly revision: number;
  /** The revision hash (base64url), recomputed from the text. */
  readonly hash: string;
  readonly languages: readonly string[];
  readonly clauses: ReadonlyArray<{ readonly id: string; readonly text: Readonly<Record<string, string>> }>;
  readonly signatures: ReadonlyArray<{
    readonly party: PartyId;
    readonly role: Role;
    readonly level: 'initial' | 'sign';
    /** The signer's own clock, as signed. */
    readonly signedAt: number;
    /** The relay's time for the signature's entry. */
    readonly loggedAt: number;
    readonly index: number;
  }>;
}

/** One log entry the attestation proved: in the log, signed by a certified device. */
export interface ProvenEntry {
  readonly index: number;
  readonly decoded: DecodedEntry;
  readonly party: PartyId;
  readonly role: Role;
  /** The plaintext, when the attestation discloses it (checked against the signed commitment). */
  readonly event?: ChannelEvent;
}

export interface ClaimContext {
  readonly claim: Claim;
  readonly issuerParty: PartyId;
  readonly issuedAt: number;
  readonly entries: ReadonlyMap<number, ProvenEntry>;
  readonly checkpointSize: number;
  readonly now: number;
  readonly skewMs: number;
  readonly maxAgeMs: number | undefined;
  /** Ed25519 backend for the signatures inside disclosed events (document sign-offs). */
  readonly suite?: SignatureSuite;
}

export type ClaimResult =
  | {
      readonly ok: true;
      readonly statement: string;
      readonly facts: readonly string[];
      readonly readouts?: ReadoutComparison;
      readonly agreed?: AgreedText;
    }
  | { readonly ok: false; readonly code: ProtocolErrorCode; readonly reason: string; readonly at: string };

const HOUR = 3_600_000;
const iso = (t: number) => new Date(t).toISOString();

type Fail = {
  readonly ok: false;
  readonly code: ProtocolErrorCode;
  readonly reason: string;
  readonly at: string;
};
const no = (code: ProtocolErrorCode, reason: string, at = 'claim'): Fail => ({ ok: false, code, reason, at });

function disclosed<K extends ChannelEvent['kind']>(
  ctx: ClaimContext,
  kind: K,
): Array<ProvenEntry & { readonly event: EventOf<K> }> {
  return [...ctx.entries.values()]
    .filter((p): p is ProvenEntry & { readonly event: EventOf<K> } => p.event?.kind === kind)
    .sort((a, b) => a.index - b.index);
}

function claimParties(c: Claim): PartyId[] {
  switch (c.kind) {
    case 'outreach':
      return [c.from, c.to];
    case 'delivery':
      return [c.from, c.by];
    case 'disclosure':
      return [c.from];
    case 'liveness':
    case 'readouts':
    case 'agreed':
      return [...c.parties];
  }
}

export function checkClaim(ctx: ClaimContext): ClaimResult {
  const c = ctx.claim;
  if (!claimParties(c).includes(ctx.issuerParty))
    return no('CLAIM_UNSUPPORTED', 'the issuer’s party is not a party to the claim it signed', 'issuer');
  if (
    ctx.issuedAt <
    Math.max(0, ...[...ctx.entries.values()].map((p) => p.decoded.entry.receivedAt)) - ctx.skewMs
  )
    return no('TIME_OUTSIDE_WINDOW', 'the attestation is dated before the entries it relies on', 'issuedAt');
  switch (c.kind) {
    case 'outreach':
      return outreach(ctx, c);
    case 'liveness':
      return liveness(ctx, c);
    case 'delivery':
      return delivery(ctx, c);
    case 'disclosure':
      return disclosure(ctx, c);
    case 'readouts':
      return readouts(ctx, c);
    case 'agreed':
      return agreed(ctx, c);
  }
}

function outreach(ctx: ClaimContext, c: ClaimOf<'outreach'>): ClaimResult | Fail {
  const found = disclosed(ctx, 'outreach').filter((p) => p.event.from === c.from && p.event.to === c.to);
  const o = found[0];
  if (o === undefined)
    return no('CLAIM_UNSUPPORTED', `no disclosed outreach from party ${c.from} to party ${c.to}`);
  if (o.party !== c.from)
    return no(
      'CLAIM_UNSUPPORTED',
      `the outreach entry was sent by a device of party ${o.party}, not ${c.from}`,
    );
  if (o.decoded.entry.receivedAt !== c.at)
    return no(
      'TIME_OUTSIDE_WINDOW',
      `the relay logged the outreach at ${iso(o.decoded.entry.receivedAt)}, not ${iso(c.at)}`,
    );
  if (c.opening) {
    for (let i = 0; i < o.index; i++) {
      const p = ctx.entries.get(i);
      if (p === undefined)
        return no(
          'CLAIM_UNSUPPORTED',
          `to show the outreach opened the channel, entry ${i} before it must be included`,
        );
      if (p.decoded.envelope.body.kind === 'application')
        return no(
          'CLAIM_UNSUPPORTED',
          `entry ${i}, before the outreach, is a message: the outreach did not open the channel`,
        );
    }
  }
  return {
    ok: true,
    statement: `Party ${c.from} reached out to party ${c.to} on ${iso(c.at)}${c.opening ? ', opening the channel' : ''}.`,
    facts: [
      `entry ${o.index} is an outreach from party ${c.from} to party ${c.to}, logged by the relay at ${iso(c.at)}`,
      ...(c.opening
        ? [`entries 0–${o.index - 1} before it are only the channel's key set-up (no messages)`]
        : []),
    ],
  };
}

function liveness(ctx: ClaimContext, c: ClaimOf<'liveness'>): ClaimResult | Fail {
  if (new Set(c.parties).size !== c.parties.length) return no('CLAIM_UNSUPPORTED', 'a party is listed twice');
  if (c.asOf > ctx.now + ctx.skewMs)
    return no('TIME_OUTSIDE_WINDOW', `the claim is as of ${iso(c.asOf)}, in the future`);
  if (c.asOf > ctx.issuedAt + ctx.skewMs)
    return no('TIME_OUTSIDE_WINDOW', 'the claim is as of a time after the attestation was signed');
  if (ctx.maxAgeMs !== undefined && ctx.now - c.asOf > ctx.maxAgeMs)
    return no('TIME_OUTSIDE_WINDOW', `the claim is as of ${iso(c.asOf)}: older than you accept`);
  const from = c.asOf - c.withinHours * HOUR;
  const beats = disclosed(ctx, 'heartbeat');
  const facts: string[] = [];
  for (const party of c.parties) {
    const mine = beats.filter((b) => b.party === party);
    if (mine.length === 0) return no('CLAIM_UNSUPPORTED', `no disclosed heartbeat from party ${party}`);
    const inside = mine.filter(
      (b) => b.decoded.entry.receivedAt >= from && b.decoded.entry.receivedAt <= c.asOf,
    );
    const last = inside.at(-1);
    if (last === undefined)
      return no(
        'TIME_OUTSIDE_WINDOW',
        `party ${party}'s heartbeat was logged at ${iso((mine.at(-1) as ProvenEntry).decoded.entry.receivedAt)}, outside the ${c.withinHours} h before ${iso(c.asOf)}`,
      );
    facts.push(
      `party ${party} sent a heartbeat, logged at ${iso(last.decoded.entry.receivedAt)} (entry ${last.index})`,
    );
  }
  return {
    ok: true,
    statement: `As of ${iso(c.asOf)}, both sides of channel ${c.channel} (${c.parties.join(', ')}) had sent heartbeats within the previous ${c.withinHours} hour(s): the line was open.`,
    facts,
  };
}

function delivery(ctx: ClaimContext, c: ClaimOf<'delivery'>): ClaimResult | Fail {
  if (c.from === c.by) return no('CLAIM_UNSUPPORTED', 'a party cannot acknowledge its own event');
  const ev = [...ctx.entries.values()].find(
    (p) => p.decoded.envelope.body.kind === 'application' && p.decoded.envelope.body.msgId === c.event,
  );
  if (ev === undefined) return no('CLAIM_UNSUPPORTED', `event ${c.event} is not among the proven entries`);
  if (ev.party !== c.from)
    return no('CLAIM_UNSUPPORTED', `event ${c.event} was sent by party ${ev.party}, not ${c.from}`);
  if (ev.decoded.entry.receivedAt !== c.at)
    return no(
      'TIME_OUTSIDE_WINDOW',
      `the relay logged event ${c.event} at ${iso(ev.decoded.entry.receivedAt)}, not ${iso(c.at)}`,
    );
  const acks = disclosed(ctx, 'receipt').filter(
    (p) => p.event.of.includes(c.event) && (c.receipt === 'delivered' || p.event.type === 'read'),
  );
  const ack = acks[0];
  if (ack === undefined)
    return no('CLAIM_UNSUPPORTED', `no disclosed ${c.receipt} receipt for event ${c.event}`);
  if (ack.party !== c.by)
    return no('CLAIM_UNSUPPORTED', `the receipt was sent by party ${ack.party}, not ${c.by}`);
  if (ack.index <= ev.index) return no('CLAIM_UNSUPPORTED', 'the receipt precedes the event in the log');
  if (ack.decoded.entry.receivedAt !== c.acknowledgedAt)
    return no(
      'TIME_OUTSIDE_WINDOW',
      `the relay logged the receipt at ${iso(ack.decoded.entry.receivedAt)}, not ${iso(c.acknowledgedAt)}`,
    );
  return {
    ok: true,
    statement: `An event from party ${c.from} logged at ${iso(c.at)} was acknowledged (${c.receipt}) by party ${c.by} at ${iso(c.acknowledgedAt)}. Its content is not revealed.`,
    facts: [
      `entry ${ev.index} is event ${c.event}, signed by a device of party ${c.from}; only its commitment is shown`,
      `entry ${ack.index} is a ${ack.event.type} receipt naming that event, signed by a device of party ${c.by}`,
    ],
  };
}

function disclosure(ctx: ClaimContext, c: ClaimOf<'disclosure'>): ClaimResult | Fail {
  const d = [...ctx.entries.values()].find((p) => p.event?.id === c.event);
  if (d?.event === undefined) return no('CLAIM_UNSUPPORTED', `event ${c.event} is not disclosed`);
  if (d.party !== c.from)
    return no('CLAIM_UNSUPPORTED', `event ${c.event} was sent by party ${d.party}, not ${c.from}`);
  if (d.decoded.entry.receivedAt !== c.at)
    return no(
      'TIME_OUTSIDE_WINDOW',
      `the relay logged event ${c.event} at ${iso(d.decoded.entry.receivedAt)}, not ${iso(c.at)}`,
    );
  return {
    ok: true,
    statement: `On ${iso(c.at)} party ${c.from} sent (${d.event.kind}) ${summarize(d.event)}`,
    facts: [
      `entry ${d.index} is event ${c.event}; the text shown is exactly what the sender committed to (salted hash), nothing else is revealed`,
    ],
  };
}

function summarize(e: ChannelEvent): string {
  switch (e.kind) {
    case 'message':
      return `“${e.text}”`;
    case 'points':
      return `“${e.title}”: ${e.items.map((x, i) => `(${i + 1}) ${x}`).join(' ')}`;
    case 'proposal':
      return `“${e.title}”: ${e.text}`;
    case 'response':
      return `${e.stance}: “${e.text}”`;
    case 'notice':
      return `“${e.title}”: ${e.text}`;
    case 'readout':
      return e.text === undefined ? '(a read-out commitment)' : `“${e.text}”`;
    case 'outreach':
      return `outreach to ${e.to}: “${e.note}”`;
    default:
      return `(${e.kind})`;
  }
}

function readouts(ctx: ClaimContext, c: ClaimOf<'readouts'>): ClaimResult | Fail {
  if (new Set(c.parties).size !== c.parties.length) return no('CLAIM_UNSUPPORTED', 'a party is listed twice');
  const all = disclosed(ctx, 'readout').filter((p) => p.event.round === c.round);
  const commits: Array<ProvenEntry & { readonly event: EventOf<'readout'> }> = [];
  const reveals: Array<ProvenEntry & { readonly event: EventOf<'readout'> }> = [];
  for (const party of c.parties) {
    const mine = all.filter((p) => p.party === party);
    const commit = mine.find((p) => p.event.commitment !== undefined && p.event.text === undefined);
    if (commit === undefined)
      return no('CLAIM_UNSUPPORTED', `no disclosed read-out commitment from party ${party}`);
    const reveal = mine.find((p) => p.event.text !== undefined && p.event.salt !== undefined);
    if (reveal === undefined) return no('CLAIM_UNSUPPORTED', `no disclosed read-out from party ${party}`);
    if (
      !verifyReadoutCommitment(
        c.round,
        reveal.event.text as string,
        reveal.event.salt as Uint8Array,
        commit.event.commitment as Uint8Array,
      )
    ) {
      return no(
        'COMMITMENT_MISMATCH',
        `party ${party}'s published read-out is not the one it committed to: it was changed`,
      );
    }
    commits.push(commit);
    reveals.push(reveal);
  }
  const lastCommit = commits.reduce((a, b) => (b.index > a.index ? b : a));
  const firstReveal = reveals.reduce((a, b) => (b.index < a.index ? b : a));
  if (firstReveal.index < lastCommit.index) {
    return no(
      'READOUT_EARLY',
      `party ${firstReveal.party} published its read-out (entry ${firstReveal.index}) before party ${lastCommit.party} had committed (entry ${lastCommit.index})`,
    );
  }
  const texts = reveals.map((r) => ({
    party: r.party,
    text: r.event.text as string,
    revealedAt: r.decoded.entry.receivedAt,
  }));
  const diff = wordDiff(texts[0]?.text ?? '', texts[1]?.text ?? '');
  return {
    ok: true,
    statement: `In round “${c.round}”, every party committed to its read-out (last commitment at ${iso(lastCommit.decoded.entry.receivedAt)}) before any was revealed: neither was written after seeing the other's.`,
    facts: [
      ...commits.map((p) => `party ${p.party} committed at entry ${p.index}`),
      ...reveals.map((p) => `party ${p.party} revealed at entry ${p.index}, matching its commitment`),
      `word-level differences: ${renderWordDiff(diff)}`,
    ],
    readouts: { round: c.round, texts, lastCommitAt: lastCommit.decoded.entry.receivedAt, diff },
  };
}

const LEVEL_WORDS = { initial: 'initialled', sign: 'signed' } as const;

/** What the heartbeats showed of the lifecycle at the counted signatures, one line per change. */
function lifecycleFacts(
  ctx: ClaimContext,
  parties: readonly PartyId[],
  chosen: ReadonlyArray<{ readonly party: PartyId; readonly index: number }>,
): string[] {
  const byHead = new Map<number, { kind: string; signs: number[]; beats: Set<number> }>();
  for (const s of chosen) {
    const r = openWhenLogged(ctx, parties, s.party, s.index);
    if (!r.ok) continue;
    const f = byHead.get(r.head) ?? { kind: r.kind, signs: [], beats: new Set<number>() };
    f.signs.push(s.index);
    for (const b of r.beats) f.beats.add(b);
    byHead.set(r.head, f);
  }
  return [...byHead].map(
    ([head, f]) =>
      `the channel was open at entries ${f.signs.sort((a, b) => a - b).join(', ')}: its last lifecycle change before them is entry ${head} (a ${f.kind}), as the heartbeats of every party (entries ${[...f.beats].sort((a, b) => a - b).join(', ')}) state`,
  );
}

/** The events after which the channel is open (docs/PROTOCOL.md §10). */
const OPENING: ReadonlySet<ChannelEvent['kind']> = new Set(['channel.accept', 'channel.reopen']);

/**
 * Why the channel cannot be shown open when entry `at` (party `party`'s sign-off) was logged
 * (undefined: it was open). Lifecycle events are encrypted like any other, so the verifier cannot
 * see an undisclosed suspension; instead every party of the claim vouches for the lifecycle with a
 * disclosed heartbeat whose `view` (checked by every member's reducer) covers the entry: as of
 * `seen` ≥ `at`, the last lifecycle change was entry `lifecycle` ≤ `at`. The views must agree, and
 * that change, disclosed, must be an accept or a reopen. A party that misstates its view can only
 * make the claim fail, unless every party of the claim does.
 */
function openWhenLogged(
  ctx: ClaimContext,
  parties: readonly PartyId[],
  party: PartyId,
  at: number,
): Fail | { readonly ok: true; readonly head: number; readonly kind: string; readonly beats: number[] } {
  const views = disclosed(ctx, 'heartbeat').filter(
    (h) =>
      h.event.view !== undefined &&
      h.event.view.seen < h.index &&
      h.event.view.seen >= at &&
      h.event.view.lifecycle <= at,
  );
  for (const p of parties)
    if (!views.some((h) => h.party === p))
      return no(
        'CLAIM_UNSUPPORTED',
        `no disclosed heartbeat of party ${p} states the channel's lifecycle at entry ${at} (party ${party}'s signature): it cannot be shown the channel was open then`,
        'disclosures',
      );
  const heads = new Set(views.map((h) => h.event.view?.lifecycle));
  if (heads.size !== 1)
    return no(
      'LIFECYCLE_VIEW_INVALID',
      `the parties' heartbeats disagree on the last lifecycle change before entry ${at}: entries ${[...heads].join(', ')}`,
      'disclosures',
    );
  const head = views[0]?.event.view?.lifecycle as number;
  const change = ctx.entries.get(head)?.event;
  if (change === undefined)
    return no(
      'CLAIM_UNSUPPORTED',
      `the last lifecycle change before entry ${at} (entry ${head}) is not disclosed`,
      'disclosures',
    );
  if (!OPENING.has(change.kind))
    return no(
      'CHANNEL_NOT_OPEN',
      `party ${party}'s signature (entry ${at}) was logged while the channel was not open: the last lifecycle change before it is entry ${head}, a ${change.kind}`,
      'disclosures',
    );
  return { ok: true, head, kind: change.kind, beats: views.map((h) => h.index) };
}

function agreed(ctx: ClaimContext, c: ClaimOf<'agreed'>): ClaimResult | Fail {
  if (new Set(c.parties).size !== c.parties.length) return no('CLAIM_UNSUPPORTED', 'a party is listed twice');
  const rev = disclosed(ctx, 'doc.revision').find((p) => p.event.doc === c.doc && p.event.n === c.revision);
  if (rev === undefined)
    return no(
      'CLAIM_UNSUPPORTED',
      `the text of revision ${c.revision} of document ${c.doc} is not disclosed`,
    );
  const body = revisionBody(rev.event);
  const valid = checkRevisionBody(body);
  if (!valid.ok) return no(valid.code, `revision ${c.revision} is not a valid revision: ${valid.reason}`);
  if (body.docType === 'non-paper')
    return no('DOC_SIGNATURE_FORBIDDEN', 'a non-paper is never signed: it cannot be an agreed text');
  // The id is recomputed from the revision's header (type, title, languages, parties, nonce) and
  // the claim's channel: the title and type shown below are the ones the id names.
  if (documentId(c.channel, body) !== c.doc)
    return no(
      'DOC_ID_MISMATCH',
      `document ${c.doc} is not the id of this revision's header (title, type, languages, parties) in channel ${c.channel}`,
    );
  if (rev.party !== body.author)
    return no(
      'CLAIM_UNSUPPORTED',
      `revision ${c.revision} names party ${body.author} as its author but was sent by party ${rev.party}`,
    );
  // The hash every signature covers is recomputed from the disclosed text itself.
  const hash = revisionHash(body);
  if (toBase64url(hash) !== c.hash)
    return no(
      'DOC_TEXT_MISMATCH',
      `the disclosed text of revision ${c.revision} hashes to ${toBase64url(hash)}, not to the hash the claim names`,
    );
  if (body.docType !== c.docType)
    return no('CLAIM_UNSUPPORTED', `document ${c.doc} is a ${body.docType}, not a ${c.docType}`);
  if (body.clauses.length === 0)
    return no('CLAIM_UNSUPPORTED', `revision ${c.revision} has no clause: there is no text to have agreed`);
  const listed = [...c.parties].sort().join();
  if (listed !== [...body.parties].sort().join())
    return no(
      'CLAIM_UNSUPPORTED',
      `the document's signatories are ${body.parties.join(', ')}, not ${c.parties.join(', ')}`,
    );
  const open = openBrackets(body);
  if (open.length > 0)
    return no(
      'DOC_BRACKETS_OPEN',
      `revision ${c.revision} still has bracketed passages (${open.map((o) => `${o.clause} (${o.lang})`).join(', ')}): it cannot be agreed`,
    );
  const need = requiredSignoff(body.docType);
  if (need === undefined) return no('DOC_SIGNATURE_FORBIDDEN', `a ${body.docType} is never signed`);
  const allowed = rolesFor(body.docType, need.level);
  const verb = LEVEL_WORDS[need.level];
  const signs = disclosed(ctx, 'doc.sign').filter(
    (p) => p.event.doc === c.doc && p.event.level === need.level && p.event.clause === undefined,
  );
  type Signed = ProvenEntry & { readonly event: EventOf<'doc.sign'> };
  /** Why this sign-off by `party` does not count (undefined: it counts). */
  const refusal = (party: PartyId, s: Signed): Fail | undefined => {
    if (s.index <= rev.index)
      return no(
        'CLAIM_UNSUPPORTED',
        `party ${party}'s signature (entry ${s.index}) precedes the revision in the log`,
      );
    if (!allowed.includes(s.role))
      return no(
        'ROLE_FORBIDDEN',
        `party ${party}'s signature comes from a ${s.role} device; a ${body.docType} must be ${verb} by a ${allowed.join(' or ')}`,
      );
    const checked = verifySignoff(s.event, ctx.suite);
    if (!checked.ok)
      return no('SIG_INVALID', `party ${party}'s signature over revision ${c.revision} does not verify`);
    const cb = checked.certificate.body;
    // Device ids are hashes of their public keys: a matching id binds the signature to the sender.
    if (cb.device !== s.decoded.entry.sender || cb.party !== party || cb.role !== s.role)
      return no(
        'CERT_WRONG_PARTY',
        `party ${party}'s signature carries the certificate of another device than the one that sent it`,
      );
    // The channel refuses a sign-off unless it is open (docs/PROTOCOL.md §10).
    const open = openWhenLogged(ctx, body.parties, party, s.index);
    return open.ok ? undefined : open;
  };
  const chosen: Signed[] = [];
  for (const party of body.parties) {
    const mine = signs.filter((p) => p.party === party);
    // A signature over any other revision never counts (docs/DOCUMENTS.md).
    const over = mine.filter((p) => constantTimeEqual(p.event.revision, hash));
    if (over.length === 0)
      return no(
        'DOC_NOT_AGREED',
        mine.length > 0
          ? `party ${party} ${verb} another revision, not revision ${c.revision}: a signature over any other text never counts`
          : `no disclosed signature shows that party ${party} ${verb} revision ${c.revision}`,
        'disclosures',
      );
    // The first sign-off that passes every check counts; a bad one never hides a good one.
    const s = over.find((p) => refusal(party, p) === undefined);
    if (s === undefined) return refusal(party, over[0] as Signed) as Fail;
    chosen.push(s);
  }
  const last = chosen.reduce((a, b) => (b.decoded.entry.receivedAt > a.decoded.entry.receivedAt ? b : a));
  if (last.decoded.entry.receivedAt !== c.agreedAt)
    return no(
      'TIME_OUTSIDE_WINDOW',
      `the relay logged the last signature at ${iso(last.decoded.entry.receivedAt)}, not ${iso(c.agreedAt)}`,
    );
  const typeName = DOCUMENT_TYPE_NAMES[body.docType];
  const clauses = body.clauses.map((cl) => ({
    id: cl.id,
    text: Object.fromEntries(body.languages.map((l) => [l, renderSegments(cl.text[l] ?? [])])),
  }));
  const who =
    body.parties.length === 1 ? `Party ${body.parties[0]}` : `Parties ${body.parties.join(' and ')}`;
  return {
    ok: true,
    statement: `${who} ${body.parties.length === 1 ? '' : 'each '}${verb} revision ${c.revision} of the ${typeName.toLowerCase()} “${body.title}” (document ${c.doc}); the last signature was logged on ${iso(c.agreedAt)}. Its text, in ${body.languages.join(' and ')}, is exactly the one shown.`,
    facts: [
      `entry ${rev.index} is revision ${c.revision}, written by party ${body.author}; its text hashes to ${c.hash}`,
      ...chosen.map(
        (s) =>
          `entry ${s.index}: a ${s.role} device of party ${s.party} ${verb} exactly that hash (logged at ${iso(s.decoded.entry.receivedAt)})`,
      ),
      ...lifecycleFacts(ctx, body.parties, chosen),
      ...clauses.flatMap((cl, i) =>
        body.languages.map((l) => `clause ${i + 1} (${cl.id}), ${l}: “${cl.text[l] ?? ''}”`),
      ),
    ],
    agreed: {
      doc: c.doc,
      title: body.title,
      docType: body.docType,
      typeName,
      revision: c.revision,
      hash: c.hash,
      languages: [...body.languages],
      clauses,
      signatures: chosen.map((s) => ({
        party: s.party,
        role: s.role,
        level: need.level,
        signedAt: s.event.signedAt,
        loggedAt: s.decoded.entry.receivedAt,
        index: s.index,
      })),
    },
  };
}
