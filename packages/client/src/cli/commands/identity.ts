/** init, device add/list/revoke, card publish/show/fingerprint. */
import { closeSync, existsSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { createInterface } from 'node:readline/promises';
import {
  decodeContactCard,
  fingerprint,
  type PartyId,
  parsePartyId,
  ROLES,
  type Role,
  toBase64url,
} from '@backchannel/protocol';
import { type Command, Option } from 'commander';
import type { Backchannel } from '../../sdk/client.ts';
import { ClientError } from '../../sdk/errors.ts';
import { newInviteCode, openInvite, sealInvite } from '../../sdk/invite.node.ts';
import { openRecoveryKit } from '../../sdk/recovery.ts';
import { type GlobalOptions, initDevice, installationId, openDevice } from '../device.node.ts';
import { type Out, examples, readTextFile } from '../output.ts';
import { inline } from '../text.ts';

type Action = (o: GlobalOptions, out: Out, ...args: never[]) => Promise<void>;
export type Runner = (fn: Action) => (...args: unknown[]) => Promise<void>;

const roleOption = () => new Option('--role <role>', 'the device role').choices([...ROLES]).default('staff');
/** `init party` and `init recover`: the device that holds the party's root key. */
const rootHolderRoleOption = () =>
  new Option('--role <role>', 'this device role (it holds the root key whatever its role)')
    .choices([...ROLES])
    .default('admin');

export function identityCommands(program: Command, run: Runner): void {
  const init = program
    .command('init')
    .description('set up this device: a new party, or a device of an existing one')
    .addHelpText(
      'after',
      examples(
        'backchannel init party --name "Foreign Ministry" --device admin-desk --relay http://127.0.0.1:8787',
        'backchannel init device --invite staff1.invite.json --code ABCD-EFGH-JKMN-PQRS',
        'backchannel init recover --kit party.recovery.json --device admin-desk-2   (asks for the recovery code)',
      ),
    );
  init
    .command('party')
    .description(
      'create a new party, its root key held by this device (the one that adds and revokes devices); give the relay with --relay URL',
    )
    .requiredOption('--name <name>', 'the party name others will see, e.g. "Foreign Ministry"')
    .requiredOption('--device <name>', 'this device, e.g. "minister-laptop"')
    .addOption(rootHolderRoleOption())
    .addHelpText(
      'after',
      '\nExample:\n  backchannel init party --name "Foreign Ministry" --device admin-desk --relay http://127.0.0.1:8787',
    )
    .action(
      run(async (o, out, opts: { name: string; device: string; role: Role }) => {
        if (o.relay === undefined || o.relay.length === 0) {
          throw new ClientError('INVALID_ARGUMENT', 'say which relay this party uses: --relay URL');
        }
        const relays = o.relay;
        const r = await initDevice(o, async (bc) => {
          const id = await bc.createParty({
            partyName: opts.name,
            deviceName: opts.device,
            role: opts.role,
            relays,
          });
          return { party: id.party, device: id.device, role: opts.role, fingerprint: bc.fingerprint() };
        });
        out.result(
          r,
          (v: typeof r) =>
            `party ${v.party} created\ndevice ${v.device} (${opts.role})\nfingerprint ${v.fingerprint}\ncompare this fingerprint with the other party out of band`,
        );
      }),
    );
  init
    .command('device')
    .description('enroll this device from an invite file and its one-time code')
    .requiredOption('--invite <file>', 'the invite file an admin created with `backchannel device add`')
    .option(
      '--code <code>',
      'the one-time code the admin gave you. Better kept off the command line: by default it is read from BACKCHANNEL_INVITE_CODE, else asked for (or read from stdin)',
    )
    .addHelpText(
      'after',
      examples(
        'backchannel init device --invite staff1.invite.json          (asks for the code)',
        'BACKCHANNEL_INVITE_CODE=ABCD-EFGH-JKMN-PQRS backchannel init device --invite staff1.invite.json',
      ),
    )
    .action(
      run(async (o, out, opts: { invite: string; code?: string }) => {
        const invite = readInvite(opts.invite);
        const identity = openInvite(
          invite,
          await secretCode(opts.code, 'BACKCHANNEL_INVITE_CODE', 'one-time code'),
        );
        await initDevice(o, (bc) => bc.enroll(identity, { installation: installationId(o) }));
        out.result(
          {
            party: identity.party,
            device: identity.device,
            name: identity.deviceName,
            role: identity.certificate.body.role,
          },
          (v: { device: string; name: string; role: string }) =>
            `device ${v.device} "${v.name}" (${v.role}) enrolled`,
        );
      }),
    );

  init
    .command('recover')
    .description(
      "restore your party's root key from its recovery kit onto this device, which becomes the party's admin device",
    )
    .requiredOption('--kit <file>', 'the recovery kit written by `backchannel recovery-kit`')
    .option(
      '--code <code>',
      'its recovery code (28 letters; dashes and case do not matter). Better kept off the command line: by default it is read from BACKCHANNEL_RECOVERY_CODE, else asked for (or read from stdin)',
    )
    .requiredOption('--device <name>', 'this device, e.g. "admin-desk-2"')
    .addOption(rootHolderRoleOption())
    .addHelpText(
      'after',
      '\nExamples:\n  backchannel init recover --kit party.recovery.json --device admin-desk-2          (asks for the code)\n  BACKCHANNEL_RECOVERY_CODE=… backchannel init recover --kit party.recovery.json --device admin-desk-2\n\nThen revoke the lost device (`backchannel device revoke <it> --reason "lost"`): your party\'s\nprincipal and admin devices remove it from their channels and add this one.',
    )
    .action(
      run(async (o, out, opts: { kit: string; code?: string; device: string; role: Role }) => {
        const file = readJsonFile(opts.kit, 'recovery kit', 'RECOVERY_INVALID');
        const recovered = await openRecoveryKit(file, await recoveryCode(opts.code));
        const r = await initDevice(o, async (bc) => {
          const id = await bc.recoverParty({
            recovered,
            deviceName: opts.device,
            role: opts.role,
            ...(o.relay === undefined || o.relay.length === 0 ? {} : { relays: o.relay }),
          });
          return { party: id.party, device: id.device, role: opts.role, fingerprint: bc.fingerprint() };
        });
        out.result(
          r,
          (v: typeof r) =>
            `party ${v.party} (${inline(recovered.partyName)}) recovered onto this device\ndevice ${v.device} (${opts.role})\nfingerprint ${v.fingerprint} (unchanged: the same root key)\nnow revoke the lost device: backchannel device list, then backchannel device revoke <device> --reason "lost"`,
        );
      }),
    );

  program
    .command('recovery-kit')
    .description(
      "admin: write your party's recovery kit (its root key, sealed under a new recovery code): keep the file and the code apart",
    )
    .requiredOption('--out <file>', 'where to write the recovery kit')
    .addHelpText(
      'after',
      '\nExample:\n  backchannel recovery-kit --out party.recovery.json\n\nWith the file AND the code anyone can act as your party: store them apart, offline (the code on\npaper in a safe, the file on a drive kept elsewhere). Restore with `backchannel init recover`.',
    )
    .action(
      run(async (o, out, opts: { out: string }) => {
        const bc = await openDevice(o);
        try {
          const { kit, code } = await bc.recoveryKit(kdfForInvites());
          try {
            // A new file only the owner reads ('wx': never over an existing file, whose mode would stay).
            writeFileSync(opts.out, JSON.stringify(kit, null, 2), { mode: 0o600, flag: 'wx' });
          } catch (e) {
            const exists = (e as { code?: unknown }).code === 'EEXIST';
            throw new ClientError(
              'INVALID_ARGUMENT',
              exists
                ? `${opts.out} exists: write the recovery kit to a new file (an older kit stays valid: destroy it if it must not)`
                : `cannot write the recovery kit to ${opts.out}: ${(e as Error).message}`,
            );
          }
          out.result(
            { party: kit.party, kit: opts.out, code },
            (v: { party: string; kit: string; code: string }) =>
              `recovery kit of ${v.party} written to ${v.kit}\nrecovery code: ${v.code}\nwrite the code down and keep it apart from the file: together they are your party's root key`,
          );
        } finally {
          bc.close();
        }
      }),
    );

  const device = program
    .command('device')
    .description('the devices of your party')
    .addHelpText(
      'after',
      examples(
        'backchannel device add --name staff-1 --role staff --out staff1.invite.json',
        'backchannel device list',
      ),
    );
  device
    .command('add')
    .description('admin: certify a new device and write its invite file (give the code separately)')
    .requiredOption('--name <name>', 'member and device, e.g. "staff-1 laptop"')
    .addOption(roleOption())
    .requiredOption('--out <file>', 'where to write the invite file')
    .addHelpText(
      'after',
      '\nExample:\n  backchannel device add --name staff-1 --role staff --out staff1.invite.json',
    )
    .action(
      run(async (o, out, opts: { name: string; role: Role; out: string }) => {
        // Before anything is certified: an earlier invite there (still to be redeemed) is kept.
        if (existsSync(opts.out))
          throw new ClientError(
            'INVALID_ARGUMENT',
            `${opts.out} exists: write the invite to a new file (an invite there may still be waiting to be redeemed)`,
          );
        const bc = await openDevice(o);
        try {
          // Names are how devices are told apart in lists and commands (device revoke NAME).
          const same = (await bc.partyDevices()).devices.find(
            (d) => d.state === 'active' && d.name === opts.name,
          );
          if (same !== undefined)
            throw new ClientError(
              'INVALID_ARGUMENT',
              `this party already has a device named "${opts.name}" (${same.device}): choose another name, or revoke that one first`,
            );
          // The file is made before the device is certified: a path that cannot be written must
          // not leave a certified device whose invite no one has.
          const fd = openSync(opts.out, 'wx', 0o600);
          let identity: Awaited<ReturnType<typeof bc.addDevice>>;
          try {
            identity = await bc.addDevice(opts.name, opts.role);
          } catch (e) {
            closeSync(fd);
            rmSync(opts.out, { force: true });
            throw e;
          }
          const code = newInviteCode();
          try {
            writeSync(fd, JSON.stringify(sealInvite(identity, code, kdfForInvites())));
          } catch (e) {
            rmSync(opts.out, { force: true });
            throw new ClientError(
              'INVALID_ARGUMENT',
              `device ${identity.device} was certified but its invite could not be written to ${opts.out} (${(e as Error).message}): revoke it with \`backchannel device revoke ${identity.device} --reason "invite lost"\` and add it again`,
            );
          } finally {
            closeSync(fd);
          }
          out.result(
            { device: identity.device, role: opts.role, invite: opts.out, code },
            (v: { device: string; invite: string; code: string }) =>
              `device ${v.device} certified\ninvite written to ${v.invite}\none-time code: ${v.code}  (send it by another route than the file)`,
          );
        } finally {
          bc.close();
        }
      }),
    );
  device
    .command('list')
    .description('list your party devices, with roles and revocations')
    .addHelpText('after', examples('backchannel device list', 'backchannel --json device list'))
    .action(
      run(async (o, out) => {
        const bc = await openDevice(o);
        try {
          const { devices, refused } = await bc.partyDevices();
          const rows = devices.map((d) => ({
            device: d.device,
            name: d.name,
            role: d.role,
            state: d.state,
            revoked: d.state === 'revoked',
            ...(d.revokedAt === undefined ? {} : { revokedAt: d.revokedAt }),
            ...(d.reason === undefined ? {} : { reason: d.reason }),
            self: d.device === bc.identity.device,
          }));
          out.result(rows, (v: typeof rows) =>
            v
              .map(
                (r) =>
                  `${r.device}  ${r.role.padEnd(10)} ${inline(r.name)}${r.self ? '  (this device)' : ''}${
                    r.state === 'active'
                      ? ''
                      : r.state === 'revoked'
                        ? `  REVOKED ${r.revokedAt === undefined ? '' : new Date(r.revokedAt).toISOString()}${r.reason ? ` (${inline(r.reason)})` : ''}`
                        : `  ${r.state.toUpperCase()}`
                  }`,
              )
              .join('\n'),
          );
          // Directory entries the root did not sign are not listed: said on stderr (a relay's
          // forgery, or damage), so that --json output stays the list.
          if (refused > 0) {
            process.stderr.write(
              `warning: ${refused} of the relay's directory entries for your party did not verify under its root key and are not listed\n`,
            );
          }
        } finally {
          bc.close();
        }
      }),
    );
  device
    .command('revoke <device>')
    .description('admin: revoke a device (its id, or its name) and remove it from every channel')
    .requiredOption('--reason <text>', 'why (kept on record)')
    .addHelpText(
      'after',
      '\nExamples:\n  backchannel device revoke staff-1 --reason "left the delegation"\n  backchannel device revoke d_AbC… --reason "laptop lost"',
    )
    .action(
      run(async (o, out, which: string, opts: { reason: string }) => {
        const bc = await openDevice(o);
        try {
          const deviceId = await resolveDevice(bc, which);
          const before = (await bc.partyDevices()).devices.find((d) => d.device === deviceId);
          // Again on a revoked device: its first revocation stands (date and reason); what is
          // done again is its removal from the channels, which a stopped first run may have left.
          await bc.revokeDevice(deviceId, opts.reason);
          const earlier =
            before?.state === 'revoked' && before.revokedAt !== undefined
              ? { revokedAt: before.revokedAt, reason: before.reason ?? null }
              : undefined;
          out.result(
            { revoked: deviceId, ...(earlier === undefined ? {} : { alreadyRevoked: earlier }) },
            () =>
              earlier === undefined
                ? `device ${deviceId} revoked and removed from its channels`
                : `device ${deviceId} was already revoked on ${new Date(earlier.revokedAt).toISOString()}${earlier.reason === null ? '' : ` (${inline(earlier.reason)})`}: that revocation stands, the new reason is not recorded; its removal from its channels is done`,
          );
        } finally {
          bc.close();
        }
      }),
    );

  const card = program
    .command('card')
    .description('contact cards: what an outreach is sent to')
    .addHelpText(
      'after',
      examples('backchannel card fingerprint p_Xy…   (compare it with the one the other party reads to you)'),
    );
  card
    .command('publish')
    .description('admin: sign and publish your party contact card on the relay')
    .addHelpText('after', examples('backchannel card publish'))
    .action(
      run(async (o, out) => {
        const bc = await openDevice(o);
        try {
          const bytes = await bc.publishCard();
          out.result(
            { party: bc.identity.party, card: toBase64url(bytes), fingerprint: bc.fingerprint() },
            () => `card of ${bc.identity.party} published\nfingerprint ${bc.fingerprint()}`,
          );
        } finally {
          bc.close();
        }
      }),
    );
  card
    .command('show [party]')
    .description('show a party contact card (yours by default)')
    .addHelpText('after', examples('backchannel card show p_Xy…'))
    .action(
      run(async (o, out, party?: string) => {
        const bc = await openDevice(o);
        try {
          const p = party === undefined ? bc.identity.party : parsePartyId(party);
          const c = decodeContactCard(await bc.relay.getCard(p));
          if (!c.ok) throw new ClientError('CARD_UNKNOWN', `the card of ${p} does not verify: ${c.message}`);
          const v = {
            party: c.value.body.party,
            name: c.value.body.displayName,
            relays: c.value.body.relays,
            devices: c.value.body.devices.length,
            issuedAt: c.value.body.issuedAt,
            fingerprint: fingerprint(c.value.body.rootPublicKey),
          };
          out.result(
            v,
            (x: typeof v) =>
              `${inline(x.name)} (${x.party})\nrelays: ${x.relays.map(inline).join(', ')}\nissued ${new Date(x.issuedAt).toISOString()}\nfingerprint ${x.fingerprint}`,
          );
        } finally {
          bc.close();
        }
      }),
    );
  card
    .command('fingerprint [party]')
    .description('the safety number to compare out of band (yours by default)')
    .addHelpText(
      'after',
      examples(
        'backchannel card fingerprint            (yours, to read to the other party)',
        'backchannel card fingerprint p_Xy…      (theirs, as this relay serves it)',
      ),
    )
    .action(
      run(async (o, out, party?: string) => {
        const bc = await openDevice(o);
        try {
          const p: PartyId = party === undefined ? bc.identity.party : parsePartyId(party);
          const c = decodeContactCard(await bc.relay.getCard(p));
          if (!c.ok) throw new ClientError('CARD_UNKNOWN', `the card of ${p} does not verify: ${c.message}`);
          const fp = fingerprint(c.value.body.rootPublicKey);
          out.result({ party: p, fingerprint: fp }, () => fp);
        } finally {
          bc.close();
        }
      }),
    );
}

/** A device of this party, named by its id or by its (unique) name. */
async function resolveDevice(bc: Backchannel, which: string): Promise<string> {
  // Names as the party's root certified them (a name in an entry it did not sign is not looked at).
  const { devices } = await bc.partyDevices();
  const byId = devices.find((d) => d.device === which);
  if (byId !== undefined) return byId.device;
  const named = devices.filter((d) => d.name === which);
  // A name given again after its device was revoked: the active one is meant.
  const active = named.filter((d) => d.state === 'active');
  const meant = named.length === 1 ? named : active;
  if (meant.length === 1) return (meant[0] as (typeof meant)[number]).device;
  const listOf = (ds: typeof devices) => ds.map((d) => `${d.device} (${d.name}, ${d.state})`).join(', ');
  throw new ClientError(
    'INVALID_ARGUMENT',
    named.length > 1
      ? `several devices are named "${which}": give the id of the one to revoke (${listOf(named)})`
      : `your party has no device "${which}": give an id or a name from \`backchannel device list\` (${listOf(devices)})`,
  );
}

/**
 * The recovery code: from --code, else BACKCHANNEL_RECOVERY_CODE, else asked for on the terminal
 * (or the first line of stdin when it is not one) — a code on the command line stays in the
 * shell's history and shows in the process list.
 */
async function recoveryCode(given: string | undefined): Promise<string> {
  return secretCode(given, 'BACKCHANNEL_RECOVERY_CODE', 'recovery code');
}

/** A one-time or recovery code: from --code, else the environment variable, else asked for. */
async function secretCode(given: string | undefined, env: string, what: string): Promise<string> {
  const code = given ?? process.env[env];
  if (code !== undefined && code.trim() !== '') return code;
  const tty = process.stdin.isTTY === true;
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: tty });
  try {
    const line = tty
      ? await rl.question(`${what}: `)
      : await new Promise<string>((res) => {
          rl.once('line', res);
          rl.once('close', () => res(''));
        });
    if (line.trim() === '')
      throw new ClientError('INVALID_ARGUMENT', `give the ${what} (${env}, stdin or --code)`);
    return line;
  } finally {
    rl.close();
  }
}

function readInvite(path: string): unknown {
  return readJsonFile(
    path,
    'invite file',
    'INVITE_INVALID',
    ' (the file your admin wrote with `backchannel device add --out`)',
  );
}

function readJsonFile(
  path: string,
  what: string,
  invalid: 'INVITE_INVALID' | 'RECOVERY_INVALID',
  hint = '',
): unknown {
  let text: string;
  try {
    text = readTextFile(path);
  } catch (e) {
    const why = (e as { code?: unknown }).code === 'ENOENT' ? 'no such file' : String((e as Error).message);
    throw new ClientError('INVALID_ARGUMENT', `cannot read the ${what} ${path}: ${why}${hint}`);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new ClientError(invalid, `${path} is not a Backchannel ${what}`);
  }
}

function kdfForInvites() {
  const n = process.env.BACKCHANNEL_KDF_N;
  return n === undefined ? undefined : { N: Number(n), r: 8, p: 1 };
}
