/**
 * One MLS group (RFC 9420) per channel, wrapped so that its state has exactly one owner.
 *
 * ts-mls states are values: reusing an old state object reuses a ratchet generation, and
 * zeroing `consumed` secrets corrupts older state objects. So a GroupSession keeps the only
 * live state, runs every operation through a queue, never hands out old states, and never
 * zeroes buffers an older state could still reference (the caller persists exportState()
 * before any ciphertext leaves the device).
 *
 * Hardened defaults over ts-mls's: our authentication service (credentials are device
 * certificates checked by the caller's policy), lifetime checks on receive, external commits
 * refused, a commit policy callback for role rules, and typed errors for the cases ts-mls
 * reports as one opaque CryptoError (wrong group, stale or future epoch, duplicate, tamper).
 */
import {
  type CiphersuiteImpl,
  type CiphersuiteName,
  type ClientConfig,
  type ClientState,
  type CryptoProvider,
  createApplicationMessage,
  createCommit,
  createGroup,
  decodeGroupState,
  defaultKeyPackageEqualityConfig,
  defaultPaddingConfig,
  emptyPskIndex,
  encodeGroupState,
  encodeMlsMessage,
  getCiphersuiteFromName,
  getCiphersuiteImpl,
  type IncomingMessageCallback,
  joinGroup,
  type KeyPackage,
  type Proposal,
  processPrivateMessage,
} from 'ts-mls';
import { constantTimeEqual } from '../bytes/index.ts';
import { ProtocolError } from '../errors.ts';
import { decodeMls } from './header.ts';
import { decodeKeyPackage, type KeyPackageBundle, keyPackageIdentity } from './key-package.ts';

export const DEFAULT_SUITE: CiphersuiteName = 'MLS_256_XWING_AES256GCM_SHA512_Ed25519';
export const COMPAT_SUITE: CiphersuiteName = 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519';

export interface Member {
  readonly leafIndex: number;
  /** The credential identity: the member's encoded device certificate. */
  readonly identity: Uint8Array;
  readonly signaturePublicKey: Uint8Array;
}

export interface GroupPolicy {
  /** Validates a credential (our certificate bytes) bound to its MLS signature key. */
  credential(identity: Uint8Array, signaturePublicKey: Uint8Array): boolean;
  /**
   * May `committer` add and remove these members? (role rules; see the channel rules).
   * `members`: the identities of the group's members before the commit.
   */
  commit(
    committer: Uint8Array,
    added: readonly Uint8Array[],
    removed: readonly Uint8Array[],
    members: readonly Uint8Array[],
  ): boolean;
}

export interface GroupConfig {
  readonly suite: CiphersuiteName;
  readonly crypto: CryptoProvider;
  readonly policy: GroupPolicy;
}

export type Incoming =
  | {
      readonly kind: 'application';
      readonly plaintext: Uint8Array;
      readonly authenticatedData: Uint8Array;
      readonly epoch: number;
    }
  | {
      readonly kind: 'commit';
      readonly epoch: number;
      readonly committer: Uint8Array | undefined;
      readonly added: readonly Uint8Array[];
      readonly removed: readonly Uint8Array[];
      readonly removedSelf: boolean;
    };

const implCache = new WeakMap<CryptoProvider, Map<CiphersuiteName, Promise<CiphersuiteImpl>>>();

/** One impl per (provider, suite): providers keep their key caches inside. */
export function suiteImpl(suite: CiphersuiteName, crypto: CryptoProvider): Promise<CiphersuiteImpl> {
  let bySuite = implCache.get(crypto);
  if (bySuite === undefined) {
    bySuite = new Map();
    implCache.set(crypto, bySuite);
  }
  let p = bySuite.get(suite);
  if (p === undefined) {
    p = getCiphersuiteImpl(getCiphersuiteFromName(suite), crypto);
    bySuite.set(suite, p);
  }
  return p;
}

function clientConfig(policy: GroupPolicy): ClientConfig {
  return {
    keyRetentionConfig: {
      retainKeysForGenerations: 1000,
      retainKeysForEpochs: 4,
      maximumForwardRatchetSteps: 5000,
    },
    lifetimeConfig: { maximumTotalLifetime: 2n ** 31n, validateLifetimeOnReceive: true },
    keyPackageEqualityConfig: defaultKeyPackageEqualityConfig,
    paddingConfig: defaultPaddingConfig,
    authService: {
      async validateCredential(credential, signaturePublicKey) {
        return (
          credential.credentialType === 'basic' && policy.credential(credential.identity, signaturePublicKey)
        );
      },
    },
  };
}

function leafIdentity(state: ClientState, leafIndex: number): Uint8Array | undefined {
  const n = state.ratchetTree[leafIndex * 2];
  return n?.nodeType === 'leaf' && n.leaf.credential.credentialType === 'basic'
    ? n.leaf.credential.identity
    : undefined;
}

export class GroupSession {
  #state: ClientState;
  readonly #impl: CiphersuiteImpl;
  readonly #cfg: GroupConfig;
  #queue: Promise<unknown> = Promise.resolve();
  readonly #ownIdentity: Uint8Array;

  private constructor(state: ClientState, impl: CiphersuiteImpl, cfg: GroupConfig) {
    this.#state = state;
    this.#impl = impl;
    this.#cfg = cfg;
    this.#ownIdentity = leafIdentity(state, this.ownLeafIndex) ?? new Uint8Array(0);
  }

  static async create(cfg: GroupConfig, groupId: Uint8Array, own: KeyPackageBundle): Promise<GroupSession> {
    const impl = await suiteImpl(cfg.suite, cfg.crypto);
    const state = await createGroup(
      groupId,
      own.publicPackage,
      own.privatePackage,
      [],
      impl,
      clientConfig(cfg.policy),
    );
    return new GroupSession(state, impl, cfg);
  }

  /** Joins from a Welcome, trying each candidate key package; returns which one it used. */
  static async join(
    cfg: GroupConfig,
    welcomeBytes: Uint8Array,
    candidates: readonly KeyPackageBundle[],
  ): Promise<{ session: GroupSession; used: number }> {
    const d = decodeMls(welcomeBytes);
    if (!d.ok) throw new ProtocolError(d.code, d.message, d.at);
    if (d.value.wireformat !== 'mls_welcome')
      throw new ProtocolError('ENVELOPE_INVALID', 'not an MLS Welcome', 'mls');
    const impl = await suiteImpl(cfg.suite, cfg.crypto);
    for (const [i, c] of candidates.entries()) {
      try {
        const state = await joinGroup(
          d.value.welcome,
          c.publicPackage,
          c.privatePackage,
          emptyPskIndex,
          impl,
          undefined,
          undefined,
          clientConfig(cfg.policy),
        );
        return { session: new GroupSession(state, impl, cfg), used: i };
      } catch {
        // not encrypted to this key package (or refused by policy): try the next one
      }
    }
    throw new ProtocolError(
      'MLS_CREDENTIAL_REJECTED',
      'the Welcome is not for this device, or its group was refused',
      'welcome',
    );
  }

  static async restore(cfg: GroupConfig, bytes: Uint8Array): Promise<GroupSession> {
    const impl = await suiteImpl(cfg.suite, cfg.crypto);
    let decoded: ReturnType<typeof decodeGroupState>;
    try {
      decoded = decodeGroupState(bytes, 0);
    } catch {
      decoded = undefined;
    }
    if (decoded === undefined)
      throw new ProtocolError('DECODE_MALFORMED', 'group state does not decode', 'state');
    return new GroupSession({ ...decoded[0], clientConfig: clientConfig(cfg.policy) }, impl, cfg);
  }

  #run<T>(op: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(op, op);
    this.#queue = next.catch(() => undefined);
    return next;
  }

  get epoch(): number {
    return Number(this.#state.groupContext.epoch);
  }

  get groupId(): Uint8Array {
    return this.#state.groupContext.groupId;
  }

  get ownLeafIndex(): number {
    return this.#state.privatePath.leafIndex;
  }

  get active(): boolean {
    return this.#state.groupActiveState.kind === 'active';
  }

  epochAuthenticator(): Uint8Array {
    return this.#state.keySchedule.epochAuthenticator.slice();
  }

  members(): Member[] {
    const out: Member[] = [];
    for (let i = 0; i < this.#state.ratchetTree.length; i += 2) {
      const n = this.#state.ratchetTree[i];
      if (n?.nodeType === 'leaf' && n.leaf.credential.credentialType === 'basic') {
        out.push({
          leafIndex: i / 2,
          identity: n.leaf.credential.identity,
          signaturePublicKey: n.leaf.signaturePublicKey,
        });
      }
    }
    return out;
  }

  exportState(): Uint8Array {
    return encodeGroupState(this.#state);
  }

  /** Encrypts an application message; `authenticatedData` travels in clear, authenticated by the sender. */
  encrypt(plaintext: Uint8Array, authenticatedData: Uint8Array): Promise<Uint8Array> {
    return this.#run(async () => {
      if (!this.active)
        throw new ProtocolError('MLS_REMOVED', 'this device is no longer a member of the group');
      const r = await createApplicationMessage(this.#state, plaintext, this.#impl, authenticatedData);
      this.#state = r.newState;
      return encodeMlsMessage({
        privateMessage: r.privateMessage,
        wireformat: 'mls_private_message',
        version: 'mls10',
      });
    });
  }

  /** Adds members (their encoded key packages) and/or removes leaves; the new epoch is applied at once. */
  commit(opts: {
    add?: readonly Uint8Array[];
    removeLeaves?: readonly number[];
    authenticatedData?: Uint8Array;
  }): Promise<{
    commit: Uint8Array;
    welcome: Uint8Array | undefined;
    epoch: number;
  }> {
    return this.#run(async () => {
      if (!this.active)
        throw new ProtocolError('MLS_REMOVED', 'this device is no longer a member of the group');
      const proposals: Proposal[] = [];
      const addedIds: Uint8Array[] = [];
      for (const b of opts.add ?? []) {
        const kp = decodeKeyPackage(b);
        if (!kp.ok) throw new ProtocolError(kp.code, kp.message, kp.at);
        const id = keyPackageIdentity(kp.value);
        if (id === undefined || !this.#cfg.policy.credential(id, kp.value.leafNode.signaturePublicKey)) {
          throw new ProtocolError(
            'MLS_CREDENTIAL_REJECTED',
            'a key package carries a credential our policy refuses',
            'add',
          );
        }
        addedIds.push(id);
        proposals.push({ proposalType: 'add', add: { keyPackage: kp.value as KeyPackage } });
      }
      const removedIds: Uint8Array[] = [];
      for (const leaf of opts.removeLeaves ?? []) {
        const id = leafIdentity(this.#state, leaf);
        if (id === undefined) throw new ProtocolError('NOT_A_MEMBER', `no member at leaf ${leaf}`, 'remove');
        removedIds.push(id);
        proposals.push({ proposalType: 'remove', remove: { removed: leaf } });
      }
      if (
        !this.#cfg.policy.commit(
          this.#ownIdentity,
          addedIds,
          removedIds,
          this.members().map((m) => m.identity),
        )
      ) {
        throw new ProtocolError(
          'ROLE_FORBIDDEN',
          'this device may not make this membership change',
          'commit',
        );
      }
      const r = await createCommit(
        { state: this.#state, cipherSuite: this.#impl },
        {
          extraProposals: proposals,
          ratchetTreeExtension: true,
          ...(opts.authenticatedData === undefined ? {} : { authenticatedData: opts.authenticatedData }),
        },
      );
      this.#state = r.newState;
      return {
        commit: encodeMlsMessage(r.commit),
        welcome:
          r.welcome === undefined
            ? undefined
            : encodeMlsMessage({ welcome: r.welcome, wireformat: 'mls_welcome', version: 'mls10' }),
        epoch: this.epoch,
      };
    });
  }

  /** Processes an incoming MLS message; each failure mode gets its own ProtocolError code. */
  process(bytes: Uint8Array): Promise<Incoming> {
    return this.#run(async () => {
      const d = decodeMls(bytes);
      if (!d.ok) throw new ProtocolError(d.code, d.message, d.at);
      if (d.value.wireformat !== 'mls_private_message') {
        throw new ProtocolError(
          'MLS_COMMIT_REJECTED',
          'only encrypted handshake and application messages are accepted',
        );
      }
      const pm = d.value.privateMessage;
      if (!constantTimeEqual(pm.groupId, this.groupId)) {
        throw new ProtocolError('GROUP_MISMATCH', 'the message belongs to another group');
      }
      if (!this.active)
        throw new ProtocolError('MLS_REMOVED', 'this device is no longer a member of the group');
      const epoch = Number(pm.epoch);
      if (epoch > this.epoch)
        throw new ProtocolError(
          'EPOCH_FUTURE',
          `message for epoch ${epoch}, this device is at ${this.epoch}`,
        );
      if (epoch < this.epoch && pm.contentType !== 'application') {
        throw new ProtocolError(
          'EPOCH_STALE',
          `handshake for past epoch ${epoch}, this device is at ${this.epoch}`,
        );
      }
      let decision:
        | { committer: Uint8Array | undefined; added: Uint8Array[]; removed: Uint8Array[] }
        | undefined;
      const callback: IncomingMessageCallback = (incoming) => {
        if (incoming.kind !== 'commit') return 'reject';
        // External commits (no sender leaf) are refused: members are added by members only.
        if (incoming.senderLeafIndex === undefined) return 'reject';
        const committer = leafIdentity(this.#state, incoming.senderLeafIndex);
        const added: Uint8Array[] = [];
        const removed: Uint8Array[] = [];
        for (const p of incoming.proposals) {
          if (p.proposal.proposalType === 'add') {
            const id = keyPackageIdentity(p.proposal.add.keyPackage);
            if (id !== undefined) added.push(id);
          } else if (p.proposal.proposalType === 'remove') {
            const id = leafIdentity(this.#state, p.proposal.remove.removed);
            if (id !== undefined) removed.push(id);
          } else if (p.proposal.proposalType !== 'update') {
            return 'reject';
          }
        }
        decision = { committer, added, removed };
        const members = this.members().map((m) => m.identity);
        return committer !== undefined && this.#cfg.policy.commit(committer, added, removed, members)
          ? 'accept'
          : 'reject';
      };
      let r: Awaited<ReturnType<typeof processPrivateMessage>>;
      try {
        r = await processPrivateMessage(this.#state, pm, emptyPskIndex, this.#impl, callback);
      } catch (e) {
        const msg = e instanceof Error ? e.message : '';
        if (/past|generation|consumed/i.test(msg))
          throw new ProtocolError('MLS_DUPLICATE', 'already processed (or its key was deleted)');
        if (epoch < this.epoch)
          throw new ProtocolError('EPOCH_STALE', `message for past epoch ${epoch} no longer decrypts`);
        if (/credential/i.test(msg))
          throw new ProtocolError('MLS_CREDENTIAL_REJECTED', 'a credential in the commit was refused');
        throw new ProtocolError('MLS_DECRYPT_FAILED', 'the message does not decrypt or authenticate');
      }
      if (r.kind === 'applicationMessage') {
        this.#state = r.newState;
        return { kind: 'application', plaintext: r.message, authenticatedData: pm.authenticatedData, epoch };
      }
      if (r.actionTaken === 'reject')
        throw new ProtocolError('MLS_COMMIT_REJECTED', 'the commit was refused by policy');
      this.#state = r.newState;
      const d2 = decision as
        | { committer: Uint8Array | undefined; added: Uint8Array[]; removed: Uint8Array[] }
        | undefined;
      return {
        kind: 'commit',
        epoch: this.epoch,
        committer: d2?.committer,
        added: d2?.added ?? [],
        removed: d2?.removed ?? [],
        removedSelf: !this.active || (d2?.removed ?? []).some((x) => constantTimeEqual(x, this.#ownIdentity)),
      };
    });
  }
}
