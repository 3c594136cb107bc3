/** The channel timeline: every readable event as text, with delivered/read per party. */
import type { ChannelState, EventRecord, PartyId } from '@backchannel/client/browser';
import { memo, type ReactNode, useState } from 'react';

/** Events rendered at first and per "earlier" click: a few screens, so the first paint stays fast. */
const PAGE = 60;
import { isReadable, type Readable } from '../model.ts';
import { Link, shortId, shortMsgId, Txt, when } from '../ui.tsx';

/** Renders a party id through the caller (it knows names); plain id otherwise. */
export type NameOf = (party: string) => string;

const TRACK_VERBS = {
  'track.suspend': 'suspended',
  'track.revive': 'revived',
  'track.conclude': 'concluded',
} as const;
const CHANGE_LABELS: Partial<Record<string, string>> = {
  'channel.accept': 'Accepted the outreach: the channel is open',
  'channel.decline': 'Declined the outreach',
  'channel.suspend': 'Suspended the channel',
  'channel.reopen': 'Reopened the channel',
  'channel.close': 'Closed the channel',
};

function Body(props: {
  r: Readable;
  trackName: (id: string) => string;
  /** A document's title and where its page is. */
  doc: (id: string) => { title: string; href: string };
  /** Titles of the channel's events by id (what a response answers). */
  titles: ReadonlyMap<string, string>;
}): ReactNode {
  const e = props.r.event;
  switch (e.kind) {
    case 'doc.revision':
    case 'doc.comment':
    case 'doc.sign': {
      const d = props.doc(e.doc);
      const title = (
        <>
          “
          <Link to={d.href}>
            <bdi>
              <Txt text={d.title} />
            </bdi>
          </Link>
          ”
        </>
      );
      if (e.kind === 'doc.revision')
        return (
          <p className="meta">
            {e.n === 0 ? 'Opened the document' : 'Revised the document'} {title}: revision {e.n}
          </p>
        );
      if (e.kind === 'doc.comment')
        return (
          <p className="meta">
            Commented on clause {e.clause}
            {e.lang === undefined ? '' : ` (${e.lang})`} of {title}:{' '}
            <bdi>
              <Txt text={e.text} />
            </bdi>
          </p>
        );
      return (
        <p className="meta">
          {e.level === 'agree'
            ? `Agreed clause ${e.clause?.id ?? '?'}${e.clause === undefined ? '' : ` (${e.clause.lang})`} of `
            : e.level === 'initial'
              ? 'Initialled '
              : 'Signed '}
          {title}
        </p>
      );
    }
    case 'message':
      return (
        <p className="text" dir="auto">
          <Txt text={e.text} />
        </p>
      );
    case 'points':
      return (
        <>
          <p className="title">
            Points:{' '}
            <bdi>
              <Txt text={e.title} />
            </bdi>
          </p>
          <ol>
            {e.items.map((it, i) => (
              // Items are positional: the order is the content.
              // biome-ignore lint/suspicious/noArrayIndexKey: the list never reorders
              <li key={i} dir="auto">
                <Txt text={it} />
              </li>
            ))}
          </ol>
        </>
      );
    case 'proposal':
      return (
        <>
          <p className="title">
            Proposal:{' '}
            <bdi>
              <Txt text={e.title} />
            </bdi>
          </p>
          <p className="text" dir="auto">
            <Txt text={e.text} />
          </p>
        </>
      );
    case 'response':
      return (
        <>
          <p className="title">
            Response ({e.stance}) to{' '}
            {props.titles.has(e.to) ? (
              <>
                “
                <bdi>
                  <Txt text={props.titles.get(e.to)} />
                </bdi>
                ”
              </>
            ) : (
              shortMsgId(e.to)
            )}
          </p>
          <p className="text" dir="auto">
            <Txt text={e.text} />
          </p>
        </>
      );
    case 'notice':
      return (
        <>
          <p className="title">
            Notice:{' '}
            <bdi>
              <Txt text={e.title} />
            </bdi>{' '}
            — acknowledge by {when(e.ackBy)}
          </p>
          <p className="text" dir="auto">
            <Txt text={e.text} />
          </p>
        </>
      );
    case 'readout':
      return (
        <p className="text">
          Read-out (
          <bdi>
            <Txt text={e.round} />
          </bdi>
          ):{' '}
          <bdi>
            <Txt text={e.text ?? '[committed, not yet published]'} />
          </bdi>
        </p>
      );
    case 'outreach':
      return (
        <p className="text">
          Outreach:{' '}
          <bdi>
            <Txt text={e.note} />
          </bdi>
        </p>
      );
    case 'track.open':
      return (
        <p className="meta">
          Track “
          <bdi>
            <Txt text={e.name} />
          </bdi>
          ” opened
        </p>
      );
    case 'join.context':
      return (
        <p className="meta">
          Added {e.devices.length === 1 ? 'a device' : `${e.devices.length} devices`} to the channel;
          disclosed {e.disclosures.length} earlier event(s) (lifecycle, tracks, documents, open proposals and
          notices) to {e.devices.length === 1 ? 'it' : 'them'}
        </p>
      );
    case 'track.suspend':
    case 'track.revive':
    case 'track.conclude':
      return (
        <p className="meta">
          Track “
          <bdi>
            <Txt text={props.trackName(e.trackId)} />
          </bdi>
          ” {TRACK_VERBS[e.kind]}
          {e.reason === undefined ? null : (
            <>
              {' — '}
              <bdi>
                <Txt text={e.reason} />
              </bdi>
            </>
          )}
        </p>
      );
    default:
      return (
        <p className="meta">
          {CHANGE_LABELS[e.kind] ?? e.kind}
          {'reason' in e && typeof e.reason === 'string' ? (
            <>
              {' — '}
              <bdi>
                <Txt text={e.reason} />
              </bdi>
            </>
          ) : null}
        </p>
      );
  }
}

function Receipts(props: { s: ChannelState; r: Readable; nameOf: NameOf }): ReactNode {
  const rec = props.s.receipts.get(props.r.event.id);
  if (rec === undefined) return null;
  const others = props.s.parties.filter((p) => p !== rec.from);
  return (
    <ul className="receipts" aria-label="Delivery">
      {others.map((p) => {
        const read = rec.read[p];
        const delivered = rec.delivered[p];
        const state = read !== undefined ? 'read' : delivered !== undefined ? 'delivered' : 'sent';
        return (
          <li key={p} data-party={p} data-receipt={state}>
            {state === 'sent'
              ? `not yet delivered to ${props.nameOf(p)}`
              : `${state} by ${props.nameOf(p)} ${when(read ?? delivered)}`}
          </li>
        );
      })}
    </ul>
  );
}

const Item = memo(function Item(props: {
  r: Readable;
  s: ChannelState;
  me: PartyId;
  nameOf: NameOf;
  trackName: (id: string) => string;
  titles: ReadonlyMap<string, string>;
}): ReactNode {
  const { r } = props;
  const track = r.event.track;
  return (
    <li
      className={`event kind-${r.event.kind.replace('.', '-')}${r.party === props.me ? ' mine' : ''}`}
      data-kind={r.event.kind}
      data-event={r.event.id}
    >
      <div className="head">
        <span className="who">
          <bdi>
            <Txt text={props.nameOf(r.party)} />
          </bdi>
        </span>
        <time dateTime={new Date(r.receivedAt).toISOString()}>{when(r.receivedAt)}</time>
        {track === undefined ? null : (
          <span className="track-tag">
            #<Txt text={props.trackName(track)} />
          </span>
        )}
        {r.status === 'rejected' ? <span className="rejected">refused: {r.code}</span> : null}
        {r.status === 'unchecked' && r.refs !== undefined ? (
          <span className="before-join">
            answers an event from before this device joined (epoch {r.refs.joinedEpoch})
          </span>
        ) : null}
      </div>
      <Body r={r} trackName={props.trackName} doc={(id) => docLink(props.s, id)} titles={props.titles} />
      <Receipts s={props.s} r={r} nameOf={props.nameOf} />
    </li>
  );
});

export function Timeline(props: {
  timeline: readonly EventRecord[];
  state: ChannelState;
  me: PartyId;
  nameOf: NameOf;
  track: string;
}): ReactNode {
  const s = props.state;
  const trackName = (id: string) => s.tracks[id]?.name ?? shortId(id);
  // A response names what it answers by its title (a proposal's, points', a notice's).
  // (Built on every render, as the list below: the SDK may grow the same timeline array.)
  const titles = new Map(
    props.timeline.flatMap((r) =>
      isReadable(r) && 'title' in r.event && typeof r.event.title === 'string'
        ? [[r.event.id as string, r.event.title] as const]
        : [],
    ),
  );
  const items = props.timeline.filter(
    (r): r is Readable =>
      isReadable(r) &&
      r.event.kind !== 'receipt' &&
      r.event.kind !== 'heartbeat' &&
      (props.track === '' ||
        r.event.track === props.track ||
        ('trackId' in r.event && r.event.trackId === props.track)),
  );
  // The latest events first: long channels render one page, earlier pages on request.
  const [shown, setShown] = useState(PAGE);
  const hidden = Math.max(0, items.length - shown);
  return (
    <>
      {hidden > 0 ? (
        <button type="button" className="earlier" onClick={() => setShown((n) => n + PAGE)}>
          Show {Math.min(PAGE, hidden)} earlier events ({hidden} not shown)
        </button>
      ) : null}
      <ol className="timeline" aria-label="Timeline">
        {items.length === 0 ? <li className="meta">Nothing yet.</li> : null}
        {(hidden > 0 ? items.slice(hidden) : items).map((r) => (
          <Item
            key={r.seq}
            r={r}
            s={s}
            me={props.me}
            nameOf={props.nameOf}
            trackName={trackName}
            titles={titles}
          />
        ))}
      </ol>
    </>
  );
}

/** A document of the channel: its title (its id while unknown) and its page. */
function docLink(s: ChannelState, id: string): { title: string; href: string } {
  const d = s.documents[id];
  const head = d?.revisions[d.revisions.length - 1];
  return { title: head?.body.title ?? shortId(id), href: `/documents/${s.channel}/${id}` };
}
