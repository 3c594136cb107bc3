/** One channel: status, outreach decision, timeline, composer, members, track board, lifecycle actions. */
import {
  type Channel,
  type DraftEvent,
  type EventId,
  roleMaySend,
  type TrackId,
  trackIdFrom,
  browserRandom,
} from '@backchannel/client/browser';
import { type ReactNode, useEffect, useRef, useState } from 'react';
import { answerable, badgeOf, unreadIds } from '../model.ts';
import {
  ActionButton,
  ConfirmAction,
  Link,
  shortId,
  shortMsgId,
  StatusBadge,
  useSession,
  when,
} from '../ui.tsx';
import { PartyName, useChannels } from './channels.tsx';
import { ChannelMembers, JoinNote, StateLostNote } from './channel-members.tsx';
import { LivenessChart, TrackChart } from './charts.tsx';
import { Timeline } from './timeline.tsx';

type Kind = 'message' | 'points' | 'proposal' | 'response' | 'notice';

interface Draft {
  kind: Kind;
  title: string;
  text: string;
  to: string;
  stance: 'accept' | 'reject' | 'counter' | 'note';
  /** A notice's deadline: acknowledge within this many hours (kept as typed). */
  ackWithinHours?: string;
}
const EMPTY: Draft = { kind: 'message', title: '', text: '', to: '', stance: 'note' };

/** Hours a notice may give (1 minute to 366 days, as the CLI's --ack-within). */
function ackHours(d: Draft): number | undefined {
  const h = Number(d.ackWithinHours ?? '24');
  return Number.isFinite(h) && h >= 1 / 60 && h <= 366 * 24 ? h : undefined;
}

function draftEvent(d: Draft, track: string): DraftEvent {
  const t = track === '' ? {} : { track: track as TrackId };
  switch (d.kind) {
    case 'message':
      return { kind: 'message', text: d.text, ...t } as DraftEvent;
    case 'points':
      return {
        kind: 'points',
        title: d.title,
        items: d.text
          .split('\n')
          .map((x) => x.trim())
          .filter((x) => x !== ''),
        ...t,
      } as DraftEvent;
    case 'proposal':
      return { kind: 'proposal', title: d.title, text: d.text, ...t } as DraftEvent;
    case 'response':
      return { kind: 'response', to: d.to as EventId, stance: d.stance, text: d.text, ...t } as DraftEvent;
    case 'notice':
      return {
        kind: 'notice',
        title: d.title,
        text: d.text,
        ackBy: Date.now() + Math.round((ackHours(d) ?? 24) * 3_600_000),
        ...t,
      } as DraftEvent;
  }
}

function Composer(props: { ch: Channel; track: string }): ReactNode {
  const session = useSession();
  const [d, setD] = useState<Draft>(EMPTY);
  const loaded = useRef(false);
  const key = props.ch.id;
  // Drafts survive a reload: kept (encrypted) in the device store.
  useEffect(() => {
    loaded.current = false;
    void session.loadDraft(key).then((t) => {
      if (t !== '') setD({ ...EMPTY, ...(JSON.parse(t) as Partial<Draft>) });
      loaded.current = true;
    });
  }, [session, key]);
  const [saved, setSaved] = useState<Draft>();
  useEffect(() => {
    if (!loaded.current) return;
    const t = setTimeout(() => {
      void session.saveDraft(key, d === EMPTY ? '' : JSON.stringify(d)).then(() => setSaved(d));
    }, 250);
    return () => clearTimeout(t);
  }, [session, key, d]);
  const me = session.bc.identity.party;
  const targets = answerable(props.ch.view.timeline, me);
  const needsTitle = d.kind === 'points' || d.kind === 'proposal' || d.kind === 'notice';
  const ready =
    d.text.trim() !== '' &&
    (!needsTitle || d.title.trim() !== '') &&
    (d.kind !== 'response' || d.to !== '') &&
    (d.kind !== 'notice' || ackHours(d) !== undefined);
  const role = session.bc.identity.certificate.body.role;
  const kinds = (['message', 'points', 'proposal', 'response', 'notice'] as const).filter((k) =>
    roleMaySend(role, k),
  );
  const set = (patch: Partial<Draft>) => setD((x) => ({ ...x, ...patch }));
  return (
    <form className="composer card" aria-label="Compose" onSubmit={(e) => e.preventDefault()}>
      <fieldset>
        <legend>Send</legend>
        <div className="kinds" role="radiogroup" aria-label="What to send">
          {kinds.map((k) => (
            <label key={k} className="radio">
              <input
                type="radio"
                name="kind"
                value={k}
                checked={d.kind === k}
                onChange={() => set({ kind: k })}
              />
              {k}
            </label>
          ))}
        </div>
        {needsTitle ? (
          <label>
            Title
            <input value={d.title} onChange={(e) => set({ title: e.target.value })} />
          </label>
        ) : null}
        {d.kind === 'notice' ? (
          <label>
            Acknowledge within (hours)
            <input
              type="number"
              min="0.1"
              max="8784"
              step="any"
              value={d.ackWithinHours ?? '24'}
              onChange={(e) => set({ ackWithinHours: e.target.value })}
            />
          </label>
        ) : null}
        {d.kind === 'response' ? (
          <>
            <label>
              In response to
              <select value={d.to} onChange={(e) => set({ to: e.target.value })}>
                <option value="">— choose —</option>
                {targets.map((r) => (
                  <option key={r.event.id} value={r.event.id}>
                    {r.event.kind}: {'title' in r.event ? r.event.title : shortMsgId(r.event.id)}
                  </option>
                ))}
              </select>
            </label>
            <label>
              Stance
              <select value={d.stance} onChange={(e) => set({ stance: e.target.value as Draft['stance'] })}>
                <option value="note">note</option>
                <option value="accept">accept</option>
                <option value="reject">reject</option>
                <option value="counter">counter</option>
              </select>
            </label>
          </>
        ) : null}
        <label>
          {d.kind === 'points' ? 'Points (one per line)' : 'Text'}
          <textarea
            rows={d.kind === 'points' ? 4 : 3}
            value={d.text}
            onChange={(e) => set({ text: e.target.value })}
          />
        </label>
        <ActionButton
          disabled={!ready}
          onAction={async () => {
            const ev = draftEvent(d, props.track);
            await session.act(async () => props.ch.send(ev));
            setD(EMPTY);
            await session.saveDraft(key, '');
          }}
        >
          Send {d.kind}
        </ActionButton>
        <span className="hint" role="status">
          {saved === d && d !== EMPTY ? 'Draft saved on this device' : ''}
        </span>
      </fieldset>
    </form>
  );
}

function TrackBoard(props: { ch: Channel }): ReactNode {
  const session = useSession();
  const [name, setName] = useState('');
  const tracks = Object.entries(props.ch.view.state.tracks);
  const send = (ev: DraftEvent) => session.act(async () => props.ch.send(ev));
  // Offered only what the channel rules would accept from this device's role.
  const role = session.bc.identity.certificate.body.role;
  const may = (kind: DraftEvent['kind']) => roleMaySend(role, kind);
  return (
    <section className="card" aria-labelledby="tracks-h">
      <h2 id="tracks-h">Tracks</h2>
      <TrackChart state={props.ch.view.state} now={Date.now()} />
      <ul className="tracks">
        {tracks.map(([id, t]) => (
          <li key={id} data-track={t.name} data-track-status={t.status}>
            <strong>{t.name}</strong> <span className={`badge track-${t.status}`}>{t.status}</span>
            <ol className="history" aria-label={`History of ${t.name}`}>
              {t.history.map((h) => (
                <li key={h.seq}>
                  {when(h.at)} {h.status}
                  {h.reason === undefined ? '' : ` — ${h.reason}`}
                </li>
              ))}
            </ol>
            <div className="actions">
              {(t.status === 'active' || t.status === 'revived') && may('track.suspend') ? (
                <ConfirmAction
                  label={`Suspend ${t.name}`}
                  confirmLabel="Suspend the track"
                  question={`Suspend the track “${t.name}”?`}
                  needsReason
                  onConfirm={(reason) =>
                    send({ kind: 'track.suspend', trackId: id as TrackId, reason } as DraftEvent)
                  }
                />
              ) : null}
              {t.status === 'suspended' && may('track.revive') ? (
                <ActionButton
                  onAction={() => send({ kind: 'track.revive', trackId: id as TrackId } as DraftEvent)}
                >
                  Revive {t.name}
                </ActionButton>
              ) : null}
              {t.status !== 'concluded' && may('track.conclude') ? (
                <ConfirmAction
                  label={`Conclude ${t.name}`}
                  confirmLabel="Conclude the track"
                  question={`Conclude the track “${t.name}”? This is final.`}
                  onConfirm={() => send({ kind: 'track.conclude', trackId: id as TrackId } as DraftEvent)}
                />
              ) : null}
            </div>
          </li>
        ))}
      </ul>
      {may('track.open') ? (
        <>
          <label>
            New track
            <input value={name} onChange={(e) => setName(e.target.value)} placeholder="e.g. nuclear" />
          </label>
          <ActionButton
            disabled={name.trim() === ''}
            onAction={async () => {
              await send({
                kind: 'track.open',
                trackId: trackIdFrom(browserRandom(16)),
                name: name.trim(),
              } as DraftEvent);
              setName('');
            }}
          >
            Open track
          </ActionButton>
        </>
      ) : (
        <p className="hint">
          As {role}, this device follows the tracks; a principal or negotiator opens and changes them.
        </p>
      )}
    </section>
  );
}

function Lifecycle(props: { ch: Channel }): ReactNode {
  const session = useSession();
  const s = props.ch.view.state;
  const me = session.bc.identity.party;
  const send = (ev: DraftEvent) => session.act(async () => props.ch.send(ev));
  const role = session.bc.identity.certificate.body.role;
  const may = (kind: DraftEvent['kind']) => roleMaySend(role, kind);
  // The one other party an outreach on this channel goes to (none when there are several).
  const others = s.parties.filter((p) => p !== me);
  const other = others.length === 1 ? others[0] : undefined;
  const waiting =
    (s.lifecycle === 'proposed' && s.initiator !== me) ||
    (s.lifecycle === 'suspended' && s.reopenProposedBy !== undefined && s.reopenProposedBy !== me);
  return (
    <section className="card" aria-labelledby="life-h">
      <h2 id="life-h">Channel</h2>
      {waiting && may('channel.accept') ? (
        <fieldset className="decision">
          <legend>Outreach decision</legend>
          <p>
            <PartyName id={s.initiator ?? s.reopenProposedBy ?? ''} /> reached out. Accept to open the
            channel.
          </p>
          <ActionButton onAction={() => send({ kind: 'channel.accept' } as DraftEvent)}>
            Accept outreach
          </ActionButton>
          <ConfirmAction
            label="Decline"
            confirmLabel="Decline the outreach"
            question="Decline this outreach?"
            offerReason
            onConfirm={(reason) =>
              send({ kind: 'channel.decline', ...(reason === '' ? {} : { reason }) } as DraftEvent)
            }
          />
        </fieldset>
      ) : null}
      <ol className="history" aria-label="Channel history">
        {s.lifecycleHistory.map((h) => (
          <li key={h.seq}>
            {when(h.at)} {h.status}
            {h.reason === undefined ? '' : ` — ${h.reason}`}
          </li>
        ))}
      </ol>
      {waiting && !may('channel.accept') ? (
        <p className="hint">
          <PartyName id={s.initiator ?? s.reopenProposedBy ?? ''} /> reached out; a principal, negotiator or
          admin device of this party decides.
        </p>
      ) : null}
      {!may('channel.suspend') && !may('channel.close') ? (
        <p className="hint">As {role}, this device cannot suspend, reopen or close the channel.</p>
      ) : null}
      <div className="actions">
        {s.lifecycle === 'open' && may('channel.suspend') ? (
          <ConfirmAction
            label="Suspend channel"
            confirmLabel="Suspend the channel"
            question="Suspend this channel? Nothing can be sent until it is reopened."
            needsReason
            onConfirm={(reason) => send({ kind: 'channel.suspend', reason } as DraftEvent)}
          />
        ) : null}
        {s.lifecycle === 'suspended' && !waiting && may('channel.reopen') ? (
          <ActionButton onAction={() => send({ kind: 'channel.reopen' } as DraftEvent)}>
            Reopen channel
          </ActionButton>
        ) : null}
        {s.lifecycle === 'suspended' &&
        s.reopenProposedBy === undefined &&
        may('outreach') &&
        other !== undefined ? (
          // Step 3 of the reference scenario: reach out on the suspended channel; the other party
          // accepts (the channel reopens) or declines.
          <ConfirmAction
            label="Propose to reopen"
            confirmLabel="Send the outreach"
            question="Reach out on this channel to propose to reopen it? The other party accepts or declines."
            needsReason
            reasonLabel="What the outreach says"
            onConfirm={(note) =>
              session.act(async () =>
                props.ch.send({ kind: 'outreach', from: me, to: other, note } as DraftEvent, { to: [other] }),
              )
            }
          />
        ) : null}
        {s.lifecycle !== 'closed' && may('channel.close') ? (
          <ConfirmAction
            label="Close channel"
            confirmLabel="Close the channel for good"
            question="Close this channel? This is final: nothing more can be sent on it."
            offerReason
            danger
            onConfirm={(reason) =>
              send({ kind: 'channel.close', ...(reason === '' ? {} : { reason }) } as DraftEvent)
            }
          />
        ) : null}
      </div>
    </section>
  );
}

export function ChannelScreen(props: { id: string }): ReactNode {
  const session = useSession();
  const channels = useChannels();
  const ch = channels.find((c) => c.id === props.id);
  const [track, setTrack] = useState('');
  const me = session.bc.identity.party;
  const unread = ch === undefined ? [] : unreadIds(ch.view.state, me);
  const unreadKey = unread.join(',');
  // Read receipts: what this screen shows while the page is visible counts as read.
  useEffect(() => {
    if (ch === undefined || unreadKey === '' || document.visibilityState !== 'visible') return;
    const s = ch.view.state;
    if (s.lifecycle !== 'open') return;
    void session
      .act(async () =>
        ch.send({ kind: 'receipt', type: 'read', of: unreadKey.split(',') as EventId[] } as DraftEvent),
      )
      .catch(() => undefined);
  }, [session, ch, unreadKey]);
  if (ch === undefined)
    return <main>{channels.length === 0 ? 'Loading…' : `No channel ${props.id} on this device.`}</main>;
  const s = ch.view.state;
  const nameOf = (p: string) => {
    const info = session.party(p);
    return `${info?.name ?? shortId(p)}${p === me ? ' (us)' : ''}`;
  };
  return (
    <main className="channel">
      <header className="channel-head">
        <h1>
          Channel with{' '}
          {s.parties
            .filter((p) => p !== me)
            .map((p) => nameOf(p))
            .join(', ') || shortId(ch.id)}
        </h1>
        <StatusBadge status={badgeOf(s, me, Date.now())} />
        <p className="meta">
          {ch.id} · {ch.record.nextSeq} entries, verified checkpoint at {ch.record.checkpointSize}
        </p>
        <StateLostNote ch={ch} />
        <JoinNote ch={ch} />
        {(session.pendingByChannel.get(ch.id) ?? 0) > 0 ? (
          <p className="pending" role="status">
            {session.pendingByChannel.get(ch.id)} event(s) waiting to send, kept on this device
          </p>
        ) : null}
        <p>
          <Link to={`/channels/${ch.id}/attest`}>Make an attestation</Link> about this channel (a signed claim
          anyone can verify)
        </p>
        <ul className="heard">
          {s.parties
            .filter((p) => p !== me)
            .map((p) => (
              <li key={p}>
                last heard from {nameOf(p)}: {when(s.lastHeard[p])}
              </li>
            ))}
        </ul>
        <LivenessChart state={s} timeline={ch.view.timeline} nameOf={nameOf} now={Date.now()} />
      </header>
      <div className="columns">
        <div className="main-col">
          <label>
            Filter by track
            <select value={track} onChange={(e) => setTrack(e.target.value)}>
              <option value="">All tracks</option>
              {Object.entries(s.tracks).map(([id, t]) => (
                <option key={id} value={id}>
                  {t.name}
                </option>
              ))}
            </select>
          </label>
          <Timeline timeline={ch.view.timeline} state={s} me={me} nameOf={nameOf} track={track} />
          {s.lifecycle === 'open' && roleMaySend(session.bc.identity.certificate.body.role, 'message') ? (
            <Composer ch={ch} track={track} />
          ) : null}
        </div>
        <aside className="side-col">
          <Lifecycle ch={ch} />
          <ChannelMembers ch={ch} />
          <TrackBoard ch={ch} />
        </aside>
      </div>
    </main>
  );
}
