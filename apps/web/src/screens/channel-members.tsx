/** The channel's members by party (from this device's MLS group) and the note a late-joining device gets. */
import { type Channel, channelMembers, fingerprint } from '@backchannel/client/browser';
import type { ReactNode } from 'react';
import { joinNote, membersByParty, type PartyMembers } from '../members-model.ts';
import type { PartyInfo } from '../session.ts';
import { shortId, useSession } from '../ui.tsx';

function PartyDevices(props: { group: PartyMembers; info: PartyInfo | undefined }): ReactNode {
  const g = props.group;
  const name = props.info?.name ?? shortId(g.party);
  const headingId = `members-${g.party}`;
  return (
    <section className="member-party" aria-labelledby={headingId} data-party={g.party}>
      <h3 id={headingId} title={g.party}>
        {name}
        {g.us ? ' (us)' : ''}
      </h3>
      {props.info === undefined ? null : (
        <p className="meta">
          Fingerprint <code className="fingerprint">{props.info.fingerprint}</code>
        </p>
      )}
      {g.devices.length === 0 ? (
        <p className="hint">No device of this party is in the channel.</p>
      ) : (
        <ul className="members" aria-label={`Devices of ${name}`}>
          {g.devices.map((d) => (
            <li key={d.device} data-device={d.device} data-self={d.self ? 'true' : undefined}>
              <strong>{d.name}</strong>
              {d.self ? ' (this device)' : ''} <span className="role">{d.role}</span>
              <br />
              <code title={d.device}>{shortId(d.device)}</code>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

/** Who can read what is sent on the channel from now on: its group's devices, by party. */
export function ChannelMembers(props: { ch: Channel }): ReactNode {
  const session = useSession();
  const id = session.bc.identity;
  const groups = membersByParty(
    channelMembers(props.ch),
    { party: id.party, device: id.device },
    props.ch.view.state.parties,
  );
  const ours: PartyInfo = { name: id.partyName, fingerprint: fingerprint(id.rootPublicKey) };
  return (
    <section className="card" aria-labelledby="members-h">
      <h2 id="members-h">Members</h2>
      <p className="hint">
        The devices in this channel's encrypted group, as this device has it: they, and only they, can read
        what is sent from now on.
      </p>
      {props.ch.record.removed ? (
        <p className="pending" role="note">
          This device was removed from the channel: the list is as it was then.
        </p>
      ) : null}
      {groups.map((g) => (
        <PartyDevices key={g.party} group={g} info={g.us ? ours : session.party(g.party)} />
      ))}
    </section>
  );
}

/** For a device whose store is older than a commit of its own (restored from a copy): what to do. */
export function StateLostNote(props: { ch: Channel }): ReactNode {
  const lost = props.ch.stateLost;
  if (lost === undefined) return null;
  return (
    <div className="join-note" role="alert" data-testid="state-lost">
      <p>{lost}</p>
    </div>
  );
}

/** For a device added after the channel opened: what it cannot read, and why. */
export function JoinNote(props: { ch: Channel }): ReactNode {
  const note = joinNote(props.ch.record.joinedEpoch, props.ch.view.beforeJoin);
  if (note === undefined) return null;
  return (
    <div className="join-note" role="note" data-testid="join-note">
      <p>{note}</p>
      <p className="hint">
        MLS gives a device added later no keys for earlier epochs. The channel's lifecycle and tracks, its
        documents, and the proposals and notices its party has still to answer are disclosed to it by a device
        of its own party and checked against what their senders signed; the transcript itself still verifies.
      </p>
    </div>
  );
}
