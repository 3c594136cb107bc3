/** Members and devices (list, invite, revoke), the duty-device setting, and our party's card. */
import {
  browserRandom,
  decodeContactCard,
  fingerprint,
  newInviteCodeWith,
  parsePartyId,
  ROLES,
  type Role,
  roleMaySend,
  safetyNumber,
  sealInviteWith,
} from '@backchannel/client/browser';
import { type ReactNode, useEffect, useState } from 'react';
import { contactQrText, QrCode } from '../qr.tsx';
import { ActionButton, ConfirmAction, useSession } from '../ui.tsx';

interface DeviceRow {
  device: string;
  name: string;
  role: Role;
  state: 'active' | 'revoked' | 'expired' | 'not-yet-valid';
  reason?: string;
  self: boolean;
}

const STATE_LABEL: Readonly<Record<DeviceRow['state'], string>> = {
  active: 'active',
  revoked: 'revoked',
  expired: 'certificate expired',
  'not-yet-valid': 'not valid yet',
};

export function MembersScreen(): ReactNode {
  const session = useSession();
  const id = session.bc.identity;
  const admin = id.rootSecretKey !== undefined;
  const [rows, setRows] = useState<DeviceRow[]>();
  const [err, setErr] = useState<string>();
  const [refused, setRefused] = useState(0);
  const [reload, setReload] = useState(0);
  const [name, setName] = useState('');
  const [role, setRole] = useState<Role>('staff');
  const [invite, setInvite] = useState<{ text: string; code: string }>();
  const [kit, setKit] = useState<{ text: string; code: string }>();
  const [beat, setBeat] = useState(String(session.settings.heartbeatMs / 1000));
  const [lockMin, setLockMin] = useState(String(Math.round(session.settings.lockAfterMs / 60_000)));

  // biome-ignore lint/correctness/useExhaustiveDependencies: `reload` re-reads the list after a change
  useEffect(() => {
    let live = true;
    let retry: ReturnType<typeof setTimeout> | undefined;
    // Only what the party's root key signed is listed (Backchannel.partyDevices). It reads and
    // updates the device's certificate book, so it waits its turn behind a running sync.
    session
      .run((bc) => bc.partyDevices())
      .then(
        ({ devices, refused }) => {
          if (!live) return;
          setErr(undefined);
          setRows(
            devices.map((d) => ({
              device: d.device,
              name: d.name,
              role: d.role,
              state: d.state,
              ...(d.reason === undefined ? {} : { reason: d.reason }),
              self: d.device === id.device,
            })),
          );
          setRefused(refused);
        },
        (e: unknown) => {
          if (!live) return;
          // The relay unreachable or busy: say so, and read again shortly.
          setErr(e instanceof Error ? e.message : String(e));
          retry = setTimeout(() => setReload((n) => n + 1), 3000);
        },
      );
    return () => {
      live = false;
      clearTimeout(retry);
    };
  }, [session, id, reload]);

  return (
    <main>
      <h1>Members and devices</h1>
      {err === undefined ? null : <p className="error">{err}</p>}
      {refused === 0 ? null : (
        <p className="error" role="alert">
          {refused} of the relay's directory entries for your party did not verify under its root key and are
          not listed.
        </p>
      )}
      <table className="devices">
        <caption>Devices of {id.partyName}</caption>
        <thead>
          <tr>
            <th scope="col">Device</th>
            <th scope="col">Role</th>
            <th scope="col">State</th>
            {admin ? <th scope="col">Actions</th> : null}
          </tr>
        </thead>
        <tbody>
          {(rows ?? []).map((r) => (
            <tr key={r.device}>
              <td>
                {r.name}
                {r.self ? ' (this browser)' : ''}
                <br />
                <code>{r.device}</code>
              </td>
              <td>{r.role}</td>
              <td>
                {STATE_LABEL[r.state]}
                {r.reason ? ` (${r.reason})` : ''}
              </td>
              {admin ? (
                <td>
                  {!r.self && r.state !== 'revoked' ? (
                    <ConfirmAction
                      label={`Revoke ${r.name}`}
                      confirmLabel="Revoke the device"
                      question={`Revoke ${r.name}? It will be removed from every channel and can no longer read or post.`}
                      needsReason
                      danger
                      onConfirm={async (reason) => {
                        await session.act((bc) => bc.revokeDevice(r.device, reason));
                        setReload((n) => n + 1);
                      }}
                    />
                  ) : null}
                </td>
              ) : null}
            </tr>
          ))}
        </tbody>
      </table>
      {admin ? (
        <section className="card" aria-labelledby="invite-h">
          <h2 id="invite-h">Add a device</h2>
          <label>
            Member and device name
            <input value={name} onChange={(e) => setName(e.target.value)} />
          </label>
          <label>
            Role
            <select value={role} onChange={(e) => setRole(e.target.value as Role)}>
              {ROLES.map((r) => (
                <option key={r} value={r}>
                  {r}
                </option>
              ))}
            </select>
          </label>
          <ActionButton
            disabled={name.trim() === ''}
            onAction={async () => {
              const identity = await session.run((bc) => bc.addDevice(name.trim(), role));
              const code = newInviteCodeWith(browserRandom);
              const file = await sealInviteWith(identity, code, browserRandom);
              setInvite({ text: JSON.stringify(file), code });
              setName('');
              setReload((n) => n + 1);
            }}
          >
            Create invite
          </ActionButton>
          {invite === undefined ? null : (
            <div className="invite">
              <label>
                Invite (send it by one route)
                <textarea readOnly rows={4} value={invite.text} />
              </label>
              <p>
                One-time code (read it aloud by another route):{' '}
                <strong className="code">{invite.code}</strong>
              </p>
            </div>
          )}
        </section>
      ) : null}
      {admin ? (
        <section className="card" aria-labelledby="recovery-h">
          <h2 id="recovery-h">Recovery kit</h2>
          <p className="hint">
            The party's root key lives in this browser only. The recovery kit holds it, sealed under a
            recovery code: with both, a new device restores the party if this one is lost. Keep the kit and
            the code apart, offline — together they are your party.
          </p>
          <ActionButton
            onAction={async () => {
              const { kit: file, code } = await session.run((bc) => bc.recoveryKit());
              setKit({ text: JSON.stringify(file, null, 2), code });
            }}
          >
            Write the recovery kit
          </ActionButton>
          {kit === undefined ? null : (
            <div className="invite">
              <label>
                Recovery kit (save it as a file, kept apart from the code)
                <textarea readOnly rows={6} value={kit.text} />
              </label>
              <a
                href={`data:application/json;charset=utf-8,${encodeURIComponent(kit.text)}`}
                download={`${id.partyName.replace(/[^A-Za-z0-9-]+/g, '-')}.recovery.json`}
              >
                Download the kit
              </a>
              <p>
                Recovery code (write it down; it is shown once): <strong className="code">{kit.code}</strong>
              </p>
            </div>
          )}
        </section>
      ) : null}
      <section className="card" aria-labelledby="duty-h">
        <h2 id="duty-h">This browser</h2>
        <p className="hint">
          While unlocked, a duty device sends heartbeats on every open channel so the other side sees the line
          is staffed. 0 turns it off.
        </p>
        {roleMaySend(session.bc.identity.certificate.body.role, 'heartbeat') ? (
          <label>
            Duty device: heartbeat every (seconds)
            <input type="number" min={0} value={beat} onChange={(e) => setBeat(e.target.value)} />
          </label>
        ) : (
          <p className="hint">An observer device sends no heartbeats: it cannot be the duty device.</p>
        )}
        <label>
          Lock after this many minutes without activity
          <input type="number" min={1} value={lockMin} onChange={(e) => setLockMin(e.target.value)} />
        </label>
        <ActionButton
          onAction={() =>
            session.saveSettings({
              heartbeatMs: Math.max(0, Number(beat) || 0) * 1000,
              lockAfterMs: Math.max(1, Number(lockMin) || 15) * 60_000,
            })
          }
        >
          Save
        </ActionButton>
      </section>
    </main>
  );
}

export function PartyScreen(): ReactNode {
  const session = useSession();
  const id = session.bc.identity;
  const mine = fingerprint(id.rootPublicKey);
  const [other, setOther] = useState('');
  const [cmp, setCmp] = useState<{ name: string; fp: string; safety: string }>();
  return (
    <main>
      <h1>Our party</h1>
      <dl className="facts">
        <dt>Party</dt>
        <dd>{id.partyName}</dd>
        <dt>Party id (give it to parties who will reach out to you)</dt>
        <dd>
          <code data-testid="party-id">{id.party}</code>
        </dd>
        <dt>This device</dt>
        <dd>
          {id.deviceName} ({id.certificate.body.role}) <code>{id.device}</code>
        </dd>
        <dt>Our fingerprint</dt>
        <dd>
          <code className="fingerprint" data-testid="fingerprint">
            {mine}
          </code>
        </dd>
      </dl>
      <section className="card" aria-labelledby="fp-h">
        <h2 id="fp-h">Compare fingerprints</h2>
        <p className="hint">
          Read both fingerprints aloud with the other party over a channel you already trust (phone, in
          person). If they differ, someone is in the middle: do not proceed.
        </p>
        <figure className="qr-figure">
          <QrCode
            text={contactQrText(id.party, mine)}
            label={`QR code of ${id.partyName}'s party id and fingerprint`}
          />
          <figcaption className="hint">
            In person, the other side can scan this code instead: it holds our party id and fingerprint (
            <code>{contactQrText(id.party, mine)}</code>).
          </figcaption>
        </figure>
        <label>
          Their party id
          <input value={other} onChange={(e) => setOther(e.target.value)} spellCheck={false} />
        </label>
        <ActionButton
          disabled={other.trim() === ''}
          onAction={async () => {
            const p = parsePartyId(other.trim());
            const c = decodeContactCard(await session.bc.relay.getCard(p));
            if (!c.ok || c.value.body.party !== p) throw new Error('their contact card does not verify');
            setCmp({
              name: c.value.body.displayName,
              fp: fingerprint(c.value.body.rootPublicKey),
              safety: safetyNumber(id.rootPublicKey, c.value.body.rootPublicKey),
            });
          }}
        >
          Look up
        </ActionButton>
        {cmp === undefined ? null : (
          <dl className="facts" aria-label="Comparison">
            <dt>{cmp.name}'s fingerprint</dt>
            <dd>
              <code className="fingerprint">{cmp.fp}</code>
            </dd>
            <dt>Safety number (same on both sides)</dt>
            <dd>
              <code className="fingerprint">{cmp.safety}</code>
            </dd>
          </dl>
        )}
      </section>
    </main>
  );
}
