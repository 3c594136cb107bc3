/**
 * Workload W1-e2e (../shared/bench/W1.md) through the SDK: A sends N messages of 1 KiB, each
 * MLS-encrypted and signed as in production, up to 64 in flight, each persisted on A's device
 * before it is posted; B receives every one pushed on its WebSocket (Backchannel.live), verifies,
 * decrypts and folds it. A runs in a process of
 * its own (this file with `--role sender`), B in this one, the relay in a third, as W1 has the
 * load in processes separate from the relay. Latency is A's send call → B's decryption: A writes
 * its send time (the host clock, performance.timeOrigin + performance.now()) at the start of
 * each 1 KiB plaintext and B reads it after decrypting. Also: cold sync of a long channel on a
 * new device.
 * Run: node --import tsx bench/w1-e2e.ts [--n 20000] [--json] [--cold-only]
 * --cold-only: A posts the N messages without the latency measurement, then only the cold sync
 * is timed (the fast way to iterate on it). --cache DIR (with --cold-only) keeps the relay and
 * devices A and B after the first run in DIR and starts every later run from a copy of them.
 * --verify-threads N: signature worker threads (default 1); --no-inline: the main thread never
 * verifies signatures itself. --prof FILE writes a CPU profile (.cpuprofile) of the cold sync.
 * --transport ws|http: how A posts its envelopes (default ws: binary frames on one socket).
 * --window N: the sender keeps at most N messages queued or in flight (default 48: three
 * batches; W1 allows up to 64 in flight). --batch N: messages per sendMany call (default 16).
 * --no-cold: skip the cold sync (e.g. to profile the W1 part alone).
 * BENCH_WRITER_THREAD=1: the devices' stores commit on a writer thread (SDK option writerThread).
 * --receive push|poll: how B receives (default push: entries pushed on B's WebSocket and folded
 * as they arrive, Backchannel.live; poll: B syncs over HTTP in a loop).
 */
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { startRelayProcess } from '../packages/client/src/cli/relay-process.node.ts';
import type { DraftEvent } from '../packages/client/src/sdk/channel.ts';
import type { EventRecord } from '../packages/client/src/sdk/channel-record.ts';
import type { Live } from '../packages/client/src/sdk/live.ts';
import { Backchannel } from '../packages/client/src/sdk/client.ts';
import { createMlsFactory } from '../packages/client/src/sdk/mls-factory.ts';
import { ed25519Node, nodeMlsCrypto, sha256Node } from '../packages/client/src/sdk/mls-crypto.node.ts';
import { randomNode } from '../packages/client/src/sdk/random.node.ts';
import { SqliteLocalStore } from '../packages/client/src/sdk/sqlite.node.ts';
import { CorkedWebSocket } from '../packages/client/src/sdk/websocket.node.ts';
import { leafHashNode, SignatureWorkers } from '../packages/client/src/sdk/sync-crypto.node.ts';

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const N = arg('--n', 20_000);
const json = process.argv.includes('--json');
const coldOnly = process.argv.includes('--cold-only');
const strArg = (name: string) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const cache = coldOnly ? strArg('--cache') : undefined;
const prof = strArg('--prof');
const role = strArg('--role');
const transportArg = strArg('--transport') ?? 'ws';
if (transportArg !== 'ws' && transportArg !== 'http') throw new Error('--transport is ws or http');
const transport: 'ws' | 'http' = transportArg === 'ws' ? 'ws' : 'http';
const receiveArg = strArg('--receive') ?? 'push';
if (receiveArg !== 'push' && receiveArg !== 'poll') throw new Error('--receive is push or poll');
const receive: 'push' | 'poll' = receiveArg;
const root = strArg('--root') ?? mkdtempSync(join(tmpdir(), 'bc-w1e2e-'));
/** Milliseconds on the host clock, comparable between the sender's and the receiver's process. */
const hostNow = () => performance.timeOrigin + performance.now();
const MSG_BYTES = 1024;
interface Cached {
  readonly port: number;
  readonly n: number;
  readonly channel: string;
  readonly partyB: string;
}
const cacheMeta = cache === undefined ? undefined : join(cache, 'meta.json');
const cached =
  cacheMeta !== undefined && existsSync(cacheMeta)
    ? (JSON.parse(readFileSync(cacheMeta, 'utf8')) as Cached)
    : undefined;
if (cached !== undefined && cached.n !== N) throw new Error(`${cache} holds n = ${cached.n}, not ${N}`);
if (cached !== undefined && cache !== undefined) cpSync(cache, root, { recursive: true });

const verifier = new SignatureWorkers({
  threads: arg('--verify-threads', 1),
  ...(process.argv.includes('--no-inline') ? {} : { inline: ed25519Node }),
});

async function device(name: string, relay: string, posts: 'ws' | 'http' = 'http') {
  return Backchannel.open({
    transport: posts,
    // BENCH_NO_CORK=1: one write per frame (the plain `ws` socket), to compare.
    webSocket: process.env.BENCH_NO_CORK === undefined ? CorkedWebSocket : WebSocket,
    store: SqliteLocalStore.open({
      path: join(root, name, 'device.db'),
      passphrase: name,
      kdf: { N: 1 << 10, r: 8, p: 1 },
      // The SDK's default (commits on the event loop); BENCH_WRITER_THREAD=1: on a writer thread.
      writerThread: process.env.BENCH_WRITER_THREAD !== undefined,
    }),
    mls: (identity, certs) => createMlsFactory({ identity, certs, crypto: nodeMlsCrypto, now: Date.now }),
    relays: [relay],
    random: randomNode,
    signatures: ed25519Node,
    sha256: sha256Node,
    verifier,
    leafHash: leafHashNode,
    updateEveryMessages: 1_000_000,
  });
}

/** The relay process's user + system CPU seconds (Linux /proc; 100 ticks per second). */
function relayCpuS(): number {
  try {
    const f = readFileSync(`/proc/${relay.child.pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

const pct = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.floor(p * (xs.length - 1)))] ?? 0;

/**
 * The sender's process: opens device A, sends N messages of 1 KiB with a sliding window of posts
 * (one outbox pass posts up to 64 concurrently; the next messages are encrypted and persisted
 * while it runs), and prints {t0, acceptedAt, cpu_s} when the relay has acknowledged them all.
 */
async function sendAll(relayUrl: string, channelId: string): Promise<void> {
  const a = await device('A', relayUrl, transport);
  const chA = await a.channel(channelId);
  const BATCH = arg('--batch', 16);
  const cpu0 = process.cpuUsage();
  const t0 = hostNow();
  let flushing: Promise<unknown> | undefined;
  const startFlush = () => {
    flushing = a.outbox.flush(64).finally(() => {
      flushing = undefined;
    });
  };
  // One outbox pass posts up to 64 at once and takes the messages queued while it runs; the
  // sender keeps at most WINDOW messages queued or in flight (default 3 batches: 48). More only
  // queues: on 2 cores the three processes are CPU-bound near 1,500/s, and a deeper queue adds
  // latency, not throughput (PERFORMANCE.md, 2026-12-06 evening).
  const WINDOW = Number(strArg('--window') ?? 3 * BATCH);
  let produced = 0;
  for (let i = 0; i < N; i += BATCH) {
    const k = Math.min(BATCH, N - i);
    const stamp = `${hostNow().toFixed(3)} `;
    const text = stamp + 'x'.repeat(MSG_BYTES - stamp.length);
    await chA.sendMany(Array.from({ length: k }, () => ({ kind: 'message', text }) as DraftEvent));
    produced += k;
    if (flushing === undefined) startFlush();
    while (produced - a.outbox.finished > WINDOW) {
      if (flushing === undefined) startFlush();
      await Promise.race([a.outbox.progress(), flushing]);
    }
  }
  while (flushing !== undefined) await flushing;
  while ((await a.outbox.flush(64)).sent > 0) {}
  const acceptedAt = hostNow();
  const cpu = process.cpuUsage(cpu0);
  a.close();
  console.log(JSON.stringify({ t0, acceptedAt, cpu_s: (cpu.user + cpu.system) / 1e6 }));
}

function runSender(
  relayUrl: string,
  channelId: string,
): Promise<{ t0: number; acceptedAt: number; cpu_s: number }> {
  const args = [
    '--role',
    'sender',
    '--root',
    root,
    '--relay',
    relayUrl,
    '--channel',
    channelId,
    '--n',
    String(N),
    '--transport',
    transport,
    '--batch',
    String(arg('--batch', 16)),
    ...(strArg('--window') === undefined ? [] : ['--window', strArg('--window') as string]),
  ];
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1] as string, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code) => {
      const last = out.trim().split('\n').pop() ?? '';
      if (code === 0) resolve(JSON.parse(last));
      else reject(new Error(`the sender exited with ${code}: ${out}`));
    });
  });
}

if (role === 'sender') {
  await sendAll(strArg('--relay') as string, strArg('--channel') as string);
  process.exit(0);
}

// One device posts as fast as it can: the relay's per-device limits (sized for people) are raised.
const relayConfig = join(root, 'relay-config.json');
writeFileSync(
  relayConfig,
  JSON.stringify({
    rateLimits: { device: { perSecond: 1e6, burst: 1e6 }, writes: { perSecond: 1e6, burst: 1e6 } },
  }),
);
const relay = await startRelayProcess(join(root, 'relay'), cached?.port, { BACKCHANNEL_CONFIG: relayConfig });
try {
  const a = await device('A', relay.url);
  const b = await device('B', relay.url, receive === 'push' ? 'ws' : 'http');
  const { chA, B } =
    cached === undefined ? await prepare() : { chA: { id: cached.channel }, B: { party: cached.partyB } };
  if (cached === undefined && cache !== undefined && cacheMeta !== undefined) {
    a.close();
    b.close();
    await relay.stop();
    cpSync(root, cache, { recursive: true });
    const meta: Cached = { port: relay.port, n: N, channel: chA.id, partyB: B.party };
    writeFileSync(cacheMeta, JSON.stringify(meta));
    console.error(`cached in ${cache}; run again to measure`);
    rmSync(root, { recursive: true, force: true });
    process.exit(0);
  }
  if (!process.argv.includes('--no-cold')) await coldSync();

  async function prepare() {
    await a.createParty({ partyName: 'A', deviceName: 'a', relays: [relay.url] });
    const B = await b.createParty({
      partyName: 'B',
      deviceName: 'b',
      role: 'principal',
      relays: [relay.url],
    });
    const chA = await a.outreach(B.party, 'bench');
    await b.checkInbox();
    const chB = await b.channel(chA.id);
    await chB.sync();
    await chB.send({ kind: 'channel.accept' } as DraftEvent);
    await b.outbox.flush();
    await chA.sync();

    const text = 'x'.repeat(1024);
    if (coldOnly) {
      for (let i = 0; i < N; i += 64) {
        const k = Math.min(64, N - i);
        await chA.sendMany(Array.from({ length: k }, () => ({ kind: 'message', text }) as DraftEvent));
        while ((await a.outbox.flush(64)).sent > 0) {}
      }
      await chB.sync();
    } else await measureW1();
    return { chA, B };
    async function measureW1(): Promise<void> {
      a.close(); // device A now lives in the sender's process
      const latencies: number[] = [];
      // The two legs, split at the relay's receivedAt (its Date.now(), on the same host clock).
      const toRelay: number[] = [];
      const fromRelay: number[] = [];
      let received = 0;
      let duplicated = 0;
      const seen = new Set<string>();
      const cpu0 = process.cpuUsage();
      const relayCpu0 = relayCpuS();
      const sender = runSender(relay.url, chA.id);
      let lastAt = 0;
      const take = (fresh: readonly EventRecord[]) => {
        const at = hostNow();
        for (const r of fresh) {
          if (!('event' in r) || r.event.kind !== 'message') continue;
          if (seen.has(r.event.id)) duplicated++;
          seen.add(r.event.id);
          const sentAt = Number.parseFloat((r.event as { text: string }).text);
          latencies.push(at - sentAt);
          toRelay.push(r.receivedAt - sentAt);
          fromRelay.push(at - r.receivedAt);
          received++;
          lastAt = at;
        }
      };
      if (receive === 'push') {
        let live: Live | undefined;
        await new Promise<void>((resolve, reject) => {
          b.live({
            // W1's receiver receives, verifies and decrypts; it sends nothing back.
            acknowledgeDelivery: false,
            onRecords: (_ch, fresh) => {
              take(fresh);
              if (received >= N) resolve();
            },
            onError: (_ch, e) => reject(e),
          }).then((l) => {
            live = l;
          }, reject);
        });
        live?.stop();
      } else {
        while (received < N) {
          const fresh = await chB.sync();
          take(fresh);
          if (fresh.length === 0) await new Promise((r) => setTimeout(r, 5));
        }
      }
      const sent = await sender;
      const cpu = process.cpuUsage(cpu0);
      const relayCpu = relayCpuS() - relayCpu0;
      // BENCH_LAT_DUMP=FILE: each message's latency and its two legs, in the order B decrypted them.
      if (process.env.BENCH_LAT_DUMP !== undefined) {
        const rows = latencies.map((l, i) => `${l.toFixed(2)} ${toRelay[i]} ${fromRelay[i]}`);
        writeFileSync(process.env.BENCH_LAT_DUMP, `${rows.join('\n')}\n`);
      }
      // The last 90 % alone: what remains once the three processes' JIT has warmed up (the sender's
      // process is new at t0). Reported beside p99, not instead of it.
      const warm = latencies.slice(Math.floor(latencies.length / 10)).sort((x, y) => x - y);
      latencies.sort((x, y) => x - y);
      toRelay.sort((x, y) => x - y);
      fromRelay.sort((x, y) => x - y);
      const line = {
        workload: 'W1-e2e',
        n: N,
        accepted_per_s: Math.round((N / (sent.acceptedAt - sent.t0)) * 1000),
        delivered_per_s: Math.round((N / (lastAt - sent.t0)) * 1000),
        p50_ms: +pct(latencies, 0.5).toFixed(1),
        p95_ms: +pct(latencies, 0.95).toFixed(1),
        p99_ms: +pct(latencies, 0.99).toFixed(1),
        p99_after_first_10pct_ms: +pct(warm, 0.99).toFixed(1),
        lost: N - seen.size,
        duplicated,
        server_rss_mb: null,
        server_cpu_s: null,
        client_cpu_s: +(sent.cpu_s + (cpu.user + cpu.system) / 1e6).toFixed(1),
        drain_s: null,
        // A's posts (--transport) and the CPU per message of A (sender) and of the relay.
        transport,
        receive,
        // p50/p99 of A's send call → the relay's receivedAt, and of receivedAt → B's decryption.
        a_to_relay_ms: [Math.round(pct(toRelay, 0.5)), Math.round(pct(toRelay, 0.99))],
        relay_to_b_ms: [Math.round(pct(fromRelay, 0.5)), Math.round(pct(fromRelay, 0.99))],
        receiver_cpu_us_per_msg: Math.round((cpu.user + cpu.system) / N),
        sender_cpu_us_per_msg: Math.round((sent.cpu_s / N) * 1e6),
        relay_cpu_us_per_msg: Math.round((relayCpu / N) * 1e6),
        store: 'sqlite',
        nodes: 1,
        node: process.version,
        cores: cpus().length,
      };
      console.log(JSON.stringify(line));
    }
  }

  async function coldSync() {
    // Cold sync: a new device of party B joins the channel and verifies + decrypts what it can.
    const b2 = await device('B2', relay.url);
    const t1 = performance.now();
    const id2 = await b.addDevice('b2', 'staff');
    await b2.enroll(id2);
    const chB2raw = await b.channel(chA.id);
    await chB2raw.sync();
    const kps = (await b.relay.claimKeyPackages(B.party as string)).filter((k) => k.device === id2.device);
    await chB2raw.commit(
      (g) => g.add(kps.map((k) => k.keyPackage)),
      { add: kps.map((k) => k.device as never), remove: [] },
      [B.party as never],
    );
    // The Welcome waits in b's outbox (Channel.commit leaves the flush to its caller).
    await b.outbox.flush();
    await b2.checkInbox();
    const chB2 = await b2.channel(chA.id);
    const tSync = performance.now();
    const cpuSync = process.cpuUsage();
    const relayCpu0 = relayCpuS();
    const session = prof === undefined ? undefined : new Session();
    if (session !== undefined) {
      session.connect();
      await session.post('Profiler.enable');
      await session.post('Profiler.start');
    }
    let progress = 0; // the CLI draws its progress bar from these per-page callbacks
    await chB2.sync(() => progress++);
    const coldS = (performance.now() - tSync) / 1000;
    const coldCpu = process.cpuUsage(cpuSync);
    const relayCpu = relayCpuS() - relayCpu0;
    if (session !== undefined && prof !== undefined) {
      const { profile } = await session.post('Profiler.stop');
      writeFileSync(prof, JSON.stringify(profile));
    }
    console.log(
      JSON.stringify({
        workload: 'cold-sync',
        entries: chB2.record.nextSeq,
        seconds: +coldS.toFixed(2),
        per_s: Math.round(chB2.record.nextSeq / coldS),
        verified_checkpoint: chB2.record.checkpointSize,
        setup_s: +((tSync - t1) / 1000).toFixed(2),
        client_cpu_s: +((coldCpu.user + coldCpu.system) / 1e6).toFixed(2),
        relay_cpu_s: +relayCpu.toFixed(2),
        progress_updates: progress,
        per_100k_s: +((100_000 * coldS) / chB2.record.nextSeq).toFixed(1),
      }),
    );
    if (!json) console.log(`\nW1-e2e: ${N} messages; see docs/PERFORMANCE.md for the table`);
    b2.close();
  }
  a.close();
  b.close();
} finally {
  await relay.stop();
  // Every run works in a fresh copy (with --cache, of the whole channel): leave nothing behind.
  rmSync(root, { recursive: true, force: true });
}
