/** A relay as a real child process (`node --import tsx src/main.node.ts`) and a WebSocket test client. */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ChannelId, signRequest, toBase64url } from '@backchannel/protocol';
import WebSocket from 'ws';
import { Caller, makeDevice, makeParty, suite, type TestDevice } from './helpers.ts';

const MAIN = new URL('../src/main.node.ts', import.meta.url).pathname;

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a !== null ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export interface RelayProcess {
  readonly url: string;
  readonly dataDir: string;
  readonly caller: Caller;
  child: ChildProcess;
  /** kill -9, and wait for the exit. */
  crash(): Promise<void>;
  restart(): Promise<void>;
  stop(): Promise<number | null>;
  cleanup(): Promise<void>;
}

async function waitReady(url: string, child: ChildProcess): Promise<void> {
  const until = Date.now() + 30_000;
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`relay exited with ${child.exitCode}`);
    try {
      if ((await fetch(`${url}/readyz`)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('relay did not become ready');
}

export async function startRelayProcess(env: Record<string, string> = {}): Promise<RelayProcess> {
  const dataDir = mkdtempSync(join(tmpdir(), 'bc-relay-proc-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const launch = () =>
    spawn(process.execPath, ['--import', 'tsx', MAIN], {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: {
        ...process.env,
        PORT: String(port),
        HOST: '127.0.0.1',
        BACKCHANNEL_DATA: dataDir,
        LOG_LEVEL: 'error',
        ...env,
      },
    });
  const rp: RelayProcess = {
    url,
    dataDir,
    caller: new Caller((path, init) => fetch(`${url}${path}`, init)),
    child: launch(),
    async crash() {
      if (rp.child.exitCode !== null || rp.child.signalCode !== null) return;
      const exited = new Promise((r) => rp.child.once('exit', r));
      rp.child.kill('SIGKILL');
      await exited;
    },
    async restart() {
      rp.child = launch();
      await waitReady(url, rp.child);
    },
    async stop() {
      if (rp.child.exitCode !== null || rp.child.signalCode !== null) return rp.child.exitCode;
      const exited = new Promise<number | null>((r) => rp.child.once('exit', (code) => r(code)));
      rp.child.kill('SIGTERM');
      return exited;
    },
    async cleanup() {
      await rp.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  await waitReady(url, rp.child);
  return rp;
}

/**
 * A relay process one client writes to as fast as it can (a load generator: the per-device write
 * limit raised), with party A's admin `a` and party B's principal `b` published.
 */
export async function writerRelay(): Promise<{ relay: RelayProcess; a: TestDevice; b: TestDevice }> {
  const dir = mkdtempSync(join(tmpdir(), 'bc-writer-cfg-'));
  const config = join(dir, 'relay.json');
  writeFileSync(config, JSON.stringify({ rateLimits: { writes: { perSecond: 1e6, burst: 1e6 } } }));
  const relay = await startRelayProcess({ BACKCHANNEL_CONFIG: config });
  const A = makeParty('A');
  const B = makeParty('B');
  const a = makeDevice(A, 'a', 'admin');
  const b = makeDevice(B, 'b', 'principal');
  await relay.caller.publishParty(A, [a]);
  await relay.caller.publishParty(B, [b]);
  return { relay, a, b };
}

export interface Frame {
  type: string;
  channel?: string;
  seq?: number;
  entry?: string;
  code?: string;
  checkpoint?: string;
  size?: number;
  item?: { cursor: number; channel: string; seq: number; entry: string };
  /** A binary frame's bytes (type 'binary'). */
  bytes?: Uint8Array;
}

/** A WebSocket client that records every frame and can wait for one. */
export class WsClient {
  readonly frames: Frame[] = [];
  readonly #ws: WebSocket;
  #waiters: Array<() => void> = [];
  closeCode: number | undefined;

  /** The relay's name (GET /v1/relay), which the auth frame is signed for. */
  readonly relayName: string;

  private constructor(ws: WebSocket, relayName: string) {
    this.#ws = ws;
    this.relayName = relayName;
    ws.on('message', (d, isBinary) => {
      this.frames.push(
        isBinary
          ? { type: 'binary', bytes: new Uint8Array(d as Buffer) }
          : (JSON.parse(d.toString()) as Frame),
      );
      this.#wake();
    });
    ws.on('close', (code) => {
      this.closeCode = code;
      this.#wake();
    });
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  static async open(url: string): Promise<WsClient> {
    const relayName = ((await (await fetch(`${url}/v1/relay`)).json()) as { name: string }).name;
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/ws`);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return new WsClient(ws, relayName);
  }

  static async connect(url: string, dev: TestDevice): Promise<WsClient> {
    const c = await WsClient.open(url);
    await c.auth(dev);
    return c;
  }

  send(frame: unknown): void {
    this.#ws.send(typeof frame === 'string' || frame instanceof Uint8Array ? frame : JSON.stringify(frame));
  }

  /** Authenticates as `dev`, signed for `relay` (default: this relay's own name). */
  async auth(dev: TestDevice, time = Date.now(), relay = this.relayName): Promise<Frame> {
    this.send({
      type: 'auth',
      device: dev.device,
      time,
      sig: toBase64url(signRequest(dev.kp.secretKey, 'WS', '/v1/ws', time, new Uint8Array(0), relay, suite)),
    });
    return this.waitFor((f) => f.type === 'ready' || f.type === 'error');
  }

  async subscribe(channel: ChannelId, from: number): Promise<Frame> {
    this.send({ type: 'subscribe', channel, from });
    return this.waitFor((f) => (f.type === 'subscribed' || f.type === 'error') && f.channel === channel);
  }

  entries(channel: ChannelId): number[] {
    return this.frames.filter((f) => f.type === 'entry' && f.channel === channel).map((f) => f.seq as number);
  }

  async waitFor(pred: (f: Frame) => boolean, timeoutMs = 10_000): Promise<Frame> {
    const until = Date.now() + timeoutMs;
    let seen = 0;
    for (;;) {
      for (; seen < this.frames.length; seen++) {
        const f = this.frames[seen] as Frame;
        if (pred(f)) return f;
      }
      if (this.closeCode !== undefined) throw new Error(`socket closed (${this.closeCode})`);
      const left = until - Date.now();
      if (left <= 0) throw new Error('timed out waiting for a frame');
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  async waitForEntries(channel: ChannelId, count: number, timeoutMs = 15_000): Promise<number[]> {
    const until = Date.now() + timeoutMs;
    while (this.entries(channel).length < count) {
      if (Date.now() > until) throw new Error(`got ${this.entries(channel).length} of ${count} entries`);
      await this.waitFor(() => true, Math.max(1, until - Date.now())).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 5));
    }
    return this.entries(channel);
  }

  close(): void {
    this.#ws.close();
  }
}
