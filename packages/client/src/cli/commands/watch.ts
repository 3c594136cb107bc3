/** status, watch, heartbeat, sync, export. */
import {
  type ChannelState,
  liveness,
  overdueNotices,
  type PartyId,
  parseChannelId,
  toBase64url,
} from '@backchannel/protocol';
import type { Command } from 'commander';
import type { Channel, DraftEvent } from '../../sdk/channel.ts';
import type { EventRecord, References } from '../../sdk/channel-record.ts';
import { ClientError, isRetryable } from '../../sdk/errors.ts';
import type { Live } from '../../sdk/live.ts';
import { channelMembers } from '../../sdk/members.ts';
import { openDevice } from '../device.node.ts';
import { describeError, examples, parseDuration } from '../output.ts';
import { refuseExisting, writeOutFile } from '../out-file.node.ts';
import { inline, namedParty, namedPartyInFull, partyLabels, quoteBlock } from '../text.ts';
import type { Runner } from './identity.ts';
import { channelOf, withChannel } from './talk.ts';

export interface StatusReport {
  readonly channel: string;
  readonly lifecycle: ChannelState['lifecycle'];
  readonly since: number | null;
  readonly reason: string | null;
  readonly parties: ReadonlyArray<{
    party: PartyId;
    /** The name the party's signed contact card claims (null when this device has no card for it). */
    name: string | null;
    liveness: string;
    lastHeard: number | null;
  }>;
  readonly tracks: ReadonlyArray<{ id: string; name: string; status: string; reason: string | null }>;
  readonly size: number;
  readonly verifiedCheckpoint: number;
  /** Events some party has not acknowledged delivering, in either direction (0 once closed). */
  readonly outstandingReceipts: number;
  /**
   * This device's party's events each other party has not acknowledged delivering yet (null when
   * the party is not known to statusOf). None once the channel is closed: none can come.
   */
  readonly awaitingDelivery: ReadonlyArray<{ party: PartyId; events: number }> | null;
  readonly overdueNotices: number;
  /** Each notice past its deadline that some party has not acknowledged: what, whose, by when. */
  readonly overdue: ReadonlyArray<{
    event: string;
    title: string | null;
    from: PartyId;
    ackBy: number;
    unanswered: PartyId[];
  }>;
  /** The channel's MLS members as this device's group has them. */
  readonly members: ReadonlyArray<{ party: PartyId; device: string; name: string; role: string }>;
  /** The epoch at which this device joined the channel's group. */
  readonly joinedEpoch: number;
  /** Entries from before this device joined that it cannot read (0 when it was there from the start). */
  readonly unreadableBeforeJoin: number;
  /**
   * Set when this device's store is older than a commit of its own in the log (restored from an
   * older copy): it can no longer read or post here; says what to do. Null otherwise.
   */
  readonly stateLost: string | null;
}

/** Runs a sync; true when the relay was unreachable (a command that only reads answers anyway). */
async function unlessUnreachable(sync: () => Promise<unknown>): Promise<boolean> {
  try {
    await sync();
    return false;
  } catch (e) {
    if (!(e instanceof ClientError && e.code === 'RELAY_UNREACHABLE')) throw e;
    return true;
  }
}

/** What a device added to a channel after it opened may and may not read. */
export function joinNote(joinedEpoch: number, unreadable: number): string | undefined {
  if (unreadable === 0) return undefined;
  return `this device joined at epoch ${joinedEpoch}; earlier messages are not readable on this device (${unreadable} entries: MLS gives a new member no keys for earlier epochs). The channel's lifecycle and tracks were disclosed to it and checked against their senders' signed commitments; the transcript itself still verifies.`;
}

export function statusOf(
  ch: Channel,
  now: number,
  nameOf: (party: PartyId) => string | undefined = () => undefined,
  me?: PartyId,
): StatusReport {
  const s = ch.view.state;
  const overdue = overdueNotices(s, now);
  const last = s.lifecycleHistory.at(-1);
  const closed = s.lifecycle === 'closed';
  const receipts = [...s.receipts.values()];
  return {
    channel: ch.id,
    lifecycle: s.lifecycle,
    since: last?.at ?? null,
    reason: last?.reason ?? null,
    parties: s.parties.map((p) => ({
      party: p,
      name: nameOf(p) ?? null,
      liveness: liveness(s, p, now),
      lastHeard: s.lastHeard[p] ?? null,
    })),
    tracks: Object.entries(s.tracks).map(([id, t]) => ({
      id,
      name: t.name,
      status: t.status,
      reason: t.history.at(-1)?.reason ?? null,
    })),
    size: ch.record.nextSeq,
    verifiedCheckpoint: ch.record.checkpointSize,
    outstandingReceipts: closed
      ? 0
      : receipts.filter((r) => s.parties.some((p) => p !== r.from && r.delivered[p] === undefined)).length,
    awaitingDelivery:
      me === undefined
        ? null
        : closed
          ? []
          : s.parties
              .filter((p) => p !== me)
              .map((p) => ({
                party: p,
                events: receipts.filter((r) => r.from === me && r.delivered[p] === undefined).length,
              }))
              .filter((a) => a.events > 0),
    overdueNotices: overdue.length,
    overdue: overdue.map((o) => {
      const r = ch.view.timeline.find((t) => 'event' in t && t.event.id === o.event);
      const title = r !== undefined && 'event' in r && r.event.kind === 'notice' ? r.event.title : null;
      return { event: o.event, title, from: o.notice.from, ackBy: o.notice.ackBy, unanswered: o.unanswered };
    }),
    members: channelMembers(ch),
    joinedEpoch: ch.record.joinedEpoch,
    unreadableBeforeJoin: ch.view.beforeJoin,
    stateLost: ch.stateLost ?? null,
  };
}

const ago = (t: number | null, now: number) =>
  t === null ? 'never' : `${Math.max(0, Math.round((now - t) / 1000))}s ago`;

export function renderStatus(r: StatusReport, now: number): string {
  const names = new Map(r.parties.map((p) => [p.party as string, p.name ?? undefined]));
  const label = partyLabels([...names.keys()], (p) => names.get(p));
  const named = (p: string) => namedPartyInFull(label, p);
  const lines = [
    `channel ${r.channel}: ${r.lifecycle.toUpperCase()}${r.since === null ? '' : ` since ${new Date(r.since).toISOString()}`}${r.reason === null ? '' : ` — ${inline(r.reason)}`}`,
    ...r.parties.map(
      (p) =>
        `  party ${named(p.party)}: ${p.liveness}, last heard ${ago(p.lastHeard, now)}; devices: ${
          r.members
            .filter((m) => m.party === p.party)
            .map((m) => `${inline(m.name)} (${m.role}, ${m.device})`)
            .join(', ') || 'none'
        }`,
    ),
    ...r.tracks.map(
      (t) =>
        `  track "${inline(t.name)}"${r.tracks.filter((u) => u.name === t.name).length > 1 ? ` (${t.id})` : ''}: ${t.status}${t.reason === null ? '' : ` — ${inline(t.reason)}`}`,
    ),
    `  transcript: ${r.size} entries, verified checkpoint at ${r.verifiedCheckpoint}`,
    r.awaitingDelivery === null
      ? `  awaiting delivery receipts: ${r.outstandingReceipts}; overdue notices: ${r.overdueNotices}`
      : `  delivered: ${
          r.awaitingDelivery.length === 0
            ? 'every event of this party acknowledged'
            : r.awaitingDelivery
                .map((a) => `${a.events} event(s) of this party not yet acknowledged by ${named(a.party)}`)
                .join('; ')
        }; overdue notices: ${r.overdueNotices}`,
    ...r.overdue.map(
      (o) =>
        `  overdue notice ${o.event}${o.title === null ? '' : ` "${inline(o.title)}"`} from ${named(o.from)}, due ${new Date(o.ackBy).toISOString()}, unacknowledged by ${o.unanswered.map(named).join(', ')}`,
    ),
  ];
  const note = joinNote(r.joinedEpoch, r.unreadableBeforeJoin);
  if (note !== undefined) lines.push(`  note: ${note}`);
  if (r.stateLost !== null) lines.push(`  WARNING: ${r.stateLost}`);
  return lines.join('\n');
}

/**
 * How often `watch` reads its party's device list to find devices to add (sooner when something
 * suggests it changed; the SDK's JoinSchedule decides, on each tick).
 */
const JOIN_CHECK_MS = 15_000;

/**
 * What an event refers to that this device cannot resolve: events from before it joined (not an
 * error: it cannot read them) and ids no entry carries (a receipt's are ignored by every reader).
 */
function references(refs: References | undefined): string {
  if (refs === undefined) return '';
  const parts: string[] = [];
  if (refs.beforeJoin.length > 0)
    parts.push(
      `${refs.beforeJoin.map((s) => `#${s}`).join(', ')} before this device joined (epoch ${refs.joinedEpoch})`,
    );
  if (refs.unknown > 0) parts.push(`${refs.unknown} unknown event(s)`);
  return ` [refers to ${parts.join('; ')}]`;
}

/** What a user can make of the codes a device's own store explains (a restored copy). */
const UNREADABLE_WHY: Readonly<Record<string, string>> = {
  OWN_MESSAGE_LOST:
    'sent by this device, but its store has no copy (restored from an older copy?); the device refreshes its keys before it sends again',
  OWN_COMMIT_LOST:
    'a commit of this device that its store predates (restored from an older copy): it can no longer read or post here; see `backchannel status`',
  // Handshakes: what changed in the group, in words.
  COMMIT_APPLIED: "the channel's members or keys changed (an MLS commit)",
  COMMIT_SEEN: 'an MLS commit from before this device could apply it',
  OWN_COMMIT: "this device's own commit: the channel's members or keys changed",
  REMOVED_SELF: 'this device was removed from the channel: it can no longer read or post here',
  MEMBERS_MISDECLARED: 'a commit that does not do what it declares: not applied',
  NOT_A_COMMIT: 'declared a commit but is none: not applied',
  welcome: 'a Welcome: a device joins the channel',
  proposal: 'an MLS proposal',
};

/**
 * One event as a line of `log` and `watch` (several for points). Everything the sender wrote is
 * quoted (see text.ts: `inline` for one-line fields, `quoteBlock` for bodies); `party` names a
 * party (namedParty over partyLabels).
 */
export function describe(r: EventRecord, party: (p: string) => string = (p) => p): string {
  const when = new Date(r.receivedAt).toISOString();
  const q = (s: string) => quoteBlock(s);
  const one = inline;
  if (!('event' in r)) {
    const why = UNREADABLE_WHY[r.code];
    const changed = [
      ...(r.devicesAdded === undefined ? [] : [`added ${r.devicesAdded.join(', ')}`]),
      ...(r.devicesRemoved === undefined ? [] : [`removed ${r.devicesRemoved.join(', ')}`]),
    ];
    return `#${r.seq} ${when} ${r.sender} [${r.status}: ${r.code}]${why === undefined ? '' : ` — ${why}`}${changed.length === 0 ? '' : `: ${changed.join('; ')}`}`;
  }
  const e = r.event;
  // `unchecked`: it answers an event from before this device joined, which it cannot read; the
  // channel's other members judged it. Not shown as a refusal.
  const verdict =
    r.status === 'rejected'
      ? ` [REJECTED ${r.code}]${references(r.refs)}`
      : r.status === 'unchecked'
        ? `${references(r.refs)} (not checked on this device)`
        : references(r.refs);
  const head = `#${r.seq} ${when} ${party(r.party)}/${r.role}${verdict}${r.disclosedBy === undefined ? '' : ` [disclosed by ${r.disclosedBy}]`}`;
  switch (e.kind) {
    case 'message':
      return `${head} message: ${q(e.text)}`;
    case 'points':
      return `${head} points "${one(e.title)}":\n${e.items.map((i, n) => `     ${n + 1}. ${q(i)}`).join('\n')}`;
    case 'proposal':
      return `${head} proposal "${one(e.title)}": ${q(e.text)}`;
    case 'response':
      return `${head} response (${e.stance}) to ${e.to}: ${q(e.text)}`;
    case 'readout':
      return `${head} read-out (${one(e.round)}): ${e.text === undefined ? '[committed]' : q(e.text)}`;
    case 'notice':
      return `${head} NOTICE "${one(e.title)}" (acknowledge by ${new Date(e.ackBy).toISOString()}): ${q(e.text)}`;
    case 'receipt':
      return `${head} ${e.type} receipt for ${e.of.length} event(s)`;
    case 'join.context':
      return `${head} added ${e.devices.join(', ')} to the channel; disclosed ${e.disclosures.length} earlier event(s) to it (lifecycle, tracks, documents, open proposals and notices)`;
    case 'heartbeat':
      return `${head} heartbeat (every ${Math.round(e.intervalMs / 1000)}s)`;
    case 'outreach':
      return `${head} OUTREACH from ${party(e.from)} to ${party(e.to)}: ${q(e.note)}`;
    case 'track.open':
      return `${head} track "${one(e.name)}" opened (${e.trackId})`;
    case 'doc.revision':
      return `${head} document ${e.doc} (${e.docType}) revision ${e.n}: "${one(e.title)}"`;
    case 'doc.comment':
      return `${head} comment on document ${e.doc}, clause ${one(e.clause)}: ${q(e.text)}`;
    case 'doc.sign':
      return `${head} ${e.level}${e.clause === undefined ? '' : ` clause ${e.clause.id} (${e.clause.lang})`} on document ${e.doc}`;
    default:
      return `${head} ${e.kind}${'reason' in e && e.reason !== undefined ? ` — ${one(e.reason)}` : ''}`;
  }
}

/** A refusal no later heartbeat can get past: the channel is closed, or this device is out of it. */
function endsBeating(e: unknown): boolean {
  if (!(e instanceof ClientError)) return false;
  if (e.code === 'CHANNEL_NOT_JOINED' || e.code === 'CHANNEL_STATE_LOST') return true;
  return e.code === 'EVENT_REJECTED' && e.cause_code === 'CHANNEL_CLOSED';
}

/** What `sync` and `status` say of an outreach channel syncAll dropped (Backchannel.dropped). */
function droppedNote(id: string): string {
  return `the outreach that opened ${id} never reached the relay (refused, or lost on the way): nothing was sent and the channel is dropped from this device; make the outreach again`;
}

export function watchCommands(program: Command, run: Runner): void {
  program
    .command('status [channel]')
    .description('is the line open? lifecycle, liveness per party, tracks, receipts')
    .addHelpText('after', examples('backchannel status c_…', 'backchannel status          (every channel)'))
    .action(
      run(async (o, out, channel?: string) => {
        const bc = await openDevice(o);
        try {
          // Offline, like every command that only reads: what this device verified, with a note.
          const offline = await unlessUnreachable(() => bc.syncAll());
          if (offline && o.json !== true)
            process.stderr.write(
              'note: the relay is unreachable: this is what this device verified until now (liveness included)\n',
            );
          if (o.json !== true)
            for (const id of bc.dropped) process.stderr.write(`note: ${droppedNote(id)}\n`);
          const now = Date.now();
          const ids = channel === undefined ? await bc.channelIds() : [channel];
          const reports: StatusReport[] = [];
          for (const id of ids)
            reports.push(statusOf(await channelOf(bc, id), now, (p) => bc.partyName(p), bc.identity.party));
          const waiting = await bc.outbox.pending();
          if (waiting > 0 && o.json !== true)
            process.stderr.write(
              `note: ${waiting} message(s) wait in the outbox: the relay has not taken them yet (they go with the next command that reaches it)\n`,
            );
          out.result(channel === undefined ? reports : reports[0], () =>
            reports.length === 0 ? 'no channels yet' : reports.map((r) => renderStatus(r, now)).join('\n\n'),
          );
        } finally {
          bc.close();
        }
      }),
    );

  program
    .command('log <channel>')
    .description('the channel timeline as this device verified it')
    .addHelpText('after', examples('backchannel log c_… --limit 20'))
    .option('--limit <n>', 'last n events', '50')
    .action(
      run(async (o, out, channel: string, opts: { limit: string }) => {
        const limit = Number(opts.limit);
        if (!Number.isSafeInteger(limit) || limit < 1)
          throw new ClientError(
            'INVALID_ARGUMENT',
            `--limit is a number of events, at least 1 (not ${opts.limit})`,
          );
        const { records, note, labels } = await withChannel(o, channel, async (ch, bc) => ({
          // Events, and the commits that added or removed devices, in transcript order.
          records: [...ch.view.timeline.slice(-limit), ...(ch.view.changes ?? []).slice(-limit)]
            .sort((x, y) => x.seq - y.seq)
            .slice(-limit),
          note: joinNote(ch.record.joinedEpoch, ch.view.beforeJoin),
          labels: partyLabels(ch.view.state.parties, (p) => bc.partyName(p as PartyId)),
        }));
        const party = (p: string) => namedParty(labels, p);
        out.result(records, (v: EventRecord[]) =>
          [
            ...(note === undefined ? [] : [`note: ${note}`]),
            v.map((r) => describe(r, party)).join('\n') || 'nothing yet',
          ].join('\n'),
        );
      }),
    );

  program
    .command('sync')
    .description('deliver the outbox, join welcomed channels, fetch and verify everything new')
    .addHelpText('after', examples('backchannel sync'))
    .action(
      run(async (o, out) => {
        const bc = await openDevice(o);
        try {
          let last = 0;
          await bc.syncAll((p) => {
            if (!out.json && process.stderr.isTTY && p.size > 1000 && p.seq - last >= 1000) {
              last = p.seq;
              process.stderr.write(`\r${progressBar(p.seq, p.size)} ${p.channel}`);
            }
          });
          if (last > 0) process.stderr.write('\n');
          const pending = await bc.outbox.pending();
          const added = bc.added;
          const joined: Array<{ channel: string; joinedEpoch: number; unreadableBeforeJoin: number }> = [];
          for (const id of bc.joined) {
            const ch = await bc.channel(id);
            joined.push({
              channel: id,
              joinedEpoch: ch.record.joinedEpoch,
              unreadableBeforeJoin: ch.view.beforeJoin,
            });
          }
          out.result(
            {
              channels: (await bc.channelIds()).length,
              outboxPending: pending,
              joined,
              added,
              removed: bc.removed,
              dropped: bc.dropped,
              ...(bc.joinProblems.length === 0
                ? {}
                : {
                    joinProblems: bc.joinProblems.map((e) => ({
                      code: e.cause_code ?? e.code,
                      message: e.message,
                    })),
                  }),
            },
            () =>
              [
                `synced; ${pending} message(s) still in the outbox`,
                ...joined.map(
                  (j) =>
                    `joined ${j.channel}${
                      j.unreadableBeforeJoin === 0
                        ? ''
                        : `: ${joinNote(j.joinedEpoch, j.unreadableBeforeJoin) ?? ''}`
                    }`,
                ),
                ...added.map((a) => `added ${a.devices.join(', ')} (enrolled since) to ${a.channel}`),
                ...bc.removed.map((r) => `removed ${r.devices.join(', ')} (revoked) from ${r.channel}`),
                ...bc.dropped.map(droppedNote),
                ...bc.joinProblems.map((e) => `could not add a new device of this party: ${e.message}`),
              ].join('\n'),
          );
        } finally {
          bc.close();
        }
      }),
    );

  program
    .command('heartbeat <channel>')
    .description('send a heartbeat (with --daemon, keep sending every interval: the duty device)')
    .addHelpText(
      'after',
      examples('backchannel heartbeat c_…', 'backchannel heartbeat c_… --interval 60s --daemon &'),
    )
    .option('--interval <duration>', 'heartbeat interval', '60s')
    .option('--daemon', 'keep running, one heartbeat per interval')
    .action(
      run(async (o, out, channel: string, opts: { interval: string; daemon?: boolean }) => {
        const intervalMs = parseDuration(opts.interval);
        // The interval is on record: liveness is judged by it (and a daemon at 0 would flood the relay).
        if (intervalMs < 1000)
          throw new ClientError('INVALID_ARGUMENT', `--interval must be at least 1s (not ${opts.interval})`);
        const beat = () =>
          withChannel(o, channel, async (ch, bc) => {
            // The daemon queues no heartbeat while earlier sends still wait for the relay (it
            // could not take them just now): an outage leaves one beat to deliver, not one per
            // interval arriving together when the relay is back.
            const waiting = opts.daemon === true ? await bc.outbox.pending() : 0;
            if (waiting > 0)
              throw new ClientError(
                'RELAY_UNREACHABLE',
                `the relay is unreachable: no new heartbeat while ${waiting} message(s) wait in the outbox`,
                { retryable: true },
              );
            return ch.send({ kind: 'heartbeat', intervalMs } as DraftEvent);
          });
        if (opts.daemon !== true) {
          out.result({ channel, heartbeat: await beat() }, () => `heartbeat sent on ${channel}`);
          return;
        }
        // The duty device's daemon outlives an outage, the first beat's included (started while
        // the relay is down, it used to exit 3 and never beat again): each failure is reported
        // (one JSON line with --json) and the next beat comes an interval later (the failed one
        // waits in the outbox).
        // At a fixed rate, a little ahead of the interval announced (beatPeriod): a beat that waited
        // a full interval after the last one finished reached the other side late, and the line
        // showed quiet between every two beats.
        const period = beatPeriod(intervalMs);
        let due = Date.now();
        for (let first = true; ; first = false) {
          if (!first) {
            due = nextDue(due, period, Date.now());
            await new Promise((r) => setTimeout(r, Math.max(0, due - Date.now())));
          }
          try {
            const id = await beat();
            if (first || out.json)
              out.result({ channel, heartbeat: id }, () => `heartbeat sent on ${channel}`);
            else out.say(`${new Date().toISOString()} heartbeat`);
          } catch (e) {
            // A mistake (an unknown channel, a wrong passphrase) still ends the command at once,
            // and so does a channel no beat can ever go to again (closed, or left).
            if ((first && !isRetryable(e)) || endsBeating(e)) throw e;
            const r = describeError(e);
            if (out.json)
              out.result({ channel, heartbeat: null, failed: { code: r.code, message: r.message } });
            else out.say(`${new Date().toISOString()} heartbeat failed: ${r.message} (will retry)`);
          }
        }
      }),
    );

  program
    .command('watch [channel]')
    .description(
      'follow channels live: new events pushed by the relay on a WebSocket (polled when there is none), liveness alerts',
    )
    .addHelpText(
      'after',
      examples(
        'backchannel watch',
        'backchannel --json watch c_… --for 10m',
        'backchannel watch --heartbeat 60s',
      ),
    )
    .option(
      '--every <duration>',
      'how often liveness is checked and the outbox flushed; the poll interval while no WebSocket is available',
      '2s',
    )
    .option('--for <duration>', 'stop after this long (default: until interrupted)')
    .option(
      '--heartbeat <interval>',
      "also be the party's duty device: a heartbeat every interval in each channel watched (as `heartbeat --daemon`, which could not run beside watch: one process per device)",
    )
    .action(
      run(
        async (
          o,
          out,
          channel: string | undefined,
          opts: { every: string; for?: string; heartbeat?: string },
        ) => {
          const every = parseDuration(opts.every);
          if (every <= 0) throw new ClientError('INVALID_ARGUMENT', '--every must be longer than 0');
          const beatMs = opts.heartbeat === undefined ? undefined : parseDuration(opts.heartbeat);
          // As `heartbeat --daemon`: the interval is on record, and liveness is judged by it.
          if (beatMs !== undefined && beatMs < 1000)
            throw new ClientError(
              'INVALID_ARGUMENT',
              `--heartbeat must be at least 1s (not ${opts.heartbeat})`,
            );
          const until =
            opts.for === undefined ? Number.POSITIVE_INFINITY : Date.now() + parseDuration(opts.for);
          const only = channel === undefined ? undefined : [parseChannelId(channel)];
          const bc = await openDevice(o, {
            transport: 'ws',
            writerThread: true,
            deviceListTtlMs: JOIN_CHECK_MS,
          });
          const lastLiveness = new Map<string, string>();
          /** Notices already alerted as overdue (each once per watch). */
          const overdueSaid = new Set<string>();
          const delivery = new Map<string, boolean>();
          // Parties by the names their cards claim, unless two of the channel's parties claim one
          // name (as `log` names them).
          const labelsOf = (ch: Channel) =>
            partyLabels(ch.view.state.parties, (x) => bc.partyName(x as PartyId));
          const print = (ch: Channel, records: readonly EventRecord[]) => {
            if (records.length === 0) return;
            const labels = labelsOf(ch);
            for (const r of records) {
              if (out.json) out.result({ channel: ch.id, ...r });
              else out.say(`${ch.id} ${describe(r, (p) => namedParty(labels, p))}`);
            }
          };
          const alerts = (ch: Channel, now: number) => {
            for (const p of ch.view.state.parties) {
              const l = liveness(ch.view.state, p, now);
              const key = `${ch.id}/${p}`;
              if (lastLiveness.get(key) !== l && lastLiveness.has(key)) {
                const alert = { channel: ch.id, party: p, liveness: l, at: now };
                if (out.json) out.result({ alert });
                else {
                  out.say(
                    `ALERT ${ch.id}: party ${namedPartyInFull(labelsOf(ch), p)} is now ${l.toUpperCase()}`,
                  );
                }
              }
              lastLiveness.set(key, l);
            }
            // A notice past its deadline, unacknowledged by some party: escalated to whoever watches
            // (the sender's principal among them), once.
            for (const o of overdueNotices(ch.view.state, now)) {
              const key = `${ch.id}/${o.event}`;
              if (overdueSaid.has(key)) continue;
              overdueSaid.add(key);
              const r = ch.view.timeline.find((t) => 'event' in t && t.event.id === o.event);
              const title =
                r !== undefined && 'event' in r && r.event.kind === 'notice' ? r.event.title : null;
              const alert = {
                channel: ch.id,
                notice: o.event,
                title,
                from: o.notice.from,
                ackBy: o.notice.ackBy,
                unanswered: o.unanswered,
                at: now,
              };
              if (out.json) out.result({ alert });
              else {
                const labels = labelsOf(ch);
                out.say(
                  `ALERT ${ch.id}: notice ${o.event}${title === null ? '' : ` "${inline(title)}"`} from ${namedPartyInFull(labels, o.notice.from)} is OVERDUE (due ${new Date(o.notice.ackBy).toISOString()}), unacknowledged by ${o.unanswered.map((p) => namedPartyInFull(labels, p)).join(', ')}`,
                );
              }
            }
          };
          // How each channel's events arrive: pushed on the socket, or polled (said once per change).
          const report = (id: string, pushed: boolean) => {
            if (delivery.get(id) === pushed) return;
            delivery.set(id, pushed);
            if (out.json) out.result({ channel: id, delivery: pushed ? 'push' : 'poll' });
            else
              out.say(
                pushed
                  ? `${id} live: events pushed by the relay`
                  : `${id} polling every ${opts.every} (no live connection)`,
              );
          };
          // Devices of this party enrolled since a channel opened are added (when this device's role
          // may add devices) after the catch-up, then on each tick: the party's device list is read
          // every JOIN_CHECK_MS (or sooner, on a hint), a device with no key package is claimed again
          // after a backoff (the SDK's JoinSchedule).
          // Revoked devices of this party still in a channel are removed on the same pass.
          const addNewDevices = async () => {
            try {
              for (const a of await bc.addNewDevices(only)) {
                if (out.json) out.result({ added: a });
                else
                  out.say(`${a.channel} added ${a.devices.join(', ')} (enrolled since the channel opened)`);
              }
            } catch (e) {
              if (!(e instanceof ClientError)) throw e;
              if (e.code !== 'RELAY_UNREACHABLE')
                out.say(`could not add or remove a device of this party: ${e.message}`);
            } finally {
              // What was removed before a failure is reported too.
              for (const r of bc.removed) {
                if (out.json) out.result({ removed: r });
                else out.say(`${r.channel} removed ${r.devices.join(', ')} (revoked by this party)`);
              }
            }
          };
          // The duty device's beat: one heartbeat per channel watched that takes one (an outreach not
          // yet accepted, a closed channel do not), none while earlier sends wait in the outbox (an
          // outage leaves one beat to deliver, as the daemon). A refusal is said once per channel.
          let nextBeat = Date.now();
          const refusedBeat = new Set<string>();
          const beating = new Set<string>();
          const beat = async (channels: readonly string[]) => {
            if (beatMs === undefined || Date.now() < nextBeat) return;
            nextBeat = nextDue(nextBeat, beatPeriod(beatMs), Date.now());
            const waiting = await bc.outbox.pending();
            if (waiting > 0) {
              if (out.json)
                out.result({
                  heartbeat: null,
                  failed: {
                    code: 'RELAY_UNREACHABLE',
                    message: `no heartbeat while ${waiting} message(s) wait in the outbox`,
                  },
                });
              else
                out.say(
                  `${new Date().toISOString()} no heartbeat while ${waiting} message(s) wait in the outbox`,
                );
              return;
            }
            for (const id of channels) {
              const ch = await bc.channel(id);
              const l = ch.view.state.lifecycle;
              if (ch.record.removed || l === 'none' || l === 'proposed' || l === 'closed') continue;
              try {
                const sent = await ch.send({ kind: 'heartbeat', intervalMs: beatMs } as DraftEvent);
                refusedBeat.delete(id);
                if (out.json) out.result({ channel: id, heartbeat: sent });
                else if (!beating.has(id))
                  out.say(`${id} heartbeat every ${opts.heartbeat} from this device`);
                beating.add(id);
              } catch (e) {
                if (!(e instanceof ClientError)) throw e;
                if (refusedBeat.has(id)) continue;
                refusedBeat.add(id);
                const r = describeError(e);
                if (out.json)
                  out.result({ channel: id, heartbeat: null, failed: { code: r.code, message: r.message } });
                else out.say(`${id} no heartbeat: ${r.message}`);
              }
            }
            await bc.outbox.flush().catch((e: unknown) => {
              if (!isRetryable(e)) throw e;
            });
          };
          let failure: unknown;
          let wake: (() => void) | undefined;
          let live: Live | undefined;
          try {
            // Catch up first (sync fetches and verifies a backlog page by page); offline is normal:
            // live delivery polls and reconnects until the relay answers.
            let noted = false;
            const unreachable = (e: unknown) => {
              if (noted || out.json || !(e instanceof ClientError && e.code === 'RELAY_UNREACHABLE')) return;
              noted = true;
              process.stderr.write(
                'note: the relay is unreachable: shown is what this device verified; watch keeps trying\n',
              );
            };
            try {
              if (only === undefined) await bc.checkInbox();
              await bc.outbox.flush();
            } catch (e) {
              if (!(e instanceof ClientError && e.retryable)) throw e;
              unreachable(e);
            }
            for (const id of only ?? (await bc.channelIds())) {
              const ch = await channelOf(bc, id);
              if (ch.record.removed) continue;
              try {
                print(ch, await ch.sync());
                // What came before this watch is acknowledged too (live() does the rest).
                await bc.acknowledgeDelivery(ch);
              } catch (e) {
                if (await bc.dropIfNeverOpened(ch, e)) {
                  if (!out.json) out.say(`note: ${droppedNote(id)}`);
                  continue;
                }
                if (!(e instanceof ClientError && e.retryable)) throw e;
                unreachable(e);
              }
              alerts(ch, Date.now());
            }
            await addNewDevices();
            // Then live: entries pushed on the relay's WebSocket (HTTP polling every --every while
            // there is none); with no channel named, channels joined meanwhile are followed too.
            live = await bc.live({
              ...(only === undefined ? {} : { channels: only }),
              pollMs: every,
              onRecords: (ch, records) => {
                print(ch, records);
                alerts(ch, Date.now());
              },
              onDelivery: report,
              onError: (_id, e) => {
                failure ??= e;
                wake?.();
              },
            });
            await beat(live.channels);
            while (failure === undefined) {
              const left = until - Date.now();
              if (left <= 0) break;
              let timer: ReturnType<typeof setTimeout> | undefined;
              const toBeat = beatMs === undefined ? every : Math.max(0, nextBeat - Date.now());
              await new Promise<void>((r) => {
                wake = r;
                timer = setTimeout(r, Math.min(every, left, toBeat));
              });
              clearTimeout(timer);
              wake = undefined;
              if (failure !== undefined) break;
              await addNewDevices();
              await bc.outbox.flush();
              await beat(live.channels);
              const now = Date.now();
              for (const id of live.channels) {
                alerts(await bc.channel(id), now);
                report(id, live.isLive(id));
              }
            }
            await live.idle();
            if (failure !== undefined) throw failure;
          } finally {
            live?.stop();
            bc.close();
          }
        },
      ),
    );

  program
    .command('export <channel>')
    .description('the transcript as JSON: every entry, the verified checkpoint, and what this device read')
    .addHelpText('after', examples('backchannel export c_… --out transcript.json'))
    .requiredOption('--out <file>', 'where to write it (a new file, unless --force)')
    .option('--force', 'replace the file if it exists')
    .action(
      run(async (o, out, channel: string, opts: { out: string; force?: boolean }) => {
        const force = opts.force === true;
        // Before the work: an earlier export (kept as evidence) is not lost by accident.
        refuseExisting([opts.out], force);
        const bc = await openDevice(o);
        try {
          const ch = await channelOf(bc, channel);
          // Offline, like every command that only reads: what this device verified, with a note.
          const offline = await unlessUnreachable(() => ch.sync());
          if (offline && o.json !== true)
            process.stderr.write(
              'note: the relay is unreachable: the export holds what this device verified until now\n',
            );
          const entries = [];
          for (let from = 0; ; ) {
            const page = await bc.store.entries(channel, from, 1000);
            if (page.length === 0) break;
            for (const e of page) entries.push({ seq: e.seq, entry: toBase64url(e.entry) });
            from = (page.at(-1) as { seq: number }).seq + 1;
          }
          const doc = {
            kind: 'backchannel-transcript',
            v: 1,
            channel,
            exportedBy: { party: bc.identity.party, device: bc.identity.device },
            checkpoint: ch.record.checkpoint ?? null,
            size: ch.record.nextSeq,
            entries,
            events: ch.view.timeline.flatMap((r) =>
              'event' in r
                ? [
                    {
                      seq: r.seq,
                      party: r.party,
                      status: r.status,
                      event: r.event,
                      salt: toBase64url(r.salt),
                    },
                  ]
                : [],
            ),
          };
          // The events in clear: readable by this user only (as invites and the recovery kit).
          writeOutFile(opts.out, JSON.stringify(doc, null, 1), force);
          out.result(
            { channel, out: opts.out, entries: entries.length },
            () => `transcript of ${channel} (${entries.length} entries) written to ${opts.out}`,
          );
        } finally {
          bc.close();
        }
      }),
    );
}

function progressBar(done: number, total: number): string {
  const w = 30;
  const f = Math.min(w, Math.round((done / Math.max(1, total)) * w));
  return `[${'#'.repeat(f)}${'.'.repeat(w - f)}] ${done}/${total}`;
}

/**
 * How often a duty device beats for a heartbeat interval of `intervalMs`: a tenth earlier (at most
 * 5 s), at a fixed rate. Liveness turns quiet when no beat came within one interval; a beat sent
 * exactly on the interval arrives after it (the relay, the other side's sync), so the line would
 * show quiet for a moment at every beat.
 */
export function beatPeriod(intervalMs: number): number {
  return intervalMs - Math.min(intervalMs / 10, 5_000);
}

/**
 * The beat after one due at `due`: a period later; a whole period from now when that has passed
 * (no burst), and never more than a period away (a clock set back must not stall the beats).
 */
export function nextDue(due: number, period: number, now: number): number {
  const next = due + period;
  return next < now || next > now + period ? now + period : next;
}
