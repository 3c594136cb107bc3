/**
 * The public verifier: pick or drop an attestation and the public-keys file, and the page checks
 * them here, offline, with no account and no relay. Everything shown is React text.
 */
import { type DragEvent, type ReactNode, useEffect, useId, useState } from 'react';
import {
  claimRows,
  formatTime,
  MAX_FILE_BYTES,
  refusalTitle,
  type VerifyOutcome,
  verifyFiles,
} from '../verify-model.ts';

interface LoadedFile {
  readonly name: string;
  readonly text: string;
}

async function readFile(file: File): Promise<LoadedFile> {
  if (file.size > MAX_FILE_BYTES) throw new Error(`${file.name} is too large to be an attestation`);
  return { name: file.name, text: await file.text() };
}

function FilePicker(props: {
  label: string;
  hint: string;
  testId: string;
  file: LoadedFile | undefined;
  onFile: (f: LoadedFile) => void;
  onError: (message: string) => void;
}): ReactNode {
  const id = useId();
  const [over, setOver] = useState(false);
  const take = (f: File | undefined) => {
    if (f === undefined) return;
    readFile(f).then(props.onFile, (e: unknown) => props.onError(e instanceof Error ? e.message : String(e)));
  };
  const onDrop = (e: DragEvent<HTMLFieldSetElement>) => {
    e.preventDefault();
    setOver(false);
    take(e.dataTransfer.files[0]);
  };
  return (
    <fieldset
      aria-label={`Drop area for the ${props.label.toLowerCase().replace(' file', '')}`}
      className={over ? 'dropzone dropzone-over' : 'dropzone'}
      data-testid={props.testId}
      onDragOver={(e) => {
        e.preventDefault();
        setOver(true);
      }}
      onDragLeave={() => setOver(false)}
      onDrop={onDrop}
    >
      <label htmlFor={id}>{props.label}</label>
      <input
        id={id}
        type="file"
        accept=".json,application/json"
        aria-describedby={`${id}-hint`}
        onChange={(e) => {
          take(e.currentTarget.files?.[0]);
          e.currentTarget.value = '';
        }}
      />
      <p id={`${id}-hint`} className="meta">
        {props.hint}
      </p>
      <p className="meta" aria-live="polite">
        {props.file === undefined ? 'No file chosen yet.' : `Loaded: ${props.file.name}`}
      </p>
    </fieldset>
  );
}

function Verdict(props: { outcome: VerifyOutcome }): ReactNode {
  const o = props.outcome;
  if (o.kind === 'error') {
    return (
      <section className="verdict verdict-error" role="alert" aria-labelledby="verdict-title">
        <h2 id="verdict-title">Cannot check this file</h2>
        <p>{o.message}</p>
      </section>
    );
  }
  if (o.kind === 'fork-evidence') {
    const c = o.check;
    return c.valid ? (
      <section className="verdict verdict-valid" role="status" aria-labelledby="verdict-title">
        <h2 id="verdict-title">
          Valid fork evidence
          {c.conclusive ? ': the relay showed two different histories' : ' (an alarm, not a proof)'}
        </h2>
        <p>{c.reason}</p>
      </section>
    ) : (
      <section className="verdict verdict-invalid" role="alert" aria-labelledby="verdict-title">
        <h2 id="verdict-title">Not valid: {refusalTitle(c.code)}</h2>
        <p>{c.reason}</p>
        <p className="meta">
          Code: <code>{c.code}</code>
        </p>
      </section>
    );
  }
  const v = o.verdict;
  if (!v.valid) {
    return (
      <section className="verdict verdict-invalid" role="alert" aria-labelledby="verdict-title">
        <h2 id="verdict-title">Not valid: {refusalTitle(v.code)}</h2>
        <p data-testid="verdict-reason">{v.reason}</p>
        <dl>
          <dt>Code</dt>
          <dd>
            <code data-testid="verdict-code">{v.code}</code>
          </dd>
          <dt>Where in the file</dt>
          <dd>
            <code>{v.at}</code>
          </dd>
          {v.kind === undefined ? null : (
            <>
              <dt>Kind of claim</dt>
              <dd>{v.kind}</dd>
            </>
          )}
        </dl>
        <p className="meta">Nothing in this file should be relied on.</p>
      </section>
    );
  }
  return (
    <section className="verdict verdict-valid" role="status" aria-labelledby="verdict-title">
      <h2 id="verdict-title">Valid {v.kind} attestation</h2>
      <p data-testid="verdict-statement">{v.statement}</p>
      <h3>Who claimed it</h3>
      <p>
        “{v.issuer.name}” ({v.issuer.role}), a device of party <code>{v.issuer.party}</code>
        {o.issuedAt === undefined ? null : <>, signed this on {formatTime(o.issuedAt)}</>}.
      </p>
      <h3>What is claimed</h3>
      <dl>
        {claimRows(v.claim).map((r) => (
          <div key={r.label}>
            <dt>{r.label}</dt>
            <dd>{r.value}</dd>
          </div>
        ))}
      </dl>
      {o.checkpoint === undefined ? null : (
        <>
          <h3>Relay checkpoint</h3>
          <dl>
            <dt>Log</dt>
            <dd>
              <code>{o.checkpoint.origin}</code>
            </dd>
            <dt>Entries in the log</dt>
            <dd>{o.checkpoint.size}</dd>
            <dt>Root hash</dt>
            <dd>
              <code>{o.checkpoint.root}</code>
            </dd>
          </dl>
        </>
      )}
      <h3>Witnesses who co-signed the checkpoint</h3>
      {v.witnesses.length === 0 ? (
        <p>None (the public-keys file requires no witness).</p>
      ) : (
        <ul data-testid="verdict-witnesses">
          {v.witnesses.map((w) => (
            <li key={w.name}>
              {w.name}, on {formatTime(w.at)}
            </li>
          ))}
        </ul>
      )}
      <h3>What was checked</h3>
      <ul>
        {v.facts.map((f) => (
          <li key={f}>{f}</li>
        ))}
      </ul>
      {v.readouts === undefined ? null : (
        <>
          <h3>Read-outs</h3>
          <ul>
            {v.readouts.texts.map((t) => (
              <li key={t.party}>
                <code>{t.party}</code>: “{t.text}”
              </li>
            ))}
          </ul>
        </>
      )}
      {v.agreed === undefined ? null : (
        <>
          <h3>
            Agreed text: {v.agreed.title} ({v.agreed.typeName}, revision {v.agreed.revision})
          </h3>
          <ul>
            {v.agreed.signatures.map((s) => (
              <li key={s.party}>
                <code>{s.party}</code> {s.level === 'sign' ? 'signed' : 'initialled'} ({s.role}), on{' '}
                {formatTime(s.signedAt)}
              </li>
            ))}
          </ul>
          <table className="agreed-text">
            <thead>
              <tr>
                <th scope="col">Clause</th>
                {v.agreed.languages.map((l) => (
                  <th key={l} scope="col" lang={l}>
                    {l}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {v.agreed.clauses.map((c) => (
                <tr key={c.id}>
                  <th scope="row">{c.id}</th>
                  {v.agreed?.languages.map((l) => (
                    <td key={l} lang={l}>
                      {c.text[l] ?? ''}
                    </td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </section>
  );
}

export function VerifyScreen(): ReactNode {
  const [doc, setDoc] = useState<LoadedFile>();
  const [keys, setKeys] = useState<LoadedFile>();
  const [outcome, setOutcome] = useState<VerifyOutcome>();

  useEffect(() => {
    if (doc === undefined) {
      setOutcome(undefined);
      return;
    }
    try {
      setOutcome(verifyFiles(doc.text, keys?.text, Date.now()));
    } catch (e) {
      setOutcome({
        kind: 'error',
        message: `The file could not be checked: ${e instanceof Error ? e.message : String(e)}`,
      });
    }
  }, [doc, keys]);

  const onError = (message: string) => setOutcome({ kind: 'error', message });

  return (
    <main className="verify">
      <h1>Verify an attestation</h1>
      <p>
        An attestation is a signed claim about a Backchannel channel — for example that one party reached out
        to another at a given time. This page checks it entirely in your browser: no account, nothing sent
        anywhere. You need the attestation file and the public-keys file of the parties, obtained from them
        directly.
      </p>
      <div className="columns">
        <FilePicker
          label="Attestation file"
          hint="The attestation (or fork evidence) JSON file. Choose it, or drop it here."
          testId="drop-attestation"
          file={doc}
          onFile={setDoc}
          onError={onError}
        />
        <FilePicker
          label="Public-keys file"
          hint="The parties' public keys, the relay key and the witnesses (from `backchannel keys`). Choose it, or drop it here."
          testId="drop-keys"
          file={keys}
          onFile={setKeys}
          onError={onError}
        />
      </div>
      {outcome === undefined ? null : <Verdict outcome={outcome} />}
    </main>
  );
}
