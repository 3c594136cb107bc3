/**
 * Attestations: pick a channel and a kind of claim, fill the few facts it needs, and this
 * device signs it from its own verified transcript. The page shows what the file claims and
 * reveals, checks it as a verifier would, and offers it (with the public-keys file) for
 * download. Nothing leaves the browser: the files are made and checked here.
 */
import {
  ATTESTATION_KINDS,
  type Attestation,
  attest,
  type Channel,
  encodeAttestation,
  publicKeysDocument,
} from '@backchannel/client/browser';
import { type ReactNode, useEffect, useId, useState } from 'react';
import {
  type AttestForm,
  agreedChoices,
  attestationFileName,
  canBuild,
  deliveryChoices,
  disclosureChoices,
  EMPTY_FORM,
  type EventChoice,
  keysFileName,
  kindInfo,
  publishedRounds,
  requestOf,
  revealsOf,
} from '../attest-model.ts';
import { ActionButton, Link, navigate, shortId, useSession } from '../ui.tsx';
import { claimRows, refusalTitle, type VerifyOutcome, verifyFiles } from '../verify-model.ts';
import { useChannels } from './channels.tsx';

interface Made {
  readonly doc: Attestation;
  readonly text: string;
  readonly keysText: string;
  readonly outcome: VerifyOutcome;
}

/** An object URL for a JSON text, revoked when the text changes or the screen goes away. */
function useJsonUrl(text: string): string | undefined {
  const [url, setUrl] = useState<string>();
  useEffect(() => {
    const u = URL.createObjectURL(new Blob([text], { type: 'application/json' }));
    setUrl(u);
    return () => URL.revokeObjectURL(u);
  }, [text]);
  return url;
}

function DownloadLink(props: { text: string; file: string; children: ReactNode }): ReactNode {
  const url = useJsonUrl(props.text);
  if (url === undefined) return null;
  return (
    <a className="button" href={url} download={props.file}>
      {props.children}
    </a>
  );
}

function EventSelect(props: {
  label: string;
  choices: readonly EventChoice[];
  value: string;
  onChange: (id: string) => void;
}): ReactNode {
  return (
    <label>
      {props.label}
      <select value={props.value} onChange={(e) => props.onChange(e.target.value)}>
        <option value="">— choose —</option>
        {props.choices.map((c) => (
          <option key={c.id} value={c.id} disabled={!c.verified}>
            {c.label}
            {c.verified ? '' : ' (not yet in a verified checkpoint)'}
          </option>
        ))}
      </select>
      {props.choices.length === 0 ? <span className="hint"> No such event in this channel yet.</span> : null}
    </label>
  );
}

function Facts(props: { ch: Channel; form: AttestForm; set: (p: Partial<AttestForm>) => void }): ReactNode {
  const session = useSession();
  const { ch, form, set } = props;
  const me = session.bc.identity.party;
  const nameOf = (p: string) => `${session.party(p)?.name ?? shortId(p)}${p === me ? ' (us)' : ''}`;
  const size = ch.record.checkpointSize;
  switch (form.kind) {
    case 'outreach':
      return (
        <label>
          Which outreach
          <select value={form.which} onChange={(e) => set({ which: e.target.value as AttestForm['which'] })}>
            <option value="first">the first (the one that opened the channel)</option>
            <option value="latest">the latest (for example a request to reopen)</option>
          </select>
        </label>
      );
    case 'liveness':
      return (
        <label>
          Heartbeats from every party within the last (hours)
          <input
            type="number"
            min={1}
            value={form.withinHours}
            onChange={(e) => set({ withinHours: e.target.value })}
          />
        </label>
      );
    case 'delivery':
      return (
        <>
          <label>
            Acknowledgement to prove
            <select
              value={form.receipt}
              onChange={(e) => set({ receipt: e.target.value as AttestForm['receipt'], event: '' })}
            >
              <option value="delivered">delivered (received by their device)</option>
              <option value="read">read</option>
            </select>
          </label>
          <EventSelect
            label="Event whose delivery to prove"
            choices={deliveryChoices(ch.view.timeline, ch.view.state, size, form.receipt, nameOf)}
            value={form.event}
            onChange={(event) => set({ event })}
          />
        </>
      );
    case 'disclosure':
      return (
        <>
          <EventSelect
            label="Event to disclose"
            choices={disclosureChoices(ch.view.timeline, size, nameOf)}
            value={form.event}
            onChange={(event) => set({ event })}
          />
          <p className="hint">
            Anyone you give the file to will read this event in full. Once shared, it cannot be taken back.
          </p>
        </>
      );
    case 'readouts': {
      const rounds = publishedRounds(ch.view.state);
      return (
        <label>
          Round
          <select value={form.round} onChange={(e) => set({ round: e.target.value })}>
            <option value="">— choose —</option>
            {rounds.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
          {rounds.length === 0 ? (
            <span className="hint"> No round has read-outs committed and published by every party yet.</span>
          ) : null}
        </label>
      );
    }
    case 'agreed':
      return (
        <>
          <EventSelect
            label="Agreed revision"
            choices={agreedChoices(ch.view.state, size)}
            value={form.agreed}
            onChange={(agreed) => set({ agreed })}
          />
          <p className="hint">
            The file carries that revision's full text in every language and each party's signature over it.
            Only texts every party initialled or signed, as the document's type requires, are listed.
          </p>
        </>
      );
    default:
      return null;
  }
}

function Result(props: { made: Made }): ReactNode {
  const { doc, text, keysText, outcome } = props.made;
  const v = outcome.kind === 'attestation' ? outcome.verdict : undefined;
  return (
    <section className="card attest-result" aria-labelledby="made-h">
      <h2 id="made-h">Attestation ready: {kindInfo(doc.claim.kind).title.toLowerCase()}</h2>
      {v?.valid === true ? <p data-testid="attest-statement">{v.statement}</p> : null}
      <p role="status" data-testid="attest-selfcheck">
        {v === undefined
          ? 'This browser could not check the file.'
          : v.valid
            ? 'Checked here exactly as the verifier page will check it: valid.'
            : `Checked here as the verifier page will: not valid — ${refusalTitle(v.code)} (${v.reason}).`}
      </p>
      <h3>What the file claims</h3>
      <dl className="facts">
        {claimRows(doc.claim).map((r) => (
          <div key={r.label}>
            <dt>{r.label}</dt>
            <dd>{r.value}</dd>
          </div>
        ))}
      </dl>
      <h3>What the file reveals to whoever reads it</h3>
      <ul data-testid="attest-reveals">
        {revealsOf(doc).map((line) => (
          <li key={line}>{line}</li>
        ))}
      </ul>
      <h3>Download</h3>
      <p className="actions">
        <DownloadLink text={text} file={attestationFileName(doc)}>
          Download the attestation
        </DownloadLink>{' '}
        <DownloadLink text={keysText} file={keysFileName(doc.claim.channel)}>
          Download the public-keys file
        </DownloadLink>
      </p>
      <p className="hint">
        A reader checks the attestation on the <Link to="/verify">Verify</Link> page (or with{' '}
        <code>backchannel verify</code>) against the public-keys file. Ideally they get the keys from each
        party directly, not with the attestation.
      </p>
    </section>
  );
}

export function AttestScreen(props: { channel?: string }): ReactNode {
  const session = useSession();
  const channels = useChannels();
  const channelId = props.channel ?? '';
  const ch = channels.find((c) => c.id === channelId);
  const [form, setForm] = useState<AttestForm>(EMPTY_FORM);
  const [made, setMade] = useState<Made>();
  const kindsId = useId();
  const set = (patch: Partial<AttestForm>) => {
    setForm((f) => ({ ...f, ...patch }));
    setMade(undefined);
  };
  const me = session.bc.identity.party;
  const nameOf = (p: string) => session.party(p)?.name ?? shortId(p);
  const check = requestOf(form);
  const info = kindInfo(form.kind);
  return (
    <main className="attest">
      <h1>Attestations</h1>
      <p>
        An attestation is a signed claim about a channel that anyone can check with the public keys alone —
        without reading the channel. This device signs it from the transcript it has verified itself; the file
        is made in this browser and nothing is sent anywhere.
      </p>
      <label>
        Channel
        <select
          value={channelId}
          onChange={(e) => navigate(e.target.value === '' ? '/attest' : `/channels/${e.target.value}/attest`)}
        >
          <option value="">— choose —</option>
          {channels.map((c) => (
            <option key={c.id} value={c.id}>
              with{' '}
              {c.view.state.parties
                .filter((p) => p !== me)
                .map(nameOf)
                .join(', ') || shortId(c.id)}{' '}
              ({shortId(c.id)})
            </option>
          ))}
        </select>
      </label>
      {ch === undefined ? (
        <p>
          {channels.length === 0
            ? 'No channels on this device yet.'
            : 'Choose a channel to make a claim about.'}
        </p>
      ) : (
        <>
          <p>
            <Link to={`/channels/${ch.id}`}>Back to the channel</Link> · verified checkpoint covers{' '}
            {ch.record.checkpointSize} of {ch.record.nextSeq} entries
          </p>
          <form className="card" aria-label="Make an attestation" onSubmit={(e) => e.preventDefault()}>
            <fieldset>
              <legend id={kindsId}>Kind of claim</legend>
              <div className="kinds" role="radiogroup" aria-labelledby={kindsId}>
                {ATTESTATION_KINDS.map((k) => (
                  <label key={k} className="radio">
                    <input
                      type="radio"
                      name="attest-kind"
                      value={k}
                      checked={form.kind === k}
                      onChange={() => set({ kind: k, event: '' })}
                    />
                    {kindInfo(k).title}
                  </label>
                ))}
              </div>
            </fieldset>
            <dl className="facts" aria-label="Preview of the claim">
              <dt>The claim</dt>
              <dd data-testid="kind-claims">{info.claims}</dd>
              <dt>What it reveals</dt>
              <dd>{info.reveals}</dd>
            </dl>
            {canBuild(form.kind) ? <Facts ch={ch} form={form} set={set} /> : null}
            {check.ok ? null : (
              <p
                className={canBuild(form.kind) ? 'hint' : 'error'}
                role={canBuild(form.kind) ? undefined : 'note'}
              >
                {check.error}
              </p>
            )}
            <ActionButton
              disabled={!check.ok}
              onAction={async () => {
                if (!check.ok) return;
                const r = await session.run(async (bc) => ({
                  doc: await attest(bc, ch.id, check.request),
                  keys: publicKeysDocument(bc, ch.view.state.parties),
                }));
                const text = encodeAttestation(r.doc);
                const keysText = `${JSON.stringify(r.keys, null, 2)}\n`;
                setMade({ doc: r.doc, text, keysText, outcome: verifyFiles(text, keysText, Date.now()) });
              }}
            >
              Create the attestation
            </ActionButton>
          </form>
          {made === undefined ? null : <Result made={made} />}
        </>
      )}
    </main>
  );
}
