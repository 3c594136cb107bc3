/**
 * End-to-end encryption benchmarks (CPU time of this process): 1 KiB application messages sealed (MLS encrypt + signed
 * envelope) and opened (verify + MLS decrypt + commitment check) against the same run's floor
 * (AES-GCM + one Ed25519 signature + one verification on node:crypto), and add/remove commit
 * cost for groups of 2, 8, 32 and 128 devices. A lower-bound row per suite times ts-mls alone plus
 * one bare signature and verification: what seal+open would cost if our own code were free.
 * Run: node --import tsx bench/e2ee.ts
 */
import { createCipheriv, createHash, generateKeyPairSync, randomBytes, sign, verify } from 'node:crypto';
import {
  ed25519Backend,
  ed25519Node,
  nodeMlsCrypto,
  sha256Node,
} from '../packages/client/src/sdk/mls-crypto.node.ts';
import {
  decodeEnvelope,
  encodeDeviceCertificate,
  type EventId,
  issueDeviceCertificate,
  keyPairFromSeed,
  openSealedEvent,
  sealEvent,
  type SignatureSuite,
  signEnvelope,
  utf8,
  verifyEnvelope,
} from '../packages/protocol/src/index.ts';
import {
  COMPAT_SUITE,
  DEFAULT_SUITE,
  encodeKeyPackage,
  type GroupConfig,
  GroupSession,
  generateDeviceKeyPackage,
  suiteImpl,
} from '../packages/protocol/src/group/index.ts';

type Row = Record<string, number | string>;
/** This process's CPU time in ms (user + system): robust to other work on a shared machine. */
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const suite: SignatureSuite = { sign: ed25519Node.sign, verify: ed25519Node.verify };
const allow = { credential: () => true, commit: () => true };

function device(i: number) {
  const root = keyPairFromSeed(new Uint8Array(32).fill(200));
  const key = keyPairFromSeed(new Uint8Array(createHash('sha256').update(`bench device ${i}`).digest()));
  const cert = issueDeviceCertificate({
    rootSecretKey: root.secretKey,
    rootPublicKey: root.publicKey,
    devicePublicKey: key.publicKey,
    name: `d${i}`,
    role: 'principal',
    notBefore: 0,
    notAfter: Date.now() + 1e10,
  });
  return { key, cert: encodeDeviceCertificate(cert), id: cert.body.device };
}

async function group(cfg: GroupConfig, n: number) {
  const impl = await suiteImpl(cfg.suite, cfg.crypto);
  const kp = async (i: number) => {
    const d = device(i);
    return generateDeviceKeyPackage({
      certificate: d.cert,
      deviceSecretKey: d.key.secretKey,
      devicePublicKey: d.key.publicKey,
      nowSeconds: Math.floor(Date.now() / 1000),
      impl,
    });
  };
  const a = await GroupSession.create(cfg, utf8('c_bench'), await kp(0));
  const bKp = await kp(1);
  const others = await Promise.all(Array.from({ length: n - 2 }, (_, i) => kp(i + 2)));
  const members = [bKp, ...others];
  const c = await a.commit({ add: members.map((k) => encodeKeyPackage(k.publicPackage)) });
  const welcome = c.welcome as Uint8Array;
  const { session: b } = await GroupSession.join(cfg, welcome, [bKp]);
  /** Joins the member at `leaf` (leaves 1..n-1 hold the added devices in order). */
  const join = async (leaf: number) =>
    (await GroupSession.join(cfg, welcome, [members[leaf - 1] as (typeof members)[number]])).session;
  return { a, b, kp, join };
}

/**
 * Brings the group to the state periodic self-updates keep it in (the SDK updates each device's
 * leaf every 7 days or 1,000 sent messages): one member in each subtree on the committer's
 * copath (leaves 1, 2, 4, …) has committed a key update, so those subtree roots hold keys and an
 * update path encrypts to one node per level instead of to every leaf below a blank node.
 */
async function refreshCopath(
  a: GroupSession,
  n: number,
  join: (leaf: number) => Promise<GroupSession>,
): Promise<void> {
  const sessions: GroupSession[] = [a];
  for (let leaf = 1; leaf < n; leaf *= 2) {
    const m = await join(leaf);
    // The newcomer joined at the first epoch: bring it up to date with the updates so far.
    for (const c of updates) await m.process(c);
    const { commit } = await m.commit({});
    for (const s of sessions) await s.process(commit);
    updates.push(commit);
    sessions.push(m);
  }
  updates.length = 0;
}
const updates: Uint8Array[] = [];

/** `commits: false` measures sealing only (for profiling). */
export async function benchE2ee(opts: { commits?: boolean } = {}): Promise<Row[]> {
  const rows: Row[] = [];
  // Floor: AES-128-GCM over 1 KiB + one Ed25519 sign + one verify (node:crypto, cached keys).
  const key = randomBytes(16);
  const kib = randomBytes(1024);
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const N = 3000;
  const WARMUP = 300;
  let t0 = cpuMs();
  for (let i = 0; i < N; i++) {
    const c = createCipheriv('aes-128-gcm', key, randomBytes(12));
    const ct = Buffer.concat([c.update(kib), c.final(), c.getAuthTag()]);
    const s = sign(null, ct, privateKey);
    verify(null, ct, publicKey, s);
  }
  const floorUs = ((cpuMs() - t0) * 1000) / N;
  rows.push({ bench: 'floor: AES-GCM 1 KiB + Ed25519 sign + verify', us: +floorUs.toFixed(1) });
  // The same floor with the Ed25519 the SDK actually uses on Node (libsodium when it loads), so
  // the ratio can be read both ways: against the issue's node:crypto floor and against our own.
  const seed = randomBytes(32);
  const fast = keyPairFromSeed(new Uint8Array(seed));
  t0 = cpuMs();
  for (let i = 0; i < N; i++) {
    const c = createCipheriv('aes-128-gcm', key, randomBytes(12));
    const ct = Buffer.concat([c.update(kib), c.final(), c.getAuthTag()]);
    ed25519Node.verify(ed25519Node.sign(ct, fast.secretKey), ct, fast.publicKey);
  }
  const sdkFloorUs = ((cpuMs() - t0) * 1000) / N;
  rows.push({
    bench: `floor with the SDK's Ed25519 (${ed25519Backend})`,
    us: +sdkFloorUs.toFixed(1),
  });

  for (const name of [COMPAT_SUITE, DEFAULT_SUITE]) {
    const cfg: GroupConfig = { suite: name, crypto: nodeMlsCrypto, policy: allow };
    const { a, b } = await group(cfg, 2);
    const sender = device(0);
    const text = 'x'.repeat(1000);
    const seal = async (count: number, from: number): Promise<Uint8Array[]> => {
      const wires: Uint8Array[] = [];
      for (let i = from; i < from + count; i++) {
        const id = `e_${String(i).padStart(22, 'A')}` as EventId;
        const event = { v: 1 as const, kind: 'message' as const, id, at: 1, text };
        const { plaintext, commitment } = sealEvent(event, randomBytes(16), sha256Node);
        const mls = await a.encrypt(plaintext, utf8(id));
        wires.push(
          signEnvelope(
            {
              v: 1,
              channel: 'c_AAAAAAAAAAAAAAAAAAAAAA' as never,
              sender: sender.id,
              msgId: id,
              epoch: a.epoch,
              kind: 'application',
              mls,
              commitment,
              sentAt: 1,
            },
            sender.key.secretKey,
            suite,
          ).wire,
        );
      }
      return wires;
    };
    const open = async (wires: readonly Uint8Array[]): Promise<void> => {
      for (const w of wires) {
        const env = decodeEnvelope(w);
        if (!env.ok || !verifyEnvelope(env.value, sender.key.publicKey, suite)) throw new Error('verify');
        const r = await b.process(env.value.body.mls);
        if (
          r.kind !== 'application' ||
          !openSealedEvent(r.plaintext, env.value.body.commitment as Uint8Array, sha256Node).ok
        )
          throw new Error('open');
      }
    };
    // Warm-up (not timed): otherwise the first suite measured also pays for compiling the path.
    await open(await seal(WARMUP, N));
    t0 = cpuMs();
    const wires = await seal(N, 0);
    const sealUs = ((cpuMs() - t0) * 1000) / N;
    t0 = cpuMs();
    await open(wires);
    const openUs = ((cpuMs() - t0) * 1000) / N;
    rows.push({
      bench: `seal+open 1 KiB, ${name}`,
      seal_per_s: Math.round(1e6 / sealUs),
      open_per_s: Math.round(1e6 / openUs),
      seal_us: +sealUs.toFixed(1),
      open_us: +openUs.toFixed(1),
      over_floor: +((sealUs + openUs) / floorUs).toFixed(2),
      over_sdk_floor: +((sealUs + openUs) / sdkFloorUs).toFixed(2),
      wire_bytes: (wires[0] as Uint8Array).length,
    });
    // Lower bound for the row above: ts-mls's encrypt + process alone on the same plaintext size,
    // plus one bare Ed25519 sign and verify over the envelope's size and the two commitment
    // hashes, i.e. our envelope, event codec and checks at zero cost.
    const plain = randomBytes(1100);
    const ad = utf8(`e_${'A'.repeat(22)}`);
    const envBytes = randomBytes((wires[0] as Uint8Array).length);
    const mlsWires: Uint8Array[] = [];
    t0 = cpuMs();
    for (let i = 0; i < N; i++) mlsWires.push(await a.encrypt(plain, ad));
    for (const w of mlsWires) await b.process(w);
    for (let i = 0; i < N; i++) {
      suite.verify(suite.sign(envBytes, sender.key.secretKey), envBytes, sender.key.publicKey);
      sha256Node(plain);
      sha256Node(plain);
    }
    const boundUs = ((cpuMs() - t0) * 1000) / N;
    rows.push({
      bench: `lower bound: ts-mls encrypt+process + 1 sign/verify, ${name}`,
      us: +boundUs.toFixed(1),
      over_floor: +(boundUs / floorUs).toFixed(2),
    });
  }

  const cfg: GroupConfig = { suite: DEFAULT_SUITE, crypto: nodeMlsCrypto, policy: allow };
  for (const n of opts.commits === false ? [] : [2, 8, 32, 128]) {
    const row: Row = { bench: `commit in a group of ${n}` };
    for (const refreshed of [false, true]) {
      const { a, kp, join } = await group(cfg, n);
      if (refreshed) await refreshCopath(a, n, join);
      const extra = await kp(1000 + n);
      t0 = cpuMs();
      await a.commit({ add: [encodeKeyPackage(extra.publicPackage)] });
      const addMs = cpuMs() - t0;
      const last = a.members().at(-1)?.leafIndex as number;
      t0 = cpuMs();
      await a.commit({ removeLeaves: [last] });
      const removeMs = cpuMs() - t0;
      const tag = refreshed ? '' : '_fresh';
      row[`add${tag}_ms`] = +addMs.toFixed(1);
      row[`remove${tag}_ms`] = +removeMs.toFixed(1);
    }
    rows.push(row);
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await benchE2ee()) console.log(JSON.stringify(r));
}
