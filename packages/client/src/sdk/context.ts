/** Everything a channel engine needs from its device, passed in (no globals). */
import {
  type DeviceCertificate,
  type DeviceId,
  decodeContactCard,
  decodeDeviceCertificate,
  decodeCanonical,
  decodeRevocation,
  encodeCanonical,
  encodeRevocation,
  type PartyId,
  type Role,
  constantTimeEqual,
  nobleEd25519,
  type Revocation,
  toBase64url,
  type Sha256,
  type SignatureSuite,
  verifyDeviceCertificate,
  verifyRevocation,
} from '@backchannel/protocol';
import { sha256 } from '@noble/hashes/sha2.js';
import { ClientError } from './errors.ts';
import type { DeviceIdentity } from './identity.ts';
import type { MlsFactory } from './mls.ts';
import type { RelayClient } from './relay-client.ts';
import type { ReceiptLedger } from './receipt-ledger.ts';
import type { LocalStore, OutboxItem } from './storage.ts';
import { keys } from './channel-record.ts';

export interface EngineContext {
  readonly store: LocalStore;
  readonly relay: RelayClient;
  readonly identity: DeviceIdentity;
  readonly mls: MlsFactory;
  readonly certs: CertificateBook;
  readonly now: () => number;
  readonly random: (n: number) => Uint8Array;
  /** Ed25519 backend (node:crypto in Node, noble in browsers). */
  readonly suite: SignatureSuite;
  /** SHA-256 backend for event commitments (node:crypto in Node, noble in browsers). */
  readonly sha256: Sha256;
  /** The relay's checkpoint key this device pinned on first contact (C2SP vkey string). */
  readonly relayKey: () => string | undefined;
  /**
   * Every relay key this device trusts: the pinned one first, then those it retired when the
   * relay rotated its key (a rotation statement signed by both): older checkpoints and receipts
   * carry them.
   */
  readonly relayKeys: () => readonly string[];
  /**
   * Asks the relay for a rotation statement from the pinned key; when one verifies, the device
   * moves to the new key (the old one stays trusted). True when it moved. Throws when the relay
   * cannot be reached.
   */
  readonly learnRelayRotation?: () => Promise<boolean>;
  /** Verifies a page's envelope signatures at once (Node: on worker threads); else one by one. */
  readonly verifier?: BatchVerifier;
  /** RFC 9162 leaf hash of a transcript entry (Node: node:crypto); default the protocol's. */
  readonly leafHash: (entry: Uint8Array) => Uint8Array;
  /** Holds the relay to its receipts for this device's own entries (receipt-ledger.ts). */
  readonly receipts?: ReceiptLedger;
  /** Called once sends are durably queued (a running outbox pass then posts them too). */
  readonly queued?: (items: readonly OutboxItem[]) => void;
}

/** One Ed25519 check: `signature` over `message` by `publicKey`. */
export interface SignatureCheck {
  readonly signature: Uint8Array;
  readonly message: Uint8Array;
  readonly publicKey: Uint8Array;
}

/**
 * Verifies many signatures at once, off the calling thread where it can; resolves one byte per
 * check, 1 for a valid signature. Must answer exactly as the device's SignatureSuite would.
 */
export interface BatchVerifier {
  verifyAll(checks: readonly SignatureCheck[]): Promise<Uint8Array>;
}

/**
 * A verifier that remembers results: certificates are checked on every event they sign, and
 * their (key, signature, message) never change. Keyed by all three, so nothing can be replayed.
 */
export function memoizedVerify(base: SignatureSuite, hash: Sha256 = sha256): SignatureSuite {
  const seen = new Map<string, boolean>();
  const b64 = toBase64url;
  return {
    sign: base.sign,
    verify(sig, msg, pk) {
      const key = `${b64(pk)}.${b64(sig)}.${b64(hash(msg))}`;
      let ok = seen.get(key);
      if (ok === undefined) {
        ok = base.verify(sig, msg, pk);
        if (seen.size > 10_000) seen.clear();
        seen.set(key, ok);
      }
      return ok;
    },
  };
}

/**
 * The device's book of other parties' root keys (from verified contact cards) and of device
 * certificates it has verified. Every sender is checked against it: signature, party, validity,
 * revocation.
 */
/** A device of a party as its root key has certified (and, if so, revoked) it. */
export interface PartyDevice {
  readonly device: DeviceId;
  readonly name: string;
  readonly role: Role;
  readonly notBefore: number;
  readonly notAfter: number;
  readonly state: 'active' | 'revoked' | 'expired' | 'not-yet-valid';
  /** For a revoked device: when its revocation takes effect, and the reason the admin gave. */
  readonly revokedAt?: number;
  readonly reason?: string;
}

export class CertificateBook {
  readonly #roots = new Map<PartyId, Uint8Array>();
  /** Each known party's display name, as its own signed contact card claims it. */
  readonly #names = new Map<PartyId, string>();
  readonly #certs = new Map<DeviceId, DeviceCertificate>();
  readonly #revocations = new Map<PartyId, Revocation[]>();
  /** Certificates whose party and signature verified, with the root key they verified under. */
  readonly #signed = new WeakMap<DeviceCertificate, Uint8Array>();
  readonly #store: LocalStore;
  readonly #relay: RelayClient;

  readonly #suite: SignatureSuite;

  constructor(
    store: LocalStore,
    relay: RelayClient,
    own: DeviceIdentity,
    suite: SignatureSuite = nobleEd25519,
  ) {
    this.#store = store;
    this.#relay = relay;
    this.#suite = memoizedVerify(suite);
    this.#roots.set(own.party, own.rootPublicKey);
    this.#names.set(own.party, own.partyName);
    this.#certs.set(own.device, own.certificate);
  }

  async load(): Promise<void> {
    for (const k of await this.#store.keys(keys.cardPrefix)) {
      const b = await this.#store.get(k);
      if (b === undefined) continue;
      const card = decodeContactCard(b);
      if (!card.ok) continue;
      this.#roots.set(card.value.body.party as PartyId, card.value.body.rootPublicKey);
      this.#names.set(card.value.body.party as PartyId, card.value.body.displayName);
      for (const c of card.value.body.devices) this.accept(c, Date.now());
    }
    for (const k of await this.#store.keys(keys.revocationsPrefix)) {
      const b = await this.#store.get(k);
      const list = b === undefined ? undefined : decodeCanonical(b);
      if (list === undefined || !list.ok || !Array.isArray(list.value)) continue;
      const party = k.slice(keys.revocationsPrefix.length) as PartyId;
      this.#revocations.set(
        party,
        list.value.flatMap((x) => {
          const r = decodeRevocation(x);
          return r.ok ? [r.value] : [];
        }),
      );
    }
  }

  rootKey(party: PartyId): Uint8Array | undefined {
    return this.#roots.get(party);
  }

  /**
   * The display name a party gives itself on its signed contact card (undefined for a party whose
   * card this device has not seen). A claim, not an identity: two parties may claim one name;
   * the fingerprint is what is compared out of band.
   */
  nameOf(party: PartyId): string | undefined {
    return this.#names.get(party);
  }

  parties(): PartyId[] {
    return [...this.#roots.keys()];
  }

  async rememberCard(cardBytes: Uint8Array): Promise<PartyId> {
    const card = decodeContactCard(cardBytes);
    if (!card.ok) throw new ClientError('CARD_UNKNOWN', `contact card refused: ${card.message}`);
    const party = card.value.body.party as PartyId;
    const known = this.#roots.get(party);
    if (known !== undefined && !constantTimeEqual(known, card.value.body.rootPublicKey)) {
      throw new ClientError('CARD_UNKNOWN', `contact card for ${party} carries a different root key`);
    }
    this.#roots.set(party, card.value.body.rootPublicKey);
    this.#names.set(party, card.value.body.displayName);
    await this.#store.put([[keys.card(party), cardBytes]]);
    for (const c of card.value.body.devices) this.accept(c, this.#now());
    return party;
  }

  #now(): number {
    return Date.now();
  }

  /**
   * Verifies a certificate against its party's known root key: returns it if valid `now`. One its
   * root signed that is no longer valid (revoked, expired) is remembered all the same: what its
   * device sent while it was valid still verifies (each event is checked at its entry's time), on
   * a device that syncs the history only after the revocation too.
   */
  accept(certBytes: Uint8Array, now: number): DeviceCertificate | undefined {
    const d = decodeDeviceCertificate(certBytes);
    if (!d.ok) return undefined;
    if (this.check(d.value, now) === undefined) return d.value;
    const root = this.#roots.get(d.value.body.party);
    if (
      root !== undefined &&
      !this.#certs.has(d.value.body.device) &&
      verifyDeviceCertificate(d.value, {
        rootPublicKey: root,
        now: d.value.body.notBefore,
        suite: this.#suite,
      }).ok
    )
      this.#certs.set(d.value.body.device, d.value);
    return undefined;
  }

  /** Returns the refusal reason, or undefined when the certificate is good now. */
  check(cert: DeviceCertificate, now: number): string | undefined {
    const root = this.#roots.get(cert.body.party);
    if (root === undefined) return `unknown party ${cert.body.party}`;
    // Every event re-checks its sender's certificate: one whose party and signature verified under
    // this very root needs only its validity period, unless a revocation names the device (then
    // the whole check runs again, and it gives the reason).
    const revocations = this.#revocations.get(cert.body.party) ?? [];
    const b = cert.body;
    if (
      this.#signed.get(cert) === root &&
      now >= b.notBefore &&
      now <= b.notAfter &&
      !revocations.some((r) => r.body.device === b.device)
    ) {
      return undefined;
    }
    const r = verifyDeviceCertificate(cert, {
      rootPublicKey: root,
      now,
      revocations,
      suite: this.#suite,
    });
    if (!r.ok) return `${r.code}: ${r.reason}`;
    this.#signed.set(cert, root);
    this.#certs.set(cert.body.device, cert);
    return undefined;
  }

  certificate(device: DeviceId): DeviceCertificate | undefined {
    return this.#certs.get(device);
  }

  /** Looks a device up, refreshing the directory entries of `parties` once if it is unknown. */
  async find(
    device: DeviceId,
    parties: readonly PartyId[],
    now: number,
  ): Promise<DeviceCertificate | undefined> {
    const known = this.#certs.get(device);
    if (known !== undefined) return known;
    for (const p of parties) {
      try {
        await this.refreshParty(p, now);
      } catch {
        // the directory is unreachable or refuses: the sender stays unknown for now
      }
    }
    return this.#certs.get(device);
  }

  /** The certificates of `party`'s devices this device holds that are valid now (not revoked). */
  validDevices(party: PartyId, now: number): DeviceCertificate[] {
    return [...this.#certs.values()].filter(
      (c) => c.body.party === party && this.check(c, now) === undefined,
    );
  }

  /**
   * Whether any revocation signed by `party`'s root names `device`, whatever its date: the root
   * has disowned the device, so another party may remove it from a channel (devicePolicy). Read
   * without this device's clock, which may run behind the revoker's.
   */
  hasRevocation(party: PartyId, device: DeviceId): boolean {
    return (this.#revocations.get(party) ?? []).some((r) => r.body.device === device);
  }

  /** Whether a revocation signed by `party`'s root names `device`, in effect at `now`. */
  isRevoked(party: PartyId, device: DeviceId, now: number): boolean {
    return (this.#revocations.get(party) ?? []).some(
      (r) => r.body.device === device && r.body.revokedAt <= now,
    );
  }

  /**
   * Refreshes a party's devices and revocations from the relay directory. Only revocations its
   * root signed are taken, and every one taken is kept (on disk too): a relay that later leaves
   * one out of its answer cannot make this device trust the revoked device again. `refused`: the
   * entries of the answer that did not verify under the party's root (a relay's forgery, or damage).
   */
  async refreshParty(party: PartyId, now: number): Promise<{ readonly refused: number }> {
    const root = this.#roots.get(party);
    if (root === undefined) return { refused: 0 };
    const { certificates, revocations } = await this.#relay.listDevices(party);
    const signed = revocations
      .map((b) => decodeRevocation(b))
      .flatMap((r) =>
        r.ok && r.value.body.party === party && verifyRevocation(r.value, root) ? [r.value] : [],
      );
    await this.rememberRevocations(party, signed);
    let refused = revocations.length - signed.length;
    for (const c of certificates) {
      this.accept(c, now);
      const d = decodeDeviceCertificate(c);
      if (!d.ok || d.value.body.party !== party || !this.#holds(d.value)) refused++;
    }
    return { refused };
  }

  /** Whether this book holds `cert` itself (same device, same signature): it verified under the root. */
  #holds(cert: DeviceCertificate): boolean {
    const held = this.#certs.get(cert.body.device);
    return held !== undefined && constantTimeEqual(held.sig, cert.sig);
  }

  /**
   * Every device of `party` this book holds a root-signed certificate for, with its state at `now`:
   * revoked only by a revocation the root signed, whatever a relay's directory says.
   */
  devicesOf(party: PartyId, now: number): PartyDevice[] {
    const revocations = this.#revocations.get(party) ?? [];
    return [...this.#certs.values()]
      .filter((c) => c.body.party === party)
      .map((c): PartyDevice => {
        const b = c.body;
        const device = {
          device: b.device,
          name: b.name,
          role: b.role,
          notBefore: b.notBefore,
          notAfter: b.notAfter,
        };
        const r = revocations.find((x) => x.body.device === b.device);
        if (r !== undefined)
          return { ...device, state: 'revoked', revokedAt: r.body.revokedAt, reason: r.body.reason };
        if (now > b.notAfter) return { ...device, state: 'expired' };
        if (now < b.notBefore) return { ...device, state: 'not-yet-valid' };
        return { ...device, state: 'active' };
      })
      .sort((x, y) => x.notBefore - y.notBefore);
  }

  /**
   * Keeps the revocations of `party` that its root signed (in memory and on disk), adding to those
   * already kept; one naming a device already revoked adds nothing.
   */
  async rememberRevocations(party: PartyId, revocations: readonly Revocation[]): Promise<void> {
    const root = this.#roots.get(party);
    if (root === undefined) return;
    const known = this.#revocations.get(party) ?? [];
    const revs: Revocation[] = [...known];
    for (const r of revocations) {
      if (!verifyRevocation(r, root)) continue;
      if (revs.some((k) => k.body.device === r.body.device)) continue;
      revs.push(r);
    }
    if (revs.length === known.length) return;
    this.#revocations.set(party, revs);
    await this.#store.put([[keys.revocations(party), encodeCanonical(revs.map((r) => encodeRevocation(r)))]]);
  }
}
