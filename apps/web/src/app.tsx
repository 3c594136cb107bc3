/** The shell: lock state, navigation, offline banner and outbox indicator, and the routes. */
import { lazy, type ReactNode, Suspense } from 'react';
import { ChannelScreen } from './screens/channel.tsx';
import { ChannelsScreen } from './screens/channels.tsx';
import { MembersScreen, PartyScreen } from './screens/members.tsx';
import { LockScreen, Onboarding } from './screens/onboarding.tsx';
import { VerifyScreen } from './screens/verify.tsx';
import type { RefusedSend } from '@backchannel/client/browser';
import { Link, usePath, useSession, when } from './ui.tsx';

// The attestation screen (and the SDK's proof builder) loads on first use, outside the initial bundle.
const AttestScreen = lazy(() => import('./screens/attest.tsx').then((m) => ({ default: m.AttestScreen })));

function Attest(props: { channel?: string }): ReactNode {
  return (
    <Suspense fallback={<main aria-busy="true">Loading…</main>}>
      <AttestScreen {...props} />
    </Suspense>
  );
}
// The document screens load on first use: they are not needed to read and answer a channel.
const DocumentsScreen = lazy(() =>
  import('./screens/documents.tsx').then((m) => ({ default: m.DocumentsScreen })),
);
const DocumentScreen = lazy(() =>
  import('./screens/documents.tsx').then((m) => ({ default: m.DocumentScreen })),
);
const loading = <main aria-busy="true">Loading…</main>;

function Routes(props: { path: string }): ReactNode {
  const p = props.path;
  const m = /^\/channels\/(c_[A-Za-z0-9_-]+)(\/attest)?$/.exec(p);
  if (m?.[1] !== undefined)
    return m[2] === undefined ? <ChannelScreen id={m[1]} /> : <Attest channel={m[1]} />;
  if (p === '/attest') return <Attest />;
  if (p === '/members') return <MembersScreen />;
  if (p === '/party') return <PartyScreen />;
  const d = /^\/documents\/(c_[A-Za-z0-9_-]+)\/(e_[A-Za-z0-9_-]+)$/.exec(p);
  if (d?.[1] !== undefined && d[2] !== undefined)
    return (
      <Suspense fallback={loading}>
        <DocumentScreen channel={d[1]} doc={d[2]} />
      </Suspense>
    );
  if (p === '/documents')
    return (
      <Suspense fallback={loading}>
        <DocumentsScreen />
      </Suspense>
    );
  if (p === '/verify') return <VerifyScreen />;
  return <ChannelsScreen />;
}

function Shell(props: { path: string }): ReactNode {
  const session = useSession();
  const id = session.bc.identity;
  return (
    <>
      <a className="skip" href="#content">
        Skip to content
      </a>
      <header className="top">
        <span className="brand">Backchannel</span>
        <span className="whoami">
          {id.partyName} · {id.deviceName}
        </span>
        <nav aria-label="Main">
          <Link to="/">Channels</Link>
          <Link to="/members">Members &amp; devices</Link>
          <Link to="/party">Our party</Link>
          <Link to="/documents">Documents</Link>
          <Link to="/attest">Attestations</Link>
          <Link to="/verify">Verify</Link>
        </nav>
        <span className="outbox" role="status" aria-label="Outbox">
          {session.outboxPending === 0 ? 'all sent' : `${session.outboxPending} waiting to send`}
        </span>
        <button type="button" onClick={() => session.lock()}>
          Lock
        </button>
      </header>
      {session.online ? null : (
        <div className="offline" role="alert">
          Offline: the relay cannot be reached. What you send waits in the outbox and goes out when the line
          is back.
        </div>
      )}
      {session.revoked ? (
        <div className="revoked" role="alert">
          <strong>This device was revoked by your party.</strong> It can no longer send, and it receives
          nothing new. What is on it stays readable here. To go on working, ask your party's admin for an
          invite and enroll a new device.
        </div>
      ) : null}
      <RefusedSends />
      <div id="content">
        <Routes path={props.path} />
      </div>
    </>
  );
}

/** Why the relay refused a send, in words (its code stays visible for support). */
function refusalWords(r: RefusedSend): string {
  switch (r.code) {
    case 'CERT_REVOKED':
      return 'this device had been revoked';
    case 'NOT_A_MEMBER':
      return 'this device is no longer a member of the channel';
    case 'EPOCH_STALE':
      return 'the channel moved on before it went out; send it again';
    default:
      return r.message === '' ? 'the relay refused it' : r.message;
  }
}

const KIND_WORDS: Readonly<Record<string, string>> = {
  message: 'Message',
  points: 'Points',
  proposal: 'Proposal',
  response: 'Response',
  readout: 'Read-out',
  notice: 'Notice',
  heartbeat: 'Heartbeat',
  receipt: 'Receipt',
};

/** Sends the relay refused for good after they left the composer: nobody received them. */
function RefusedSends(): ReactNode {
  const session = useSession();
  const shown = session.refused.filter((r) => r.kind !== 'heartbeat' && r.kind !== 'receipt');
  if (shown.length === 0) return null;
  return (
    <div className="refused-sends" role="alert">
      <p>
        <strong>Not delivered:</strong> the relay refused{' '}
        {shown.length === 1 ? 'this, which nobody received' : `these ${shown.length}, which nobody received`}:
      </p>
      <ul>
        {shown.map((r) => (
          <li key={`${r.channel}:${r.msgId}`}>
            {KIND_WORDS[r.kind ?? ''] ?? 'An event'}
            {r.summary === undefined ? null : (
              <>
                {' '}
                <q>{r.summary}</q>
              </>
            )}{' '}
            in <Link to={`/channels/${r.channel}`}>this channel</Link>, refused {when(r.at)}:{' '}
            {refusalWords(r)} <span className="meta">({r.code})</span>{' '}
            <button type="button" onClick={() => void session.dismissRefused(r)}>
              Dismiss
            </button>
          </li>
        ))}
      </ul>
    </div>
  );
}

export function App(): ReactNode {
  const session = useSession();
  const path = usePath();
  // The verifier is public: it needs no device and no unlock.
  if (path === '/verify' && session.phase !== 'unlocked')
    return (
      <>
        <header className="top">
          <span className="brand">Backchannel</span>
          <nav aria-label="Main">
            <Link to="/">Open the app</Link>
          </nav>
        </header>
        <VerifyScreen />
      </>
    );
  switch (session.phase) {
    case 'loading':
      return <main aria-busy="true">Loading…</main>;
    case 'new':
      return <Onboarding />;
    case 'locked':
      return <LockScreen />;
    case 'unlocked':
      return <Shell path={path} />;
  }
}
