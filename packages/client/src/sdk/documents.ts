/**
 * Negotiated documents on one channel: drafting, brackets, sign-off, diff and export.
 * Every operation reads the channel's folded state (sync first) and sends doc.* events; the
 * channel reducer checks the rules before anything is encrypted (see protocol documents/).
 */
import {
  type ClauseDiff,
  type ClauseStatus,
  clauseHash,
  constantTimeEqual,
  clauseStatus,
  DOCUMENT_TYPE_NAMES,
  encodeCanonical,
  type DocumentState,
  type DocumentStatus,
  type DocumentType,
  diffRevisions,
  documentStatus,
  type EditStep,
  type EventId,
  type ExportedDocument,
  exportDocument,
  firstRevision,
  headOf,
  nextRevision,
  type PartyId,
  parseSegments,
  renderSegments,
  type SignoffLevel,
  signSignoff,
  toHex,
} from '@backchannel/protocol';
import type { Channel, DraftEvent } from './channel.ts';
import type { Backchannel } from './client.ts';
import { ClientError } from './errors.ts';
import { MAX_DISCLOSABLE_EVENT_BYTES } from './join.ts';

export interface NewDocument {
  readonly type: DocumentType;
  readonly title: string;
  readonly languages: readonly string[];
  /** Clause id and its text per language; `{{a | b}}` marks bracketed alternatives. */
  readonly clauses: ReadonlyArray<{ readonly id: string; readonly text: Readonly<Record<string, string>> }>;
}

export interface DocumentView {
  readonly id: EventId;
  readonly type: DocumentType;
  readonly typeName: string;
  readonly title: string;
  readonly languages: readonly string[];
  readonly parties: readonly PartyId[];
  readonly head: { readonly n: number; readonly hash: string; readonly author: PartyId | null };
  readonly status: Omit<DocumentStatus, 'head'>;
  readonly clauses: ReadonlyArray<{
    readonly id: string;
    readonly text: Readonly<Record<string, string>>;
    readonly status: Readonly<Record<string, { status: ClauseStatus; agreedBy: PartyId[] }>>;
    readonly comments: ReadonlyArray<{ lang: string | null; text: string; by: PartyId | null; n: number }>;
  }>;
  readonly revisions: ReadonlyArray<{
    readonly n: number;
    readonly hash: string;
    readonly author: PartyId | null;
    readonly touched: ReadonlyArray<{ clause: string; lang: string }>;
    readonly cleared: ReadonlyArray<{ clause: string; lang: string; parties: readonly PartyId[] }>;
  }>;
}

export class Documents {
  readonly #bc: Backchannel;
  readonly #ch: Channel;

  constructor(bc: Backchannel, ch: Channel) {
    this.#bc = bc;
    this.#ch = ch;
  }

  list(): DocumentView[] {
    return Object.values(this.#ch.view.state.documents).map((d) => viewOf(d));
  }

  /** A document by id or unique id prefix. */
  get(idOrPrefix: string): DocumentState {
    const docs = this.#ch.view.state.documents;
    const exact = docs[idOrPrefix];
    if (exact !== undefined) return exact;
    const hits = Object.keys(docs).filter((k) => idOrPrefix.length >= 4 && k.startsWith(idOrPrefix));
    const hit = hits.length === 1 ? docs[hits[0] as string] : undefined;
    if (hit === undefined) {
      throw new ClientError(
        'DOCUMENT_UNKNOWN',
        `channel ${this.#ch.id} has ${hits.length > 1 ? 'several documents' : 'no document'} matching ${idOrPrefix} (see \`backchannel doc list ${this.#ch.id}\`)`,
      );
    }
    return hit;
  }

  show(idOrPrefix: string): DocumentView {
    return viewOf(this.get(idOrPrefix));
  }

  async create(input: NewDocument): Promise<EventId> {
    const me = this.#bc.identity.party;
    const by = input.type === 'non-paper' ? undefined : me;
    const body = firstRevision({
      channel: this.#ch.id,
      nonce: globalThis.crypto.getRandomValues(new Uint8Array(16)),
      type: input.type,
      title: input.title,
      languages: input.languages,
      author: me,
      channelParties: this.#ch.view.state.parties,
      clauses: input.clauses.map((c) => ({
        id: c.id,
        text: Object.fromEntries(Object.entries(c.text).map(([l, t]) => [l, parseSegments(t, by)])),
      })),
    });
    await this.#ch.send(checkSize({ kind: 'doc.revision', ...body } as DraftEvent));
    return body.doc;
  }

  async edit(idOrPrefix: string, steps: readonly EditStep[]): Promise<EventId> {
    const d = this.get(idOrPrefix);
    const body = nextRevision(headOf(d).body, this.#bc.identity.party, steps);
    return this.#ch.send(checkSize({ kind: 'doc.revision', ...body } as DraftEvent));
  }

  /** Parses `{{a | b}}` markup with this party as proposer (none in a non-paper). */
  segments(idOrPrefix: string, text: string) {
    const d = this.get(idOrPrefix);
    return parseSegments(text, d.type === 'non-paper' ? undefined : this.#bc.identity.party);
  }

  async comment(idOrPrefix: string, clause: string, text: string, lang?: string): Promise<EventId> {
    const d = this.get(idOrPrefix);
    return this.#ch.send({
      kind: 'doc.comment',
      doc: d.id,
      clause,
      text,
      ...(lang === undefined ? {} : { lang }),
    } as DraftEvent);
  }

  /** Agrees clauses of the head revision: one sign-off per clause and language. */
  async agree(idOrPrefix: string, clauses: ReadonlyArray<{ id: string; lang: string }>): Promise<EventId[]> {
    const d = this.get(idOrPrefix);
    const head = headOf(d);
    const drafts = clauses.map((c) => {
      const segs = head.body.clauses.find((x) => x.id === c.id)?.text[c.lang];
      if (segs === undefined)
        throw new ClientError(
          'INVALID_ARGUMENT',
          `revision ${head.body.n} has no clause ${c.id} in ${c.lang}`,
        );
      return this.#signDraft(d, 'agree', {
        id: c.id,
        lang: c.lang,
        hash: clauseHash(d.id, c.id, c.lang, segs),
      });
    });
    return this.#ch.sendMany(drafts);
  }

  /** Initials or signs the head revision. */
  async signRevision(idOrPrefix: string, level: 'initial' | 'sign'): Promise<EventId> {
    const d = this.get(idOrPrefix);
    const head = headOf(d);
    const what = level === 'sign' ? 'sign' : 'initial';
    if (head.body.clauses.length === 0)
      throw new ClientError(
        'INVALID_ARGUMENT',
        `revision ${head.body.n} has no clause: there is no text to ${what}`,
      );
    const me = this.#bc.identity.device;
    if (
      d.signoffs.some(
        (s) =>
          s.device === me &&
          s.level === level &&
          s.clause === undefined &&
          constantTimeEqual(s.revision, head.hash),
      )
    )
      throw new ClientError(
        'INVALID_ARGUMENT',
        `this device has already ${level === 'sign' ? 'signed' : 'initialled'} revision ${head.body.n}`,
      );
    return this.#ch.send(this.#signDraft(d, level));
  }

  #signDraft(
    d: DocumentState,
    level: SignoffLevel,
    clause?: { id: string; lang: string; hash: Uint8Array },
  ): DraftEvent {
    const id = this.#bc.identity;
    const s = signSignoff(
      {
        doc: d.id,
        revision: headOf(d).hash,
        level,
        ...(clause === undefined ? {} : { clause }),
        signedAt: this.#bc.now,
      },
      id.certificate,
      id.deviceSecretKey,
    );
    return { kind: 'doc.sign', ...s } as DraftEvent;
  }

  /** Word-level diff between two revisions (default: the head's parent and the head). */
  diff(idOrPrefix: string, from?: number, to?: number): { from: number; to: number; clauses: ClauseDiff[] } {
    const d = this.get(idOrPrefix);
    const last = d.revisions.length - 1;
    const b = to ?? last;
    const a = from ?? Math.max(0, b - 1);
    const ra = d.revisions[a];
    const rb = d.revisions[b];
    if (ra === undefined || rb === undefined)
      throw new ClientError('INVALID_ARGUMENT', `revisions run from 0 to ${last}`);
    return { from: a, to: b, clauses: diffRevisions(ra.body, rb.body) };
  }

  /** The agreed text (Markdown, Akoma Ntoso per language) and its signature bundle. */
  /**
   * The export of a revision (default: the head) with its sign-offs. An earlier revision stays
   * exportable: a text the parties signed before a later edit is still what they signed.
   */
  export(
    idOrPrefix: string,
    opts: { base?: string; draft?: boolean; revision?: number } = {},
  ): ExportedDocument {
    const d = this.get(idOrPrefix);
    const last = d.revisions.length - 1;
    const n = opts.revision ?? last;
    if (!Number.isSafeInteger(n) || n < 0 || n > last)
      throw new ClientError('INVALID_ARGUMENT', `revisions run from 0 to ${last}`);
    const upTo = { ...d, revisions: d.revisions.slice(0, n + 1) };
    if (opts.draft !== true && !documentStatus(upTo).agreed) {
      // The latest agreed revision, if an edit came after it.
      const agreedAt = d.revisions.findLastIndex(
        (_r, i) => documentStatus({ ...d, revisions: d.revisions.slice(0, i + 1) }).agreed,
      );
      const hint =
        opts.revision === undefined && agreedAt >= 0
          ? `; revision ${agreedAt} is agreed: export it with --revision ${agreedAt}`
          : '';
      throw new ClientError(
        'DOCUMENT_NOT_AGREED',
        `${DOCUMENT_TYPE_NAMES[d.type]} ${d.id} is not agreed at revision ${n}: not every party has signed it at the level its type requires${hint}`,
      );
    }
    const rootKeys: Record<string, Uint8Array> = {};
    for (const p of headOf(d).body.parties) {
      const k = this.#bc.rootKey(p);
      if (k === undefined)
        throw new ClientError(
          'CARD_UNKNOWN',
          `no pinned root key for party ${p}: fetch its contact card first`,
        );
      rootKeys[p] = k;
    }
    const rev = d.revisions[n] as (typeof d.revisions)[number];
    return exportDocument(d, { rootKeys, base: opts.base ?? slug(rev.body.title), revision: rev });
  }
}

/** A revision carries the whole text: refuse one that receivers would refuse as oversize. */
function checkSize(draft: DraftEvent): DraftEvent {
  // Leave room for the transport fields (v, id, at) the channel adds; the bound is the one a
  // join.context can still disclose to a device added later (join.ts), a little under one event's.
  if (encodeCanonical(draft).length > MAX_DISCLOSABLE_EVENT_BYTES - 256) {
    throw new ClientError(
      'INVALID_ARGUMENT',
      `this revision is larger than one event may be (${MAX_DISCLOSABLE_EVENT_BYTES} bytes): split the document`,
    );
  }
  return draft;
}

export function slug(title: string): string {
  const s = title
    .normalize('NFKD')
    .replace(/[^\w\s-]/g, '')
    .trim()
    .toLowerCase()
    .replace(/[\s_]+/g, '-')
    .slice(0, 60);
  return s === '' ? 'document' : s;
}

export function viewOf(d: DocumentState): DocumentView {
  const head = headOf(d);
  const { head: _h, ...status } = documentStatus(d);
  return {
    id: d.id,
    type: d.type,
    typeName: DOCUMENT_TYPE_NAMES[d.type],
    title: head.body.title,
    languages: head.body.languages,
    parties: head.body.parties,
    head: { n: head.body.n, hash: toHex(head.hash), author: head.body.author ?? null },
    status,
    clauses: head.body.clauses.map((c) => ({
      id: c.id,
      text: Object.fromEntries(head.body.languages.map((l) => [l, renderSegments(c.text[l] ?? [])])),
      status: Object.fromEntries(head.body.languages.map((l) => [l, clauseStatus(d, c.id, l)])),
      comments: d.comments
        .filter((x) => x.clause === c.id)
        .map((x) => ({ lang: x.lang ?? null, text: x.text, by: x.by ?? null, n: x.n })),
    })),
    revisions: d.revisions.map((r) => ({
      n: r.body.n,
      hash: toHex(r.hash),
      author: r.body.author ?? null,
      touched: r.touched,
      cleared: r.cleared,
    })),
  };
}
