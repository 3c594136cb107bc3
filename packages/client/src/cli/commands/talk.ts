/** outreach, inbox, accept/decline, send, points, propose, respond, readout, notice, read, track, channel. */
import {
  type ChannelId,
  type EventId,
  parseEventId,
  type PartyId,
  parsePartyId,
  type TrackId,
  trackIdFrom,
} from '@backchannel/protocol';
import { type Command, Option } from 'commander';
import { randomBytes } from 'node:crypto';
import type { Backchannel } from '../../sdk/client.ts';
import type { Channel, DraftEvent } from '../../sdk/channel.ts';
import { ClientError } from '../../sdk/errors.ts';
import { type GlobalOptions, openDevice } from '../device.node.ts';
import { type Out, parseDuration, examples } from '../output.ts';
import { inline, namedPartyInFull, partyLabels, quoteBlock } from '../text.ts';
import type { Runner } from './identity.ts';

/**
 * Opens the device, syncs the channel, runs `fn`, delivers the outbox. Offline, it works from
 * what this device verified: a command that sent something exits 3 (its sends wait in the
 * outbox); one that only reads still prints its answer, with a note on stderr.
 */
export async function withChannel<T>(
  o: GlobalOptions,
  channelId: string,
  fn: (ch: Channel, bc: Backchannel) => Promise<T>,
): Promise<T> {
  const bc = await openDevice(o);
  try {
    // Offline is normal: work from the local state and keep sends in the outbox.
    let offline: ClientError | undefined;
    try {
      await bc.checkInbox();
      await bc.outbox.flush();
    } catch (e) {
      if (!(e instanceof ClientError && e.code === 'RELAY_UNREACHABLE')) throw e;
      offline = e;
    }
    const ch = await channelOf(bc, channelId);
    if (offline === undefined) {
      await ch.sync();
      // What the sync brought is delivered to this device: its receipt goes back now, as `sync`
      // and `watch` send it. One that cannot go now (refused, the relay gone since) stays owed,
      // for a later command: a command that only reads does not fail for it.
      await bc.acknowledgeDelivery(ch).catch((e: unknown) => {
        if (!(e instanceof ClientError)) throw e;
      });
      // A device of this party enrolled since the channel opened is added before anything is sent.
      await bc.addNewDevices([ch.id]).catch((e: unknown) => {
        if (!(e instanceof ClientError) || e.code === 'RELAY_UNREACHABLE') throw e;
        if (o.json !== true)
          process.stderr.write(`note: could not add a new device of this party: ${inline(e.message)}\n`);
      });
    }
    const before = await bc.outbox.pending();
    const r = await fn(ch, bc);
    const sent = (await bc.outbox.pending()) > before;
    const f = await bc.outbox.flush();
    if (f.pending > 0 && sent) {
      throw new ClientError(
        'RELAY_UNREACHABLE',
        `the relay is unreachable: ${f.pending} message(s) kept in the outbox, sent by the next command or \`backchannel sync\``,
        { retryable: true },
      );
    }
    if ((offline !== undefined || f.pending > 0) && o.json !== true)
      process.stderr.write(
        `note: the relay is unreachable: this is what this device verified until now${f.pending > 0 ? `; ${f.pending} message(s) wait in the outbox` : ''}\n`,
      );
    return r;
  } finally {
    bc.close();
  }
}

/** A channel of this device, or CHANNEL_UNKNOWN saying where the channels are and why one may be missing. */
export async function channelOf(bc: Backchannel, channelId: string): Promise<Channel> {
  try {
    return await bc.channel(channelId);
  } catch (e) {
    if (!(e instanceof ClientError && e.code === 'CHANNEL_UNKNOWN')) throw e;
    throw new ClientError(
      'CHANNEL_UNKNOWN',
      `this device has no channel ${channelId}: check the id (\`backchannel status\` lists this device's channels); a device enrolled after the channel opened joins it once a device of its party that may add devices (admin or principal) has synced, then at its own next \`backchannel sync\``,
    );
  }
}

/** A notice's time to acknowledge: a minute at least (one overdue at once is no notice), a year at most. */
function ackWithin(s: string): number {
  const ms = parseDuration(s);
  if (ms < 60_000 || ms > 366 * 86_400_000)
    throw new ClientError('INVALID_ARGUMENT', `--ack-within ${s}: give between 1m and 366d`);
  return ms;
}

/** An event a response may answer; one that is logged but of another kind is named as such. */
function answerable(ch: Channel, id: EventId): EventId {
  if (ch.view.state.receipts.has(id)) return id;
  const r = ch.view.timeline.find((t) => 'event' in t && t.event.id === id);
  if (r !== undefined && 'event' in r)
    throw new ClientError(
      'INVALID_ARGUMENT',
      `${id} is a ${r.event.kind}: respond to a message, points, a proposal or a notice`,
    );
  return id;
}

export function resolveTrack(ch: Channel, nameOrId: string | undefined): TrackId | undefined {
  if (nameOrId === undefined) return undefined;
  const tracks = ch.view.state.tracks;
  if (nameOrId in tracks) return nameOrId as TrackId;
  const named = Object.entries(tracks).filter(([, t]) => t.name === nameOrId);
  if (named.length === 0)
    throw new ClientError(
      'INVALID_ARGUMENT',
      `channel ${ch.id} has no track "${nameOrId}" (see \`backchannel track list ${ch.id}\`)`,
    );
  // A name given again once its track was concluded means the newer track; two live tracks of one
  // name (the parties opened them at once) are told apart by id.
  const live = named.filter(([, t]) => t.status !== 'concluded');
  const hits = live.length > 0 ? live : named;
  if (hits.length > 1)
    throw new ClientError(
      'INVALID_ARGUMENT',
      `channel ${ch.id} has ${hits.length} tracks named "${nameOrId}": ${hits.map(([id, t]) => `${id} (${t.status})`).join(', ')}; give the id`,
    );
  return (hits[0] as [string, unknown])[0] as TrackId;
}

function sendCmd(
  run: Runner,
  build: (ch: Channel, args: never) => DraftEvent,
  what: string,
): (...args: unknown[]) => Promise<void> {
  return run(async (o, out, ...args: unknown[]) => {
    const id = await withChannel(o, String(args[0]), async (ch) =>
      ch.send(build(ch, args.slice(1) as never)),
    );
    out.result({ channel: args[0], event: id }, () => `${what} ${id} sent on ${args[0]}`);
  });
}

const trackOf = (ch: Channel, opts: { track?: string }) => {
  const t = resolveTrack(ch, opts.track);
  return t === undefined ? {} : { track: t };
};

export function talkCommands(program: Command, run: Runner): void {
  program
    .command('outreach <party>')
    .description(
      "open a channel to another party's contact card, or (given a suspended channel's id) propose to reopen it",
    )
    .requiredOption('--note <text>', 'what the outreach says')
    .option('--mediator <kind>', 'the relay as mediator: none, blind (relays only) or member (reads)')
    .option(
      '--delivery-bound <duration>',
      'the longest the relay may hold an envelope before logging it (e.g. 60s); later is provable',
    )
    .addHelpText(
      'after',
      examples(
        'backchannel outreach p_Xy… --note "We are ready to talk." --delivery-bound 60s',
        'backchannel outreach c_… --note "In light of the unrest we propose to resume contact."',
      ),
    )
    .action(
      run(
        async (o, out, party: string, opts: { note: string; mediator?: string; deliveryBound?: string }) => {
          const mediator = opts.mediator;
          if (mediator !== undefined && mediator !== 'none' && mediator !== 'blind' && mediator !== 'member')
            throw new ClientError(
              'INVALID_ARGUMENT',
              `--mediator must be none, blind or member, not ${mediator}`,
            );
          const bound = opts.deliveryBound === undefined ? undefined : parseDuration(opts.deliveryBound);
          if (bound !== undefined && bound < 1)
            throw new ClientError('INVALID_ARGUMENT', '--delivery-bound must be at least 1 ms');
          if (party.startsWith('c_')) {
            // An outreach on a suspended channel proposes to reopen it (PROTOCOL §10); the other
            // party answers with `accept` or `decline` on the same channel.
            if (mediator !== undefined || bound !== undefined)
              throw new ClientError(
                'INVALID_ARGUMENT',
                '--mediator and --delivery-bound are stated when a channel is opened, not when it is reopened',
              );
            const to = await withChannel(o, party, async (ch, bc) => {
              const others = ch.view.state.parties.filter((p) => p !== bc.identity.party);
              const other = others[0];
              if (other === undefined || others.length > 1)
                throw new ClientError(
                  'INVALID_ARGUMENT',
                  `channel ${ch.id} has ${others.length} other parties: an outreach on it is addressed to one`,
                );
              await ch.send(
                { kind: 'outreach', from: bc.identity.party, to: other, note: opts.note } as DraftEvent,
                {
                  to: [other],
                },
              );
              return other;
            });
            out.result(
              { channel: party, reopen: true, to },
              () => `outreach sent on ${party}: proposing to reopen it (waiting for ${to} to accept)`,
            );
            return;
          }
          const bc = await openDevice(o);
          try {
            const ch = await bc.outreach(parsePartyId(party), opts.note, {
              ...(mediator === undefined ? {} : { mediator }),
              ...(bound === undefined ? {} : { deliveryBoundMs: bound }),
            });
            out.result(
              { channel: ch.id },
              () => `outreach sent: channel ${ch.id} (waiting for ${party} to accept)`,
            );
          } finally {
            bc.close();
          }
        },
      ),
    );

  program
    .command('inbox')
    .description('join channels you were invited to and list outreach waiting for a decision')
    .addHelpText('after', examples('backchannel inbox'))
    .action(
      run(async (o, out) => {
        const bc = await openDevice(o);
        try {
          await bc.syncAll();
          const rows: Array<{
            channel: string;
            lifecycle: string;
            initiator: string | null;
            parties: readonly string[];
            /** The note of the latest outreach (what the other party wrote), or null. */
            note: string | null;
          }> = [];
          for (const id of await bc.channelIds()) {
            const ch = await bc.channel(id);
            const s = ch.view.state;
            const outreach = ch.view.timeline.findLast(
              (r) => 'event' in r && r.status === 'ok' && r.event.kind === 'outreach',
            );
            rows.push({
              channel: id,
              lifecycle: s.lifecycle,
              initiator: s.initiator ?? null,
              parties: s.parties,
              note:
                outreach !== undefined && 'event' in outreach && outreach.event.kind === 'outreach'
                  ? outreach.event.note
                  : null,
            });
          }
          const me = bc.identity.party;
          const labels = partyLabels(
            rows.flatMap((r) => r.parties),
            (p) => bc.partyName(p as PartyId),
          );
          const from = (p: string | null) => (p === null ? 'an unknown party' : namedPartyInFull(labels, p));
          out.result(rows, (v: typeof rows) =>
            v.length === 0
              ? 'no channels yet'
              : v
                  .map((r) =>
                    r.lifecycle === 'proposed' && r.initiator !== me
                      ? `${r.channel}  proposed  ← outreach from ${from(r.initiator)}: “${quoteBlock(r.note ?? '', '    ')}”\n    \`backchannel accept ${r.channel}\` or \`backchannel decline ${r.channel}\``
                      : `${r.channel}  ${r.lifecycle}${r.lifecycle === 'proposed' ? '  (waiting for the other party to accept)' : ''}`,
                  )
                  .join('\n'),
          );
        } finally {
          bc.close();
        }
      }),
    );

  program
    .command('accept <channel>')
    .description('accept an outreach: the channel opens')
    .addHelpText('after', examples('backchannel accept c_…'))
    .action(sendCmd(run, () => ({ kind: 'channel.accept' }) as DraftEvent, 'acceptance'));
  program
    .command('decline <channel>')
    .description('decline an outreach')
    .addHelpText('after', examples('backchannel decline c_… --reason "Not before the elections."'))
    .option('--reason <text>', 'why (kept on record)')
    .action(
      sendCmd(
        run,
        (_ch, [opts]: [{ reason?: string }]) =>
          ({
            kind: 'channel.decline',
            ...(opts.reason === undefined ? {} : { reason: opts.reason }),
          }) as DraftEvent,
        'decline',
      ),
    );

  program
    .command('send <channel> <text>')
    .description('send a message')
    .option('--track <track>', 'track name or id')
    .addHelpText('after', '\nExample:\n  backchannel send c_… "We received your note." --track nuclear')
    .action(
      sendCmd(
        run,
        (ch, [text, opts]: [string, { track?: string }]) => {
          if (text.trim() === '') throw new ClientError('INVALID_ARGUMENT', 'the message is empty');
          return { kind: 'message', text, ...trackOf(ch, opts) } as DraftEvent;
        },
        'message',
      ),
    );

  program
    .command('points <channel> <items...>')
    .description('convey a structured list of points')
    .requiredOption('--title <title>', 'heading of the points')
    .option('--track <track>', 'track name or id')
    .addHelpText(
      'after',
      '\nExample:\n  backchannel points c_… "Halt enrichment above 5%" "Inspections resume" --title "Conditions"',
    )
    .action(
      sendCmd(
        run,
        (ch, [items, opts]: [string[], { title: string; track?: string }]) =>
          ({ kind: 'points', title: opts.title, items, ...trackOf(ch, opts) }) as DraftEvent,
        'points',
      ),
    );

  program
    .command('propose <channel> <text>')
    .description('make a proposal')
    .addHelpText(
      'after',
      examples('backchannel propose c_… "Talks resume in Muscat on 3 May." --title "Venue" --track nuclear'),
    )
    .requiredOption('--title <title>', 'short title')
    .option('--track <track>', 'track name or id')
    .action(
      sendCmd(
        run,
        (ch, [text, opts]: [string, { title: string; track?: string }]) =>
          ({ kind: 'proposal', title: opts.title, text, ...trackOf(ch, opts) }) as DraftEvent,
        'proposal',
      ),
    );

  program
    .command('respond <channel> <event> <text>')
    .description('respond to a proposal, points or notice')
    .addHelpText(
      'after',
      examples('backchannel respond c_… e_… "Agreed, with a week\'s delay." --stance counter'),
    )
    .addOption(
      new Option('--stance <stance>', 'how you respond')
        .choices(['accept', 'reject', 'counter', 'note'])
        .default('note'),
    )
    .option('--track <track>', 'track name or id')
    .action(
      sendCmd(
        run,
        (
          ch,
          [event, text, opts]: [
            string,
            string,
            { stance: 'accept' | 'reject' | 'counter' | 'note'; track?: string },
          ],
        ) =>
          ({
            kind: 'response',
            to: answerable(ch, parseEventId(event)),
            stance: opts.stance,
            text,
            ...trackOf(ch, opts),
          }) as DraftEvent,
        'response',
      ),
    );

  program
    .command('readout <channel> <text>')
    .description('record a public read-out of a round of talks')
    .addHelpText('after', examples('backchannel readout c_… "Constructive talks." --round "Geneva 3"'))
    .requiredOption('--round <name>', 'which round, e.g. "Geneva 3"')
    .action(
      sendCmd(
        run,
        (_ch, [text, opts]: [string, { round: string }]) =>
          ({ kind: 'readout', round: opts.round, text }) as DraftEvent,
        'read-out',
      ),
    );

  program
    .command('notice <channel> <text>')
    .description('send a formal notice that must be acknowledged before a deadline')
    .addHelpText(
      'after',
      examples('backchannel notice c_… "Exercises start on Monday." --title "Exercises" --ack-within 2h'),
    )
    .requiredOption('--title <title>', 'short title')
    .option('--ack-within <duration>', 'deadline, e.g. 2h', '24h')
    .action(
      sendCmd(
        run,
        (_ch, [text, opts]: [string, { title: string; ackWithin: string }]) => {
          // A notice must be acknowledged: it says something, under a title.
          if (opts.title.trim() === '' || text.trim() === '')
            throw new ClientError(
              'INVALID_ARGUMENT',
              'a notice needs a --title and a text (not only spaces)',
            );
          return {
            kind: 'notice',
            title: opts.title,
            text,
            ackBy: Date.now() + ackWithin(opts.ackWithin),
          } as DraftEvent;
        },
        'notice',
      ),
    );

  program
    .command('read <channel> [events...]')
    .description('send read receipts (all unread events from other parties by default)')
    .addHelpText(
      'after',
      examples(
        'backchannel read c_…          (everything unread)',
        'backchannel read c_… e_…      (one event)',
      ),
    )
    .action(
      run(async (o, out, channel: string, events: string[]) => {
        const sent = await withChannel(o, channel, async (ch, bc) => {
          const me = bc.identity.party;
          for (const e of events) {
            // A receipt for an unknown event, or for one's own, is ignored by every reader: refuse it.
            const r = ch.view.state.receipts.get(parseEventId(e));
            if (r === undefined || r.from === me)
              throw new ClientError(
                'INVALID_ARGUMENT',
                `${r === undefined ? `channel ${ch.id} has no event ${e} to acknowledge` : `${e} is your own party's event`} (see \`backchannel log ${ch.id}\`)`,
              );
          }
          // An event this party already marked read gets no second receipt (it would add nothing).
          const unread = (id: EventId) => ch.view.state.receipts.get(id)?.read[me] === undefined;
          const ids: EventId[] =
            events.length > 0
              ? events.map((e) => parseEventId(e)).filter(unread)
              : ch.view.timeline.flatMap((r) =>
                  'event' in r &&
                  r.status === 'ok' &&
                  r.party !== bc.identity.party &&
                  r.event.kind !== 'receipt' &&
                  r.event.kind !== 'heartbeat' &&
                  ch.view.state.receipts.get(r.event.id) !== undefined &&
                  ch.view.state.receipts.get(r.event.id)?.read[bc.identity.party] === undefined
                    ? [r.event.id]
                    : [],
                );
          if (ids.length === 0) return [];
          await ch.send({ kind: 'receipt', type: 'read', of: ids } as DraftEvent);
          return ids;
        });
        out.result({ channel, read: sent }, () =>
          sent.length === 0 ? 'nothing unread' : `read receipts sent for ${sent.length} event(s)`,
        );
      }),
    );

  const track = program
    .command('track')
    .description('topics inside a channel: open, suspend, revive, conclude, list')
    .addHelpText('after', examples('backchannel track open c_… nuclear', 'backchannel track list c_…'));
  track
    .command('open <channel> <name>')
    .description('open a new track')
    .addHelpText('after', examples('backchannel track open c_… nuclear'))
    .action(
      run(async (o, out, channel: string, name: string) => {
        if (name.trim() === '')
          throw new ClientError('INVALID_ARGUMENT', 'a track needs a name (not only spaces)');
        const trackId = trackIdFrom(new Uint8Array(randomBytes(16)));
        await withChannel(o, channel, (ch) => {
          // Names are how tracks are given on the command line: one live track per name.
          const same = Object.entries(ch.view.state.tracks).find(
            ([, t]) => t.name === name && t.status !== 'concluded',
          );
          if (same !== undefined)
            throw new ClientError(
              'INVALID_ARGUMENT',
              `channel ${ch.id} has a track "${name}" already (${same[0]}, ${same[1].status}): choose another name, or conclude that one first`,
            );
          return ch.send({ kind: 'track.open', trackId, name } as DraftEvent);
        });
        out.result({ channel, track: trackId, name }, () => `track "${name}" opened: ${trackId}`);
      }),
    );
  for (const [verb, kind, needsReason] of [
    ['suspend', 'track.suspend', true],
    ['revive', 'track.revive', false],
    ['conclude', 'track.conclude', false],
  ] as const) {
    const c = track
      .command(`${verb} <channel> <track>`)
      .description(`${verb} a track (name or id)`)
      .addHelpText(
        'after',
        examples(
          `backchannel track ${verb} c_… nuclear${needsReason ? ' --reason "After the strike of 14 March."' : ''}`,
        ),
      );
    if (needsReason) c.requiredOption('--reason <text>', 'why (kept on record)');
    else c.option('--reason <text>', 'why (kept on record)');
    c.action(
      run(async (o, out, channel: string, t: string, opts: { reason?: string }) => {
        await withChannel(o, channel, (ch) =>
          ch.send({
            kind,
            trackId: resolveTrack(ch, t),
            ...(opts.reason === undefined ? {} : { reason: opts.reason }),
          } as DraftEvent),
        );
        out.result({ channel, track: t, action: verb }, () => `track ${t}: ${verb} sent`);
      }),
    );
  }
  track
    .command('list <channel>')
    .description('tracks with their status and history')
    .addHelpText('after', examples('backchannel track list c_…'))
    .action(
      run(async (o, out, channel: string) => {
        const tracks = await withChannel(o, channel, async (ch) => ch.view.state.tracks);
        out.result(
          tracks,
          (v: typeof tracks) =>
            Object.entries(v)
              .map(
                ([id, t]) =>
                  `${inline(t.name)} (${id}): ${t.status}\n${t.history.map((h) => `   ${new Date(h.at).toISOString()} ${h.status}${h.reason === undefined ? '' : ` — ${inline(h.reason)}`}`).join('\n')}`,
              )
              .join('\n') || 'no tracks',
        );
      }),
    );

  const channelCmd = program
    .command('channel')
    .description('channel lifecycle: suspend, reopen, close')
    .addHelpText(
      'after',
      examples(
        'backchannel channel suspend c_… --reason "After the strike of 14 March."',
        'backchannel channel reopen c_…',
      ),
    );
  for (const [verb, kind, needsReason] of [
    ['suspend', 'channel.suspend', true],
    ['reopen', 'channel.reopen', false],
    ['close', 'channel.close', false],
  ] as const) {
    const c = channelCmd
      .command(`${verb} <channel>`)
      .description(`${verb} the channel`)
      .addHelpText(
        'after',
        examples(
          `backchannel channel ${verb} c_…${needsReason ? ' --reason "No contact while the strike is investigated."' : ''}`,
        ),
      );
    if (needsReason) c.requiredOption('--reason <text>', 'why (kept on record)');
    else c.option('--reason <text>', 'why (kept on record)');
    c.action(
      run(async (o, out, channel: string, opts: { reason?: string }) => {
        await withChannel(o, channel, (ch) =>
          ch.send({ kind, ...(opts.reason === undefined ? {} : { reason: opts.reason }) } as DraftEvent),
        );
        out.result({ channel, action: verb }, () => `channel ${channel}: ${verb} sent`);
      }),
    );
  }
}

export type { ChannelId, Out };
