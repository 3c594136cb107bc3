/** The SDK's MLS groups: @backchannel/protocol/group sessions with this device's policy. */
import {
  type DeviceCertificate,
  type DeviceId,
  decodeDeviceCertificate,
  type Role,
} from '@backchannel/protocol';
import {
  DEFAULT_SUITE,
  decodeKeyPackage,
  decodePrivateKeyPackage,
  encodeKeyPackage,
  encodePrivateKeyPackage,
  type GroupConfig,
  type GroupPolicy,
  GroupSession,
  generateDeviceKeyPackage,
  type KeyPackageBundle,
  suiteImpl,
} from '@backchannel/protocol/group';
import type { CiphersuiteName, CryptoProvider } from 'ts-mls';
import type { CertificateBook } from './context.ts';
import { ClientError } from './errors.ts';
import { encodeDeviceCertificate } from '@backchannel/protocol';
import type { DeviceIdentity } from './identity.ts';
import type { GeneratedKeyPackage, MlsFactory, MlsGroup, Processed } from './mls.ts';

const MANAGERS: readonly Role[] = ['admin', 'principal', 'negotiator'];

function certOf(identity: Uint8Array): DeviceCertificate | undefined {
  const c = decodeDeviceCertificate(identity);
  return c.ok ? c.value : undefined;
}

/**
 * Membership rules every member enforces on every commit: credentials must be certificates
 * of a party this device knows, valid now, bound to the leaf's signature key; only an admin,
 * principal or negotiator changes membership; removals within the committer's own party (or
 * itself), or of another party's devices its root revoked; additions of the committer's own
 * party's devices, or of another party's while it has none left in the group (the outreach, the
 * re-seating of a party whose devices were all revoked).
 */
export function devicePolicy(certs: CertificateBook, now: () => number): GroupPolicy {
  return {
    credential(identity, signaturePublicKey) {
      const cert = certOf(identity);
      if (cert === undefined || certs.check(cert, now()) !== undefined) return false;
      const pk = cert.body.devicePublicKey;
      return pk.length === signaturePublicKey.length && pk.every((b, i) => b === signaturePublicKey[i]);
    },
    commit(committer, added, removed, members) {
      const c = certOf(committer);
      if (c === undefined) return false;
      if (added.length === 0 && removed.length === 0) return true; // self-update
      const removedCerts = removed.map(certOf);
      if (removedCerts.every((r) => r?.body.device === c.body.device) && added.length === 0) return true; // leaving
      if (!MANAGERS.includes(c.body.role)) return false;
      // Another party's devices only once its root revoked them (a revocation this device holds:
      // Channel fetches the party's revocations before it processes such a commit), whatever the
      // revocation's date: this device's clock may run behind the revoker's.
      const removable = (r: DeviceCertificate | undefined) =>
        r !== undefined &&
        (r.body.party === c.body.party || certs.hasRevocation(r.body.party, r.body.device));
      if (!removedCerts.every(removable)) return false;
      // As the relay (channels/rules.ts): a party adds its own devices; another party's only
      // while that party has no device left in the group after the removals (the outreach, and
      // the re-seating of a party whose devices there were all revoked). Each added credential is
      // checked (valid now, not revoked) by credential() as MLS validates the key package.
      const leaving = new Set(removedCerts.map((r) => r?.body.device));
      const present = new Set(
        members.flatMap((m) => {
          const mc = certOf(m);
          return mc === undefined || leaving.has(mc.body.device) ? [] : [mc.body.party];
        }),
      );
      return added.every((a) => {
        const p = certOf(a)?.body.party;
        return p !== undefined && (p === c.body.party || !present.has(p));
      });
    },
  };
}

class SessionGroup implements MlsGroup {
  readonly #s: GroupSession;
  constructor(s: GroupSession) {
    this.#s = s;
  }
  get epoch(): number {
    return this.#s.epoch;
  }
  get groupId(): Uint8Array {
    return this.#s.groupId;
  }
  members() {
    return this.#s.members().flatMap((m) => {
      const c = certOf(m.identity);
      return c === undefined ? [] : [{ device: c.body.device, certificate: c }];
    });
  }
  encrypt(plaintext: Uint8Array, authenticatedData: Uint8Array) {
    return this.#s.encrypt(plaintext, authenticatedData);
  }
  async process(mls: Uint8Array): Promise<Processed> {
    const r = await this.#s.process(mls);
    if (r.kind === 'application')
      return { kind: 'application', plaintext: r.plaintext, authenticatedData: r.authenticatedData };
    const ids = (xs: readonly Uint8Array[]) => xs.flatMap((x) => certOf(x)?.body.device ?? []) as DeviceId[];
    return {
      kind: 'commit',
      epoch: r.epoch,
      added: ids(r.added),
      removed: ids(r.removed),
      removedSelf: r.removedSelf,
    };
  }
  async add(keyPackages: readonly Uint8Array[]) {
    const r = await this.#s.commit({ add: keyPackages });
    if (r.welcome === undefined) throw new ClientError('INVALID_ARGUMENT', 'an add produced no Welcome');
    return { commit: r.commit, welcome: r.welcome };
  }
  async remove(devices: readonly DeviceId[]) {
    return { commit: (await this.#s.commit({ removeLeaves: this.#leavesOf(devices) })).commit };
  }
  async replace(devices: readonly DeviceId[], keyPackages: readonly Uint8Array[]) {
    const r = await this.#s.commit({ removeLeaves: this.#leavesOf(devices), add: keyPackages });
    if (r.welcome === undefined) throw new ClientError('INVALID_ARGUMENT', 'an add produced no Welcome');
    return { commit: r.commit, welcome: r.welcome };
  }
  #leavesOf(devices: readonly DeviceId[]): number[] {
    const leaves = this.#s
      .members()
      .filter((m) => devices.includes(certOf(m.identity)?.body.device as DeviceId))
      .map((m) => m.leafIndex);
    if (leaves.length !== devices.length)
      throw new ClientError('INVALID_ARGUMENT', 'a device to remove is not in the group');
    return leaves;
  }
  async selfUpdate() {
    return { commit: (await this.#s.commit({})).commit };
  }
  exportState() {
    return this.#s.exportState();
  }
  epochAuthenticator() {
    return this.#s.epochAuthenticator();
  }
}

export interface MlsFactoryOptions {
  readonly identity: DeviceIdentity;
  readonly certs: CertificateBook;
  readonly crypto: CryptoProvider;
  readonly now: () => number;
  readonly suite?: CiphersuiteName;
}

export function createMlsFactory(o: MlsFactoryOptions): MlsFactory {
  const cfg: GroupConfig = {
    suite: o.suite ?? DEFAULT_SUITE,
    crypto: o.crypto,
    policy: devicePolicy(o.certs, o.now),
  };
  const bundle = (k: GeneratedKeyPackage): KeyPackageBundle => {
    const pub = decodeKeyPackage(k.publicBytes);
    const priv = decodePrivateKeyPackage(k.privateBytes);
    if (!pub.ok || !priv.ok) throw new ClientError('STORE_CORRUPT', 'a stored key package does not decode');
    return { publicPackage: pub.value, privatePackage: priv.value };
  };
  return {
    async generateKeyPackage() {
      const b = await generateDeviceKeyPackage({
        certificate: encodeDeviceCertificate(o.identity.certificate),
        deviceSecretKey: o.identity.deviceSecretKey,
        devicePublicKey: o.identity.devicePublicKey,
        nowSeconds: Math.floor(o.now() / 1000),
        impl: await suiteImpl(cfg.suite, cfg.crypto),
      });
      return {
        publicBytes: encodeKeyPackage(b.publicPackage),
        privateBytes: encodePrivateKeyPackage(b.privatePackage),
      };
    },
    async create(groupId, own) {
      return new SessionGroup(await GroupSession.create(cfg, groupId, bundle(own)));
    },
    async join(welcome, candidates) {
      const r = await GroupSession.join(cfg, welcome, candidates.map(bundle));
      return { group: new SessionGroup(r.session), used: r.used };
    },
    async restore(state) {
      return new SessionGroup(await GroupSession.restore(cfg, state));
    },
  };
}
