/** The relay as a real process over real HTTP and WebSocket: the API, the bad-input table, live delivery. */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeEntry, fromBase64url, keyPairFromSeed, toBase64url } from '@backchannel/protocol';
import {
  encodeVerifierKey,
  makeVerifierKey,
  parseNote,
  parseVerifierKey,
  verifyKeyRotation,
  verifyNote,
} from '@backchannel/protocol/transcript';
import { encodeSignerKey } from '../src/relay-key.node.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { badCases, setupBadContext, type BadContext } from './bad-inputs.ts';
import {
  commit,
  envelope,
  makeDevice,
  makeParty,
  newChannel,
  type TestDevice,
  type TestParty,
} from './helpers.ts';
import { type RelayProcess, startRelayProcess, WsClient } from './process.ts';

const MAIN_ENTRY = new URL('../src/main.node.ts', import.meta.url).pathname;

let relay: RelayProcess;
let A: TestParty;
let B: TestParty;
let a: TestDevice;
let b: TestDevice;
let b2: TestDevice;

beforeAll(async () => {
  relay = await startRelayProcess();
  A = makeParty('A');
  B = makeParty('B');
  a = makeDevice(A, 'a', 'admin');
  b = makeDevice(B, 'b', 'principal');
  b2 = makeDevice(B, 'b2', 'staff');
  await relay.caller.publishParty(A, [a]);
  await relay.caller.publishParty(B, [b, b2]);
});
afterAll(async () => {
  expect(await relay.stop()).toBe(0);
  await relay.cleanup();
});

describe('relay process: HTTP', () => {
  it('creates its checkpoint key 0600 in the data dir and serves the verifier key', async () => {
    expect(statSync(join(relay.dataDir, 'checkpoint-key')).mode & 0o777).toBe(0o600);
    const info = await relay.caller.get('/v1/relay');
    expect(parseVerifierKey(info.body.vkey as string).ok).toBe(true);
  });

  it('walks the API: cards, devices, key packages, a channel, entries, proofs', async () => {
    await relay.caller.post('/v1/key-packages', b, { keyPackages: [toBase64url(Uint8Array.of(1, 2, 3))] });
    const claimed = await relay.caller.post('/v1/key-packages/claim', a, { party: B.party });
    expect((claimed.body.keyPackages as unknown[]).length).toBe(1);
    const ch = newChannel();
    expect((await relay.caller.append(a, commit(a, ch, 0, [b], [], [B.party]))).status).toBe(201);
    const m = await relay.caller.append(b, envelope(b, ch));
    expect(m.body.seq).toBe(1);
    const page = await relay.caller.get(`/v1/channels/${ch}/entries?from=0`, a);
    expect((page.body.entries as unknown[]).length).toBe(2);
    const vkey = parseVerifierKey((await relay.caller.get('/v1/relay')).body.vkey as string);
    const note = parseNote(page.body.checkpoint as string);
    expect(vkey.ok && note.ok && verifyNote(note.value, [vkey.value]).ok).toBe(true);
    expect((await relay.caller.get(`/v1/channels/${ch}/proof/inclusion?index=0&size=2`, b)).status).toBe(200);
    expect((await relay.caller.get('/v1/inbox', b2)).body.items).toHaveLength(1);
  });
});

/** Writes raw bytes on a new TCP connection and returns everything the relay answers until it closes. */
async function rawHttp(url: string, bytes: string, closeAfterMs?: number): Promise<string> {
  const { port } = new URL(url);
  const s = tcpConnect(Number(port), '127.0.0.1');
  let got = '';
  s.on('data', (d: Buffer) => {
    got += d.toString('latin1');
  });
  await new Promise<void>((resolve, reject) => {
    s.once('connect', () => resolve());
    s.once('error', reject);
  });
  s.write(bytes);
  if (closeAfterMs !== undefined) {
    await new Promise((r) => setTimeout(r, closeAfterMs));
    s.destroy();
    return got;
  }
  await new Promise<void>((resolve) => {
    s.once('close', () => resolve());
    s.once('error', () => resolve());
  });
  return got;
}

/** The status line and JSON body of a raw HTTP answer. */
function parseRaw(answer: string): { status: number; type: string; body: unknown } {
  const [head = '', body = ''] = answer.split('\r\n\r\n');
  const status = Number(head.split(' ')[1]);
  const type = /\r\ncontent-type: ([^\r]+)/i.exec(head)?.[1] ?? '';
  return { status, type, body: body === '' ? undefined : JSON.parse(body) };
}

describe('relay process: HTTP the parser refuses', () => {
  it('answers a malformed request line and oversize headers in JSON, with their codes', async () => {
    const bad = parseRaw(
      await rawHttp(relay.url, 'GET /v1/relay HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n'),
    );
    expect(bad).toEqual({
      status: 400,
      type: 'application/json',
      body: { error: { code: 'REQUEST_INVALID', message: 'malformed HTTP request' } },
    });
    const big = parseRaw(
      await rawHttp(relay.url, `GET /v1/relay HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`),
    );
    expect(big.status).toBe(431);
    expect(big.body).toEqual({
      error: { code: 'HEADERS_TOO_LARGE', message: 'the request line and headers exceed 16 KiB' },
    });
  });

  it('counts a body the client abandoned as its fault (400), not the relay’s (500)', async () => {
    const metric = async (status: number) => {
      const text = await (await fetch(`${relay.url}/metrics`)).text();
      const line = text
        .split('\n')
        .find(
          (l) =>
            l.startsWith('bc_http_requests_total{') &&
            l.includes('method="PUT"') &&
            l.includes(`status="${status}"`),
        );
      return line === undefined ? 0 : Number(line.split(' ').at(-1));
    };
    const before500 = await metric(500);
    const before400 = await metric(400);
    await rawHttp(
      relay.url,
      'PUT /v1/cards HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"card":',
      200,
    );
    // The relay saw the body end early: one more 400, no 500.
    for (let i = 0; i < 50 && (await metric(400)) === before400; i++)
      await new Promise((r) => setTimeout(r, 50));
    expect(await metric(400)).toBe(before400 + 1);
    expect(await metric(500)).toBe(before500);
    expect((await fetch(`${relay.url}/readyz`)).ok).toBe(true);
  });
});

describe('relay process: bad inputs', () => {
  let ctx: BadContext;
  beforeAll(async () => {
    ctx = await setupBadContext(relay.caller);
  });
  it.each(badCases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const res = await c.run(ctx);
    expect(res.body, JSON.stringify(res.body)).toEqual({
      error: { code: c.code, message: expect.any(String) },
    });
    expect(res.status).toBe(c.status);
  });
});

describe('relay process: WebSocket', () => {
  it('refuses frames before auth, a bad signature, bad frames and non-members', async () => {
    const ws = await WsClient.open(relay.url);
    ws.send({ type: 'subscribe', channel: newChannel(), from: 0 });
    expect((await ws.waitFor((f) => f.type === 'error')).code).toBe('AUTH_MISSING');
    ws.send('not json');
    expect((await ws.waitFor((f) => f.type === 'error' && f.code === 'FRAME_INVALID')).code).toBe(
      'FRAME_INVALID',
    );
    ws.send({
      type: 'auth',
      device: a.device,
      time: Date.now(),
      sig: toBase64url(new Uint8Array(64)),
    });
    expect((await ws.waitFor((f) => f.type === 'error' && f.code === 'AUTH_INVALID')).code).toBe(
      'AUTH_INVALID',
    );
    await expect(ws.waitFor(() => false, 5_000)).rejects.toThrow(/closed \(4401\)/);

    const ch = newChannel();
    await relay.caller.append(a, commit(a, ch, 0, [b]));
    const other = await WsClient.connect(relay.url, b2);
    const refused = await other.subscribe(ch, 0);
    expect(refused).toMatchObject({ type: 'error', code: 'NOT_A_MEMBER', channel: ch });
    other.close();
  });

  it('streams catch-up then live entries with checkpoints, and resumes after a disconnect with no gap and no duplicate', async () => {
    const ch = newChannel();
    await relay.caller.append(a, commit(a, ch, 0, [b]));
    for (let i = 0; i < 10; i++) await relay.caller.append(a, envelope(a, ch));
    const ws = await WsClient.connect(relay.url, b);
    expect((await ws.subscribe(ch, 0)).type).toBe('subscribed');
    await ws.waitForEntries(ch, 11);
    // Live while writing concurrently.
    await Promise.all(Array.from({ length: 30 }, () => relay.caller.append(a, envelope(a, ch))));
    const seen = await ws.waitForEntries(ch, 41);
    expect(seen).toEqual(Array.from({ length: 41 }, (_, i) => i));
    const cp = await ws.waitFor((f) => f.type === 'checkpoint' && f.size === 41);
    expect(parseNote(cp.checkpoint as string).ok).toBe(true);
    const frame = ws.frames.find((f) => f.type === 'entry' && f.seq === 40);
    const d = decodeEntry(fromBase64url(frame?.entry as string));
    expect(d.ok && d.value.entry.seq === 40).toBe(true);
    ws.close();

    // Offline: more entries are written; then resume from the next seq.
    const writing = Promise.all(Array.from({ length: 25 }, () => relay.caller.append(a, envelope(a, ch))));
    const back = await WsClient.connect(relay.url, b);
    await back.subscribe(ch, 41);
    await writing;
    await Promise.all(Array.from({ length: 15 }, () => relay.caller.append(a, envelope(a, ch))));
    const resumed = await back.waitForEntries(ch, 40);
    expect(resumed).toEqual(Array.from({ length: 40 }, (_, i) => 41 + i));
    await new Promise((r) => setTimeout(r, 200));
    expect(back.entries(ch)).toHaveLength(40);
    back.close();
  });

  it('appends envelopes sent over the socket and acknowledges each by its id', async () => {
    const ch = newChannel();
    const ws = await WsClient.connect(relay.url, a);
    ws.send({ type: 'send', id: 'c0', envelope: toBase64url(commit(a, ch, 0, [b]).wire) });
    const c0 = await ws.waitFor(
      (f) => (f.type === 'ack' || f.type === 'error') && (f as { id?: string }).id === 'c0',
    );
    expect(c0).toMatchObject({ type: 'ack', seq: 0, size: 1, duplicate: false });
    const sends = Array.from({ length: 20 }, (_, i) => {
      const env = envelope(a, ch);
      ws.send({ type: 'send', id: i, envelope: toBase64url(env.wire) });
      return env;
    });
    const acks = await Promise.all(
      sends.map((_, i) => ws.waitFor((f) => f.type === 'ack' && (f as { id?: number }).id === i)),
    );
    expect(acks.map((x) => x.seq).sort((p, q) => (p as number) - (q as number))).toEqual(
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
    ws.send({ type: 'send', id: 'x', envelope: toBase64url(envelope(b, ch).wire) });
    expect(await ws.waitFor((f) => (f as { id?: string }).id === 'x')).toMatchObject({
      type: 'error',
      code: 'SENDER_MISMATCH',
    });
    ws.send({ type: 'send', id: 'y', envelope: '!!' });
    expect(await ws.waitFor((f) => (f as { id?: string }).id === 'y')).toMatchObject({
      type: 'error',
      code: 'DECODE_MALFORMED',
    });
    ws.close();
  });

  it('takes binary send frames on the real socket and answers binary acks', async () => {
    const ch = newChannel();
    await relay.caller.append(a, commit(a, ch, 0, [b]));
    const ws = await WsClient.connect(relay.url, a);
    const frame = (id: number, wire: Uint8Array) => {
      const f = new Uint8Array(5 + wire.length);
      f[0] = 0x01;
      new DataView(f.buffer).setUint32(1, id);
      f.set(wire, 5);
      return f;
    };
    for (let i = 0; i < 10; i++) ws.send(frame(i, envelope(a, ch).wire));
    ws.send(frame(77, envelope(b, ch).wire));
    expect(await ws.waitFor((f) => f.type === 'error')).toMatchObject({ id: 77, code: 'SENDER_MISMATCH' });
    for (let i = 0; i < 10; i++) await ws.waitFor((f) => f.type === 'binary' && f.bytes?.[4] === i);
    const acks = ws.frames.filter((f) => f.type === 'binary').map((f) => f.bytes as Uint8Array);
    const seqs = acks.map((x) => new DataView(x.buffer, x.byteOffset).getUint32(10));
    expect(acks.every((x) => x[0] === 0x02)).toBe(true);
    expect(seqs.sort((p, q) => p - q)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
    ws.close();
  });

  it('pushes inbox items to the connected devices of the addressed party', async () => {
    const ws = await WsClient.connect(relay.url, b2);
    const ch = newChannel();
    await relay.caller.append(a, commit(a, ch, 0, [b], [], [B.party]));
    const item = await ws.waitFor((f) => f.type === 'inbox' && f.item?.channel === ch);
    expect(item.item).toMatchObject({ channel: ch, seq: 0 });
    ws.close();
  });

  it('ends the subscription of a device removed from the channel after its removal entry', async () => {
    const ch = newChannel();
    await relay.caller.append(b, commit(b, ch, 0, [b2, a]));
    const ws = await WsClient.connect(relay.url, b2);
    await ws.subscribe(ch, 0);
    await ws.waitForEntries(ch, 1);
    await relay.caller.append(b, commit(b, ch, 1, [], [b2]));
    const end = await ws.waitFor((f) => f.type === 'unsubscribed' && f.channel === ch);
    expect(end.code).toBe('NOT_A_MEMBER');
    await relay.caller.append(a, envelope(a, ch, { epoch: 2 }));
    await new Promise((r) => setTimeout(r, 200));
    expect(ws.entries(ch)).toEqual([0, 1]);
    ws.close();
  });
});

describe('relay process: start-up failures', () => {
  it('says the port is taken, and how to choose another, instead of a bare EADDRINUSE', async () => {
    const port = new URL(relay.url).port;
    const dataDir = mkdtempSync(join(tmpdir(), 'bc-relay-second-'));
    const second = spawn(process.execPath, ['--import', 'tsx', MAIN_ENTRY], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, PORT: port, HOST: '127.0.0.1', BACKCHANNEL_DATA: dataDir, LOG_LEVEL: 'error' },
    });
    let stderr = '';
    second.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const code = await new Promise<number | null>((r) => second.once('exit', r));
    rmSync(dataDir, { recursive: true, force: true });
    expect(code).toBe(1);
    expect(stderr).toContain(`127.0.0.1:${port} is already in use`);
    expect(stderr).toContain('--port');
    expect(stderr).not.toMatch(/\n\s+at /);
    // The first relay is untouched.
    expect((await fetch(`${relay.url}/readyz`)).ok).toBe(true);
  });

  it('refuses to start on a data folder another relay is using, and says so', async () => {
    const second = spawn(process.execPath, ['--import', 'tsx', MAIN_ENTRY], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: {
        ...process.env,
        PORT: '0',
        HOST: '127.0.0.1',
        BACKCHANNEL_DATA: relay.dataDir,
        LOG_LEVEL: 'error',
      },
    });
    let stderr = '';
    second.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    expect(await new Promise<number | null>((r) => second.once('exit', r))).toBe(2);
    expect(stderr).toContain(`the data folder ${relay.dataDir} is in use by another relay`);
    expect(stderr).not.toMatch(/\n\s+at /);
    expect((await fetch(`${relay.url}/readyz`)).ok).toBe(true);
  });
});

describe('relay process: checkpoint key rotation', () => {
  it('started with its previous key too, serves a rotation statement signed by both; a missing previous key file stops it at start', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bc-relay-rotation-'));
    const oldSeed = new Uint8Array(randomBytes(32));
    const oldFile = join(dir, 'old-key');
    writeFileSync(oldFile, `${encodeSignerKey('any-name', oldSeed)}\n`, { mode: 0o600 });
    const rotated = await startRelayProcess({
      BACKCHANNEL_CHECKPOINT_KEY_FILE: join(dir, 'new-key'),
      BACKCHANNEL_PREVIOUS_CHECKPOINT_KEY_FILE: oldFile,
    });
    try {
      const info = (await rotated.caller.get('/v1/relay')).body as {
        name: string;
        vkey: string;
        rotation?: string;
      };
      const pinned = makeVerifierKey(info.name, keyPairFromSeed(oldSeed).publicKey);
      const moved = verifyKeyRotation(info.rotation ?? '', pinned);
      expect(moved.ok && encodeVerifierKey(moved.value)).toBe(info.vkey);
      // The relay without a rotation serves none.
      expect((await relay.caller.get('/v1/relay')).body.rotation).toBeUndefined();
    } finally {
      expect(await rotated.stop()).toBe(0);
      await rotated.cleanup();
    }
    const missing = spawn(process.execPath, ['--import', 'tsx', MAIN_ENTRY], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: {
        ...process.env,
        PORT: '0',
        HOST: '127.0.0.1',
        BACKCHANNEL_DATA: dir,
        BACKCHANNEL_PREVIOUS_CHECKPOINT_KEY_FILE: join(dir, 'no-such-key'),
        LOG_LEVEL: 'error',
      },
    });
    let stderr = '';
    missing.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const code = await new Promise<number | null>((r) => missing.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
    expect(code).toBe(2);
    expect(stderr).toContain('no-such-key: no such checkpoint key file');
    expect(stderr).not.toMatch(/\n\s+at /);
  });
});

describe('relay process: shutdown', () => {
  it('exits promptly on SIGTERM while a WebSocket client never answers the close frame', async () => {
    const own = await startRelayProcess();
    try {
      // A client gone without a reset (or one that stopped reading): it upgraded, and from then
      // on neither reads nor answers. ws would wait 30 s for its close frame before letting go.
      const socket = tcpConnect({ host: '127.0.0.1', port: Number(new URL(own.url).port) });
      socket.on('error', () => {});
      await new Promise((r) => socket.once('connect', r));
      socket.write(
        'GET /v1/ws HTTP/1.1\r\nHost: relay\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
      );
      const head = await new Promise<string>((r) => socket.once('data', (d: Buffer) => r(d.toString())));
      expect(head).toMatch(/^HTTP\/1\.1 101/);
      socket.pause();
      const exited = own.stop();
      const outcome = await Promise.race([
        exited,
        new Promise((r) => setTimeout(() => r('still running after 15 s'), 15_000)),
      ]);
      socket.destroy();
      expect(outcome).toBe(0);
    } finally {
      await own.cleanup();
    }
  }, 60_000);
});
