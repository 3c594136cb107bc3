/** attest, verify, keys, witness, readout-commit/readout-reveal, receipt-check: proofs for the public. */
import { fromBase64url, parseEventId, partyIdFromKey, toBase64url } from '@backchannel/protocol';
import {
  type AttestationVerdict,
  encodeAttestation,
  verifyAttestation,
  verifyForkEvidence,
} from '@backchannel/protocol/attest';
import { parseVerifierKey } from '@backchannel/protocol/transcript';
import { type Command, Option } from 'commander';
import { ClientError } from '../../sdk/errors.ts';
import { ed25519Node } from '../../sdk/mls-crypto.node.ts';
import {
  type AttestRequest,
  attest,
  checkRelayReceipt,
  commitReadout,
  publicKeysOf,
  revealReadout,
} from '../../sdk/proofs.ts';
import type { GlobalOptions } from '../device.node.ts';
import { EXIT, type Out, parseDuration, examples, readTextFile } from '../output.ts';
import { refuseExisting, writeOutFile } from '../out-file.node.ts';
import type { Runner } from './identity.ts';
import { withChannel } from './talk.ts';
import { witnessCommand } from './witness.ts';
import { inline, jsonSafe, quoteBlock } from '../text.ts';

/** The public keys a verifier needs, as one shareable file. */
export interface PublicKeysFile {
  readonly type: 'backchannel/public-keys';
  readonly v: 1;
  /** party id → base64url root public key */
  readonly parties: Record<string, string>;
  readonly relayKeys: string[];
  readonly witnesses: string[];
}

export function readKeysFile(path: string): PublicKeysFile {
  // A file that cannot be read is said as such (describeError names it), not as "not JSON".
  const text = readTextFile(path).replace(/^\uFEFF/, '');
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new ClientError('INVALID_ARGUMENT', `${path} is not a JSON keys file`);
  }
  const k = v as Partial<PublicKeysFile>;
  if (k.type !== 'backchannel/public-keys' || typeof k.parties !== 'object' || k.parties === null)
    throw new ClientError('INVALID_ARGUMENT', `${path} is not a backchannel public-keys file`);
  // Each party's key is a 32-byte Ed25519 key, and the party id it is filed under is that key's:
  // a key filed under another party's id (swapped, or mistyped) would vouch for the wrong party.
  for (const [party, key] of Object.entries(k.parties)) {
    const raw = typeof key === 'string' ? fromBase64urlOrUndefined(key) : undefined;
    if (raw === undefined || raw.length !== 32)
      throw new ClientError(
        'INVALID_ARGUMENT',
        `${path}: the key of party ${party} is not a 32-byte Ed25519 key`,
      );
    const owner = partyIdFromKey(raw);
    if (owner !== party)
      throw new ClientError(
        'INVALID_ARGUMENT',
        `${path}: the key filed under party ${party} is party ${owner}'s`,
      );
  }
  return {
    type: 'backchannel/public-keys',
    v: 1,
    parties: k.parties,
    relayKeys: Array.isArray(k.relayKeys) ? k.relayKeys : [],
    witnesses: Array.isArray(k.witnesses) ? k.witnesses : [],
  };
}

const collect = (v: string, prev: string[] | undefined) => [...(prev ?? []), v];

export function renderVerdict(v: AttestationVerdict): string {
  // Statements and facts quote what the attestation's signers wrote (names, titles, rounds):
  // each stays on its line; read-out texts are quoted bodies.
  if (!v.valid) return `INVALID (${v.code}): ${inline(v.reason)}\n  at: ${inline(v.at)}`;
  const lines = [
    `VALID ${v.kind} attestation`,
    `  ${inline(v.statement)}`,
    ...v.facts.map((f) => `  - ${inline(f)}`),
  ];
  // What the attestation reveals of the channel: the disclosed events' own words (`--json` has
  // them whole, under `disclosed`). Read-outs are quoted below, in full.
  if (v.readouts === undefined)
    for (const d of v.disclosed) lines.push(`  revealed, entry ${d.index}: ${revealed(d.event)}`);
  if (v.readouts !== undefined) {
    for (const t of v.readouts.texts) lines.push(`  read-out of ${t.party}: “${quoteBlock(t.text, '    ')}”`);
  }
  return lines.join('\n');
}

/** A disclosed event in one line: its kind, and its text where it has one. */
function revealed(e: { readonly kind: string } & Record<string, unknown>): string {
  const quote = (t: unknown) => `“${inline(String(t))}”`;
  if (typeof e.note === 'string') return `${e.kind}, ${quote(e.note)}`;
  if (typeof e.text === 'string') return `${e.kind}, ${quote(e.text)}`;
  if (Array.isArray(e.items)) return `${e.kind}, ${e.items.map(quote).join('; ')}`;
  if (e.kind === 'receipt' && Array.isArray(e.of))
    return `${String(e.type)} receipt of ${e.of.length} event(s)`;
  return e.kind;
}

/** Verifies a file offline; returns the verdict (no device, no network). */
export function verifyFile(
  file: string,
  keys: { parties: Uint8Array[]; relayKeys: string[]; witnesses: string[] },
  now: number,
  maxAgeMs?: number,
): AttestationVerdict {
  const text = readTextFile(file);
  return verifyAttestation(text, {
    parties: keys.parties,
    relayKeys: keys.relayKeys,
    witnesses: keys.witnesses,
    now,
    suite: ed25519Node,
    ...(maxAgeMs === undefined ? {} : { maxAgeMs }),
  });
}

/**
 * A file `verify` was given that is neither an attestation nor fork evidence (another of the
 * product's files, or no JSON at all): bad input, not a failed verification (exit 4 is kept for
 * a claim that does not hold). What it is instead, and what to do, when that can be told.
 */
function notVerifiable(raw: string, file: string): ClientError | undefined {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    return new ClientError(
      'INVALID_ARGUMENT',
      `${file} is not JSON: verify takes an attestation (backchannel attest) or fork evidence file`,
    );
  }
  const o = (typeof v === 'object' && v !== null ? v : {}) as { type?: unknown; kind?: unknown };
  if (o.type === 'backchannel/attestation' || o.type === 'backchannel/fork-evidence') return undefined;
  const what =
    o.type === 'backchannel/public-keys'
      ? 'a public-keys file: give it as --keys'
      : o.kind === 'backchannel-transcript'
        ? 'a transcript export: make an attestation from the channel with `backchannel attest`'
        : 'neither an attestation (backchannel attest) nor fork evidence';
  return new ClientError('INVALID_ARGUMENT', `${file} is ${what}`);
}

function checkVkeys(list: readonly string[], what: string): void {
  for (const k of list) {
    if (!parseVerifierKey(k).ok) throw new ClientError('INVALID_ARGUMENT', `not a ${what} key: ${k}`);
  }
}

export function proofsCommands(program: Command, run: Runner): void {
  program
    .command('attest')
    .description('create a signed, verifiable claim about a channel from your verified transcript')
    .addHelpText(
      'after',
      examples(
        'backchannel attest outreach c_… --out outreach.json --keys-out keys.json',
        'backchannel attest liveness c_… --within 24h --out open.json',
      ),
    )
    .addArgument(
      program
        .createArgument('<kind>', 'what to claim')
        .choices(['outreach', 'liveness', 'delivery', 'disclosure', 'readouts', 'agreed']),
    )
    .argument('<channel>', 'channel id')
    .option('--event <id>', 'delivery/disclosure: the event id')
    .addOption(
      new Option('--receipt <type>', 'delivery: the acknowledgement to prove').choices(['delivered', 'read']),
    )
    .option('--within <duration>', 'liveness: heartbeats from every party within this long (e.g. 24h)', '24h')
    .option('--as-of <iso-time>', 'liveness: the time of the claim (default now)')
    .option('--round <name>', 'readouts: the round')
    .option('--doc <id>', 'agreed: the document (id or unique prefix, see `backchannel doc list`)')
    .option('--revision <n>', 'agreed: the revision every party signed (default: the latest agreed one)')
    .addOption(
      new Option('--which <which>', 'outreach: the first (opening) or latest').choices(['first', 'latest']),
    )
    .option(
      '--at-size <n>',
      'prove against the checkpoint at this log size (e.g. the last one your witnesses co-signed)',
    )
    .option('--out <file>', 'write the attestation here, a new file unless --force (default: print it)')
    .option('--keys-out <file>', 'also write the public keys a verifier needs')
    .option('--force', 'replace --out and --keys-out files that exist')
    .action(
      run(
        async (
          o: GlobalOptions,
          out: Out,
          kind: AttestRequest['kind'],
          channel: string,
          opts: Record<string, string | undefined>,
        ) => {
          const req = toRequest(kind, opts);
          const force = opts.force !== undefined;
          refuseExisting(
            [opts.out, opts.keysOut].filter((f): f is string => f !== undefined),
            force,
          );
          await withChannel(o, channel, async (ch, bc) => {
            const atSize = opts.atSize === undefined ? undefined : Number(opts.atSize);
            if (atSize !== undefined && !Number.isSafeInteger(atSize))
              throw new ClientError('INVALID_ARGUMENT', '--at-size must be a whole number');
            const doc = await attest(bc, ch.id, req, atSize === undefined ? {} : { atSize });
            const text = encodeAttestation(doc);
            // Printed under --json: one line, like every other answer.
            if (opts.out === undefined)
              process.stdout.write(jsonSafe(o.json === true ? `${JSON.stringify(doc)}\n` : text));
            else writeOutFile(opts.out, text, force);
            if (opts.keysOut !== undefined) {
              const k = publicKeysOf(bc, ch.view.state.parties);
              writeOutFile(
                opts.keysOut,
                `${JSON.stringify(keysFile(k.parties, k.relayKeys, []), null, 2)}\n`,
                force,
              );
            }
            if (opts.out !== undefined)
              out.result(
                {
                  kind,
                  channel: ch.id,
                  file: opts.out,
                  claim: doc.claim,
                  ...(opts.keysOut === undefined ? {} : { keys: opts.keysOut }),
                },
                () =>
                  `attestation written to ${opts.out}${
                    opts.keysOut === undefined
                      ? ''
                      : `; the public keys to verify it with, to ${opts.keysOut}`
                  }`,
              );
            else if (opts.keysOut !== undefined && o.json !== true)
              process.stderr.write(`the public keys to verify it with written to ${opts.keysOut}\n`);
          });
        },
      ),
    );

  program
    .command('keys')
    .description("write the public keys a verifier needs for a channel (parties' root keys, relay key)")
    .addHelpText('after', examples('backchannel keys c_… --out keys.json'))
    .argument('<channel>', 'channel id')
    .option('--witness <vkey>', 'a witness cosignature key to require (repeatable)', collect)
    .option('--out <file>', 'write here, a new file unless --force (default: print)')
    .option('--force', 'replace the --out file if it exists')
    .action(
      run(
        async (
          o: GlobalOptions,
          out: Out,
          channel: string,
          opts: { witness?: string[]; out?: string; force?: boolean },
        ) => {
          if (opts.out !== undefined) refuseExisting([opts.out], opts.force === true);
          await withChannel(o, channel, async (ch, bc) => {
            const k = publicKeysOf(bc, ch.view.state.parties);
            const file = keysFile(k.parties, k.relayKeys, opts.witness ?? []);
            checkVkeys(file.witnesses, 'witness');
            const text = `${JSON.stringify(file, null, 2)}\n`;
            if (opts.out === undefined)
              process.stdout.write(jsonSafe(o.json === true ? `${JSON.stringify(file)}\n` : text));
            else {
              writeOutFile(opts.out, text, opts.force === true);
              out.result({ file: opts.out }, () => `public keys written to ${opts.out}`);
            }
          });
        },
      ),
    );

  program
    .command('verify')
    .description(
      'verify an attestation (or fork evidence) offline, with only the file and public keys; exit 0 valid, 4 invalid',
    )
    .addHelpText('after', examples('backchannel verify outreach.json --keys keys.json'))
    .argument('<file>', 'attestation or evidence file')
    .option('--keys <file>', 'public-keys file (from `backchannel keys`)')
    .option('--party-key <base64url>', "a party's root public key (repeatable)", collect)
    .option('--relay-key <vkey>', 'the relay checkpoint key (repeatable)', collect)
    .option('--witness <vkey>', 'a witness that must have co-signed (repeatable)', collect)
    .option('--max-age <duration>', 'refuse liveness claims older than this')
    .action(
      run(
        async (
          _o: GlobalOptions,
          out: Out,
          file: string,
          opts: {
            keys?: string;
            partyKey?: string[];
            relayKey?: string[];
            witness?: string[];
            maxAge?: string;
          },
        ) => {
          const k = opts.keys === undefined ? undefined : readKeysFile(opts.keys);
          const raw = readTextFile(file);
          const wrong = notVerifiable(raw, file);
          if (wrong !== undefined) throw wrong;
          if (raw.includes('"backchannel/fork-evidence"')) {
            // The relay's keys as the reader holds them (across a rotation, all of them).
            const relayKeys = [...(opts.relayKey ?? []), ...(k?.relayKeys ?? [])];
            const r = verifyForkEvidence(raw, relayKeys.length === 0 ? {} : { relayKey: relayKeys });
            out.result(r, (v: typeof r) =>
              v.valid
                ? `VALID fork evidence${v.conclusive ? ' (conclusive)' : ' (an alarm, not a proof)'}: ${v.reason}`
                : `INVALID (${v.code}): ${v.reason}`,
            );
            if (!r.valid) process.exitCode = EXIT.security;
            return;
          }
          const parties = [
            ...Object.values(k?.parties ?? {}).map((p) => fromBase64url(p)),
            ...(opts.partyKey ?? []).map((p) => {
              const raw = fromBase64urlOrUndefined(p);
              if (raw === undefined || raw.length !== 32)
                throw new ClientError('INVALID_ARGUMENT', `--party-key ${p} is not a 32-byte Ed25519 key`);
              return raw;
            }),
          ];
          const relayKeys = [...(k?.relayKeys ?? []), ...(opts.relayKey ?? [])];
          const witnesses = [...(k?.witnesses ?? []), ...(opts.witness ?? [])];
          if (parties.length === 0 || relayKeys.length === 0)
            throw new ClientError(
              'INVALID_ARGUMENT',
              'give the public keys: --keys FILE, or --party-key and --relay-key',
            );
          checkVkeys(relayKeys, 'relay');
          checkVkeys(witnesses, 'witness');
          const v = verifyFile(
            file,
            { parties, relayKeys, witnesses },
            Date.now(),
            opts.maxAge === undefined ? undefined : parseDuration(opts.maxAge),
          );
          out.result(v, renderVerdict);
          if (!v.valid) process.exitCode = EXIT.security;
        },
      ),
    );

  witnessCommand(program, run);

  program
    .command('receipt-check')
    .description(
      "check the relay's receipt for one of your envelopes against the log: delivered, not yet logged, delayed past the channel's bound, or dropped (exit 4 with the evidence)",
    )
    .addHelpText('after', examples('backchannel receipt-check c_… e_… --evidence-out evidence.json'))
    .argument('<channel>', 'channel id')
    .argument('<event>', 'the event id you sent')
    .option(
      '--bound <duration>',
      "delivery bound to judge by (default: the one the channel's outreach stated)",
    )
    .option('--witness <vkey>', 'a witness whose cosignature dates the checkpoint (repeatable)', collect)
    .option(
      '--evidence-out <file>',
      'write the evidence (receipt, checkpoint, entry, proof) here, a new file unless --force',
    )
    .option('--force', 'replace the --evidence-out file if it exists')
    .action(
      run(
        async (
          o: GlobalOptions,
          out: Out,
          channel: string,
          event: string,
          opts: { bound?: string; witness?: string[]; evidenceOut?: string; force?: boolean },
        ) => {
          if (opts.evidenceOut !== undefined) refuseExisting([opts.evidenceOut], opts.force === true);
          await withChannel(o, channel, async (ch, bc) => {
            await ch.sync();
            const r = await checkRelayReceipt(bc, ch.id, parseEventId(event), {
              ...(opts.bound === undefined ? {} : { boundMs: parseDuration(opts.bound) }),
              ...(opts.witness === undefined ? {} : { witnesses: opts.witness }),
            });
            if (r.evidence !== undefined && opts.evidenceOut !== undefined)
              writeOutFile(opts.evidenceOut, `${JSON.stringify(r.evidence, null, 2)}\n`, opts.force === true);
            out.result({ event, ...r }, () => renderReceiptCheck(r.check));
            if (['dropped', 'delayed', 'backdated', 'invalid'].includes(r.check.kind))
              process.exitCode = EXIT.security;
          });
        },
      ),
    );

  // Commit-then-reveal public read-outs (`readout` itself posts a plain read-out).
  program
    .command('readout-commit')
    .description('commit to your public read-out of a round (its salted hash) before anyone publishes')
    .addHelpText('after', examples('backchannel readout-commit c_… "Geneva 3" --text "Constructive talks."'))
    .argument('<channel>', 'channel id')
    .argument('<round>', 'the round (e.g. "Muscat, 3 May")')
    .requiredOption('--text <text>', 'your read-out, as it will be published')
    .action(
      run(async (o: GlobalOptions, out: Out, channel: string, round: string, opts: { text: string }) => {
        await withChannel(o, channel, async (ch, bc) => {
          const id = await commitReadout(bc, ch.id, round, opts.text);
          out.result(
            { event: id, round },
            () => `committed to your read-out of “${round}” (${id}); reveal once every party has committed`,
          );
        });
      }),
    );
  program
    .command('readout-reveal')
    .description('publish your committed read-out, once every party has committed')
    .addHelpText('after', examples('backchannel readout-reveal c_… "Geneva 3"'))
    .argument('<channel>', 'channel id')
    .argument('<round>', 'the round')
    .action(
      run(async (o: GlobalOptions, out: Out, channel: string, round: string) => {
        await withChannel(o, channel, async (ch, bc) => {
          const id = await revealReadout(bc, ch.id, round);
          out.result({ event: id, round }, () => `read-out of “${round}” revealed (${id})`);
        });
      }),
    );
}

function renderReceiptCheck(c: Awaited<ReturnType<typeof checkRelayReceipt>>['check']): string {
  switch (c.kind) {
    case 'delivered':
      return `DELIVERED: logged at position ${c.seq} on ${new Date(c.receivedAt).toISOString()}`;
    case 'not-yet-logged':
      return `NOT YET LOGGED: the verified log has ${c.size} entries`;
    case 'delayed':
      return `DELAYED (provable): ${c.reason}`;
    case 'dropped':
      return `DROPPED (provable): ${c.reason}`;
    case 'backdated':
      return `BACKDATED (provable): ${c.reason}`;
    case 'invalid':
      return `INVALID (${c.code}): ${c.reason}`;
  }
}

function keysFile(
  parties: Record<string, Uint8Array>,
  relayKeys: string[],
  witnesses: string[],
): PublicKeysFile {
  return {
    type: 'backchannel/public-keys',
    v: 1,
    parties: Object.fromEntries(Object.entries(parties).map(([p, k]) => [p, toBase64url(k)])),
    relayKeys,
    witnesses,
  };
}

function toRequest(kind: AttestRequest['kind'], opts: Record<string, string | undefined>): AttestRequest {
  const need = (name: string, v: string | undefined): string => {
    if (v === undefined) throw new ClientError('INVALID_ARGUMENT', `attest ${kind} needs --${name}`);
    return v;
  };
  switch (kind) {
    case 'outreach':
      return { kind, ...(opts.which === undefined ? {} : { which: opts.which as 'first' | 'latest' }) };
    case 'liveness': {
      const asOf = opts.asOf === undefined ? undefined : Date.parse(opts.asOf);
      if (asOf !== undefined && Number.isNaN(asOf))
        throw new ClientError('INVALID_ARGUMENT', '--as-of is not an ISO time');
      const hours = Math.max(1, Math.round(parseDuration(opts.within ?? '24h') / 3_600_000));
      return { kind, withinHours: hours, ...(asOf === undefined ? {} : { asOf }) };
    }
    case 'delivery':
      return {
        kind,
        event: parseEventId(need('event', opts.event)),
        ...(opts.receipt === undefined ? {} : { receipt: opts.receipt as 'delivered' | 'read' }),
      };
    case 'disclosure':
      return { kind, event: parseEventId(need('event', opts.event)) };
    case 'readouts':
      return { kind, round: need('round', opts.round) };
    case 'agreed': {
      const revision = opts.revision === undefined ? undefined : Number(opts.revision);
      if (revision !== undefined && !(Number.isSafeInteger(revision) && revision >= 0))
        throw new ClientError('INVALID_ARGUMENT', '--revision must be a whole number');
      return { kind, doc: need('doc', opts.doc), ...(revision === undefined ? {} : { revision }) };
    }
  }
}

/** base64url bytes, or undefined when `s` is not base64url. */
function fromBase64urlOrUndefined(s: string): Uint8Array | undefined {
  try {
    return fromBase64url(s);
  } catch {
    return undefined;
  }
}
