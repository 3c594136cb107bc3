import { type CiphersuiteName, defaultCryptoProvider } from 'ts-mls';
import { describe, expect, it } from 'vitest';
import { utf8 } from '../../src/bytes/index.ts';
import {
  decodeDeviceCertificate,
  encodeDeviceCertificate,
  issueDeviceCertificate,
  type Role,
  verifyDeviceCertificate,
} from '../../src/identity/certificate.ts';
import { keyPairFromSeed } from '../../src/identity/keys.ts';
import { partyIdFromKey } from '../../src/ids.ts';
import {
  encodeKeyPackage,
  generateDeviceKeyPackage,
  type KeyPackageBundle,
} from '../../src/group/key-package.ts';
import {
  COMPAT_SUITE,
  DEFAULT_SUITE,
  type GroupConfig,
  type GroupPolicy,
  GroupSession,
  suiteImpl,
} from '../../src/group/session.ts';
import { peekMlsHeader } from '../../src/group/header.ts';

const NOW = 1_800_000_000_000;
let seedCounter = 1;
const seed = () => new Uint8Array(32).fill(seedCounter++ % 250);

interface Party {
  root: ReturnType<typeof keyPairFromSeed>;
  devices: Device[];
}
interface Device {
  party: Party;
  role: Role;
  key: ReturnType<typeof keyPairFromSeed>;
  cert: Uint8Array;
}

function party(roles: Role[]): Party {
  const p: Party = { root: keyPairFromSeed(seed()), devices: [] };
  for (const role of roles) {
    const key = keyPairFromSeed(seed());
    const cert = issueDeviceCertificate({
      rootSecretKey: p.root.secretKey,
      rootPublicKey: p.root.publicKey,
      devicePublicKey: key.publicKey,
      name: role,
      role,
      notBefore: NOW - 1000,
      notAfter: NOW + 1e9,
    });
    p.devices.push({ party: p, role, key, cert: encodeDeviceCertificate(cert) });
  }
  return p;
}

/** The channel rules in miniature: certificates of known parties; admins/principals add and remove their own party. */
function policy(parties: Party[], creatorMayAddOthers = true): GroupPolicy {
  const lookup = (identity: Uint8Array) => {
    const c = decodeDeviceCertificate(identity);
    if (!c.ok) return undefined;
    const p = parties.find((x) => c.value.body.party === partyIdFromKey(x.root.publicKey));
    if (p === undefined) return undefined;
    return verifyDeviceCertificate(c.value, { rootPublicKey: p.root.publicKey, now: NOW }).ok
      ? c.value.body
      : undefined;
  };
  return {
    credential: (identity, sigKey) => {
      const b = lookup(identity);
      return b !== undefined && Buffer.compare(Buffer.from(b.devicePublicKey), Buffer.from(sigKey)) === 0;
    },
    commit: (committer, added, removed) => {
      const c = lookup(committer);
      if (c === undefined) return false;
      const others = [...added, ...removed].map(lookup);
      if (others.some((o) => o === undefined)) return false;
      const own = others.every((o) => o?.party === c.party);
      if (!own && !(creatorMayAddOthers && removed.length === 0)) return false;
      return c.role === 'admin' || c.role === 'principal';
    },
  };
}

async function kp(d: Device, suite: CiphersuiteName): Promise<KeyPackageBundle> {
  const impl = await suiteImpl(suite, defaultCryptoProvider);
  return generateDeviceKeyPackage({
    certificate: d.cert,
    deviceSecretKey: d.key.secretKey,
    devicePublicKey: d.key.publicKey,
    nowSeconds: Math.floor(Date.now() / 1000),
    impl,
  });
}

async function channel(suite: CiphersuiteName, parties: Party[]) {
  const cfg: GroupConfig = { suite, crypto: defaultCryptoProvider, policy: policy(parties) };
  const all = parties.flatMap((p) => p.devices);
  const [creator, ...rest] = all as [Device, ...Device[]];
  const creatorSession = await GroupSession.create(cfg, utf8('c_test'), await kp(creator, suite));
  const bundles = await Promise.all(rest.map((d) => kp(d, suite)));
  const c = await creatorSession.commit({ add: bundles.map((b) => encodeKeyPackage(b.publicPackage)) });
  const sessions = [creatorSession];
  for (const b of bundles)
    sessions.push((await GroupSession.join(cfg, c.welcome as Uint8Array, [b])).session);
  return { cfg, sessions, devices: all };
}

describe('MLS channel of certified devices', () => {
  it('3 parties × 3 devices: everyone decrypts; a removed device can neither read nor post', {
    timeout: 120_000,
  }, async () => {
    const parties = [
      party(['principal', 'staff', 'staff']),
      party(['principal', 'negotiator', 'staff']),
      party(['admin', 'observer', 'staff']),
    ];
    const { sessions } = await channel(COMPAT_SUITE, parties);
    expect(sessions).toHaveLength(9);
    const epochs = new Set(sessions.map((s) => s.epoch));
    expect(epochs.size).toBe(1);
    const msg = await (sessions[3] as GroupSession).encrypt(utf8('points from B'), utf8('aad'));
    for (const [i, s] of sessions.entries()) {
      if (i === 3) continue;
      const r = await s.process(msg);
      expect(r.kind === 'application' && new TextDecoder().decode(r.plaintext)).toBe('points from B');
    }
    // A's principal (session 0) removes A's staff device (leaf 2).
    const removed = sessions[2] as GroupSession;
    const c = await (sessions[0] as GroupSession).commit({ removeLeaves: [2] });
    for (const [i, s] of sessions.entries()) {
      if (i === 0) continue;
      const r = await s.process(c.commit);
      expect(r.kind).toBe('commit');
      if (i === 2) expect(r.kind === 'commit' && r.removedSelf).toBe(true);
    }
    const after = await (sessions[0] as GroupSession).encrypt(utf8('new instructions'), utf8('aad'));
    await expect(removed.process(after)).rejects.toMatchObject({ code: 'MLS_REMOVED' });
    await expect(removed.encrypt(utf8('still here'), utf8('aad'))).rejects.toMatchObject({
      code: 'MLS_REMOVED',
    });
    const r = await (sessions[4] as GroupSession).process(after);
    expect(r.kind).toBe('application');
  });

  it('default suite (X-Wing hybrid KEM): tamper, wrong group, replay, future epoch and restore each behave', {
    timeout: 60_000,
  }, async () => {
    const parties = [party(['principal']), party(['principal'])];
    const { cfg, sessions } = await channel(DEFAULT_SUITE, parties);
    const [a, b] = sessions as [GroupSession, GroupSession];
    const m = await a.encrypt(utf8('hello'), utf8('d_a:e_1'));
    expect(peekMlsHeader(m)).toMatchObject({
      ok: true,
      value: { epoch: a.epoch, contentType: 'application' },
    });
    const tampered = m.slice();
    tampered[tampered.length - 3] = (tampered[tampered.length - 3] as number) ^ 1;
    await expect(b.process(tampered)).rejects.toMatchObject({ code: 'MLS_DECRYPT_FAILED' });
    const ok = await b.process(m);
    expect(ok.kind === 'application' && ok.authenticatedData).toEqual(utf8('d_a:e_1'));
    await expect(b.process(m)).rejects.toMatchObject({ code: 'MLS_DUPLICATE' });
    // another group
    const other = await channel(DEFAULT_SUITE, [party(['principal']), party(['principal'])]);
    const foreign = await (other.sessions[0] as GroupSession).encrypt(utf8('x'), utf8('x'));
    // same group id in the test helper: different groups with the same id fail to decrypt instead
    await expect(b.process(foreign)).rejects.toMatchObject({
      code: expect.stringMatching(/GROUP_MISMATCH|MLS_DECRYPT_FAILED/),
    });
    // future epoch: a commits, b has not processed it yet
    const c = await a.commit({});
    const future = await a.encrypt(utf8('after commit'), utf8('x'));
    await expect(b.process(future)).rejects.toMatchObject({ code: 'EPOCH_FUTURE' });
    // restore b from its exported state, then catch up and keep decrypting
    const b2 = await GroupSession.restore(cfg, b.exportState());
    expect((await b2.process(c.commit)).kind).toBe('commit');
    const again = await b2.process(future);
    expect(again.kind === 'application' && new TextDecoder().decode(again.plaintext)).toBe('after commit');
    // and encrypt back
    const reply = await b2.encrypt(utf8('reply'), utf8('x'));
    expect((await a.process(reply)).kind).toBe('application');
  });

  it('refuses a commit by a non-admin, and a party adding devices of another party later', {
    timeout: 60_000,
  }, async () => {
    const parties = [party(['principal', 'staff']), party(['principal', 'staff'])];
    const { sessions, devices } = await channel(COMPAT_SUITE, parties);
    const staffA = sessions[1] as GroupSession;
    await expect(staffA.commit({ removeLeaves: [0] })).rejects.toMatchObject({ code: 'ROLE_FORBIDDEN' });
    // B's principal tries to remove A's staff device: the policy refuses (not its own party).
    const bPrincipal = sessions[2] as GroupSession;
    await expect(bPrincipal.commit({ removeLeaves: [1] })).rejects.toMatchObject({ code: 'ROLE_FORBIDDEN' });
    // A device whose credential is not certified by a known party is refused.
    const stranger = party(['principal']).devices[0] as Device;
    const strangerKp = await kp(stranger, COMPAT_SUITE);
    await expect(
      (sessions[0] as GroupSession).commit({ add: [encodeKeyPackage(strangerKp.publicPackage)] }),
    ).rejects.toMatchObject({
      code: 'MLS_CREDENTIAL_REJECTED',
    });
    expect(devices).toHaveLength(4);
  });
});
