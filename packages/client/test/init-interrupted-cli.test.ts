/**
 * A failed `backchannel init device` leaves no half-made device behind, so that the next attempt
 * simply works: an invite code that is wrong creates nothing, a relay that is unreachable leaves
 * no store, and an init interrupted (Ctrl-C, SIGTERM) while it waits on the relay removes the
 * store it made — never a directory, or a file in it, that was there before.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, type RelayProcess, startRelayProcess } from '../src/cli/relay-process.node.ts';
import { cliRunner } from './cli-runner.ts';

const root = mkdtempSync(join(tmpdir(), 'bc-init-interrupted-'));
const { cli, ok } = cliRunner(root);
const BIN = join(import.meta.dirname, '..', 'bin', 'backchannel.mjs');
const UNREACHABLE = 'http://127.0.0.1:9';

let relay: RelayProcess;
/** Accepts connections and never answers: a relay that hangs. */
let silent: Server;
let silentUrl: string;
const conns = new Set<Socket>();

beforeAll(async () => {
  relay = await startRelayProcess(join(root, 'relay'));
  await ok('admin', ['init', 'party', '--name', 'Ministry', '--device', 'desk'], relay.url);
  const port = await freePort();
  silent = createServer((c) => {
    conns.add(c);
    c.on('error', () => undefined);
  });
  await new Promise<void>((r) => silent.listen(port, '127.0.0.1', r));
  silentUrl = `http://127.0.0.1:${port}`;
}, 60_000);
afterAll(async () => {
  for (const c of conns) c.destroy();
  silent?.close();
  await relay?.stop();
});

async function invite(name: string): Promise<{ file: string; code: string }> {
  const file = join(root, `${name}.invite`);
  const r = await ok('admin', ['device', 'add', '--name', name, '--role', 'staff', '--out', file]);
  return { file, code: String(r.code) };
}

const storeFiles = (home: string) =>
  existsSync(home) ? readdirSync(home).filter((f) => /^device\.db(-wal|-shm)?$/.test(f)) : [];

describe('a failed init device', () => {
  it('with a wrong code creates nothing; with the relay unreachable leaves no store; the retry works', {
    timeout: 120_000,
  }, async () => {
    const { file, code } = await invite('s1');
    const home = join(root, 's1');
    expect(await cli('s1', ['init', 'device', '--invite', file, '--code', 'WRONG-CODE'])).toMatchObject({
      code: 2,
      json: { error: { code: 'INVITE_INVALID' } },
    });
    expect(existsSync(home)).toBe(false);
    expect(await cli('s1', ['init', 'device', '--invite', file, '--code', code], UNREACHABLE)).toMatchObject({
      code: 3,
      json: { error: { code: 'RELAY_UNREACHABLE' } },
    });
    expect(storeFiles(home)).toEqual([]);
    expect(await cli('s1', ['status'])).toMatchObject({
      code: 5,
      json: { error: { code: 'NOT_INITIALIZED' } },
    });
    await ok('s1', ['init', 'device', '--invite', file, '--code', code]);
    expect(await ok('s1', ['status'])).toBeDefined();
  });

  it.each([
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const)(
    'interrupted by %s while it waits on the relay, removes the store it made (exit %i), and the retry works',
    {
      timeout: 120_000,
    },
    async (signal, exit) => {
      const name = `s-${signal.toLowerCase()}`;
      const { file, code } = await invite(name);
      const home = join(root, name);
      // A directory that was there before, with a file of the user's: both stay.
      mkdirSync(home, { mode: 0o700 });
      writeFileSync(join(home, 'notes.txt'), 'mine\n');
      const child = spawn(
        process.execPath,
        [BIN, '--json', '--relay', silentUrl, 'init', 'device', '--invite', file, '--code', code],
        {
          env: {
            ...process.env,
            BACKCHANNEL_HOME: home,
            // Not the one the retry uses: a store left sealed with it would refuse the retry.
            BACKCHANNEL_PASSPHRASE: 'an earlier passphrase',
            BACKCHANNEL_KDF_N: '1024',
          },
          stdio: 'ignore',
        },
      );
      const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
      // The store is made, and the enrollment waits on the relay that never answers.
      for (let i = 0; i < 300 && !existsSync(join(home, 'device.db')); i++)
        await new Promise((r) => setTimeout(r, 50));
      expect(existsSync(join(home, 'device.db'))).toBe(true);
      await new Promise((r) => setTimeout(r, 500));
      expect(child.exitCode).toBeNull();
      child.kill(signal);
      expect(await exited).toBe(exit);

      expect(storeFiles(home)).toEqual([]);
      expect(readFileSync(join(home, 'notes.txt'), 'utf8')).toBe('mine\n');
      // Before: `status` answered "no channels yet" (exit 0) from the half-made store.
      expect(await cli(name, ['status'])).toMatchObject({
        code: 5,
        json: { error: { code: 'NOT_INITIALIZED' } },
      });
      // Before: PASSPHRASE_WRONG, the half-made store being sealed with the earlier passphrase.
      await ok(name, ['init', 'device', '--invite', file, '--code', code]);
      expect(await ok(name, ['status'])).toBeDefined();
    },
  );
});
