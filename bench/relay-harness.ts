/**
 * Bench harness for the relay: spawn a relay process on a fresh data dir, read its RSS and CPU
 * from /proc, set up parties and devices, post envelopes over keep-alive HTTP, receive over
 * WebSocket. Used by bench/relay-w1.ts (and the relay crash test's ideas, not its code).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { openSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type ChannelId,
  channelIdFrom,
  type DeviceId,
  decodeEntry,
  encodeContactCard,
  encodeDeviceCertificate,
  EVENT_ID_RUN_LENGTH,
  eventIdInRun,
  issueDeviceCertificate,
  type KeyPair,
  keyPairFromSeed,
  proveDeviceKey,
  makeContactCard,
  type PartyId,
  partyIdFromKey,
  type Role,
  requestHeaders,
  type SignedEnvelope,
  signEnvelope,
  signRequest,
  toBase64url,
  verifyEnvelope,
} from '@backchannel/protocol';
import WebSocket from 'ws';
import { CorkedWebSocket } from '../packages/client/src/sdk/websocket.node.ts';
import { nodeEd25519 } from '../packages/server/src/ed25519.node.ts';

/**
 * The load's Ed25519 (sign requests, B's verification of every envelope): the relay's own suite,
 * libsodium where it loads (about 2× OpenSSL's speed here), so the load takes less of the two
 * cores it shares with the relay.
 */
export const suite = nodeEd25519();

/** Milliseconds on the host clock: comparable between the load's threads (performance.now() is per thread). */
export const hostNow = (): number => performance.timeOrigin + performance.now();

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

export interface SpawnedRelay {
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  readonly dataDir: string;
  readonly child: ChildProcess;
  /** Peak resident set (VmHWM) in MB. */
  rssMb(): number;
  /** User + system CPU seconds so far. */
  cpuSeconds(): number;
  /** CPU seconds so far per thread: `main`, the others as `+<tid - pid>` (creation order). */
  threadCpu(): Record<string, number>;
  stop(): Promise<void>;
}

const CLK_TCK = 100;

/** Busy CPU seconds of the whole machine so far (every process: relays, PostgreSQL, NATS, load, others). */
export function machineBusySeconds(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] as string;
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  const busy = (f[0] ?? 0) + (f[1] ?? 0) + (f[2] ?? 0) + (f[5] ?? 0) + (f[6] ?? 0) + (f[7] ?? 0);
  return busy / CLK_TCK;
}

/** Relay processes this bench started and that still run: killed when the bench ends, however. */
const running = new Set<ChildProcess>();
const reapAll = () => {
  for (const c of running) c.kill('SIGKILL');
};
process.once('exit', reapAll);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    reapAll();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  });
}

let relayEntry: string[] = ['--import', 'tsx', 'packages/server/src/main.node.ts'];

/** Runs the relays from a built bundle (scripts/build-relay.mjs) instead of the sources under tsx. */
export function useRelayBundle(file: string): void {
  relayEntry = [file];
}

export async function spawnRelay(
  config: Record<string, unknown> = {},
  env: Record<string, string> = {},
): Promise<SpawnedRelay> {
  const dataDir = mkdtempSync(join(tmpdir(), 'bc-bench-relay-'));
  const port = await freePort();
  const cfgPath = join(dataDir, 'bench-config.json');
  writeFileSync(cfgPath, JSON.stringify(config));
  const prof =
    process.env.BENCH_RELAY_PROF === undefined
      ? []
      : ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_RELAY_PROF}`];
  // BENCH_RELAY_NODE_ARGS: extra node flags for the relay process (e.g. V8 heap sizing), space-separated.
  const extra = (process.env.BENCH_RELAY_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
  const stdout = process.env.BENCH_RELAY_STDOUT;
  const child = spawn(process.execPath, [...prof, ...extra, ...relayEntry], {
    // BENCH_RELAY_STDOUT=FILE: the relay's stdout there (V8's --trace-opt and the like print to it).
    stdio: ['ignore', stdout === undefined ? 'ignore' : openSync(stdout, 'w'), 'pipe'],
    env: {
      ...process.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      BACKCHANNEL_DATA: join(dataDir, 'data'),
      BACKCHANNEL_CONFIG: cfgPath,
      LOG_LEVEL: 'warn',
      ...env,
    },
  });
  // A bench that dies (an uncaught error, Ctrl-C, `timeout`) takes its relay with it.
  running.add(child);
  child.once('exit', () => running.delete(child));
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
    if (process.env.BENCH_RELAY_STDERR !== undefined) process.stderr.write(d);
  });
  const url = `http://127.0.0.1:${port}`;
  const until = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`relay exited: ${stderr}`);
    try {
      if ((await fetch(`${url}/readyz`)).ok) break;
    } catch {
      // not up yet
    }
    if (Date.now() > until) throw new Error('relay did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
  const pid = child.pid as number;
  return {
    url,
    port,
    pid,
    dataDir,
    child,
    rssMb: () => {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      return m === null ? Number.NaN : Number(m[1]) / 1024;
    },
    threadCpu: () => {
      const out: Record<string, number> = {};
      for (const t of readdirSync(`/proc/${pid}/task`)) {
        try {
          const stat = readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8');
          const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
          out[t === String(pid) ? 'main' : `+${Number(t) - pid}`] = (Number(f[11]) + Number(f[12])) / CLK_TCK;
        } catch {
          // the thread ended
        }
      }
      return out;
    },
    cpuSeconds: () => {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return (Number(f[11]) + Number(f[12])) / CLK_TCK;
    },
    async stop() {
      // BENCH_RELAY_METRICS: print the relay's group-commit histograms (batch size, commit time).
      if (process.env.BENCH_RELAY_METRICS !== undefined && child.exitCode === null) {
        const text = await (await fetch(`${url}/metrics`)).text();
        const lines = text
          .split('\n')
          .filter((l) => /^bc_append_(batch_size|commit_seconds)_(sum|count)/.test(l));
        process.stderr.write(`${lines.join('\n')}\n`);
      }
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface Party {
  readonly root: KeyPair;
  readonly party: PartyId;
}
export interface Device {
  readonly kp: KeyPair;
  readonly device: DeviceId;
  readonly certificate: Uint8Array;
}

const seed = () => new Uint8Array(randomBytes(32));

export function party(): Party {
  const root = keyPairFromSeed(seed());
  return { root, party: partyIdFromKey(root.publicKey) };
}

export function device(p: Party, name: string, role: Role): Device {
  const kp = keyPairFromSeed(seed());
  const now = Date.now();
  const cert = issueDeviceCertificate({
    rootSecretKey: p.root.secretKey,
    rootPublicKey: p.root.publicKey,
    devicePublicKey: kp.publicKey,
    name,
    role,
    notBefore: now - 3_600_000,
    notAfter: now + 86_400_000,
  });
  return { kp, device: cert.body.device, certificate: encodeDeviceCertificate(cert) };
}

/** The name of the relay at `url` (GET /v1/relay), which WebSocket auth frames are signed for. */
export async function relayNameAt(url: string): Promise<string> {
  const r = await fetch(`${url}/v1/relay`);
  if (!r.ok) throw new Error(`GET /v1/relay: ${r.status}`);
  return ((await r.json()) as { name: string }).name;
}

/** Keep-alive HTTP client with a fixed pool (one socket per in-flight request). */
export class HttpClient {
  readonly #agent: Agent;
  readonly #host: string;
  readonly #port: number;
  /** The relay's name (GET /v1/relay): request signatures name it (PROTOCOL.md §11). */
  #relayName: Promise<string> | undefined;

  constructor(url: string, sockets: number) {
    const u = new URL(url);
    this.#host = u.hostname;
    this.#port = Number(u.port);
    this.#agent = new Agent({ keepAlive: true, maxSockets: sockets });
  }

  send(
    method: string,
    path: string,
    body: Uint8Array | undefined,
    headers: Record<string, string>,
  ): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: this.#host,
          port: this.#port,
          method,
          path,
          agent: this.#agent,
          headers: { ...headers, ...(body === undefined ? {} : { 'content-length': String(body.length) }) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }),
          );
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body === undefined ? undefined : Buffer.from(body.buffer, body.byteOffset, body.byteLength));
    });
  }

  /** The relay's name, fetched once. */
  relayName(): Promise<string> {
    this.#relayName ??= this.send('GET', '/v1/relay', undefined, {}).then((r) => {
      if (r.status !== 200) throw new Error(`GET /v1/relay: ${r.status} ${r.text}`);
      return (JSON.parse(r.text) as { name: string }).name;
    });
    return this.#relayName;
  }

  async json(method: string, path: string, body: unknown, as?: Device): Promise<unknown> {
    const bytes = body === undefined ? new Uint8Array(0) : new TextEncoder().encode(JSON.stringify(body));
    const headers: Record<string, string> = body === undefined ? {} : { 'content-type': 'application/json' };
    if (as !== undefined)
      Object.assign(
        headers,
        requestHeaders(
          as.device,
          as.kp.secretKey,
          method,
          path,
          Date.now(),
          bytes,
          await this.relayName(),
          suite,
        ),
      );
    const r = await this.send(method, path, body === undefined ? undefined : bytes, headers);
    if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${r.text}`);
    return JSON.parse(r.text);
  }

  close(): void {
    this.#agent.destroy();
  }
}

export async function publish(http: HttpClient, p: Party, devices: readonly Device[]): Promise<void> {
  const card = makeContactCard({
    rootSecretKey: p.root.secretKey,
    rootPublicKey: p.root.publicKey,
    displayName: 'bench',
    relays: [],
    devices: [],
    issuedAt: Date.now(),
  });
  await http.json('PUT', '/v1/cards', { card: toBase64url(encodeContactCard(card)) });
  for (const d of devices)
    await http.json('POST', '/v1/devices', {
      certificate: toBase64url(d.certificate),
      proof: toBase64url(proveDeviceKey(d.kp.secretKey, d.certificate)),
    });
}

export function newChannel(): ChannelId {
  return channelIdFrom(randomBytes(16));
}

/** Each sender's msgId run per channel (as the SDK makes them: a random run per 64 ids). */
const msgIdRuns = new Map<string, { run: Uint8Array; left: number }>();

function nextMsgId(sender: Device, channel: ChannelId) {
  const key = `${sender.device} ${channel}`;
  let r = msgIdRuns.get(key);
  if (r === undefined || r.left === 0) {
    r = { run: randomBytes(4), left: EVENT_ID_RUN_LENGTH };
    msgIdRuns.set(key, r);
  }
  r.left--;
  return eventIdInRun(r.run, randomBytes(12));
}

export function envelopeFrom(
  sender: Device,
  channel: ChannelId,
  kind: 'application' | 'commit',
  epoch: number,
  mlsBytes: number,
  members?: { add: DeviceId[]; remove: DeviceId[] },
): SignedEnvelope {
  return signEnvelope(
    {
      v: 1,
      channel,
      sender: sender.device,
      msgId: nextMsgId(sender, channel),
      epoch,
      kind,
      mls: randomBytes(mlsBytes),
      ...(kind === 'application' ? { commitment: randomBytes(32) } : {}),
      sentAt: Date.now(),
      ...(members === undefined ? {} : { members }),
    },
    sender.kp.secretKey,
    suite,
  );
}

/** Posts one envelope as the SDK does (JSON, signed request) or unsigned (the envelope authenticates). */
export async function postEnvelope(
  http: HttpClient,
  as: Device,
  env: SignedEnvelope,
  signed: boolean,
): Promise<{ status: number; text: string }> {
  const path = `/v1/channels/${env.body.channel}/envelopes`;
  const bytes = Buffer.from(`{"envelope":"${Buffer.from(env.wire).toString('base64url')}"}`);
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (signed)
    Object.assign(
      headers,
      requestHeaders(
        as.device,
        as.kp.secretKey,
        'POST',
        path,
        Date.now(),
        bytes,
        await http.relayName(),
        suite,
      ),
    );
  return http.send('POST', path, bytes, headers);
}

/**
 * Sends envelopes over an authenticated WebSocket, answers matched by id: binary `send` frames
 * (0x01 | id u32 | envelope bytes, answered by binary acks) or JSON `send` frames (`json`).
 */
export class WsSender {
  readonly #ws: WebSocket;
  readonly #json: boolean;
  readonly #pending = new Map<number, (ok: boolean) => void>();
  #next = 0;

  private constructor(ws: WebSocket, json: boolean) {
    this.#ws = ws;
    this.#json = json;
    ws.on('message', (data: Buffer, isBinary) => {
      if (isBinary) {
        // ack: 0x02 | id u32 | … (the answer; see packages/server/src/ws/frames.ts)
        if (data[0] !== 0x02) return;
        const id = data.readUInt32BE(1);
        const done = this.#pending.get(id);
        this.#pending.delete(id);
        done?.(true);
        return;
      }
      const f = JSON.parse(data.toString()) as { type: string; id?: number };
      if ((f.type === 'ack' || f.type === 'error') && typeof f.id === 'number') {
        const done = this.#pending.get(f.id);
        this.#pending.delete(f.id);
        done?.(f.type === 'ack');
      }
    });
  }

  static async connect(url: string, me: Device, json = false): Promise<WsSender> {
    const relayName = await relayNameAt(url);
    // The device's socket (the SDK's): the frames of one turn leave in one write.
    // BENCH_NO_CORK=1: a plain `ws` socket, one write per frame, to compare.
    const address = `${url.replace('http', 'ws')}/v1/ws`;
    const ws =
      process.env.BENCH_NO_CORK === undefined
        ? new CorkedWebSocket(address)
        : new WebSocket(address, { perMessageDeflate: false });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const ready = new Promise<void>((resolve, reject) => {
      ws.once('message', (d) => {
        const f = JSON.parse(d.toString()) as { type: string };
        if (f.type === 'ready') resolve();
        else reject(new Error(`ws auth: ${d.toString()}`));
      });
    });
    const time = Date.now();
    ws.send(
      JSON.stringify({
        type: 'auth',
        device: me.device,
        time,
        sig: toBase64url(
          signRequest(me.kp.secretKey, 'WS', '/v1/ws', time, new Uint8Array(0), relayName, suite),
        ),
      }),
    );
    await ready;
    return new WsSender(ws, json);
  }

  send(env: SignedEnvelope): Promise<boolean> {
    const id = this.#next++;
    return new Promise((resolve) => {
      this.#pending.set(id, resolve);
      if (this.#json) {
        this.#ws.send(
          `{"type":"send","id":${id},"envelope":"${Buffer.from(env.wire).toString('base64url')}"}`,
        );
        return;
      }
      const f = Buffer.allocUnsafe(5 + env.wire.length);
      f[0] = 0x01;
      f.writeUInt32BE(id, 1);
      f.set(env.wire, 5);
      this.#ws.send(f);
    });
  }

  close(): void {
    this.#ws.close();
  }
}

export interface Received {
  readonly seq: number;
  readonly msgId: string;
  readonly at: number;
}

/**
 * A receiving device on the WebSocket: authenticates, subscribes, verifies every envelope's
 * signature (sender key known), and reports each entry with its receipt time.
 */
export async function receiver(
  url: string,
  me: Device,
  channel: ChannelId,
  from: number,
  senderKeys: ReadonlyMap<string, Uint8Array>,
  onEntry: (r: Received) => void,
  binary = false,
): Promise<{ close(): void; bad: () => number }> {
  const relayName = await relayNameAt(url);
  const ws = new WebSocket(`${url.replace('http', 'ws')}/v1/ws`, { perMessageDeflate: false });
  let bad = 0;
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const take = (entry: Uint8Array) => {
    const d = decodeEntry(entry);
    if (!d.ok) {
      bad++;
      return;
    }
    const env = d.value.envelope;
    const key = senderKeys.get(env.body.sender);
    if (key === undefined || !verifyEnvelope(env, key, suite)) {
      bad++;
      return;
    }
    onEntry({ seq: d.value.entry.seq, msgId: env.body.msgId, at: hostNow() });
  };
  const ready = new Promise<void>((resolve, reject) => {
    ws.on('message', (data: Buffer, isBinary) => {
      if (isBinary) {
        // entry: 0x03 | channel id (24 bytes) | seq u64 | entry bytes (the entry names its seq too)
        if (data[0] === 0x03) take(new Uint8Array(data.buffer, data.byteOffset + 33, data.byteLength - 33));
        return;
      }
      const f = JSON.parse(data.toString()) as { type: string; seq?: number; entry?: string; code?: string };
      if (f.type === 'ready') {
        ws.send(JSON.stringify({ type: 'subscribe', channel, from, ...(binary ? { binary } : {}) }));
      } else if (f.type === 'subscribed') {
        resolve();
      } else if (f.type === 'entry') {
        const raw = Buffer.from(f.entry as string, 'base64url');
        take(new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength));
      } else if (f.type === 'error') {
        reject(new Error(`ws error ${f.code}`));
      }
    });
  });
  const time = Date.now();
  ws.send(
    JSON.stringify({
      type: 'auth',
      device: me.device,
      time,
      sig: toBase64url(
        signRequest(me.kp.secretKey, 'WS', '/v1/ws', time, new Uint8Array(0), relayName, suite),
      ),
    }),
  );
  await ready;
  return { close: () => ws.close(), bad: () => bad };
}

export function sha256hex(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}
