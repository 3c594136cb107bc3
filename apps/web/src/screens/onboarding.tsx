/** First run: create a party, enroll this browser from an invite, or recover a party from its kit; and the lock screen. */
import { openInviteWith, openRecoveryKit } from '@backchannel/client/browser';
import { type FormEvent, type ReactNode, useState } from 'react';
import { errorText, navigate, useSession } from '../ui.tsx';

function PassphraseFields(props: {
  value: string;
  confirm: string;
  onValue: (v: string) => void;
  onConfirm: (v: string) => void;
}): ReactNode {
  return (
    <>
      <label>
        Passphrase (encrypts everything this browser stores)
        <input
          type="password"
          autoComplete="new-password"
          minLength={8}
          required
          value={props.value}
          onChange={(e) => props.onValue(e.target.value)}
        />
      </label>
      <label>
        Repeat the passphrase
        <input
          type="password"
          autoComplete="new-password"
          required
          value={props.confirm}
          onChange={(e) => props.onConfirm(e.target.value)}
        />
      </label>
    </>
  );
}

export function Onboarding(): ReactNode {
  const session = useSession();
  const [mode, setMode] = useState<'create' | 'enroll' | 'recover'>('create');
  const [partyName, setPartyName] = useState('');
  const [deviceName, setDeviceName] = useState('browser');
  const [pass, setPass] = useState('');
  const [pass2, setPass2] = useState('');
  const [invite, setInvite] = useState('');
  const [code, setCode] = useState('');
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState<string>();

  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (pass.length < 8) return setErr('the passphrase needs at least 8 characters');
    if (pass !== pass2) return setErr('the two passphrases differ');
    setBusy(true);
    setErr(undefined);
    const work =
      mode === 'create'
        ? session.createParty(pass, partyName.trim(), deviceName.trim())
        : mode === 'recover'
          ? (async () => {
              let file: unknown;
              try {
                file = JSON.parse(invite);
              } catch {
                throw new Error('the recovery kit is not valid: paste the whole kit text');
              }
              await session.recover(pass, await openRecoveryKit(file, code), deviceName.trim());
            })()
          : (async () => {
              let file: unknown;
              try {
                file = JSON.parse(invite);
              } catch {
                throw new Error('the invite is not valid: paste the whole invite text');
              }
              await session.enroll(pass, await openInviteWith(file, code));
            })();
    work.then(
      () => navigate('/party'),
      (x: unknown) => {
        setBusy(false);
        setErr(errorText(x));
      },
    );
  };

  return (
    <main className="narrow">
      <h1>Backchannel</h1>
      <p>
        Keys are created in this browser and never leave it. Everything stored here is encrypted with your
        passphrase.
      </p>
      <div role="tablist" aria-label="How to set up this browser" className="tabs">
        <button type="button" role="tab" aria-selected={mode === 'create'} onClick={() => setMode('create')}>
          Create a party
        </button>
        <button type="button" role="tab" aria-selected={mode === 'enroll'} onClick={() => setMode('enroll')}>
          Enroll with an invite
        </button>
        <button
          type="button"
          role="tab"
          aria-selected={mode === 'recover'}
          onClick={() => setMode('recover')}
        >
          Recover a party
        </button>
      </div>
      <form
        onSubmit={submit}
        aria-label={
          mode === 'create'
            ? 'Create a party'
            : mode === 'recover'
              ? 'Recover a party'
              : 'Enroll this browser'
        }
      >
        {mode === 'recover' ? (
          <>
            <p className="hint">
              The admin device is lost: restore the party's root key from its recovery kit. This browser
              becomes the party's admin device; then revoke the lost one under Members.
            </p>
            <label>
              Recovery kit (the text of the kit file)
              <textarea required rows={4} value={invite} onChange={(e) => setInvite(e.target.value)} />
            </label>
            <label>
              Recovery code (28 letters)
              <input required autoComplete="off" value={code} onChange={(e) => setCode(e.target.value)} />
            </label>
            <label>
              This device
              <input required value={deviceName} onChange={(e) => setDeviceName(e.target.value)} />
            </label>
          </>
        ) : mode === 'create' ? (
          <>
            <label>
              Party name (what other parties see)
              <input required value={partyName} onChange={(e) => setPartyName(e.target.value)} />
            </label>
            <label>
              This device
              <input required value={deviceName} onChange={(e) => setDeviceName(e.target.value)} />
            </label>
          </>
        ) : (
          <>
            <label>
              Invite (the text your admin sent you)
              <textarea required rows={4} value={invite} onChange={(e) => setInvite(e.target.value)} />
            </label>
            <label>
              One-time code (read to you separately)
              <input required autoComplete="off" value={code} onChange={(e) => setCode(e.target.value)} />
            </label>
          </>
        )}
        <PassphraseFields value={pass} confirm={pass2} onValue={setPass} onConfirm={setPass2} />
        <button type="submit" disabled={busy} aria-busy={busy}>
          {busy
            ? 'Working…'
            : mode === 'create'
              ? 'Create the party'
              : mode === 'recover'
                ? 'Recover the party'
                : 'Enroll this browser'}
        </button>
        {err === undefined ? null : (
          <p role="alert" className="error">
            {err}
          </p>
        )}
      </form>
    </main>
  );
}

export function LockScreen(): ReactNode {
  const session = useSession();
  const [pass, setPass] = useState('');
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState<string>();
  const [forgetting, setForgetting] = useState(false);
  return (
    <main className="narrow">
      <h1>Backchannel is locked</h1>
      <form
        aria-label="Unlock"
        onSubmit={(e) => {
          e.preventDefault();
          setBusy(true);
          setErr(undefined);
          session.unlock(pass).then(
            () => setPass(''),
            (x: unknown) => {
              setBusy(false);
              setErr(errorText(x));
            },
          );
        }}
      >
        <label>
          Passphrase
          <input
            type="password"
            autoComplete="current-password"
            required
            value={pass}
            onChange={(e) => setPass(e.target.value)}
          />
        </label>
        <button type="submit" disabled={busy} aria-busy={busy}>
          {busy ? 'Unlocking…' : 'Unlock'}
        </button>
        {err === undefined ? null : (
          <p role="alert" className="error">
            {err}
          </p>
        )}
      </form>
      {forgetting ? (
        <fieldset className="confirm">
          <legend>Forget this browser</legend>
          <p>This erases this browser's keys and history. Other devices are not affected.</p>
          <button type="button" className="danger" onClick={() => void session.forget()}>
            Erase this browser's device
          </button>
          <button type="button" onClick={() => setForgetting(false)}>
            Cancel
          </button>
        </fieldset>
      ) : (
        <button type="button" className="link" onClick={() => setForgetting(true)}>
          Forget this browser…
        </button>
      )}
    </main>
  );
}
