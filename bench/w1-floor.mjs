// W1 floor: the least work W1-relay demands, on the same machine and libraries, without the relay.
//
// A relay process that only verifies each envelope's Ed25519 signature (libsodium), writes it to
// SQLite (WAL, synchronous=FULL) in group commits on a writer thread, then acknowledges it to A
// with its sequence number and pushes it to B over WebSocket. No Merkle tree, no checkpoint or
// receipt signature, no access list or epoch, no idempotency lookup beyond the unique index.
// The load is W1's: A sends N signed envelopes of ~1.3 KiB built before the clock starts, 64 in
// flight; B verifies every one it receives, on a thread of its own (as bench/relay-w1.ts's B). What this carries on a machine bounds what the real
// relay can carry there: the gap between the two is the relay's own work.
//
//   node bench/w1-floor.mjs [--n 20000] [--inflight 64] [--runs 3] [--json]
//
// Plain JavaScript run by node itself, like the bundled relay (no TypeScript loader in either
// process).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import sodium from 'sodium-native';
import { WebSocket, WebSocketServer } from 'ws';

const ENVELOPE_BYTES = 1_300;
const SIG = 64;

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? fallback : Number(process.argv[i + 1]);
}

// ---------------------------------------------------------------------------------------------
// The relay side.

const WRITER = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path);
db.pragma('journal_mode = WAL');
db.pragma('synchronous = FULL');
db.exec('CREATE TABLE entries (seq INTEGER PRIMARY KEY, msg_id BLOB NOT NULL UNIQUE, envelope BLOB NOT NULL)');
const insert = db.prepare('INSERT INTO entries (seq, msg_id, envelope) VALUES (?, ?, ?)');
const write = db.transaction((seqs, bytes, offsets) => {
  for (let i = 0; i < seqs.length; i++) {
    const frame = bytes.subarray(offsets[i], offsets[i + 1]);
    insert.run(seqs[i], frame.subarray(0, 16), frame);
  }
});
parentPort.on('message', ({ id, seqs, buf, offsets }) => {
  write(seqs, Buffer.from(buf), offsets);
  parentPort.postMessage(id);
});
`;

async function relay() {
  const { createRequire } = await import('node:module');
  const dir = mkdtempSync(join(tmpdir(), 'w1-floor-'));
  const publicKey = Buffer.from(process.argv[3], 'hex');
  const writer = new Worker(WRITER, {
    eval: true,
    workerData: { driver: createRequire(import.meta.url).resolve('better-sqlite3'), path: join(dir, 'db') },
  });
  let peakRss = 0;
  const sample = setInterval(() => {
    peakRss = Math.max(peakRss, process.memoryUsage.rss());
  }, 50);
  let a;
  const subscribers = new Set();
  let seq = 0;
  let queue = [];
  let outstanding = 0;
  const committing = new Map();
  let nextId = 0;
  let batches = 0;
  let commitMs = 0;

  const flush = () => {
    if (queue.length === 0 || outstanding >= 2) return;
    const batch = queue;
    queue = [];
    outstanding++;
    const id = nextId++;
    const total = batch.reduce((n, f) => n + f.length, 0);
    const buf = new ArrayBuffer(total);
    const bytes = new Uint8Array(buf);
    const offsets = new Array(batch.length + 1);
    const seqs = new Array(batch.length);
    let off = 0;
    for (let i = 0; i < batch.length; i++) {
      offsets[i] = off;
      bytes.set(batch[i], off);
      off += batch[i].length;
      seqs[i] = seq++;
    }
    offsets[batch.length] = off;
    committing.set(id, { batch, seqs, posted: performance.now() });
    batches++;
    writer.postMessage({ id, seqs, buf, offsets }, [buf]);
  };

  writer.on('message', (id) => {
    const { batch, seqs, posted } = committing.get(id);
    commitMs += performance.now() - posted;
    committing.delete(id);
    outstanding--;
    // Durable: subscribers first, then the sender's acknowledgements, one write each.
    for (const ws of subscribers) {
      ws._socket.cork();
      for (let i = 0; i < batch.length; i++) {
        const out = Buffer.allocUnsafe(8 + batch[i].length);
        out.writeUInt32BE(0, 0);
        out.writeUInt32BE(seqs[i], 4);
        out.set(batch[i], 8);
        ws.send(out, { binary: true });
      }
      ws._socket.uncork();
    }
    a._socket.cork();
    for (let i = 0; i < batch.length; i++) {
      const ack = Buffer.allocUnsafe(8);
      ack.writeUInt32BE(batch[i].readUInt32BE(0), 0);
      ack.writeUInt32BE(seqs[i], 4);
      a.send(ack, { binary: true });
    }
    a._socket.uncork();
    flush();
  });

  let scheduled = false;
  let cpuAtStart;
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: 64 * 1024 });
  wss.on('connection', (ws, req) => {
    if (req.url === '/subscribe') {
      subscribers.add(ws);
      ws.on('close', () => subscribers.delete(ws));
      return;
    }
    a = ws;
    cpuAtStart = process.resourceUsage();
    ws.on('message', (data) => {
      const msg = data.subarray(0, data.length - SIG);
      if (!sodium.crypto_sign_verify_detached(data.subarray(data.length - SIG), msg, publicKey)) {
        ws.send('bad signature');
        return;
      }
      queue.push(data);
      // Every frame parsed in this turn of the event loop joins the batch, as in the relay.
      if (!scheduled) {
        scheduled = true;
        setImmediate(() => {
          scheduled = false;
          flush();
        });
      }
    });
  });
  wss.on('listening', () => process.stdout.write(`${JSON.stringify({ port: wss.address().port })}\n`));
  process.on('message', (m) => {
    if (m !== 'stats') return;
    clearInterval(sample);
    const cpu = process.resourceUsage();
    const used = cpu.userCPUTime + cpu.systemCPUTime - cpuAtStart.userCPUTime - cpuAtStart.systemCPUTime;
    process.send({ rssMb: peakRss / 2 ** 20, cpuS: used / 1e6, batches, commitMs: commitMs / batches });
    setTimeout(() => {
      rmSync(dir, { recursive: true, force: true });
      process.exit(0);
    }, 50);
  });
}

// ---------------------------------------------------------------------------------------------
// The load side.

// B, on its own thread: subscribes, verifies every entry, and streams [index, receipt time on the
// host clock] pairs back to the load's main thread (A), batched per turn of its event loop.
const RECEIVER = `
const { parentPort, workerData } = require('node:worker_threads');
const sodium = require(workerData.sodium);
const { WebSocket } = require(workerData.ws);
const publicKey = Buffer.from(workerData.publicKey, 'hex');
const now = () => performance.timeOrigin + performance.now();
let rows = [];
let scheduled = false;
const flush = () => {
  scheduled = false;
  const out = Float64Array.from(rows);
  rows = [];
  parentPort.postMessage(out, [out.buffer]);
};
const b = new WebSocket('ws://127.0.0.1:' + workerData.port + '/subscribe');
b.on('open', () => parentPort.postMessage('open'));
b.on('message', (data) => {
  const env = data.subarray(8);
  const msg = env.subarray(0, workerData.envelopeBytes);
  if (!sodium.crypto_sign_verify_detached(env.subarray(workerData.envelopeBytes), msg, publicKey)) {
    throw new Error('B: bad signature');
  }
  rows.push(msg.readUInt32BE(0), now());
  if (!scheduled) {
    scheduled = true;
    setImmediate(flush);
  }
});
`;

async function load() {
  const n = arg('n', 20_000);
  const inflight = arg('inflight', 64);
  const runs = arg('runs', 3);
  const json = process.argv.includes('--json');
  const results = [];
  for (let r = 0; r < runs; r++) results.push(await run(n, inflight));
  for (const res of results) {
    if (json) console.log(JSON.stringify(res));
    else
      console.log(
        `W1-floor  ${res.accepted_per_s.toFixed(0)}/s  p50 ${res.p50_ms.toFixed(1)} ms  p99 ${res.p99_ms.toFixed(1)} ms  ` +
          `lost ${res.lost} dup ${res.duplicated}  relay ${res.server_rss_mb.toFixed(0)} MB ${((res.server_cpu_s / n) * 1e3).toFixed(3)} ms/msg  ` +
          `client ${((res.client_cpu_s / n) * 1e3).toFixed(3)} ms/msg  ` +
          `${res.batches} batches, ${res.commit_ms.toFixed(2)} ms from post to commit`,
      );
  }
}

async function run(n, inflight) {
  const publicKey = Buffer.alloc(sodium.crypto_sign_PUBLICKEYBYTES);
  const secretKey = Buffer.alloc(sodium.crypto_sign_SECRETKEYBYTES);
  sodium.crypto_sign_keypair(publicKey, secretKey);
  // Built and signed before the clock starts: [index u32][random msgId and body][signature].
  const frames = new Array(n);
  for (let i = 0; i < n; i++) {
    const f = Buffer.allocUnsafe(ENVELOPE_BYTES + SIG);
    sodium.randombytes_buf(f.subarray(0, ENVELOPE_BYTES));
    f.writeUInt32BE(i, 0);
    sodium.crypto_sign_detached(f.subarray(ENVELOPE_BYTES), f.subarray(0, ENVELOPE_BYTES), secretKey);
    frames[i] = f;
  }
  const child = spawn(
    process.execPath,
    [new URL(import.meta.url).pathname, 'relay', publicKey.toString('hex')],
    {
      stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
    },
  );
  const port = await new Promise((resolve) => {
    child.stdout.once('data', (d) => resolve(JSON.parse(String(d)).port));
  });
  const require = (await import('node:module')).createRequire(import.meta.url);
  const b = new Worker(RECEIVER, {
    eval: true,
    workerData: {
      port,
      publicKey: publicKey.toString('hex'),
      envelopeBytes: ENVELOPE_BYTES,
      sodium: require.resolve('sodium-native'),
      ws: require.resolve('ws'),
    },
  });
  // B failing (a bad signature, a lost connection) ends the run with the error, relay included.
  const reap = () => child.kill('SIGKILL');
  process.once('exit', reap);
  let failB;
  const bFailed = new Promise((_, reject) => {
    failB = reject;
  });
  b.on('error', (e) => failB(e));
  await Promise.race([new Promise((r) => b.once('message', r)), bFailed]);
  const a = new WebSocket(`ws://127.0.0.1:${port}/send`);
  await new Promise((r) => a.once('open', r));

  const sentAt = new Float64Array(n);
  const latency = [];
  const seen = new Uint8Array(n);
  let duplicated = 0;
  let received = 0;
  let acked = 0;
  let next = 0;
  const cpu0 = process.cpuUsage();
  const done = new Promise((resolve) => {
    b.on('message', (rows) => {
      for (let k = 0; k < rows.length; k += 2) {
        const i = rows[k];
        if (seen[i] === 1) duplicated++;
        seen[i] = 1;
        latency.push(rows[k + 1] - sentAt[i]);
        received++;
      }
      if (received === n && acked === n) resolve();
    });
    a.on('message', () => {
      acked++;
      if (next < n) send();
      if (received === n && acked === n) resolve();
    });
  });
  const send = () => {
    sentAt[next] = performance.timeOrigin + performance.now();
    a.send(frames[next], { binary: true });
    next++;
  };
  const started = performance.now();
  while (next < Math.min(inflight, n)) send();
  await Promise.race([done, bFailed]);
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpu0);
  child.send('stats');
  const stats = await new Promise((r) => child.once('message', r));
  a.close();
  await b.terminate();
  await new Promise((r) => child.once('exit', r));
  process.off('exit', reap);
  latency.sort((x, y) => x - y);
  const pct = (p) => latency[Math.min(latency.length - 1, Math.floor((p / 100) * latency.length))];
  return {
    workload: 'W1-floor',
    n,
    accepted_per_s: n / seconds,
    delivered_per_s: received / seconds,
    p50_ms: pct(50),
    p95_ms: pct(95),
    p99_ms: pct(99),
    lost: n - seen.reduce((s, v) => s + v, 0),
    duplicated,
    server_rss_mb: stats.rssMb,
    server_cpu_s: stats.cpuS,
    batches: stats.batches,
    commit_ms: stats.commitMs,
    client_cpu_s: (cpu.user + cpu.system) / 1e6,
    store: 'sqlite',
    nodes: 1,
    node: process.version,
    cores: (await import('node:os')).availableParallelism(),
  };
}

if (process.argv[2] === 'relay') await relay();
else await load();
