/**
 * Negotiated documents: the list (every channel), a new document, and the draft screen — clauses
 * with their bracketed alternatives, per-clause status per party, language versions side by side,
 * comments, the revision chain, a word diff between any two revisions, sign-off and export.
 * Every text is rendered as React text (never as markup). Loaded lazily (see app.tsx).
 */
import {
  type Channel,
  type ClauseDiff,
  DOCUMENT_TYPES,
  type DocumentState,
  type DocumentType,
  type DocumentView,
  Documents,
  diffRevisions,
  headOf,
  isBracket,
  roleMaySend,
  type Segment,
  slug,
} from '@backchannel/client/browser';
import { type ReactNode, useEffect, useMemo, useState } from 'react';
import {
  bracketsOf,
  CLAUSE_ID_RE,
  clauseEditSteps,
  mayGive,
  nextClauseId,
  parseLanguages,
  perParty,
  stageText,
  statusText,
  toMarkup,
  typeName,
  typeRule,
} from '../documents-model.ts';
import type { Session } from '../session.ts';
import { ActionButton, errorText, Link, navigate, shortId, Txt, useSession } from '../ui.tsx';
import { PartyName, useChannels } from './channels.tsx';
import './documents.css';

const nameOf = (session: Session, id: string) => session.party(id)?.name ?? shortId(id);

export function TypeBadge(props: { type: DocumentType }): ReactNode {
  return (
    <span className="doctype" data-doctype={props.type}>
      {typeName(props.type)}
    </span>
  );
}

// ---- the list and the new-document form ----

export function DocumentsScreen(): ReactNode {
  const session = useSession();
  const channels = useChannels();
  const me = session.bc.identity.party;
  const rows = channels.flatMap((ch) => new Documents(session.bc, ch).list().map((d) => ({ ch, d })));
  return (
    <main className="documents">
      <h1>Documents</h1>
      <p className="hint">
        Negotiated texts in your channels: non-papers, aides-mémoire, agreed minutes, texts initialled ad
        referendum and signed texts, drafted clause by clause with bracketed alternatives.
      </p>
      {rows.length === 0 ? <p>No documents yet.</p> : null}
      <ul className="doc-list" aria-label="Documents">
        {rows.map(({ ch, d }) => (
          <li key={d.id} data-doc={d.id} data-stage={d.status.stage}>
            <Link to={`/documents/${ch.id}/${d.id}`} className="doc-row">
              <TypeBadge type={d.type} />
              <span className="doc-title">
                <Txt text={d.title} />
              </span>
            </Link>
            <span className="doc-meta">
              revision {d.head.n} · {stageText(d.status.stage)} · {d.languages.join(' + ')} · with{' '}
              {ch.view.state.parties
                .filter((p) => p !== me)
                .map((p) => (
                  <PartyName key={p} id={p} />
                ))}
            </span>
          </li>
        ))}
      </ul>
      {roleMaySend(session.bc.identity.certificate.body.role, 'doc.revision') ? (
        <NewDocumentForm channels={channels.filter((c) => c.view.state.lifecycle === 'open')} />
      ) : (
        <p className="hint">As an observer, this device reads documents; it does not draft or comment.</p>
      )}
    </main>
  );
}

interface ClauseDraft {
  /** Stable React key while ids are being typed. */
  key: number;
  id: string;
  text: Record<string, string>;
}

function NewDocumentForm(props: { channels: Channel[] }): ReactNode {
  const session = useSession();
  const me = session.bc.identity.party;
  const [channel, setChannel] = useState('');
  const [type, setType] = useState<DocumentType>('signed-text');
  const [title, setTitle] = useState('');
  const [langText, setLangText] = useState('en');
  const [clauses, setClauses] = useState<ClauseDraft[]>([{ key: 0, id: 'c1', text: {} }]);
  const langs = parseLanguages(langText);
  const chosen = channel !== '' ? channel : (props.channels[0]?.id ?? '');
  const badIds = clauses.filter((c) => !CLAUSE_ID_RE.test(c.id)).map((c) => c.id);
  const dupIds = new Set(clauses.map((c) => c.id)).size !== clauses.length;
  const missing = langs.ok && clauses.some((c) => langs.langs.some((l) => (c.text[l] ?? '').trim() === ''));
  const problem = !langs.ok
    ? langs.reason
    : badIds.length > 0
      ? `Clause ids are lower-case letters, digits and dashes (not "${badIds[0]}").`
      : dupIds
        ? 'Two clauses have the same id.'
        : missing
          ? 'Every clause needs a text in every language.'
          : title.trim() === ''
            ? 'Give the document a title.'
            : chosen === ''
              ? 'Open a channel first: documents live in a channel.'
              : undefined;
  const setClause = (i: number, c: ClauseDraft) => setClauses((cs) => cs.map((x, j) => (j === i ? c : x)));
  return (
    <section className="card new-doc" aria-labelledby="new-doc-h">
      <h2 id="new-doc-h">New document</h2>
      <form onSubmit={(e) => e.preventDefault()}>
        <label>
          Channel
          <select value={chosen} onChange={(e) => setChannel(e.target.value)}>
            {props.channels.map((c) => (
              <option key={c.id} value={c.id}>
                with{' '}
                {c.view.state.parties
                  .filter((p) => p !== me)
                  .map((p) => nameOf(session, p))
                  .join(', ') || shortId(c.id)}
              </option>
            ))}
          </select>
        </label>
        <label>
          Type
          <select value={type} onChange={(e) => setType(e.target.value as DocumentType)}>
            {DOCUMENT_TYPES.map((t) => (
              <option key={t} value={t}>
                {typeName(t)}
              </option>
            ))}
          </select>
        </label>
        <p className="hint">{typeRule(type)}</p>
        <label>
          Title
          <input value={title} onChange={(e) => setTitle(e.target.value)} maxLength={500} />
        </label>
        <label>
          Languages (equally authentic, e.g. "en, fr")
          <input value={langText} onChange={(e) => setLangText(e.target.value)} />
        </label>
        <p className="hint">
          In a clause, write <code>{'{{first wording | second wording}}'}</code> for a bracketed passage.
        </p>
        {clauses.map((c, i) => (
          <fieldset key={c.key} className="clause-draft">
            <legend>Clause {i + 1}</legend>
            <label>
              Clause {i + 1} id
              <input value={c.id} onChange={(e) => setClause(i, { ...c, id: e.target.value.trim() })} />
            </label>
            <TextPerLanguage
              languages={langs.ok ? langs.langs : []}
              label={(l) => `Clause ${i + 1} text (${l})`}
              rows={2}
              value={c.text}
              onChange={(l, t) => setClause(i, { ...c, text: { ...c.text, [l]: t } })}
            />
            {clauses.length > 1 ? (
              <button type="button" onClick={() => setClauses((cs) => cs.filter((_, j) => j !== i))}>
                Remove clause {i + 1}
              </button>
            ) : null}
          </fieldset>
        ))}
        <button
          type="button"
          onClick={() =>
            setClauses((cs) => [
              ...cs,
              { key: Math.max(...cs.map((x) => x.key)) + 1, id: nextClauseId(cs.map((x) => x.id)), text: {} },
            ])
          }
        >
          Add a clause
        </button>
        {problem === undefined ? null : <p className="hint">{problem}</p>}
        <ActionButton
          disabled={problem !== undefined}
          onAction={async () => {
            if (!langs.ok) return;
            const doc = await session.document(chosen, (d) =>
              d.create({
                type,
                title: title.trim(),
                languages: langs.langs,
                clauses: clauses.map((c) => ({
                  id: c.id,
                  text: Object.fromEntries(langs.langs.map((l) => [l, c.text[l] ?? ''])),
                })),
              }),
            );
            setTitle('');
            setClauses([{ key: 0, id: 'c1', text: {} }]);
            navigate(`/documents/${chosen}/${doc}`);
          }}
        >
          Create the document
        </ActionButton>
      </form>
    </section>
  );
}

// ---- one document ----

function useChannel(id: string): Channel | undefined {
  const session = useSession();
  const [ch, setCh] = useState<Channel>();
  const v = session.version;
  // biome-ignore lint/correctness/useExhaustiveDependencies: `v` (the session version) is the reload trigger
  useEffect(() => {
    let live = true;
    void session
      .run((bc) => bc.channel(id))
      .then((c) => {
        if (live) setCh(c);
      })
      .catch(() => undefined);
    return () => {
      live = false;
    };
  }, [session, id, v]);
  return ch;
}

export function DocumentScreen(props: { channel: string; doc: string }): ReactNode {
  const session = useSession();
  const ch = useChannel(props.channel);
  if (ch === undefined) return <main aria-busy="true">Loading…</main>;
  const docs = new Documents(session.bc, ch);
  let state: DocumentState;
  try {
    state = docs.get(props.doc);
  } catch {
    return (
      <main>
        <h1>Document not found</h1>
        <p>
          This device has no document {shortId(props.doc)} in that channel (yet): it may still be on its way.{' '}
          <Link to="/documents">All documents</Link>
        </p>
      </main>
    );
  }
  return <Draft key={state.id} channel={props.channel} state={state} view={docs.show(state.id)} />;
}

function Draft(props: { channel: string; state: DocumentState; view: DocumentView }): ReactNode {
  const session = useSession();
  const v = props.view;
  const me = session.bc.identity.party;
  const role = session.bc.identity.certificate.body.role;
  const act = <T,>(op: (d: Documents) => Promise<T>) => session.document(props.channel, op);
  const head = headOf(props.state);
  const headRev = v.revisions[v.revisions.length - 1];
  return (
    <main className="documents draft" data-doc={v.id} data-stage={v.status.stage}>
      <p>
        <Link to="/documents">All documents</Link> · <Link to={`/channels/${props.channel}`}>Channel</Link>
      </p>
      <h1>
        <TypeBadge type={v.type} />{' '}
        <span className="doc-title">
          <Txt text={v.title} />
        </span>
      </h1>
      <dl className="doc-facts">
        <dt>Type</dt>
        <dd>
          {v.typeName}: {typeRule(v.type)}
        </dd>
        <dt>Stage</dt>
        <dd data-testid="doc-stage">{stageText(v.status.stage)}</dd>
        <dt>Revision</dt>
        <dd>
          {v.head.n} by {v.head.author === null ? 'an unattributed author' : <PartyName id={v.head.author} />}{' '}
          · <code title={v.head.hash}>{v.head.hash.slice(0, 16)}…</code>
        </dd>
        <dt>Languages</dt>
        <dd>
          {v.languages.join(', ')}
          {v.languages.length > 1 ? ' — each version equally authentic' : ''}
        </dd>
      </dl>
      {headRev !== undefined && headRev.cleared.length > 0 ? (
        <p className="cleared-note" role="note">
          Revision {headRev.n} cleared agreement on{' '}
          {headRev.cleared.map((c) => `${c.clause} (${c.lang})`).join(', ')}: those clauses must be agreed
          again.
        </p>
      ) : null}
      <section aria-labelledby="clauses-h">
        <h2 id="clauses-h">Clauses</h2>
        <ol className="clauses">
          {head.body.clauses.map((c, i) => {
            const cv = v.clauses.find((x) => x.id === c.id);
            if (cv === undefined) return null;
            return (
              <ClauseView
                key={c.id}
                n={i + 1}
                id={c.id}
                text={c.text}
                view={cv}
                doc={v}
                cleared={headRev?.cleared.filter((x) => x.clause === c.id) ?? []}
                act={act}
              />
            );
          })}
        </ol>
        {roleMaySend(role, 'doc.revision') ? (
          <AddClause key={v.clauses.map((c) => c.id).join()} doc={v} act={act} />
        ) : null}
      </section>
      <SignOff doc={v} role={role} me={me} act={act} />
      <Revisions doc={v} />
      {/* A new revision resets the comparison to "its parent → it". */}
      <Compare key={v.head.n} state={props.state} />
      <Export doc={v} channel={props.channel} />
    </main>
  );
}

type Act = <T>(op: (d: Documents) => Promise<T>) => Promise<T>;

/** A textarea per language version, each marked with its language. */
function TextPerLanguage(props: {
  languages: readonly string[];
  label: (lang: string) => string;
  rows: number;
  value: Readonly<Record<string, string>>;
  onChange: (lang: string, text: string) => void;
}): ReactNode {
  return props.languages.map((l) => (
    <label key={l}>
      {props.label(l)}
      <textarea
        rows={props.rows}
        lang={l}
        value={props.value[l] ?? ''}
        onChange={(e) => props.onChange(l, e.target.value)}
      />
    </label>
  ));
}

function AltMark(props: { text: string; by: string | undefined }): ReactNode {
  const session = useSession();
  return (
    <mark
      className="alt"
      data-alt={props.text}
      title={props.by === undefined ? undefined : `proposed by ${nameOf(session, props.by)}`}
    >
      [<Txt text={props.text} />]
    </mark>
  );
}

function SegmentsView(props: { segments: readonly Segment[] }): ReactNode {
  return (
    <>
      {props.segments.map((s, i) =>
        isBracket(s) ? (
          // biome-ignore lint/suspicious/noArrayIndexKey: segments have no identity beyond their place
          <span key={i} className="bracket">
            <span className="sr-only">Bracketed alternatives: </span>
            {s.alts.map((a, j) => (
              // biome-ignore lint/suspicious/noArrayIndexKey: alternatives are ordered
              <span key={j}>
                {j > 0 ? ' / ' : null}
                <AltMark text={a.text} by={a.by} />
              </span>
            ))}
          </span>
        ) : (
          // biome-ignore lint/suspicious/noArrayIndexKey: segments have no identity beyond their place
          <span key={i}>
            <Txt text={s} />
          </span>
        ),
      )}
    </>
  );
}

function ClauseView(props: {
  n: number;
  id: string;
  text: Readonly<Record<string, readonly Segment[]>>;
  view: DocumentView['clauses'][number];
  doc: DocumentView;
  cleared: ReadonlyArray<{ clause: string; lang: string; parties: readonly string[] }>;
  act: Act;
}): ReactNode {
  const session = useSession();
  const me = session.bc.identity.party;
  const d = props.doc;
  const name = (p: string) => nameOf(session, p);
  const canAgree =
    d.type !== 'non-paper' && mayGive(d.type, session.bc.identity.certificate.body.role, 'agree');
  const statuses = d.languages.map((l) => props.view.status[l]?.status ?? 'open');
  const overall = statuses.every((s) => s === 'agreed')
    ? 'agreed'
    : statuses.includes('bracketed')
      ? 'bracketed'
      : statuses.some((s) => s !== 'open')
        ? 'agreed-by-some'
        : 'open';
  return (
    <li className="clause card" data-clause={props.id} data-status={overall}>
      <h3>
        Clause {props.n} <code>{props.id}</code>
      </h3>
      <div className="langs">
        {d.languages.map((l) => {
          const st = props.view.status[l] ?? { status: 'open' as const, agreedBy: [] };
          const cl = props.cleared.find((x) => x.lang === l);
          return (
            <section key={l} className="lang" data-lang={l} aria-label={`Clause ${props.id}, ${l}`}>
              <h4>{l}</h4>
              <p className="clause-text" lang={l}>
                <SegmentsView segments={props.text[l] ?? []} />
              </p>
              <p className="clause-status" data-status={st.status}>
                <span className="sr-only">Status ({l}): </span>
                {statusText(st, name)}
              </p>
              {d.parties.length > 0 ? (
                <ul className="per-party" aria-label={`Who agreed clause ${props.id} (${l})`}>
                  {perParty(d.parties, st).map((p) => (
                    <li key={p.party} data-party={p.party} data-agreed={p.agreed}>
                      <PartyName id={p.party} />:{' '}
                      {p.agreed ? 'agreed' : st.status === 'bracketed' ? 'bracketed' : 'not yet'}
                    </li>
                  ))}
                </ul>
              ) : null}
              {cl === undefined ? null : (
                <p className="cleared" role="note">
                  Changed in revision {d.head.n}: agreement of {cl.parties.map(name).join(', ')} cleared
                </p>
              )}
              {canAgree && st.status !== 'bracketed' && !st.agreedBy.includes(me) ? (
                <ActionButton onAction={() => props.act((x) => x.agree(d.id, [{ id: props.id, lang: l }]))}>
                  Agree clause {props.id} ({l})
                </ActionButton>
              ) : null}
            </section>
          );
        })}
      </div>
      {props.view.comments.length > 0 ? (
        <ul className="comments" aria-label={`Comments on clause ${props.id}`}>
          {props.view.comments.map((c, i) => (
            // biome-ignore lint/suspicious/noArrayIndexKey: comments are append-only
            <li key={i}>
              <span className="who">{c.by === null ? 'unattributed' : <PartyName id={c.by} />}</span>
              {c.lang === null ? '' : ` (${c.lang})`} on revision {c.n}:{' '}
              <span className="comment-text">
                <Txt text={c.text} />
              </span>
            </li>
          ))}
        </ul>
      ) : null}
      {/* Editors restart from the new text only when this clause's text changed (not on every revision). */}
      {roleMaySend(session.bc.identity.certificate.body.role, 'doc.comment') ? (
        <ClauseTools
          key={JSON.stringify(props.text)}
          id={props.id}
          text={props.text}
          doc={d}
          act={props.act}
        />
      ) : null}
    </li>
  );
}

function ClauseTools(props: {
  id: string;
  text: Readonly<Record<string, readonly Segment[]>>;
  doc: DocumentView;
  act: Act;
}): ReactNode {
  const d = props.doc;
  const id = props.id;
  const first = d.languages[0] ?? '';
  const [markup, setMarkup] = useState<Record<string, string>>(() =>
    Object.fromEntries(d.languages.map((l) => [l, toMarkup(props.text[l] ?? [])])),
  );
  const [bLang, setBLang] = useState(first);
  const [phrase, setPhrase] = useState('');
  const [alt, setAlt] = useState('');
  const [comment, setComment] = useState('');
  const [cLang, setCLang] = useState('');
  return (
    <details className="clause-tools">
      <summary>Work on clause {id}</summary>
      {d.languages.flatMap((l) =>
        bracketsOf(props.text[l] ?? []).map((b) => (
          <fieldset key={`${l}:${b.index}`} className="resolve">
            <legend>
              Resolve bracket {b.index + 1} ({l})
            </legend>
            {b.alts.map((a) => (
              <ActionButton
                key={a.choose}
                onAction={() =>
                  props.act((x) =>
                    x.edit(d.id, [
                      { op: 'resolve', clause: id, lang: l, bracket: b.index, choose: a.choose },
                    ]),
                  )
                }
              >
                Accept “{a.text}” ({l})
              </ActionButton>
            ))}
          </fieldset>
        )),
      )}
      <fieldset>
        <legend>Bracket a phrase</legend>
        <label>
          Language
          <select value={bLang} onChange={(e) => setBLang(e.target.value)}>
            {d.languages.map((l) => (
              <option key={l} value={l}>
                {l}
              </option>
            ))}
          </select>
        </label>
        <label>
          Phrase to bracket in {id}
          <input value={phrase} onChange={(e) => setPhrase(e.target.value)} />
        </label>
        <label>
          Alternative wording for {id}
          <input value={alt} onChange={(e) => setAlt(e.target.value)} />
        </label>
        <ActionButton
          disabled={phrase.trim() === '' || alt.trim() === ''}
          onAction={async () => {
            await props.act((x) =>
              x.edit(d.id, [{ op: 'bracket', clause: id, lang: bLang, phrase, alternatives: [alt.trim()] }]),
            );
          }}
        >
          Bracket against the alternative
        </ActionButton>
      </fieldset>
      <fieldset>
        <legend>Edit the text (a new revision)</legend>
        <TextPerLanguage
          languages={d.languages}
          label={(l) => `Text of ${id} (${l})`}
          rows={3}
          value={markup}
          onChange={(l, t) => setMarkup((m) => ({ ...m, [l]: t }))}
        />
        <ActionButton
          onAction={async () => {
            await props.act(async (x) => {
              const after = Object.fromEntries(
                d.languages.map((l) => [l, x.segments(d.id, markup[l] ?? '')]),
              );
              const steps = clauseEditSteps(id, props.text, after);
              if (steps.length === 0) throw new Error('Nothing changed in this clause.');
              return x.edit(d.id, steps);
            });
          }}
        >
          Save clause {id} as a new revision
        </ActionButton>
      </fieldset>
      <fieldset>
        <legend>Comment (not part of the text)</legend>
        <label>
          Comment on {id}
          <textarea rows={2} value={comment} onChange={(e) => setComment(e.target.value)} />
        </label>
        <label>
          On the version
          <select value={cLang} onChange={(e) => setCLang(e.target.value)}>
            <option value="">all languages</option>
            {d.languages.map((l) => (
              <option key={l} value={l}>
                {l}
              </option>
            ))}
          </select>
        </label>
        <ActionButton
          disabled={comment.trim() === ''}
          onAction={async () => {
            await props.act((x) => x.comment(d.id, id, comment.trim(), cLang === '' ? undefined : cLang));
            setComment('');
          }}
        >
          Comment on clause {id}
        </ActionButton>
      </fieldset>
    </details>
  );
}

function AddClause(props: { doc: DocumentView; act: Act }): ReactNode {
  const d = props.doc;
  const [id, setId] = useState(() => nextClauseId(d.clauses.map((c) => c.id)));
  const [text, setText] = useState<Record<string, string>>({});
  const ok =
    CLAUSE_ID_RE.test(id) &&
    !d.clauses.some((c) => c.id === id) &&
    d.languages.every((l) => (text[l] ?? '').trim() !== '');
  return (
    <details className="card add-clause">
      <summary>Add a clause</summary>
      <label>
        New clause id
        <input value={id} onChange={(e) => setId(e.target.value.trim())} />
      </label>
      <TextPerLanguage
        languages={d.languages}
        label={(l) => `New clause text (${l})`}
        rows={2}
        value={text}
        onChange={(l, t) => setText((x) => ({ ...x, [l]: t }))}
      />
      <ActionButton
        disabled={!ok}
        onAction={() =>
          props.act((x) =>
            x.edit(d.id, [
              {
                op: 'add',
                clause: id,
                text: Object.fromEntries(d.languages.map((l) => [l, x.segments(d.id, text[l] ?? '')])),
              },
            ]),
          )
        }
      >
        Add clause {id} (a new revision)
      </ActionButton>
    </details>
  );
}

function SignOff(props: { doc: DocumentView; role: string; me: string; act: Act }): ReactNode {
  const d = props.doc;
  const session = useSession();
  const role = session.bc.identity.certificate.body.role;
  if (d.type === 'non-paper') {
    return (
      <section className="card" aria-labelledby="signoff-h">
        <h2 id="signoff-h">Sign-off</h2>
        <p>A non-paper is unattributed and never signed.</p>
      </section>
    );
  }
  const mine = d.status.byParty[props.me] ?? [];
  const bracketed = d.clauses.some((c) => d.languages.some((l) => c.status[l]?.status === 'bracketed'));
  const pendingMine = d.clauses.flatMap((c) =>
    d.languages
      .filter(
        (l) =>
          c.status[l]?.status !== 'bracketed' && !(c.status[l]?.agreedBy ?? []).includes(props.me as never),
      )
      .map((lang) => ({ id: c.id, lang })),
  );
  const partyOf = d.parties.includes(props.me as never);
  const level = (l: 'initial' | 'sign') =>
    !partyOf
      ? 'your party is not a signatory of this document'
      : !mayGive(d.type, role, l)
        ? `a device with the role ${role} cannot ${l === 'sign' ? 'sign' : 'initial'} a ${d.typeName.toLowerCase()}`
        : bracketed
          ? 'brackets are still open'
          : mine.includes(l)
            ? `your party has ${l === 'sign' ? 'signed' : 'initialled'} revision ${d.head.n}`
            : undefined;
  const initialWhy = level('initial');
  const signWhy = level('sign');
  return (
    <section className="card signoff" aria-labelledby="signoff-h">
      <h2 id="signoff-h">Sign-off on revision {d.head.n}</h2>
      <table>
        <caption className="sr-only">Sign-off per party on revision {d.head.n}</caption>
        <thead>
          <tr>
            <th scope="col">Party</th>
            <th scope="col">On revision {d.head.n}</th>
          </tr>
        </thead>
        <tbody>
          {d.parties.map((p) => {
            const levels = d.status.byParty[p] ?? [];
            return (
              <tr key={p} data-party={p} data-levels={levels.join(' ')}>
                <td>
                  <PartyName id={p} />
                </td>
                <td>
                  {levels.length === 0
                    ? 'not yet'
                    : levels
                        .map((l) => (l === 'sign' ? 'signed' : l === 'initial' ? 'initialled' : l))
                        .join(', ')}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      <p className="doc-agreed" data-agreed={d.status.agreed} role="status">
        {d.status.agreed
          ? `Agreed: every party signed revision ${d.head.n} at the level a ${d.typeName.toLowerCase()} requires.`
          : `Not agreed yet: ${typeRule(d.type)}`}
      </p>
      <div className="actions">
        {partyOf && mayGive(d.type, role, 'agree') ? (
          <ActionButton
            disabled={pendingMine.length === 0}
            onAction={() => props.act((x) => x.agree(d.id, pendingMine))}
          >
            Agree every open clause in every language
          </ActionButton>
        ) : null}
        <ActionButton
          disabled={initialWhy !== undefined}
          onAction={() => props.act((x) => x.signRevision(d.id, 'initial'))}
        >
          Initial revision {d.head.n}
        </ActionButton>
        <ActionButton
          disabled={signWhy !== undefined}
          onAction={() => props.act((x) => x.signRevision(d.id, 'sign'))}
        >
          Sign revision {d.head.n}
        </ActionButton>
      </div>
      {initialWhy === undefined && signWhy === undefined ? null : (
        <ul className="hint">
          {initialWhy === undefined ? null : <li>Initial: {initialWhy}.</li>}
          {signWhy === undefined ? null : <li>Sign: {signWhy}.</li>}
        </ul>
      )}
    </section>
  );
}

function Revisions(props: { doc: DocumentView }): ReactNode {
  const revs = props.doc.revisions;
  return (
    <section className="card" aria-labelledby="revs-h">
      <h2 id="revs-h">Revisions</h2>
      <ol className="revisions" reversed aria-label="Revisions, newest first">
        {[...revs].reverse().map((r) => {
          const parent = r.n > 0 ? revs[r.n - 1] : undefined;
          return (
            <li key={r.n} data-n={r.n}>
              <strong>Revision {r.n}</strong> by{' '}
              {r.author === null ? 'an unattributed author' : <PartyName id={r.author} />} ·{' '}
              <code title={r.hash}>{r.hash.slice(0, 12)}…</code>
              {parent === undefined ? (
                ' · first revision'
              ) : (
                <>
                  {' '}
                  · parent <code title={parent.hash}>{parent.hash.slice(0, 12)}…</code>
                </>
              )}
              {r.touched.length === 0 ? null : (
                <span className="touched">
                  {' '}
                  · changed {r.touched.map((t) => `${t.clause} (${t.lang})`).join(', ')}
                </span>
              )}
              {r.cleared.length === 0 ? null : (
                <span className="cleared">
                  {' '}
                  · cleared agreement on {r.cleared.map((t) => `${t.clause} (${t.lang})`).join(', ')}
                </span>
              )}
            </li>
          );
        })}
      </ol>
    </section>
  );
}

function DiffView(props: { diffs: readonly ClauseDiff[] }): ReactNode {
  return (
    <ul className="diffs">
      {props.diffs.map((c) => (
        <li key={`${c.clause}:${c.lang}`} data-clause={c.clause} data-lang={c.lang} data-change={c.change}>
          <span className="diff-head">
            {c.clause} ({c.lang}) — {c.change}
          </span>
          <p className="diff" lang={c.lang}>
            {c.parts.map((p, i) =>
              p.op === 'equal' ? (
                // biome-ignore lint/suspicious/noArrayIndexKey: diff parts are ordered
                <span key={i}>{p.text}</span>
              ) : p.op === 'delete' ? (
                // biome-ignore lint/suspicious/noArrayIndexKey: diff parts are ordered
                <del key={i}>{p.text}</del>
              ) : (
                // biome-ignore lint/suspicious/noArrayIndexKey: diff parts are ordered
                <ins key={i}>{p.text}</ins>
              ),
            )}
          </p>
        </li>
      ))}
    </ul>
  );
}

function Compare(props: { state: DocumentState }): ReactNode {
  const revs = props.state.revisions;
  const last = revs.length - 1;
  const [from, setFrom] = useState(Math.max(0, last - 1));
  const [to, setTo] = useState(last);
  const [all, setAll] = useState(false);
  const diffs = useMemo(() => {
    const a = revs[from];
    const b = revs[to];
    return a === undefined || b === undefined ? [] : diffRevisions(a.body, b.body);
  }, [revs, from, to]);
  const shown = all ? diffs : diffs.filter((c) => c.change !== 'unchanged');
  const options = revs.map((r) => (
    <option key={r.body.n} value={r.body.n}>
      revision {r.body.n}
    </option>
  ));
  return (
    <section className="card compare" aria-labelledby="cmp-h">
      <h2 id="cmp-h">Compare revisions</h2>
      <div className="cmp-controls">
        <label>
          From
          <select
            aria-label="Compare from revision"
            value={from}
            onChange={(e) => setFrom(Number(e.target.value))}
          >
            {options}
          </select>
        </label>
        <label>
          To
          <select aria-label="Compare to revision" value={to} onChange={(e) => setTo(Number(e.target.value))}>
            {options}
          </select>
        </label>
        <label className="radio">
          <input type="checkbox" checked={all} onChange={(e) => setAll(e.target.checked)} />
          Show unchanged clauses
        </label>
      </div>
      {from === to ? <p className="hint">Choose two different revisions.</p> : null}
      {shown.length === 0 && from !== to ? <p>No clause changed between these revisions.</p> : null}
      <DiffView diffs={shown} />
    </section>
  );
}

function Export(props: { doc: DocumentView; channel: string }): ReactNode {
  const session = useSession();
  const d = props.doc;
  const [files, setFiles] = useState<Array<{ name: string; url: string }>>();
  const [err, setErr] = useState<string>();
  useEffect(
    () => () => {
      for (const f of files ?? []) URL.revokeObjectURL(f.url);
    },
    [files],
  );
  if (d.type === 'non-paper') return null;
  const prepare = async (draft: boolean) => {
    setErr(undefined);
    try {
      const docs = await session.documentsOf(props.channel);
      const ex = docs.export(d.id, { base: slug(d.title), draft });
      const out = Object.entries(ex.files).map(([name, text]) => ({ name, text }));
      out.push({ name: `${slug(d.title)}.bundle.json`, text: `${JSON.stringify(ex.bundle, null, 1)}\n` });
      setFiles(
        out.map((f) => ({
          name: f.name,
          url: URL.createObjectURL(
            new Blob([f.text], {
              type: f.name.endsWith('.json')
                ? 'application/json'
                : f.name.endsWith('.xml')
                  ? 'application/xml'
                  : 'text/markdown',
            }),
          ),
        })),
      );
    } catch (e) {
      setErr(errorText(e));
    }
  };
  return (
    <section className="card" aria-labelledby="export-h">
      <h2 id="export-h">Export</h2>
      <p className="hint">
        Markdown, Akoma Ntoso (OASIS LegalDocML) XML per language, and a signature bundle that{' '}
        <code>backchannel doc verify</code> checks offline.
      </p>
      <div className="actions">
        <button type="button" disabled={!d.status.agreed} onClick={() => void prepare(false)}>
          Export the agreed text
        </button>
        <button type="button" onClick={() => void prepare(true)}>
          Export revision {d.head.n} as a draft
        </button>
      </div>
      {err === undefined ? null : (
        <p role="alert" className="error">
          {err}
        </p>
      )}
      {files === undefined ? null : (
        <ul className="exports" aria-label="Exported files">
          {files.map((f) => (
            <li key={f.name}>
              <a href={f.url} download={f.name}>
                Download {f.name}
              </a>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
