/** The channels list: status badges, last heard from each party, unread counts, new outreach. */
import { type Channel, parsePartyId } from '@backchannel/client/browser';
import { type ReactNode, useEffect, useState } from 'react';
import { badgeOf, unreadIds } from '../model.ts';
import { ActionButton, errorText, Link, navigate, shortId, StatusBadge, useSession, when } from '../ui.tsx';

export function useChannels(): Channel[] {
  const session = useSession();
  const [list, setList] = useState<Channel[]>([]);
  const v = session.version;
  // biome-ignore lint/correctness/useExhaustiveDependencies: `v` (the session version) is the reload trigger
  useEffect(() => {
    let live = true;
    void session
      .run(async (bc) => {
        const out: Channel[] = [];
        for (const id of await bc.channelIds()) out.push(await bc.channel(id));
        return out;
      })
      .then((l) => {
        if (live) setList(l);
      })
      .catch(() => undefined);
    return () => {
      live = false;
    };
  }, [session, v]);
  return list;
}

export function PartyName(props: { id: string }): ReactNode {
  const session = useSession();
  const info = session.party(props.id);
  const mine = session.bc.identity.party === props.id;
  return (
    <span className="party" title={props.id}>
      {info?.name ?? shortId(props.id)}
      {mine ? ' (us)' : ''}
    </span>
  );
}

function NewOutreach(): ReactNode {
  const session = useSession();
  const [party, setParty] = useState('');
  const [note, setNote] = useState('');
  const [err, setErr] = useState<string>();
  return (
    <section aria-labelledby="outreach-h" className="card">
      <h2 id="outreach-h">Reach out to a party</h2>
      <p className="hint">
        Ask the other party for their party id (shown on their "Our party" page) and compare fingerprints out
        of band.
      </p>
      <label>
        Their party id
        <input
          value={party}
          onChange={(e) => setParty(e.target.value)}
          placeholder="p_…"
          autoComplete="off"
          spellCheck={false}
        />
      </label>
      <label>
        What the outreach says
        <textarea rows={2} value={note} onChange={(e) => setNote(e.target.value)} />
      </label>
      <ActionButton
        disabled={party.trim() === '' || note.trim() === ''}
        onAction={async () => {
          setErr(undefined);
          let id: ReturnType<typeof parsePartyId>;
          try {
            id = parsePartyId(party.trim());
          } catch {
            setErr('that is not a party id (it starts with p_)');
            return;
          }
          const ch = await session.act((bc) => bc.outreach(id, note.trim()));
          setParty('');
          setNote('');
          navigate(`/channels/${ch.id}`);
        }}
      >
        Send outreach
      </ActionButton>
      {err === undefined ? null : (
        <p role="alert" className="error">
          {err}
        </p>
      )}
    </section>
  );
}

export function ChannelsScreen(): ReactNode {
  const session = useSession();
  const channels = useChannels();
  const me = session.bc.identity.party;
  const now = Date.now();
  return (
    <main>
      <h1>Channels</h1>
      {channels.length === 0 ? <p>No channels yet.</p> : null}
      <ul className="channels" aria-label="Channels">
        {channels.map((ch) => {
          const s = ch.view.state;
          const others = s.parties.filter((p) => p !== me);
          const unread = unreadIds(s, me).length;
          return (
            <li key={ch.id} data-channel={ch.id}>
              <Link to={`/channels/${ch.id}`} className="channel-row">
                <StatusBadge status={badgeOf(s, me, now)} />
                <span className="with">
                  {others.length === 0 ? shortId(ch.id) : others.map((p) => <PartyName key={p} id={p} />)}
                </span>
                {unread > 0 ? (
                  <span className="unread">
                    {unread}
                    <span className="sr-only"> unread</span>
                  </span>
                ) : null}
              </Link>
              <span className="heard">
                {others.map((p) => (
                  <span key={p}>
                    last heard from <PartyName id={p} />: {when(s.lastHeard[p])}
                  </span>
                ))}
              </span>
            </li>
          );
        })}
      </ul>
      <NewOutreach />
      {session.lastError === undefined || session.revoked ? null : (
        <p className="error">{errorText(session.lastError)}</p>
      )}
    </main>
  );
}
