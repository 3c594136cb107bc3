/**
 * Workload W1 (bench/W1.md in the shared spec) against the relay: W1-relay, W1-16, W1-offline.
 * The relay runs as a separate process on a fresh data dir (SQLite, WAL, synchronous=FULL);
 * this process is the load (A sends, B receives over WebSocket and verifies every envelope
 * signature). Envelopes are built and signed before the clock starts; their MLS field is random
 * bytes of MLS-ciphertext size (~1 KiB plaintext → 1,130 bytes): the relay never parses MLS.
 *
 *   npm run bench:relay                 # all three, 3 runs each, human table + JSON lines
 *   npm run bench:relay -- --json       # JSON lines only
 *   npm run bench:relay -- --n 4000 --runs 1 --only W1-relay
 *   npm run bench:relay -- --transport http   # A posts over keep-alive HTTP (JSON, base64url envelope)
 *   npm run bench:relay -- --unsigned   # HTTP posts without request signatures (PROTOCOL.md §11)
 *   npm run bench:relay -- --verify-threads 0   # verify signatures inline instead of on a worker
 *   (default --transport ws: A sends binary `send` frames on its authenticated WebSocket, pipelined,
 *    and B subscribes for binary entry frames;
 *    with --nodes > 1 the default stays http, so a load balancer can spread the writes)
 *   npm run bench:relay -- --transport ws-json   # … JSON `send` frames (base64url envelope) instead
 *   npm run bench:relay -- --store postgres --nodes 2   # PostgreSQL (+ NATS between 2 nodes)
 *   npm run bench:relay -- --relay src   # run the relay from its sources under tsx (default: the
 *                                        # bundle `npm run build:relay` makes, built first)
 *
 * With --store postgres each run gets a fresh schema (dropped afterwards) on --pg (default the
 * local test database); with --nodes 2 both nodes share it and the checkpoint key, fan out over
 * --nats, and receivers sit on another node than the channel's first sender. `--route` says how
 * a load balancer spreads the writes: `spray` (default) alternates every sender between the nodes,
 * so one hot channel is written through both and its nodes take turns at its lock; `channel`
 * routes each channel's writes to one node (hashing the channel id in the path, as
 * docs/OPERATIONS.md recommends) — pair i writes to node i mod N, and every delivery crosses NATS.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { ChannelId, SignedEnvelope } from '@backchannel/protocol';
import postgres from 'postgres';
import {
  type Device,
  device,
  envelopeFrom,
  HttpClient,
  machineBusySeconds,
  newChannel,
  party,
  postEnvelope,
  publish,
  type Received,
  hostNow,
  type SpawnedRelay,
  spawnRelay,
  useRelayBundle,
  WsSender,
} from './relay-harness.ts';
import { buildRelay } from '../scripts/build-relay.ts';
import { ReceiverThread } from './receiver-thread.ts';

const { values: args } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    n: { type: 'string', default: '20000' },
    runs: { type: 'string', default: '3' },
    only: { type: 'string' },
    inflight: { type: 'string', default: '64' },
    unsigned: { type: 'boolean', default: false },
    transport: { type: 'string' },
    store: { type: 'string', default: 'sqlite' },
    nodes: { type: 'string', default: '1' },
    route: { type: 'string', default: 'spray' },
    pg: { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/test' },
    nats: { type: 'string', default: 'nats://127.0.0.1:4222' },
    'verify-threads': { type: 'string' },
    relay: { type: 'string', default: 'bundle' },
  },
});
if (args.relay !== 'bundle' && args.relay !== 'src') throw new Error('--relay must be bundle or src');
if (args.relay === 'bundle') useRelayBundle(await buildRelay());

const N = Number(args.n);
const RUNS = Number(args.runs);
const INFLIGHT = Number(args.inflight);
const SIGNED = !args.unsigned;
const TRANSPORT_ARG = args.transport ?? (Number(args.nodes) > 1 ? 'http' : 'ws');
if (TRANSPORT_ARG !== 'ws' && TRANSPORT_ARG !== 'ws-json' && TRANSPORT_ARG !== 'http')
  throw new Error('--transport must be ws, ws-json or http');
const TRANSPORT: 'ws' | 'ws-json' | 'http' = TRANSPORT_ARG;
const STORE = args.store === 'postgres' ? 'postgres' : 'sqlite';
const NODES = Number(args.nodes);
const ROUTE = args.route === 'channel' ? 'channel' : 'spray';
if (args.route !== 'channel' && args.route !== 'spray') throw new Error('--route must be spray or channel');
if (STORE === 'sqlite' && NODES !== 1) throw new Error('--nodes > 1 needs --store postgres');
if (!Number.isInteger(NODES) || NODES < 1 || NODES > 8) throw new Error('--nodes must be 1..8');
const MLS_BYTES = 1130;
/** Rate limits are raised for the load generator (one device sending as fast as it can). */
const RELAY_CONFIG = {
  rateLimits: {
    device: { perSecond: 1e6, burst: 1e6 },
    ip: { perSecond: 1e6, burst: 1e6 },
    unsigned: { perSecond: 1e6, burst: 1e6 },
    writes: { perSecond: 1e6, burst: 1e6 },
  },
  // --verify-threads N: signature verification on N worker threads (0 = inline); default: the relay's.
  ...(args['verify-threads'] === undefined ? {} : { verifyThreads: Number(args['verify-threads']) }),
};

type Workload = 'W1-relay' | 'W1-16' | 'W1-offline';

interface Result {
  workload: Workload;
  n: number;
  accepted_per_s: number;
  delivered_per_s: number | null;
  p50_ms: number | null;
  p95_ms: number | null;
  p99_ms: number | null;
  lost: number;
  duplicated: number;
  server_rss_mb: number;
  server_cpu_s: number;
  client_cpu_s: number;
  drain_s: number | null;
  store: 'sqlite' | 'postgres';
  nodes: number;
  /** With several nodes: how writes are spread (spray or channel, see --route). */
  route: 'spray' | 'channel' | null;
  /** Relay CPU (all nodes) per accepted message, ms. */
  relay_cpu_ms_per_msg: number;
  /** Busy CPU of the whole machine per message, ms (relays, PostgreSQL, NATS, load, anything else running). */
  machine_cpu_ms_per_msg: number;
  node: string;
  cores: number;
}

interface Pair {
  readonly a: Device;
  readonly b: Device;
  readonly channel: ChannelId;
  readonly envelopes: SignedEnvelope[];
}

const say = (s: string) => {
  if (!args.json) process.stderr.write(`${s}\n`);
};

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

/** Resolves with p, or after ms (without keeping the process alive afterwards). */
async function within(p: Promise<void>, ms: number): Promise<void> {
  let t: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([p, new Promise<void>((r) => (t = setTimeout(r, ms)))]);
  clearTimeout(t);
}

interface Cluster {
  readonly relays: SpawnedRelay[];
  cpuSeconds(): number;
  peakRssMb(): number;
  stop(): Promise<void>;
}

/** One relay (SQLite or PostgreSQL), or NODES relays on one fresh PostgreSQL schema + NATS. */
async function startCluster(): Promise<Cluster> {
  if (STORE === 'sqlite') {
    const r = await spawnRelay(RELAY_CONFIG);
    return {
      relays: [r],
      cpuSeconds: () => r.cpuSeconds(),
      peakRssMb: () => r.rssMb(),
      stop: () => r.stop(),
    };
  }
  const schema = `bc_bench_${process.pid}_${randomBytes(4).toString('hex')}`;
  const keyDir = mkdtempSync(join(tmpdir(), 'bc-bench-key-'));
  const env: Record<string, string> = {
    BACKCHANNEL_STORE: `${args.pg}${args.pg?.includes('?') === true ? '&' : '?'}schema=${schema}`,
    BACKCHANNEL_CHECKPOINT_KEY_FILE: join(keyDir, 'checkpoint-key'),
    ...(NODES > 1 ? { BACKCHANNEL_FANOUT: `${args.nats}?subject=bench.${schema}` } : {}),
  };
  const relays: SpawnedRelay[] = [];
  for (let i = 0; i < NODES; i++) relays.push(await spawnRelay(RELAY_CONFIG, env));
  return {
    relays,
    cpuSeconds: () => relays.reduce((t, r) => t + r.cpuSeconds(), 0),
    peakRssMb: () => Math.max(...relays.map((r) => r.rssMb())),
    async stop() {
      for (const r of relays) await r.stop();
      const sql = postgres(args.pg as string, { max: 1, onnotice: () => {} });
      await sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await sql.end({ timeout: 1 });
      rmSync(keyDir, { recursive: true, force: true });
    },
  };
}

async function runOnce(workload: Workload, n: number): Promise<Result> {
  const cluster = await startCluster();
  const relay = cluster.relays[0] as SpawnedRelay;
  const pairsN = workload === 'W1-16' ? 16 : 1;
  const perPair = Math.ceil(n / pairsN);
  const https = cluster.relays.map((r) => new HttpClient(r.url, INFLIGHT * pairsN));
  const http = https[0] as HttpClient;
  /** The node pair i's receiver uses: another one than its first sender's when there are several. */
  const receiverUrl = (i: number) => (cluster.relays[(i + 1) % cluster.relays.length] as SpawnedRelay).url;
  try {
    // Setup (untimed): two parties, one device each per pair, a channel per pair.
    const A = party();
    const B = party();
    const pairs: Pair[] = [];
    const as: Device[] = [];
    const bs: Device[] = [];
    for (let i = 0; i < pairsN; i++) {
      as.push(device(A, `a${i}`, 'admin'));
      bs.push(device(B, `b${i}`, 'principal'));
    }
    await publish(http, A, as);
    await publish(http, B, bs);
    const senderKeys = new Map<string, Uint8Array>(as.map((a) => [a.device, a.kp.publicKey]));
    for (let i = 0; i < pairsN; i++) {
      const a = as[i] as Device;
      const b = bs[i] as Device;
      const channel = newChannel();
      const created = await postEnvelope(
        http,
        a,
        envelopeFrom(a, channel, 'commit', 0, 256, { add: [b.device], remove: [] }),
        true,
      );
      if (created.status !== 201) throw new Error(`channel: ${created.status} ${created.text}`);
      const envelopes: SignedEnvelope[] = [];
      for (let k = 0; k < perPair; k++) envelopes.push(envelopeFrom(a, channel, 'application', 1, MLS_BYTES));
      pairs.push({ a, b, channel, envelopes });
    }
    const total = perPair * pairsN;
    const sentAt = new Map<string, number>();
    const seen = new Map<string, Set<number>>();
    const latencies: number[] = [];
    let received = 0;
    let duplicated = 0;
    let lastReceipt = 0;
    let allReceived: () => void = () => {};
    const done = new Promise<void>((r) => {
      allReceived = r;
    });
    const onEntry = (channel: ChannelId) => (r: Received) => {
      if (r.seq === 0) return; // the channel's creating commit
      let s = seen.get(channel);
      if (s === undefined) {
        s = new Set();
        seen.set(channel, s);
      }
      if (s.has(r.seq)) {
        duplicated++;
        return;
      }
      s.add(r.seq);
      received++;
      lastReceipt = r.at;
      const t = sentAt.get(r.msgId);
      if (t !== undefined) latencies.push(r.at - t);
      if (received === total) allReceived();
    };
    // B's devices verify on a thread of their own (bench/receiver-thread.ts): another party's
    // machine, not work on A's event loop.
    const receivers = await ReceiverThread.start();
    const connectAll = async () => {
      for (const [i, p] of pairs.entries())
        await receivers.connect(
          {
            url: receiverUrl(i),
            me: p.b,
            channel: p.channel,
            from: 0,
            senderKeys,
            binary: TRANSPORT === 'ws',
          },
          onEntry(p.channel),
        );
    };
    if (workload !== 'W1-offline') await connectAll();

    const wsSenders = new Map<Pair, WsSender>();
    if (TRANSPORT !== 'http')
      for (const p of pairs)
        wsSenders.set(p, await WsSender.connect(relay.url, p.a, TRANSPORT === 'ws-json'));

    // Timed: A sends with up to INFLIGHT requests in flight per sender.
    const threads0 = relay.threadCpu();
    const cpu0 = cluster.cpuSeconds();
    const machine0 = machineBusySeconds();
    const client0 = process.cpuUsage();
    const t0 = hostNow();
    let accepted = 0;
    let failed = 0;
    let lastAck = 0;
    await Promise.all(
      pairs.map(async (p, pi) => {
        let next = 0;
        let workers = 0;
        const worker = async () => {
          // spray: senders alternate between the nodes (a load balancer's round robin);
          // channel: the channel's writes all go to its node.
          const node = https[(ROUTE === 'channel' ? pi : workers++) % https.length] as HttpClient;
          for (;;) {
            const i = next++;
            if (i >= p.envelopes.length) return;
            const env = p.envelopes[i] as SignedEnvelope;
            sentAt.set(env.body.msgId, hostNow());
            const ws = wsSenders.get(p);
            const ok =
              ws === undefined
                ? (await postEnvelope(node, p.a, env, SIGNED)).status === 201
                : await ws.send(env);
            if (ok) accepted++;
            else failed++;
            lastAck = hostNow();
          }
        };
        await Promise.all(Array.from({ length: INFLIGHT }, worker));
      }),
    );
    const acceptSeconds = (lastAck - t0) / 1000;
    let drainSeconds: number | null = null;
    if (workload === 'W1-offline') {
      const d0 = hostNow();
      await connectAll();
      await within(Promise.race([done, receivers.failure()]), 60_000);
      drainSeconds = (hostNow() - d0) / 1000;
    } else {
      await within(Promise.race([done, receivers.failure()]), 60_000);
    }
    const cpu = cluster.cpuSeconds() - cpu0;
    if (process.env.BENCH_THREADS !== undefined) {
      // Relay CPU per message by thread (µs): main event loop, verify worker, libuv pool, V8 GC helpers.
      const t1 = relay.threadCpu();
      const per = Object.entries(t1)
        .map(([k, v]) => [k, Math.round(((v - (threads0[k] ?? 0)) * 1e6) / total)] as const)
        .filter(([, v]) => v > 0);
      process.stderr.write(`relay CPU µs/msg by thread: ${JSON.stringify(Object.fromEntries(per))}\n`);
    }
    const machine = machineBusySeconds() - machine0;
    if (process.env.BENCH_METRICS !== undefined) {
      const m = await (await fetch(`${relay.url}/metrics`)).text();
      process.stderr.write(
        `${m
          .split('\n')
          .filter((l) => /^bc_append_(batch|commit)/.test(l))
          .join('\n')}\n`,
      );
    }
    const client = process.cpuUsage(client0);
    if (failed > 0) say(`  ${failed} sends were refused`);
    const bad = await receivers.close();
    if (bad > 0) say(`  ${bad} received entries failed verification`);
    for (const w of wsSenders.values()) w.close();
    latencies.sort((x, y) => x - y);
    const offline = workload === 'W1-offline';
    return {
      workload,
      n: total,
      accepted_per_s: round(accepted / acceptSeconds, 0),
      delivered_per_s: offline ? null : round(received / ((lastReceipt - t0) / 1000), 0),
      p50_ms: offline ? null : round(percentile(latencies, 50), 2),
      p95_ms: offline ? null : round(percentile(latencies, 95), 2),
      p99_ms: offline ? null : round(percentile(latencies, 99), 2),
      lost: total - received + bad,
      duplicated,
      server_rss_mb: round(cluster.peakRssMb(), 1),
      server_cpu_s: round(cpu, 2),
      client_cpu_s: round((client.user + client.system) / 1e6, 2),
      drain_s: drainSeconds === null ? null : round(drainSeconds, 2),
      store: STORE,
      nodes: cluster.relays.length,
      route: cluster.relays.length > 1 ? ROUTE : null,
      relay_cpu_ms_per_msg: round((cpu * 1000) / total, 3),
      machine_cpu_ms_per_msg: round((machine * 1000) / total, 3),
      node: process.version,
      cores: availableParallelism(),
    };
  } finally {
    for (const h of https) h.close();
    await cluster.stop();
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

function summarize(runs: Result[]): Record<string, unknown> {
  const first = runs[0] as Result;
  const out: Record<string, unknown> = { ...first };
  const spread: Record<string, [number, number]> = {};
  for (const k of Object.keys(first) as (keyof Result)[]) {
    const vals = runs.map((r) => r[k]).filter((v): v is number => typeof v === 'number');
    if (vals.length !== runs.length || k === 'n' || k === 'cores' || k === 'nodes') continue;
    out[k] = k === 'lost' || k === 'duplicated' ? Math.max(...vals) : round(median(vals), 2);
    if (runs.length > 1) spread[k] = [Math.min(...vals), Math.max(...vals)];
  }
  return {
    ...out,
    runs: runs.length,
    spread,
    fsync: STORE === 'sqlite' ? 'FULL (WAL)' : 'PostgreSQL synchronous_commit (server default)',
    mls_bytes: MLS_BYTES,
    inflight_per_sender: INFLIGHT,
    transport: TRANSPORT,
    relay: args.relay,
    request_auth: TRANSPORT !== 'http' ? 'ws-session' : SIGNED ? 'signed' : 'envelope-only',
    note: 'relay and load share the same 2 cores; MLS field is random bytes of ciphertext size (the relay never parses MLS)',
  };
}

const workloads: Workload[] = ['W1-relay', 'W1-16', 'W1-offline'];
const selected = args.only === undefined ? workloads : workloads.filter((w) => w === args.only);
const lines: Record<string, unknown>[] = [];
for (const w of selected) {
  const n = w === 'W1-offline' ? Math.round(N / 4) : N;
  const runs: Result[] = [];
  for (let i = 0; i < RUNS; i++) {
    say(`${w} run ${i + 1}/${RUNS} (n=${n})…`);
    runs.push(await runOnce(w, n));
  }
  const line = summarize(runs);
  lines.push(line);
  process.stdout.write(`${JSON.stringify(line)}\n`);
}
if (!args.json) {
  const cols = [
    'workload',
    'n',
    'accepted_per_s',
    'delivered_per_s',
    'p50_ms',
    'p95_ms',
    'p99_ms',
    'lost',
    'duplicated',
    'server_rss_mb',
    'server_cpu_s',
    'client_cpu_s',
    'drain_s',
    'relay_cpu_ms_per_msg',
    'machine_cpu_ms_per_msg',
  ];
  process.stderr.write(`\n${cols.join('\t')}\n`);
  for (const l of lines) process.stderr.write(`${cols.map((c) => String(l[c] ?? '—')).join('\t')}\n`);
  process.stderr.write(
    `\nmedian of ${RUNS} run(s); ${STORE}, ${NODES} node(s); relay(s), database, NATS and load on the same ${availableParallelism()} cores; ${TRANSPORT === 'http' ? (SIGNED ? 'signed HTTP posts' : 'envelope-authenticated HTTP posts') : `WebSocket ${TRANSPORT === 'ws' ? 'binary' : 'JSON'} send frames`}\n`,
  );
}
