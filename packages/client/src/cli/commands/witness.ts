/** `backchannel witness`: the party's witness service (co-sign, or alarm with evidence on a fork). */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseChannelId } from '@backchannel/protocol';
import { parseVerifierKey } from '@backchannel/protocol/transcript';
import type { Command } from 'commander';
import { ClientError, isRetryable } from '../../sdk/errors.ts';
import {
  newWitnessState,
  relaySource,
  type WitnessState,
  witnessRound,
  witnessVerifierKey,
} from '../../sdk/witness.ts';
import { type GlobalOptions, homeDir, openDevice } from '../device.node.ts';
import { describeError, EXIT, examples, type Out, parseDuration, readTextFile } from '../output.ts';
import type { Runner } from './identity.ts';
import { inline } from '../text.ts';
import { writeOutFile } from '../out-file.node.ts';

const collect = (v: string, prev: string[] | undefined) => [...(prev ?? []), v];

export function witnessCommand(program: Command, run: Runner): void {
  program
    .command('witness')
    .description(
      "co-sign the relay's checkpoints after checking they extend the last co-signed ones; alarm on a fork",
    )
    .addHelpText(
      'after',
      examples(
        'backchannel witness --state witness.json --name a-witness --print-key',
        'backchannel witness --state witness.json --interval 30s',
      ),
    )
    .option('--state <file>', 'witness state (key and last co-signed checkpoints)', undefined)
    .option('--name <name>', 'witness key name (first run)', undefined)
    .option('--channel <id>', 'channel to watch (repeatable; default: all of this device)', collect)
    .option('--evidence-dir <dir>', 'where fork evidence files are written (default: next to the state)')
    .option('--interval <duration>', 'poll this often', '30s')
    .option('--once', 'one round, then exit')
    .option('--webhook <url>', 'also POST each fork evidence (JSON) to this URL')
    .option('--print-key', 'print this witness’s verifier key and exit')
    .action(
      run(
        async (
          o: GlobalOptions,
          out: Out,
          opts: {
            state?: string;
            name?: string;
            channel?: string[];
            evidenceDir?: string;
            interval: string;
            once?: boolean;
            printKey?: boolean;
            webhook?: string;
          },
        ) => {
          const statePath = opts.state ?? join(homeDir(o), 'witness.json');
          const evidenceDir = opts.evidenceDir ?? join(homeDir(o), 'evidence');
          const interval = parseDuration(opts.interval);
          if (interval < 1000)
            throw new ClientError(
              'INVALID_ARGUMENT',
              `--interval must be at least 1s (not ${opts.interval})`,
            );
          const bc = await openDevice(o);
          try {
            const relayKeyString = bc.relayKey;
            if (relayKeyString === undefined)
              throw new ClientError('NOT_INITIALIZED', 'no relay key pinned yet');
            const relayKey = parseVerifierKey(relayKeyString);
            if (!relayKey.ok) throw new ClientError('INVALID_ARGUMENT', 'the pinned relay key is not valid');
            let state: WitnessState = existsSync(statePath)
              ? readWitnessState(statePath, opts.name)
              : newWitnessState(
                  opts.name ?? `witness.${bc.identity.party.slice(2, 10).toLowerCase()}`,
                  new Uint8Array(randomBytes(32)),
                  relayKeyString,
                );
            // Written whole or not at all (a temporary file, synced, renamed over it): the file
            // holds the witness's signing seed, and a stop mid-write must not lose it.
            const save = () => writeOutFile(statePath, `${JSON.stringify(state, null, 2)}\n`, true);
            save();
            if (opts.printKey === true) {
              out.result(
                { witness: state.name, vkey: witnessVerifierKey(state) },
                (v: { vkey: string }) => v.vkey,
              );
              return;
            }
            for (;;) {
              const channels = opts.channel?.map((c) => parseChannelId(c)) ?? (await bc.channelIds());
              // Keep this device's own verified copy of each log current (no sends): it is what
              // turns a fork alarm into proof when the relay later shows a shorter history.
              for (const c of channels) {
                try {
                  await (await bc.channel(c)).sync();
                } catch {
                  // a fork or an outage: the witness round below reports it in its own terms
                }
              }
              const trusted = () =>
                bc.relayKeys.flatMap((v) => {
                  const k = parseVerifierKey(v);
                  return k.ok ? [k.value] : [];
                });
              let r: Awaited<ReturnType<typeof witnessRound>>;
              try {
                r = await witnessRound({
                  source: relaySource(bc.relay, bc.store),
                  state,
                  // Read each round: the device's sync above moves to the relay's new key after a
                  // rotation (the retired keys stay trusted for what they signed)...
                  relayKey: trusted(),
                  // ...and a channel this device is not in moves it too, through the relay's
                  // rotation statements.
                  rotated: async () => {
                    await bc.learnRelayRotation();
                    return trusted();
                  },
                  channels,
                  now: Date.now(),
                });
              } catch (e) {
                // Left running, the witness outlives an outage (it used to exit 3 at the first
                // unreachable round): reported, and the next round an interval later. `--once`
                // still exits with the error.
                if (opts.once === true || !isRetryable(e)) throw e;
                const d = describeError(e);
                out.result(
                  { kind: 'round-failed', code: d.code, message: d.message },
                  () => `witness round failed: ${d.message} (will retry)`,
                );
                await new Promise((res) => setTimeout(res, interval));
                continue;
              }
              state = r.state;
              save();
              let forked = false;
              for (const ev of r.events) {
                if (ev.kind === 'fork') {
                  forked = true;
                  mkdirSync(evidenceDir, { recursive: true });
                  const path = keepEvidence(
                    evidenceDir,
                    `fork-${ev.channel}-${ev.evidence.detectedAt}`,
                    `${JSON.stringify(ev.evidence, null, 2)}\n`,
                  );
                  process.stderr.write(
                    `${inline(
                      `ALARM witness ${state.name}: channel ${ev.channel}: ${ev.evidence.reason}; evidence written to ${path}`,
                    )}\n`,
                  );
                  if (opts.webhook !== undefined) {
                    await fetch(opts.webhook, {
                      method: 'POST',
                      headers: { 'content-type': 'application/json' },
                      body: JSON.stringify(ev.evidence),
                      signal: AbortSignal.timeout(10_000),
                    }).catch(() =>
                      process.stderr.write(`witness: the alarm webhook ${opts.webhook} did not answer\n`),
                    );
                  }
                  out.result({ ...ev, file: path }, () => `FORK on ${ev.channel}: evidence in ${path}`);
                } else {
                  out.result(ev, (v: typeof ev) =>
                    v.kind === 'refused'
                      ? `${v.channel}: refused (${v.reason})`
                      : `${v.channel}: ${v.kind} at size ${'size' in v ? v.size : ''}`,
                  );
                }
              }
              if (forked) {
                process.exitCode = EXIT.security;
                return;
              }
              if (opts.once === true) return;
              await new Promise((r) => setTimeout(r, interval));
            }
          } finally {
            bc.close();
          }
        },
      ),
    );
}

/** A witness state file as saved, or INVALID_ARGUMENT naming the file and what is wrong. */
function readWitnessState(path: string, name: string | undefined): WitnessState {
  // A file that cannot be read is said as such (describeError names it), not as "not JSON".
  const text = readTextFile(path);
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new ClientError('INVALID_ARGUMENT', `${path} is not a witness state file (not JSON)`);
  }
  const s = v as Partial<WitnessState> | null;
  if (
    typeof s !== 'object' ||
    s === null ||
    typeof s.name !== 'string' ||
    typeof s.seed !== 'string' ||
    typeof s.relayKey !== 'string' ||
    typeof s.channels !== 'object' ||
    s.channels === null ||
    typeof s.alarmed !== 'object' ||
    s.alarmed === null
  )
    throw new ClientError(
      'INVALID_ARGUMENT',
      `${path} is not a witness state file (it needs name, seed, relayKey, channels, alarmed)`,
    );
  if (name !== undefined && name !== s.name)
    throw new ClientError(
      'INVALID_ARGUMENT',
      `${path} holds the witness “${s.name}”: --name names a new witness only (use another --state)`,
    );
  return s as WitnessState;
}

/**
 * Writes fork evidence to a new file (0600) and returns its path: never over an earlier one, even
 * one with the same name (two forks of a channel in one millisecond; a clock set back).
 */
export function keepEvidence(dir: string, stem: string, text: string): string {
  for (let n = 0; ; n++) {
    const path = join(dir, n === 0 ? `${stem}.json` : `${stem}-${n}.json`);
    try {
      writeFileSync(path, text, { flag: 'wx', mode: 0o600 });
      return path;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
}
