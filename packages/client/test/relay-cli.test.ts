/**
 * `backchannel relay` and `backchannel demo` when the relay cannot start (a port in use, a data
 * folder another relay holds, a bad setting): one typed error in the CLI's form — `error CODE:
 * message` at the terminal, one JSON line under --json — with the documented exit code, and not
 * the relay's own bare line. A relay that starts runs until it is stopped, as before.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer, type Server, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, type RelayProcess, startRelayProcess } from '../src/cli/relay-process.node.ts';
import { cliRunner } from './cli-runner.ts';

const root = mkdtempSync(join(tmpdir(), 'bc-relay-cli-'));
const { human } = cliRunner(root);
const BIN = join(import.meta.dirname, '..', 'bin', 'backchannel.mjs');

const started: RelayProcess[] = [];
afterAll(async () => {
  for (const r of started) await r.stop();
});

/** Polls the relay's /readyz until it answers ok (true), `ms` pass, or `child` exits (false). */
async function readyWithin(url: string, ms: number, child?: ChildProcess): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until && (child === undefined || child.exitCode === null)) {
    const ok = await fetch(`${url}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

describe('backchannel relay that cannot start', () => {
  it('on a port in use: INVALID_ARGUMENT, exit 1', { timeout: 60_000 }, async () => {
    const taken: Server = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as AddressInfo).port;
    try {
      const said = await human('x', ['relay', '--port', String(port), '--data', join(root, 'd-port')]);
      expect(said).toMatchObject({ code: 1, stdout: '' });
      expect(said.stderr).toBe(
        `error INVALID_ARGUMENT: port ${port} is already in use (is another relay running?); choose another with --port (--port 0 picks a free one)\n`,
      );
      const json = await human('x', [
        '--json',
        'relay',
        '--port',
        String(port),
        '--data',
        join(root, 'd-port'),
      ]);
      expect(json).toMatchObject({ code: 1, stderr: '' });
      expect(JSON.parse(json.stdout)).toMatchObject({ error: { code: 'INVALID_ARGUMENT' } });
    } finally {
      taken.close();
    }
  });

  it('on a data folder another relay holds: INVALID_ARGUMENT, exit 1, saying so', {
    timeout: 60_000,
  }, async () => {
    const data = join(root, 'd-held');
    started.push(await startRelayProcess(data));
    const port = String(await freePort());
    const said = await human('x', ['relay', '--port', port, '--data', data]);
    // Before: the relay's own line ("the data folder … is in use by another relay…"), exit 2.
    expect(said).toMatchObject({ code: 1, stdout: '' });
    expect(said.stderr).toMatch(
      /^error INVALID_ARGUMENT: the relay did not start: the data folder .*d-held is in use by another relay: stop it first.*\n$/,
    );
    const json = await human('x', ['--json', 'relay', '--port', port, '--data', data]);
    expect(json).toMatchObject({ code: 1, stderr: '' });
    expect(JSON.parse(json.stdout)).toEqual({
      error: { code: 'INVALID_ARGUMENT', message: expect.stringContaining('in use by another relay') },
    });
  });

  it('with a bad setting: INVALID_ARGUMENT, with the relay’s reason', { timeout: 60_000 }, async () => {
    const port = String(await freePort());
    const said = await human('x', [
      'relay',
      '--port',
      port,
      '--data',
      join(root, 'd-bad'),
      '--store',
      'bogus://x',
    ]);
    expect(said).toMatchObject({ code: 1, stdout: '' });
    expect(said.stderr).toMatch(/^error INVALID_ARGUMENT: the relay did not start: config store: .*\n$/);
  });

  it('the demo, whose relay cannot start, says so in the same form', { timeout: 60_000 }, async () => {
    const said = await human('x', ['demo'], { BACKCHANNEL_STORE: 'bogus://x' });
    // Before: `error INTERNAL: unexpected error: relay exited with code 2: …`, exit 2.
    expect(said.code).toBe(1);
    expect(said.stderr).toMatch(/^error INVALID_ARGUMENT: the relay did not start: config store: .*\n$/);
  });
});

describe('backchannel relay that starts', () => {
  it('runs until stopped, and exits 0', { timeout: 60_000 }, async () => {
    const port = await freePort();
    const child: ChildProcess = spawn(
      process.execPath,
      [BIN, 'relay', '--port', String(port), '--data', join(root, 'd-ok')],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const ready = await readyWithin(`http://127.0.0.1:${port}`, 20_000, child);
    expect(ready, stderr).toBe(true);
    child.kill('SIGTERM');
    expect(await exit).toBe(0);
    expect(stderr).toBe('');
  });

  it('takes the relay’s own settings: --config, --log-level, HOST from the environment', {
    timeout: 60_000,
  }, async () => {
    const port = await freePort();
    const config = join(root, 'relay-config.json');
    writeFileSync(config, JSON.stringify({ relayName: 'from-config.example' }));
    const child: ChildProcess = spawn(
      process.execPath,
      [
        BIN,
        'relay',
        '--port',
        String(port),
        '--data',
        join(root, 'd-cfg'),
        '--config',
        config,
        '--log-level',
        'warn',
      ],
      // 127.0.0.2 is loopback too: the relay listens there only if HOST reached it.
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, HOST: '127.0.0.2' } },
    );
    let output = '';
    for (const s of [child.stdout, child.stderr]) s?.on('data', (d: Buffer) => (output += d.toString()));
    const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const ready = await readyWithin(`http://127.0.0.2:${port}`, 20_000, child);
    expect(ready, output).toBe(true);
    const about = (await (await fetch(`http://127.0.0.2:${port}/v1/relay`)).json()) as { name: string };
    expect(about.name).toBe('from-config.example');
    child.kill('SIGTERM');
    expect(await exit).toBe(0);
    // At warn, not one line: neither "listening" nor "stopped" (info).
    expect(output).toBe('');
  });

  it('started with npx, stops when npx is sent SIGTERM (npm’s shell does not pass it on)', {
    timeout: 60_000,
  }, async () => {
    const port = await freePort();
    const npx = spawn(
      'npx',
      ['backchannel', 'relay', '--port', String(port), '--data', join(root, 'd-npx')],
      {
        cwd: join(import.meta.dirname, '..', '..', '..'),
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    );
    let logged = '';
    npx.stdout?.on('data', (d: Buffer) => {
      logged += d.toString();
    });
    const readyz = () =>
      fetch(`http://127.0.0.1:${port}/readyz`).then(
        (r) => r.ok,
        () => false,
      );
    expect(await readyWithin(`http://127.0.0.1:${port}`, 30_000)).toBe(true);
    npx.kill('SIGTERM');
    let up = true;
    for (let i = 0; i < 100 && up; i++) {
      await new Promise((r) => setTimeout(r, 100));
      up = await readyz();
    }
    expect(up).toBe(false);
    // Stopped as on SIGTERM, once: it finished its drain (a second signal cuts it short).
    await new Promise((r) => setTimeout(r, 500));
    expect(logged).toContain('"msg":"relay stopped"');
  });

  it('Ctrl-C (SIGINT to the whole process group) stops the relay once, cleanly, exit 0', {
    timeout: 60_000,
  }, async () => {
    const port = await freePort();
    const child = spawn(
      process.execPath,
      [BIN, 'relay', '--port', String(port), '--data', join(root, 'd-int')],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true, // a process group of its own, as a terminal's foreground job
      },
    );
    let logged = '';
    for (const s of [child.stdout, child.stderr]) s?.on('data', (d: Buffer) => (logged += d.toString()));
    const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const ready = await readyWithin(`http://127.0.0.1:${port}`, 20_000, child);
    expect(ready, logged).toBe(true);
    // A WebSocket client that never answers the close frame: the relay's drain then takes a while,
    // long enough for a second signal to cut it short.
    const socket = tcpConnect({ host: '127.0.0.1', port });
    socket.on('error', () => {});
    await new Promise((r) => socket.once('connect', r));
    socket.write(
      'GET /v1/ws HTTP/1.1\r\nHost: relay\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    await new Promise((r) => socket.once('data', r));
    socket.pause();
    process.kill(-(child.pid as number), 'SIGINT');
    const code = await exit;
    socket.destroy();
    expect(code, logged).toBe(0);
    expect(logged).toContain('"msg":"relay stopped"');
  });

  it('passes every --previous-checkpoint-key on, not only the last', { timeout: 60_000 }, async () => {
    const r = await human('x', [
      'relay',
      '--port',
      '0',
      '--data',
      join(root, 'd-prev'),
      '--previous-checkpoint-key',
      join(root, 'no-key-A'),
      '--previous-checkpoint-key',
      join(root, 'no-key-B'),
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('no-key-A: no such checkpoint key file');
  });
});

describe('backchannel relay-backup and relay-restore', () => {
  it('back up a running relay, restore into a new folder, and refuse what they must', {
    timeout: 120_000,
  }, async () => {
    const data = join(root, 'd-backup');
    const relay = await startRelayProcess(data);
    started.push(relay);
    const out = join(root, 'backup-1');
    const made = await human('x', ['--json', 'relay-backup', '--data', data, '--out', out]);
    expect(made).toMatchObject({ code: 0, stderr: '' });
    const manifest = JSON.parse(made.stdout);
    expect(manifest).toMatchObject({ out, format: 'backchannel-relay-backup/1', channels: 0, entries: 0 });
    expect(typeof manifest.createdAt).toBe('number');

    // The terminal form, and a target that exists: INVALID_ARGUMENT, exit 1.
    const again = await human('x', ['relay-backup', '--data', data, '--out', out]);
    expect(again).toMatchObject({ code: 1, stdout: '' });
    expect(again.stderr).toMatch(
      /^error INVALID_ARGUMENT: .*backup-1 already exists and is not an empty folder; choose a new one\n$/,
    );
    // Into the running relay's own folder: refused, saying to stop it.
    const busy = await human('x', ['relay-restore', '--from', out, '--data', data]);
    expect(busy).toMatchObject({ code: 1, stdout: '' });
    expect(busy.stderr).toMatch(
      /^error INVALID_ARGUMENT: a relay is running on .*d-backup: stop it before restoring into its folder\n$/,
    );

    // Into a new folder: the relay starts on it and signs with the same key.
    const restoredDir = join(root, 'd-restored');
    const restored = await human('x', ['relay-restore', '--from', out, '--data', restoredDir]);
    expect(restored).toMatchObject({ code: 0, stderr: '' });
    expect(restored.stdout).toMatch(
      /^restored 0 channel\(s\), 0 entries, as of .*; start the relay on it\n$/,
    );
    const second = await startRelayProcess(restoredDir);
    started.push(second);
    const vkey = async (r: RelayProcess) =>
      ((await (await fetch(`${r.url}/v1/relay`)).json()) as { vkey: string }).vkey;
    expect(await vkey(second)).toBe(await vkey(relay));

    // An altered backup: BACKUP_INVALID, exit 2.
    appendFileSync(join(out, 'relay.db'), Buffer.from([0]));
    const bad = await human('x', [
      '--json',
      'relay-restore',
      '--from',
      out,
      '--data',
      join(root, 'd-bad-backup'),
    ]);
    expect(bad).toMatchObject({ code: 2, stderr: '' });
    expect(JSON.parse(bad.stdout)).toEqual({
      error: {
        code: 'BACKUP_INVALID',
        message: 'relay.db in the backup is not the file its manifest names (altered or damaged)',
      },
    });
  });
});
