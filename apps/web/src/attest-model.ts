/**
 * The attestation screen's logic, kept free of React: which claim kinds the screen can build,
 * the form → SDK request, the events a claim may point at, and what a finished file reveals —
 * in plain words, read from the signed document itself (not from what we meant to put in it).
 */
import {
  type Attestation,
  type AttestRequest,
  type ChannelState,
  constantTimeEqual,
  type EventRecord,
  requiredSignoff,
} from '@backchannel/client/browser';
import { isReadable, type Readable } from './model.ts';

/**
 * The kinds this screen has a form for. The protocol (ATTESTATION_KINDS) and the SDK may know
 * more: the screen lists those too, with a message, until a form is added here.
 */
const BUILDABLE = ['outreach', 'liveness', 'delivery', 'disclosure', 'readouts', 'agreed'] as const;
export type BuildableKind = (typeof BUILDABLE)[number];
type BuildableRequest = Extract<AttestRequest, { kind: BuildableKind }>;

export function canBuild(kind: string): kind is BuildableKind {
  return (BUILDABLE as readonly string[]).includes(kind);
}

export interface KindInfo {
  /** A short name for the choice. */
  readonly title: string;
  /** The claim, as a reader of the file would put it. */
  readonly claims: string;
  /** What the file shows beyond the claim. */
  readonly reveals: string;
}

/** docs/ATTESTATIONS.md, "The kinds of claim", in one line each. */
const KIND_INFO: Readonly<Record<string, KindInfo>> = {
  outreach: {
    title: 'Outreach',
    claims: 'Party X reached out to party Y at time T (and, if so, that this opened the channel).',
    reveals: 'The short cover note of that outreach; nothing said afterwards.',
  },
  liveness: {
    title: 'Liveness',
    claims: 'As of now, every party sent a heartbeat within the last H hours: the line is open and attended.',
    reveals: 'Only the heartbeats (automatic signals with no content).',
  },
  delivery: {
    title: 'Delivery',
    claims: 'An event from X, logged at T, was acknowledged (received or read) by Y at T2.',
    reveals: "Nothing of the event's content; only the other party's acknowledgement.",
  },
  disclosure: {
    title: 'Disclosure',
    claims: 'X sent exactly this text at T.',
    reveals: 'That one event, in full; nothing else.',
  },
  readouts: {
    title: 'Read-outs',
    claims:
      'After a round of talks, every party committed to its public read-out before any was published; here they are.',
    reveals: 'The published read-outs of that round (public anyway).',
  },
  agreed: {
    title: 'Agreed text',
    claims: 'Parties X and Y both signed revision R of document D; its text is this.',
    reveals: 'The agreed text of that revision.',
  },
};

export function kindInfo(kind: string): KindInfo {
  return (
    KIND_INFO[kind] ?? {
      title: kind,
      claims: `A “${kind}” claim about this channel.`,
      reveals: 'See docs/ATTESTATIONS.md.',
    }
  );
}

/** The screen's form, as typed (strings until checked). */
export interface AttestForm {
  readonly kind: string;
  readonly which: 'first' | 'latest';
  readonly withinHours: string;
  readonly event: string;
  readonly receipt: 'delivered' | 'read';
  readonly round: string;
  /** Agreed text: `<document id>#<revision>` from agreedChoices. */
  readonly agreed: string;
}

export const EMPTY_FORM: AttestForm = {
  kind: 'outreach',
  which: 'first',
  withinHours: '24',
  event: '',
  receipt: 'delivered',
  round: '',
  agreed: '',
};

export type FormCheck =
  | { readonly ok: true; readonly request: BuildableRequest }
  | { readonly ok: false; readonly error: string };

const MAX_HOURS = 24 * 366;

/** The SDK request for a filled form, or what is missing, in words. */
export function requestOf(f: AttestForm): FormCheck {
  if (!canBuild(f.kind))
    return {
      ok: false,
      error: `This screen cannot build a “${f.kind}” attestation yet. The verifier already checks them; create one with the command line when it supports it.`,
    };
  switch (f.kind) {
    case 'outreach':
      return { ok: true, request: { kind: 'outreach', which: f.which } };
    case 'liveness': {
      const h = Number(f.withinHours);
      if (!Number.isSafeInteger(h) || h < 1 || h > MAX_HOURS)
        return { ok: false, error: `The window must be a whole number of hours from 1 to ${MAX_HOURS}.` };
      return { ok: true, request: { kind: 'liveness', withinHours: h } };
    }
    case 'delivery':
      if (f.event === '') return { ok: false, error: 'Choose the event whose delivery to prove.' };
      return { ok: true, request: { kind: 'delivery', event: f.event as never, receipt: f.receipt } };
    case 'disclosure':
      if (f.event === '') return { ok: false, error: 'Choose the event to disclose.' };
      return { ok: true, request: { kind: 'disclosure', event: f.event as never } };
    case 'readouts':
      if (f.round === '') return { ok: false, error: 'Choose the round whose read-outs to prove.' };
      return { ok: true, request: { kind: 'readouts', round: f.round } };
    case 'agreed': {
      const m = /^(e_[A-Za-z0-9_-]{22})#(\d+)$/.exec(f.agreed);
      if (m === null) return { ok: false, error: 'Choose the agreed revision of a document.' };
      return { ok: true, request: { kind: 'agreed', doc: m[1] as string, revision: Number(m[2]) } };
    }
  }
}

export interface EventChoice {
  readonly id: string;
  readonly label: string;
  /** Inside the checkpoint this device verified (only those can be proven yet). */
  readonly verified: boolean;
}

const MAX_LABEL = 60;
function clip(s: string): string {
  return s.length > MAX_LABEL ? `${s.slice(0, MAX_LABEL - 1)}…` : s;
}

/** The human part of an event (or its JSON form): its text, note, title or name, if any. */
export function eventSummary(e: Readonly<Record<string, unknown>>): string {
  for (const k of ['title', 'text', 'note', 'name', 'round'] as const) {
    const v = e[k];
    if (typeof v === 'string' && v !== '') return clip(v);
  }
  return '';
}

/** Kinds with nothing to disclose or prove delivery of (automatic or bookkeeping events). */
const CONTENTLESS = new Set(['receipt', 'heartbeat']);

function readable(timeline: readonly EventRecord[]): Readable[] {
  return timeline.filter(isReadable).filter((r) => r.status === 'ok' && !CONTENTLESS.has(r.event.kind));
}

function label(r: Readable, nameOf: (p: string) => string): string {
  const s = eventSummary(r.event as unknown as Record<string, unknown>);
  return `${r.event.kind} from ${nameOf(r.party)}${s === '' ? '' : `: ${s}`}`;
}

/** Events a disclosure may reveal: every readable event with content, newest first. */
export function disclosureChoices(
  timeline: readonly EventRecord[],
  checkpointSize: number,
  nameOf: (p: string) => string,
): EventChoice[] {
  return readable(timeline)
    .map((r) => ({ id: r.event.id, label: label(r, nameOf), verified: r.seq < checkpointSize }))
    .reverse();
}

/** Events another party has acknowledged (delivered, or read when `receipt` is 'read'), newest first. */
export function deliveryChoices(
  timeline: readonly EventRecord[],
  state: ChannelState,
  checkpointSize: number,
  receipt: 'delivered' | 'read',
  nameOf: (p: string) => string,
): EventChoice[] {
  return readable(timeline)
    .filter((r) => {
      const st = state.receipts.get(r.event.id);
      if (st === undefined) return false;
      const acks = receipt === 'read' ? st.read : { ...st.delivered, ...st.read };
      return Object.keys(acks).some((p) => p !== r.party);
    })
    .map((r) => ({ id: r.event.id, label: label(r, nameOf), verified: r.seq < checkpointSize }))
    .reverse();
}

/** Read-out rounds every party has committed to and then published. */
export function publishedRounds(state: ChannelState): string[] {
  return Object.entries(state.readouts)
    .filter(([, by]) => state.parties.every((p) => by[p] !== undefined && !by[p].committed))
    .map(([round]) => round);
}

export interface AgreedChoice {
  /** `<document id>#<revision>`, the form's value. */
  readonly id: string;
  readonly label: string;
  /** The revision and every sign-off on it are inside the checkpoint this device verified. */
  readonly verified: boolean;
}

/**
 * Revisions that every party the revision names signed at the level its document type requires
 * (initialled ad referendum, or signed), newest first: the texts an agreed-text claim can prove.
 */
export function agreedChoices(state: ChannelState, checkpointSize: number): AgreedChoice[] {
  const out: AgreedChoice[] = [];
  for (const doc of Object.values(state.documents)) {
    const need = requiredSignoff(doc.type);
    if (need === undefined) continue;
    for (const rev of doc.revisions) {
      const signs = rev.body.parties.map((p) =>
        doc.signoffs.find(
          (s) => s.party === p && s.level === need.level && constantTimeEqual(s.revision, rev.hash),
        ),
      );
      if (signs.length === 0 || signs.some((s) => s === undefined)) continue;
      const seqs = [rev.seq, ...signs.map((s) => s?.seq ?? Number.POSITIVE_INFINITY)];
      out.push({
        id: `${doc.id}#${rev.body.n}`,
        label: `${clip(rev.body.title)} — revision ${rev.body.n}, ${need.level === 'sign' ? 'signed' : 'initialled'} by all`,
        verified: seqs.every((q) => q < checkpointSize),
      });
    }
  }
  return out.reverse();
}

/** What the signed file shows a reader, line by line, read from the document itself. */
export function revealsOf(doc: Attestation): string[] {
  const out: string[] = [];
  const contentless = new Map<string, number>();
  for (const d of doc.disclosures) {
    const e = d.event;
    if (e === null || typeof e !== 'object' || Array.isArray(e)) continue;
    const kind = typeof e.kind === 'string' ? e.kind : 'event';
    const s = eventSummary(e);
    if (CONTENTLESS.has(kind) || s === '') contentless.set(kind, (contentless.get(kind) ?? 0) + 1);
    else
      out.push(
        `The full content of one ${kind} event (“${s}”), with the salt that ties it to its sender's signature.`,
      );
  }
  for (const [kind, n] of contentless)
    out.push(
      `${n} ${kind} event${n === 1 ? '' : 's'} (no content beyond who sent ${n === 1 ? 'it' : 'them'} and when).`,
    );
  out.push(
    doc.entries.length === 1
      ? "1 log entry in encrypted form, with its proof of inclusion in the relay's signed log — unreadable without the channel's keys."
      : `${doc.entries.length} log entries in encrypted form, each with its proof of inclusion in the relay's signed log — unreadable without the channel's keys.`,
  );
  const n = doc.certificates.length;
  out.push(
    `The signing device's certificate${n === 0 ? '' : ` and ${n} sender certificate${n === 1 ? '' : 's'}`}: each device's name, role and party.`,
  );
  out.push("The relay's checkpoint: the channel id, the number of entries in its log and their root hash.");
  return out;
}

function stamp(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19).replaceAll(':', '').replace('T', '-');
}

export function attestationFileName(doc: Attestation): string {
  return `attestation-${doc.claim.kind}-${doc.claim.channel}-${stamp(doc.issuedAt)}.json`;
}

export function keysFileName(channel: string): string {
  return `public-keys-${channel}.json`;
}
