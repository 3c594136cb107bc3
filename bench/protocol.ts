/**
 * Protocol benchmarks: Merkle proofs from stored hashes at 10^3, 10^5, 10^7 leaves against the
 * floor (hashing the path directly), event encode/decode, and raw SHA-256 on the same run.
 * Run: node --import tsx bench/protocol.ts   (or npm run bench)
 */
import { createHash, randomBytes } from 'node:crypto';
import { sha256 } from '@noble/hashes/sha2.js';
import { commitEvent, decodeEvent, encodeEvent, type EventId } from '../packages/protocol/src/index.ts';
import {
  consistencyProof,
  inclusionProof,
  nodeHash,
  rootAt,
  verifyConsistency,
  verifyInclusion,
} from '../packages/protocol/src/transcript/merkle.ts';

type Row = Record<string, number | string>;

/**
 * ms of this process's CPU per op (user + system): on a shared 2-core machine, wall time measures
 * the neighbours as much as the code. Everything here is single-threaded, so on an idle machine
 * CPU time and wall time agree; ratios in one run are unaffected either way.
 */
function time(n: number, fn: (i: number) => void): number {
  for (let i = 0; i < Math.min(n, 10_000); i++) fn(i); // warm up: measure the optimized code
  const t0 = process.cpuUsage();
  for (let i = 0; i < n; i++) fn(i);
  const t = process.cpuUsage(t0);
  return (t.user + t.system) / 1000 / n; // ms per op
}

/** A stored tree: one Uint8Array per level holding every complete node (as a log store keeps them). */
function buildLevels(n: number): Uint8Array[][] | Uint8Array[] {
  const levels: Uint8Array[] = [];
  let level = new Uint8Array(randomBytes(n * 32));
  levels.push(level);
  let count = n;
  const buf = Buffer.alloc(65);
  buf[0] = 1;
  while (count > 1) {
    const next = Math.floor(count / 2);
    const up = new Uint8Array(next * 32);
    for (let i = 0; i < next; i++) {
      buf.set(level.subarray(i * 64, i * 64 + 64), 1);
      up.set(createHash('sha256').update(buf).digest(), i * 32);
    }
    levels.push(up);
    level = up;
    count = next;
  }
  return levels;
}

export function benchProtocol(): Row[] {
  const rows: Row[] = [];
  const kib = new Uint8Array(randomBytes(1024));
  const shaMs = time(50_000, () => sha256(kib));
  rows.push({
    bench: 'sha256 1 KiB (noble)',
    per_s: Math.round(1000 / shaMs),
    us: +(shaMs * 1000).toFixed(2),
  });

  // The event codec first: the Merkle runs leave hundreds of MB of tree levels on the heap.
  const text = 'x'.repeat(1000);
  const ev = {
    v: 1 as const,
    kind: 'message' as const,
    id: 'e_AAAAAAAAAAAAAAAAAAAAAA' as EventId,
    at: 1_800_000_000_000,
    text,
  };
  const encMs = time(50_000, () => encodeEvent(ev));
  const bytes = encodeEvent(ev);
  const decMs = time(50_000, () => {
    if (!decodeEvent(bytes).ok) throw new Error('decode');
  });
  rows.push({
    bench: 'event 1 KiB encode+decode',
    per_s: Math.round(1000 / (encMs + decMs)),
    encode_us: +(encMs * 1000).toFixed(2),
    decode_us: +(decMs * 1000).toFixed(2),
  });
  const salt = new Uint8Array(16);
  const comMs = time(50_000, () => commitEvent(ev, salt));
  rows.push({ bench: 'event commitment', per_s: Math.round(1000 / comMs), us: +(comMs * 1000).toFixed(2) });

  for (const n of [1_000, 100_000, 10_000_000]) {
    const levels = buildLevels(n) as Uint8Array[];
    let reads = 0;
    const read = (level: number, index: number) => {
      reads++;
      const l = levels[level] as Uint8Array;
      return l.subarray(index * 32, index * 32 + 32);
    };
    const root = rootAt(n, read);
    const idx = (i: number) => (i * 7_919) % n;
    const genMs = time(2_000, (i) => inclusionProof(idx(i), n, read));
    reads = 0; // counted on a pass of its own: time() also runs warm-up calls
    for (let i = 0; i < 1_000; i++) inclusionProof(idx(i), n, read);
    const readsPerProof = reads / 1_000;
    const proofs = Array.from({ length: 256 }, (_, i) => inclusionProof(idx(i), n, read));
    const leaves = Array.from({ length: 256 }, (_, i) => read(0, idx(i)).slice());
    const verMs = time(5_000, (i) => {
      if (
        !verifyInclusion(
          leaves[i % 256] as Uint8Array,
          idx(i % 256),
          n,
          proofs[i % 256] as Uint8Array[],
          root,
        )
      )
        throw new Error('bad proof');
    });
    // The floor: hashing the same number of path nodes directly.
    const path = proofs[0] as Uint8Array[];
    const floorMs = time(5_000, () => {
      let h = leaves[0] as Uint8Array;
      for (const p of path) h = nodeHash(h, p);
      return h;
    });
    const m = Math.floor(n / 3) + 1;
    const r1 = rootAt(m, read);
    const cGenMs = time(1_000, () => consistencyProof(m, n, read));
    const cp = consistencyProof(m, n, read);
    const cVerMs = time(3_000, () => {
      if (!verifyConsistency(m, n, cp, r1, root)) throw new Error('bad consistency');
    });
    rows.push({
      bench: `merkle n=${n}`,
      path_nodes: path.length,
      incl_gen_us: +(genMs * 1000).toFixed(2),
      stored_reads_per_proof: +readsPerProof.toFixed(1),
      incl_verify_us: +(verMs * 1000).toFixed(2),
      floor_us: +(floorMs * 1000).toFixed(2),
      verify_over_floor: +(verMs / floorMs).toFixed(2),
      cons_gen_us: +(cGenMs * 1000).toFixed(2),
      cons_verify_us: +(cVerMs * 1000).toFixed(2),
    });
  }

  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of benchProtocol()) console.log(JSON.stringify(r));
}
