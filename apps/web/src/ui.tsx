/** Small shared pieces: routing, session hook, status badges, async buttons, confirmations. */
import { createContext, type ReactNode, useContext, useEffect, useState, useSyncExternalStore } from 'react';
import type { Session } from './session.ts';

export const SessionContext = createContext<Session | undefined>(undefined);

/** The session, re-rendering the caller on every change. */
export function useSession(): Session {
  const s = useContext(SessionContext);
  if (s === undefined) throw new Error('useSession outside SessionContext');
  useSyncExternalStore(s.subscribe, s.getSnapshot);
  return s;
}

// ---- routing (history API; the relay serves index.html for every app path) ----

let listeners: Array<() => void> = [];
export function navigate(path: string): void {
  history.pushState(null, '', path);
  for (const l of listeners) l();
}
export function usePath(): string {
  const [path, setPath] = useState(location.pathname);
  useEffect(() => {
    const on = () => setPath(location.pathname);
    listeners.push(on);
    addEventListener('popstate', on);
    return () => {
      listeners = listeners.filter((l) => l !== on);
      removeEventListener('popstate', on);
    };
  }, []);
  return path;
}

export function Link(props: { to: string; children: ReactNode; className?: string }): ReactNode {
  const current = usePath();
  return (
    <a
      href={props.to}
      className={props.className}
      aria-current={current === props.to ? 'page' : undefined}
      onClick={(e) => {
        if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
        e.preventDefault();
        navigate(props.to);
      }}
    >
      {props.children}
    </a>
  );
}

export type Badge = 'open' | 'quiet' | 'silent' | 'suspended' | 'closed' | 'outreach waiting' | 'proposed';

export function StatusBadge(props: { status: Badge }): ReactNode {
  return (
    <span className={`badge badge-${props.status.replace(' ', '-')}`} data-status={props.status}>
      {props.status}
    </span>
  );
}

/**
 * What the app calls the actions the SDK's messages name as CLI commands (the SDK speaks to the
 * terminal too): a user of the app is pointed at the button, not at a command they cannot run.
 */
const IN_THE_APP: ReadonlyArray<readonly [RegExp, string]> = [
  [/^channel reopen\b/, '“Reopen channel” on the channel'],
  [/^outreach\b/, 'a new outreach to them (Channels)'],
  [/^accept\b/, '“Accept outreach” on the channel'],
  [/^card publish\b/, 'publishing its card (their admin does it)'],
  [/^device add\b/, '“Add a device” under Members & devices'],
  [/^device revoke\b/, '“Revoke” under Members & devices'],
  [/^(init recover|recovery-kit)\b/, 'the recovery kit (Our party)'],
  [/^init\b/, 'setting up this device'],
  [/^doc\b/, 'the Documents page'],
  [/^keys\b/, 'the public-keys file (Attestations)'],
];

export function errorText(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  return text.replace(/`backchannel ([^`]*)`/g, (whole, cmd: string) => {
    const hit = IN_THE_APP.find(([re]) => re.test(cmd));
    return hit === undefined ? whole : hit[1];
  });
}

/** A button that runs an async action, disables itself meanwhile and reports failures. */
export function ActionButton(props: {
  onAction: () => Promise<unknown>;
  children: ReactNode;
  disabled?: boolean;
  className?: string | undefined;
  type?: 'button' | 'submit';
}): ReactNode {
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState<string>();
  return (
    <>
      <button
        type={props.type ?? 'button'}
        className={props.className}
        disabled={busy || props.disabled === true}
        aria-busy={busy}
        onClick={() => {
          setBusy(true);
          setErr(undefined);
          props.onAction().then(
            () => setBusy(false),
            (e: unknown) => {
              setBusy(false);
              setErr(errorText(e));
            },
          );
        }}
      >
        {props.children}
      </button>
      {err === undefined ? null : (
        <p role="alert" className="error">
          {err}
        </p>
      )}
    </>
  );
}

/** An action that needs an explicit second step ("Are you sure?"), optionally with a reason. */
export function ConfirmAction(props: {
  label: string;
  confirmLabel: string;
  question: string;
  needsReason?: boolean;
  /** A reason field that may stay empty (a decline, a close). */
  offerReason?: boolean;
  /** The field's label (default: "Reason (kept on record)"). */
  reasonLabel?: string;
  onConfirm: (reason: string) => Promise<unknown>;
  danger?: boolean;
}): ReactNode {
  const [open, setOpen] = useState(false);
  const [reason, setReason] = useState('');
  if (!open) {
    return (
      <button
        type="button"
        className={props.danger === true ? 'danger' : undefined}
        onClick={() => setOpen(true)}
      >
        {props.label}
      </button>
    );
  }
  return (
    <fieldset className="confirm">
      <legend>{props.question}</legend>
      {props.needsReason === true || props.offerReason === true ? (
        <label>
          {props.reasonLabel ??
            (props.needsReason === true ? 'Reason (kept on record)' : 'Reason (optional, kept on record)')}
          <input
            value={reason}
            onChange={(e) => setReason(e.target.value)}
            required={props.needsReason === true}
          />
        </label>
      ) : null}
      <ActionButton
        className={props.danger === true ? 'danger' : undefined}
        disabled={props.needsReason === true && reason.trim() === ''}
        onAction={async () => {
          await props.onConfirm(reason.trim());
          setOpen(false);
          setReason('');
        }}
      >
        {props.confirmLabel}
      </ActionButton>
      <button type="button" onClick={() => setOpen(false)}>
        Cancel
      </button>
    </fieldset>
  );
}

// One formatter for the page: Date#toLocaleString builds a new one on every call (slow in long lists).
const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'short', timeStyle: 'medium' });

export function when(t: number | undefined): string {
  return t === undefined ? 'never' : dateFormat.format(t);
}

export function shortId(id: string): string {
  return id.length > 12 ? `${id.slice(0, 10)}…` : id;
}

/**
 * A message's id (an envelope's msgId) in short: its first characters are its run, shared by the
 * ids a device sends one after another (docs/PROTOCOL.md §6), so its random end tells them apart.
 */
export function shortMsgId(id: string): string {
  return id.length > 12 ? `e_…${id.slice(-8)}` : id;
}

/** Bidirectional overrides, embeddings and isolates: they reorder what is shown after them. */
const BIDI_CONTROLS = /[\u202a-\u202e\u2066-\u2069]/g;

/**
 * Text the other side wrote, with every bidirectional override, embedding or isolate shown as a
 * visible mark instead of obeyed: "U+202E" turns "txt.exe" into "exe.txt" on screen otherwise.
 * (Direction marks and joiners, which right-to-left scripts and emoji need, stay as they are.)
 */
export function Txt(props: { text: string | undefined }): ReactNode {
  const s = props.text ?? '';
  const parts: ReactNode[] = [];
  let last = 0;
  for (const m of s.matchAll(BIDI_CONTROLS)) {
    parts.push(s.slice(last, m.index));
    const code = `U+${(m[0].codePointAt(0) ?? 0).toString(16).toUpperCase()}`;
    parts.push(
      // dir="ltr": the mark's own Latin letters must not decide a dir="auto" paragraph's direction.
      <span
        key={m.index}
        className="bidi-control"
        dir="ltr"
        title="a text direction control, shown instead of obeyed"
      >
        [{code}]
      </span>,
    );
    last = m.index + 1;
  }
  if (last === 0) return s;
  parts.push(s.slice(last));
  return <>{parts}</>;
}
