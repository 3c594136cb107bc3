/**
 * A newcomer's first hour with the `backchannel` binary: the mistakes people make (a command before
 * `init`, a relay that is not running, a typo in a path or an id, a revoked device) each end in a
 * typed error with a stable code, an actionable one-line message and the documented exit code —
 * one JSON line under --json, usage errors included — and never in a broken device.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Command } from 'commander';
import { describeError } from '../src/cli/output.ts';
import { buildProgram } from '../src/cli/program.ts';
import { type RelayProcess, startRelayProcess } from '../src/cli/relay-process.node.ts';
import { cliRunner } from './cli-runner.ts';

const root = mkdtempSync(join(tmpdir(), 'bc-first-hour-'));
const { cli, ok, human } = cliRunner(root);
const UNREACHABLE = 'http://127.0.0.1:9';

/** Every stdout line is a JSON document. */
function jsonLines(stdout: string): unknown[] {
  return stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as unknown);
}

let relay: RelayProcess;
beforeAll(async () => {
  relay = await startRelayProcess(join(root, 'relay'));
  await ok('a', ['init', 'party', '--name', 'Foreign Ministry', '--device', 'desk'], relay.url);
}, 60_000);
afterAll(async () => {
  await relay?.stop();
});

describe('usage errors', () => {
  it('are one JSON line with a stable code under --json, and exit 1', async () => {
    for (const args of [
      ['frobnicate'],
      ['send'],
      ['points', 'c_AAAAAAAAAAAAAAAAAAAAAA', 'one', 'two'],
      ['device', 'add', '--name', 'x', '--role', 'king', '--out', 'x.json'],
      ['send', 'c_AAAAAAAAAAAAAAAAAAAAAA', 'hi', '--bogus'],
    ]) {
      const r = await cli('nobody', args);
      expect(r.code, args.join(' ')).toBe(1);
      expect(jsonLines(r.stdout), args.join(' ')).toEqual([
        { error: { code: 'INVALID_ARGUMENT', message: expect.stringContaining('--help') } },
      ]);
      expect(r.stderr).toBe('');
    }
  });

  it('are one line `error INVALID_ARGUMENT: …` at the terminal, as every other error, and exit 1', async () => {
    const typo = await human('nobody', ['stauts']);
    expect(typo.code).toBe(1);
    expect(typo.stderr).toBe(
      "error INVALID_ARGUMENT: unknown command 'stauts' (Did you mean status?) (see `backchannel --help`)\n",
    );
    const missing = await human('nobody', ['send']);
    expect(missing.stderr).toMatch(/^error INVALID_ARGUMENT: missing required argument 'channel' .*\n$/);
    expect(missing.stderr.split('\n')).toHaveLength(2);
    // A bare command group still prints its help.
    const bare = await human('nobody', ['device']);
    expect(bare.stderr).toContain('Usage: backchannel device');
    expect((await human('nobody', [])).stderr).toContain('Start here: backchannel demo');
  });

  it('a relay given without http:// is refused as such, not reported unreachable', async () => {
    const r = await cli('no-scheme', ['init', 'party', '--name', 'X', '--device', 'y'], '127.0.0.1:8787');
    expect(r).toMatchObject({ code: 1, json: { error: { code: 'INVALID_ARGUMENT' } } });
    expect(r.json.error?.message).toContain('http://');
    expect(existsSync(join(root, 'no-scheme'))).toBe(false);
  });

  it('a relay port that is not a number is bad input (exit 1), before any relay starts', async () => {
    const r = await cli('nobody', ['relay', '--port', 'abc', '--data', join(root, 'never')]);
    expect(r).toMatchObject({ code: 1, json: { error: { code: 'INVALID_ARGUMENT' } } });
    expect(existsSync(join(root, 'never'))).toBe(false);
  });

  it('a malformed id is bad input (exit 1), not a refusal', async () => {
    const r = await cli('a', ['status', 'c_nope']);
    expect(r).toMatchObject({ code: 1, json: { error: { code: 'ID_INVALID' } } });
  });
});

describe('before init', () => {
  it('a command on a home with no device says how to set one up, and leaves nothing behind', async () => {
    const r = await human('early', ['status'], { BACKCHANNEL_PASSPHRASE: 'a first guess' });
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/^error NOT_INITIALIZED: no device in .*early: run `backchannel init party`/);
    expect(existsSync(join(root, 'early'))).toBe(false);
    // …so `init` with the passphrase actually chosen works (it used to find a store sealed with
    // the first guess, and fail with PASSPHRASE_WRONG).
    const init = await human(
      'early',
      ['--relay', relay.url, 'init', 'party', '--name', 'Early', '--device', 'desk'],
      { BACKCHANNEL_PASSPHRASE: 'the real passphrase' },
    );
    expect(init.stderr).toBe('');
    expect(init.code).toBe(0);
  });

  it('an empty passphrase file, or a passphrase too short for a new device, is refused before anything is made', async () => {
    const empty = join(root, 'empty-passphrase.txt');
    writeFileSync(empty, '\n');
    const r = await human('empty-pass', [
      '--passphrase-file',
      empty,
      '--relay',
      relay.url,
      'init',
      'party',
      '--name',
      'Empty',
      '--device',
      'desk',
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error INVALID_ARGUMENT: the passphrase file .*empty-passphrase\.txt is empty/);
    const short = await human(
      'short-pass',
      ['--relay', relay.url, 'init', 'party', '--name', 'Short', '--device', 'desk'],
      { BACKCHANNEL_PASSPHRASE: 'abc' },
    );
    expect(short.code).toBe(1);
    expect(short.stderr).toMatch(/^error INVALID_ARGUMENT: the passphrase is shorter than 8 characters/);
    expect(existsSync(join(root, 'empty-pass', 'device.db'))).toBe(false);
    expect(existsSync(join(root, 'short-pass', 'device.db'))).toBe(false);
  });

  it('a wrong passphrase names the device directory and where the passphrase comes from', async () => {
    await ok('locked', ['init', 'party', '--name', 'Locked', '--device', 'desk'], relay.url);
    const r = await human('locked', ['status'], { BACKCHANNEL_PASSPHRASE: 'not it' });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /^error PASSPHRASE_WRONG: .*locked .*BACKCHANNEL_PASSPHRASE or --passphrase-file/,
    );
  });
});

describe('init is all or nothing', () => {
  it('with the relay not running, init fails (exit 3) and can simply be run again', async () => {
    const args = ['init', 'party', '--name', 'Ministry', '--device', 'desk'];
    const down = await cli('retry', args, UNREACHABLE);
    expect(down).toMatchObject({ code: 3, json: { error: { code: 'RELAY_UNREACHABLE' } } });
    expect(down.json.error?.message).toContain('is the relay running');
    const again = await cli('retry', args, relay.url);
    expect(again.code, again.stdout).toBe(0);
    expect(String(again.json.party)).toMatch(/^p_/);
    // A second init on the same home is refused, and says which device is there.
    const twice = await cli('retry', args, relay.url);
    expect(twice).toMatchObject({ code: 2, json: { error: { code: 'ALREADY_INITIALIZED' } } });
    expect(twice.json.error?.message).toContain(String(again.json.device));
  });

  it('two inits of one home at once: one device, kept; the other init is refused', async () => {
    const args = ['init', 'party', '--name', 'Ministry', '--device', 'desk'];
    // Both start on an empty home and wait for its device lock, held here until both are waiting.
    mkdirSync(join(root, 'twice'), { recursive: true });
    const lock = new Database(join(root, 'twice', 'device.db.lock'));
    lock.exec('BEGIN EXCLUSIVE');
    const running = [cli('twice', args, relay.url), cli('twice', args, relay.url)];
    await new Promise((r) => setTimeout(r, 3_000));
    lock.close();
    const both = await Promise.all(running);
    const made = both.filter((r) => r.code === 0);
    expect(made, JSON.stringify(both.map((r) => r.json))).toHaveLength(1);
    expect(both.find((r) => r.code !== 0)?.json).toMatchObject({ error: { code: 'ALREADY_INITIALIZED' } });
    // The refused one left the device the other made (it used to remove it as its own).
    expect(await ok('twice', ['card', 'fingerprint'])).toMatchObject({ party: made[0]?.json.party });
  });

  it('device add keeps an existing invite file and refuses a name an active device has, certifying nothing', async () => {
    await ok('dup-admin', ['init', 'party', '--name', 'Ministry', '--device', 'desk'], relay.url);
    const file = join(root, 'dup.invite.json');
    await ok('dup-admin', ['device', 'add', '--name', 'aide', '--out', file]);
    const before = (await ok('dup-admin', ['device', 'list'])) as unknown;
    const again = await cli('dup-admin', ['device', 'add', '--name', 'aide-2', '--out', file]);
    expect(again).toMatchObject({ code: 1, json: { error: { code: 'INVALID_ARGUMENT' } } });
    expect(again.json.error?.message).toMatch(/dup\.invite\.json exists/);
    const same = await cli('dup-admin', ['device', 'add', '--name', 'aide', '--out', `${file}.2`]);
    expect(same).toMatchObject({ code: 1, json: { error: { code: 'INVALID_ARGUMENT' } } });
    expect(same.json.error?.message).toMatch(/already has a device named "aide"/);
    expect(existsSync(`${file}.2`)).toBe(false);
    // An invite path that cannot be written (no such folder) is refused before anything is certified.
    const nowhere = await cli('dup-admin', [
      'device',
      'add',
      '--name',
      'aide-3',
      '--out',
      join(root, 'no-such-dir', 'x.json'),
    ]);
    expect(nowhere).toMatchObject({ code: 1, json: { error: { code: 'INVALID_ARGUMENT' } } });
    expect(nowhere.json.error?.message).toMatch(/no-such-dir/);
    // None certified a device.
    expect(await ok('dup-admin', ['device', 'list'])).toEqual(before);
    // Once revoked, its name may be given again; the name then means the active device.
    const first = (before as Array<{ device: string; name: string }>).find((d) => d.name === 'aide');
    await ok('dup-admin', ['device', 'revoke', 'aide', '--reason', 'left']);
    const second = await ok('dup-admin', ['device', 'add', '--name', 'aide', '--out', `${file}.3`]);
    expect(second.device).not.toBe(first?.device);
    expect(await ok('dup-admin', ['device', 'revoke', 'aide', '--reason', 'left'])).toMatchObject({
      revoked: second.device,
    });
    // Revoked again: the first revocation stands, and the answer says so.
    const revokedAgain = await ok('dup-admin', [
      'device',
      'revoke',
      String(first?.device),
      '--reason',
      'again',
    ]);
    expect(revokedAgain).toMatchObject({ revoked: first?.device, alreadyRevoked: { reason: 'left' } });
    // Times in --json are milliseconds since 1970, as everywhere else in the CLI's JSON.
    const earlier = revokedAgain as unknown as { alreadyRevoked: { revokedAt: unknown } };
    expect(typeof earlier.alreadyRevoked.revokedAt).toBe('number');
    expect(Math.abs((earlier.alreadyRevoked.revokedAt as number) - Date.now())).toBeLessThan(600_000);
    const listed = (await ok('dup-admin', ['device', 'list'])) as unknown as Array<{
      device: string;
      revokedAt?: unknown;
    }>;
    expect(listed.find((d) => d.device === first?.device)?.revokedAt).toBe(earlier.alreadyRevoked.revokedAt);
  });

  it('an enrollment that could not reach the relay can be retried with the same invite', async () => {
    await ok('inv-admin', ['init', 'party', '--name', 'Ministry', '--device', 'desk'], relay.url);
    const file = join(root, 'staff.invite.json');
    const invite = await ok('inv-admin', ['device', 'add', '--name', 'staff', '--out', file]);
    const enroll = ['init', 'device', '--invite', file, '--code', String(invite.code)];
    expect(await cli('inv-staff', enroll, UNREACHABLE)).toMatchObject({
      code: 3,
      json: { error: { code: 'RELAY_UNREACHABLE' } },
    });
    // The code from the environment (kept off the command line), as from --code.
    const byEnv = await human('inv-staff', ['--json', 'init', 'device', '--invite', file], {
      BACKCHANNEL_INVITE_CODE: String(invite.code),
    });
    expect(byEnv.code, byEnv.stderr).toBe(0);
    expect(JSON.parse(byEnv.stdout)).toMatchObject({ device: invite.device });
    // The invite is spent: another home redeeming it (a second installation with the same device
    // key) is refused, and keeps no device store.
    const again = await cli('inv-staff-copy', enroll);
    expect(again).toMatchObject({ code: 2, json: { error: { code: 'INVITE_INVALID' } } });
    expect(again.json.error?.message).toMatch(/already redeemed, on .*, by another installation/);
    expect(existsSync(join(root, 'inv-staff-copy', 'device.db'))).toBe(false);
    // The device that redeemed it works on.
    expect(await cli('inv-staff', ['device', 'list'])).toMatchObject({ code: 0 });
  });
});

describe('files named on the command line', () => {
  it('a typo in the invite path is bad input (exit 1) that names the file', async () => {
    const r = await cli('typo', [
      'init',
      'device',
      '--invite',
      join(root, 'staf1.invite.jsn'),
      '--code',
      'X',
    ]);
    expect(r).toMatchObject({ code: 1, json: { error: { code: 'INVALID_ARGUMENT' } } });
    expect(r.json.error?.message).toContain('staf1.invite.jsn');
    const notJson = join(root, 'not-an-invite.txt');
    writeFileSync(notJson, 'hello');
    expect(await cli('typo', ['init', 'device', '--invite', notJson, '--code', 'X'])).toMatchObject({
      code: 2,
      json: { error: { code: 'INVITE_INVALID' } },
    });
  });

  it('a missing passphrase file or attestation is bad input (exit 1), with its path', async () => {
    const pf = await human('nobody', ['--passphrase-file', join(root, 'nope.txt'), 'status']);
    expect(pf.code).toBe(1);
    expect(pf.stderr).toMatch(
      /^error INVALID_ARGUMENT: the passphrase file .*nope\.txt does not exist: check --passphrase-file\n$/,
    );
    const keys = join(root, 'keys.json');
    writeFileSync(
      keys,
      JSON.stringify({ type: 'backchannel/public-keys', v: 1, parties: {}, relayKeys: [] }),
    );
    const v = await cli('nobody', ['verify', join(root, 'outrech.json'), '--keys', keys]);
    expect(v).toMatchObject({ code: 1, json: { error: { code: 'INVALID_ARGUMENT' } } });
    expect(v.json.error?.message).toContain('outrech.json');
    // A folder where a file is expected: the same, naming it.
    const dir = await human('nobody', ['--passphrase-file', root, 'status']);
    expect(dir.code).toBe(1);
    expect(dir.stderr).toBe(`error INVALID_ARGUMENT: cannot read ${root}: it is a directory\n`);
    const vd = await cli('nobody', ['verify', root, '--keys', keys]);
    expect(vd).toMatchObject({
      code: 1,
      json: { error: { code: 'INVALID_ARGUMENT', message: `cannot read ${root}: it is a directory` } },
    });
  });

  it('verify given another kind of file says what it is (exit 1), not that a claim failed (exit 4)', async () => {
    const keys = join(root, 'keys-2.json');
    writeFileSync(
      keys,
      JSON.stringify({ type: 'backchannel/public-keys', v: 1, parties: {}, relayKeys: [] }),
    );
    const transcript = join(root, 'transcript.json');
    writeFileSync(transcript, JSON.stringify({ kind: 'backchannel-transcript', v: 1, entries: [] }));
    const text = join(root, 'notes.txt');
    writeFileSync(text, 'minutes of the meeting');
    const cases: Array<[string, RegExp]> = [
      [keys, /is a public-keys file: give it as --keys/],
      [transcript, /is a transcript export: make an attestation .* `backchannel attest`/],
      [text, /is not JSON: verify takes an attestation/],
    ];
    for (const [file, message] of cases) {
      const r = await cli('nobody', ['verify', file, '--keys', keys]);
      expect(r).toMatchObject({ code: 1, json: { error: { code: 'INVALID_ARGUMENT' } } });
      expect(r.json.error?.message).toMatch(message);
    }
  });
});

describe('error reports', () => {
  it('an unexpected error is one line with a code, never a stack trace or a schema dump', () => {
    const zod = Object.assign(new Error('[\n  {\n    "code": "invalid_format"\n  }\n]'), {
      name: 'ZodError',
      issues: [{ path: ['device'], message: 'Invalid string' }],
    });
    expect(describeError(zod)).toEqual({
      code: 'INVALID_ARGUMENT',
      message: 'invalid device: Invalid string',
      exit: 1,
    });
    const r = describeError(new TypeError('x is undefined\n    at f (file.ts:1:1)'));
    expect(r.code).toBe('INTERNAL');
    expect(r.message).not.toContain('\n');
    expect(r.message).not.toContain('file.ts');
  });
});

describe('--help', () => {
  it('every command, and every group of commands, ends with an example', () => {
    const missing: string[] = [];
    const visit = (c: Command, path: string) => {
      let help = '';
      c.configureOutput({ writeOut: (t) => (help += t), writeErr: (t) => (help += t) });
      c.outputHelp();
      if (path !== 'backchannel' && !/\nExamples?:\n {2}backchannel /.test(help)) missing.push(path);
      for (const sub of c.commands) visit(sub, `${path} ${sub.name()}`);
    };
    visit(buildProgram(), 'backchannel');
    expect(missing).toEqual([]);
  });

  it("marks a command's required options and lists the global ones (--json, --home, --relay)", () => {
    const points = buildProgram().commands.find((c) => c.name() === 'points');
    let help = '';
    points?.configureOutput({ writeOut: (t) => (help += t) });
    points?.outputHelp();
    expect(help).toMatch(/--title <title> +heading of the points \(required\)/);
    expect(help).toMatch(/--track <track> +track name or id\n/);
    expect(help).toContain('Global Options:');
    for (const g of ['--json', '--home <dir>', '--passphrase-file <file>', '--relay <url>'])
      expect(help).toContain(g);
  });
});

describe('on an open channel', () => {
  let ch = '';
  let bParty = '';
  let staff = '';
  beforeAll(async () => {
    const b = await ok(
      'b',
      ['init', 'party', '--name', 'Envoy', '--device', 'phone', '--role', 'principal'],
      relay.url,
    );
    bParty = String(b.party);
    const file = join(root, 'a-staff.invite.json');
    const invite = await ok('a', ['device', 'add', '--name', 'staff-1', '--out', file]);
    staff = String(invite.device);
    await ok('a-staff', ['init', 'device', '--invite', file, '--code', String(invite.code)]);
    ch = String((await ok('a', ['outreach', bParty, '--note', 'Opening a line.'])).channel);
    await ok('b', ['inbox']);
    await ok('b', ['accept', ch]);
  }, 120_000);

  it('refusals say what to do: an outreach this party made waits for the other party; a heartbeat is not answered', async () => {
    const mine = String((await ok('a', ['outreach', bParty, '--note', 'Shall we talk?'])).channel);
    const early = await cli('a', ['send', mine, 'hello?']);
    expect(early).toMatchObject({ code: 2, json: { error: { code: 'EVENT_REJECTED' } } });
    expect(early.json.error?.message).toBe(
      `channel ${mine} is waiting for the other party to accept this party's outreach`,
    );
    const nobody = await cli('a', ['outreach', 'p_cdHyFUf1Pi0mxoVhoSsjCx', '--note', 'hello?']);
    expect(nobody).toMatchObject({
      code: 2,
      json: { error: { code: 'CARD_UNKNOWN', cause: 'PARTY_UNKNOWN' } },
    });
    expect(nobody.json.error?.message).toContain(
      'this relay has no contact card for p_cdHyFUf1Pi0mxoVhoSsjCx',
    );
    // A notice overdue at once, or due in centuries, and an empty message: refused, nothing sent.
    for (const args of [
      ['notice', ch, 'Exercises start Monday.', '--title', 'Exercises', '--ack-within', '0s'],
      ['notice', ch, 'Exercises start Monday.', '--title', 'Exercises', '--ack-within', '999999d'],
      ['send', ch, '  '],
    ]) {
      const r = await cli('b', args);
      expect(r, args.join(' ')).toMatchObject({ code: 1, json: { error: { code: 'INVALID_ARGUMENT' } } });
    }
    const beat = String((await ok('b', ['heartbeat', ch])).heartbeat);
    const answer = await cli('b', ['respond', ch, beat, 'noted']);
    expect(answer).toMatchObject({ code: 1, json: { error: { code: 'INVALID_ARGUMENT' } } });
    expect(answer.json.error?.message).toBe(
      `${beat} is a heartbeat: respond to a message, points, a proposal or a notice`,
    );
  });

  it('an outreach on a suspended channel proposes to reopen it; the other party accepts on it', async () => {
    await ok('b', ['channel', 'suspend', ch, '--reason', 'A pause after the strike.']);
    await ok('a', ['sync']);
    const reopen = await ok('a', ['outreach', ch, '--note', 'We propose to resume contact.']);
    expect(reopen).toMatchObject({ channel: ch, reopen: true, to: bParty });
    await ok('b', ['accept', ch]);
    await ok('a', ['sync']);
    expect(await ok('a', ['status', ch])).toMatchObject({ lifecycle: 'open' });
    // Nothing to reopen on an open channel: refused, saying why.
    const again = await cli('a', ['outreach', ch, '--note', 'Hello again.']);
    expect(again).toMatchObject({ code: 2, json: { error: { code: 'EVENT_REJECTED' } } });
  });

  it('one live track per name: a name given again after its track concluded means the new one', async () => {
    // A channel of its own (the others here expect none of these tracks).
    const tch = String((await ok('a', ['outreach', bParty, '--note', 'On energy.'])).channel);
    await ok('b', ['inbox']);
    await ok('b', ['accept', tch]);
    const first = String((await ok('b', ['track', 'open', tch, 'energy'])).track);
    const again = await cli('b', ['track', 'open', tch, 'energy']);
    expect(again).toMatchObject({ code: 1, json: { error: { code: 'INVALID_ARGUMENT' } } });
    expect(again.json.error?.message).toContain(`a track "energy" already (${first}, active)`);
    await ok('b', ['track', 'conclude', tch, 'energy']);
    const second = String((await ok('b', ['track', 'open', tch, 'energy'])).track);
    // The name now means the live track, not the concluded one (which `find` used to return).
    await ok('b', ['track', 'suspend', tch, 'energy', '--reason', 'a pause']);
    const tracks = (await ok('b', ['track', 'list', tch])) as unknown as Record<string, { status: string }>;
    expect(tracks[first]?.status).toBe('concluded');
    expect(tracks[second]?.status).toBe('suspended');
  });

  it('the inbox says who reached out and what they wrote', async () => {
    const second = String(
      (await ok('a', ['outreach', bParty, '--note', 'We propose to resume contact.'])).channel,
    );
    const r = await human('b', ['inbox']);
    expect(r.stdout).toContain(`${second}  proposed  ← outreach from `);
    expect(r.stdout).toContain('“We propose to resume contact.”');
    expect(r.stdout).toContain(`backchannel accept ${second}`);
    const rows = (await ok('b', ['inbox'])) as unknown as Array<Record<string, unknown>>;
    expect(Object.values(rows)).toContainEqual(
      expect.objectContaining({ channel: second, note: 'We propose to resume contact.' }),
    );
  });

  it("status says which party has not acknowledged this party's events, and what waits in the outbox", async () => {
    await ok('b', ['sync']);
    await ok('a', ['send', ch, 'Has this reached you?']);
    const before = await human('a', ['status', ch]);
    expect(before.stdout).toMatch(/delivered: 1 event\(s\) of this party not yet acknowledged by /);
    expect(await ok('a', ['status', ch])).toMatchObject({
      awaitingDelivery: [{ party: bParty, events: 1 }],
    });
    await ok('b', ['sync']); // sends B's delivered receipt
    const after = await human('a', ['status', ch]);
    expect(after.stdout).toContain('delivered: every event of this party acknowledged');
    // A send the relay has not taken yet is mentioned.
    await cli('a', ['send', ch, 'Queued while offline.'], UNREACHABLE);
    const offline = await human('a', ['--relay', UNREACHABLE, 'status', ch]);
    expect(offline.stderr).toContain('1 message(s) wait in the outbox');
    await ok('a', ['sync']);
  });

  it('offline, a command that only reads still answers; one that sends exits 3', async () => {
    await ok('b', ['points', ch, 'Halt enrichment', 'Inspectors return', '--title', 'Conditions']);
    await ok('b', ['sync']); // its own points, as logged
    const send = await cli('b', ['send', ch, 'Sent while offline.'], UNREACHABLE);
    expect(send).toMatchObject({ code: 3, json: { error: { code: 'RELAY_UNREACHABLE' } } });
    // With a message waiting in the outbox, `log` used to exit 3 and print nothing.
    const log = await cli('b', ['log', ch], UNREACHABLE);
    expect(log.code).toBe(0);
    const kinds = Object.values(log.json as Record<string, { event?: { kind: string } }>).map(
      (r) => r.event?.kind,
    );
    expect(kinds).toContain('points');
    const said = await human('b', ['--relay', UNREACHABLE, 'track', 'list', ch]);
    expect(said).toMatchObject({ code: 0, stdout: 'no tracks\n' });
    expect(said.stderr).toMatch(/^note: the relay is unreachable: .*1 message\(s\) wait in the outbox\n$/);
    const status = await human('b', ['--relay', UNREACHABLE, 'status', ch]);
    expect(status).toMatchObject({ code: 0, stdout: expect.stringContaining(`channel ${ch}: OPEN`) });
    expect(status.stderr).toMatch(/^note: the relay is unreachable/);
    const file = join(root, 'offline-export.json');
    const exported = await human('b', ['--relay', UNREACHABLE, 'export', ch, '--out', file]);
    expect(exported).toMatchObject({ code: 0, stdout: expect.stringContaining(`transcript of ${ch}`) });
    expect(exported.stderr).toMatch(
      /^note: the relay is unreachable: the export holds what this device verified/,
    );
    const kept = JSON.parse(readFileSync(file, 'utf8')) as { events: Array<{ event: { kind: string } }> };
    expect(kept.events.map((e) => e.event.kind)).toContain('points');
    expect(statSync(file).mode & 0o777).toBe(0o600); // events in clear: this user's only
    // watch says so too, once, and goes on (it used to print only "polling").
    const watched = await human('b', [
      '--relay',
      UNREACHABLE,
      'watch',
      ch,
      '--for',
      '2s',
      '--every',
      '500ms',
    ]);
    expect(watched.code).toBe(0);
    expect(watched.stderr).toBe(
      'note: the relay is unreachable: shown is what this device verified; watch keeps trying\n',
    );
    expect(await ok('b', ['sync'])).toMatchObject({ outboxPending: 0 });
  });

  it('an unknown channel says where the channels are, and why a device may not have one', async () => {
    for (const args of [
      ['log'],
      ['status'],
      ['export', '--out', join(root, 'x.json')],
      ['watch', '--for', '1s'],
    ]) {
      const r = await cli('a', [args[0] as string, 'c_AAAAAAAAAAAAAAAAAAAAAA', ...args.slice(1)]);
      expect(r, args[0]).toMatchObject({ code: 2, json: { error: { code: 'CHANNEL_UNKNOWN' } } });
      expect(r.json.error?.message).toContain('backchannel status');
      expect(r.json.error?.message).toContain('enrolled');
    }
  });

  it('read receipts only for events that exist and are the other party’s', async () => {
    const bogus = await cli('a', ['read', ch, 'e_AAAAAAAAAAAAAAAAAAAAAA']);
    expect(bogus).toMatchObject({ code: 1, json: { error: { code: 'INVALID_ARGUMENT' } } });
    expect(bogus.json.error?.message).toContain('has no event e_AAAAAAAAAAAAAAAAAAAAAA');
    const stance = await cli('a', ['respond', ch, 'e_AAAAAAAAAAAAAAAAAAAAAA', 'ok', '--stance', 'yes']);
    expect(stance).toMatchObject({ code: 1, json: { error: { code: 'INVALID_ARGUMENT' } } });
    expect(stance.json.error?.message).toContain('accept, reject, counter, note');
  });

  it('keys and attest print one JSON line under --json', async () => {
    for (const args of [
      ['keys', ch],
      ['attest', 'outreach', ch],
    ]) {
      const r = await cli('a', args);
      expect(r.code, r.stderr).toBe(0);
      expect(jsonLines(r.stdout)).toHaveLength(1);
    }
  });

  it('device revoke takes a device name, refuses one the party does not have, and the revoked device is told why', async () => {
    const unknown = await cli('a', ['device', 'revoke', 'd_AAAAAAAAAAAAAAAAAAAAAA', '--reason', 'typo']);
    expect(unknown).toMatchObject({ code: 1, json: { error: { code: 'INVALID_ARGUMENT' } } });
    expect(unknown.json.error?.message).toContain('staff-1');
    expect(await ok('a', ['device', 'revoke', 'staff-1', '--reason', 'left the delegation'])).toEqual({
      revoked: staff,
    });
    const r = await cli('a-staff', ['log', ch]);
    expect(r).toMatchObject({ code: 2, json: { error: { code: 'RELAY_REFUSED', cause: 'CERT_REVOKED' } } });
    expect(r.json.error?.message).toContain('new invite');
  });
});

describe('arguments checked before anything is sent', () => {
  it('an outreach to one’s own party, a heartbeat interval of 0, a --limit that is not a number, an unknown role', async () => {
    const self = await cli('a', ['card', 'show']);
    expect(typeof (self.json as { issuedAt?: unknown }).issuedAt).toBe('number');
    const own = await cli('a', ['outreach', String(self.json.party), '--note', 'hello me']);
    expect(own).toMatchObject({ code: 1, json: { error: { code: 'INVALID_ARGUMENT' } } });
    expect(own.json.error?.message).toContain('your own party');
    const channel = 'c_AAAAAAAAAAAAAAAAAAAAAA';
    for (const args of [
      ['heartbeat', channel, '--interval', '0', '--daemon'],
      ['log', channel, '--limit', 'ten'],
      ['init', 'party', '--name', 'K', '--device', 'd', '--role', 'king'],
    ]) {
      const r = await cli('a', args);
      expect(r, args.join(' ')).toMatchObject({ code: 1, json: { error: { code: 'INVALID_ARGUMENT' } } });
    }
  });
});
