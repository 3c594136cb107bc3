/**
 * The Backchannel SDK: one device's view of its party, its channels and the relay.
 * Used by the CLI, the tests and (with an IndexedDB store) the web app.
 */
import {
  type ChannelId,
  channelIdFrom,
  constantTimeEqual,
  type DeviceCertificate,
  type DeviceId,
  type EventId,
  decodeEntry,
  decodeEnvelope,
  encodeContactCard,
  encodeDeviceCertificate,
  encodeRevocation,
  fingerprint,
  issueRevocation,
  makeContactCard,
  nobleEd25519,
  openSealedEvent,
  type PartyId,
  parseChannelId,
  proveDeviceKey,
  type Role,
  type Sha256,
  type SignatureSuite,
  utf8,
} from '@backchannel/protocol';
import { sha256 } from '@noble/hashes/sha2.js';
import { decodeRelayReceipt, verifyRelayReceipt } from '@backchannel/protocol/attest';
import { encodeVerifierKey, leafHash, verifyKeyRotation } from '@backchannel/protocol/transcript';
import { Channel, type DraftEvent } from './channel.ts';
import { keys } from './channel-record.ts';
import {
  type BatchVerifier,
  CertificateBook,
  type EngineContext,
  memoizedVerify,
  type PartyDevice,
} from './context.ts';
import { ClientError, isRetryable } from './errors.ts';
import {
  decodeIdentity,
  type DeviceIdentity,
  encodeIdentity,
  issueMemberDevice,
  newParty,
} from './identity.ts';
import type { GeneratedKeyPackage, MlsFactory } from './mls.ts';
import { Live, type LiveOptions } from './live.ts';
import { Outbox } from './outbox.ts';
import { ReceiptLedger } from './receipt-ledger.ts';
import { relayVerifierKey, trustedRelayKeys } from './verify-log.ts';
import { missingDevices } from './join.ts';
import type { ScryptParams } from './invite.ts';
import {
  newRecoveryCodeWith,
  type RecoveredParty,
  type RecoveryKitFile,
  sealRecoveryKit,
} from './recovery.ts';
import { JoinSchedule, type JoinScheduleOptions } from './join-schedule.ts';
import {
  type AppendAnswer,
  type ClaimedKeyPackage,
  RelayClient,
  type RelayClientOptions,
  signingClock,
} from './relay-client.ts';
import type { LocalStore, OutboxItem } from './storage.ts';
import { type WebSocketConstructor, WsEnvelopeTransport } from './ws-transport.ts';

/** A receipt naming another channel or message: the answer belongs to another post. */
/** How far a relay's clock may be from this device's: the relay's window for signed requests. */
const RELAY_CLOCK_SKEW_MS = 5 * 60_000;
const MISROUTED = 'the receipt names another envelope';
const NOT_SIGNED = 'the receipt is not signed by the pinned relay key';

/** The retired relay keys as stored (a JSON list); what is not a list of strings counts as none. */
function retiredKeysOf(bytes: Uint8Array | undefined): string[] {
  if (bytes === undefined) return [];
  try {
    const v: unknown = JSON.parse(new TextDecoder().decode(bytes));
    return Array.isArray(v) ? v.filter((k): k is string => typeof k === 'string') : [];
  } catch {
    return [];
  }
}

/** A party or device name as the card and certificate take it: 1–200 characters, not only spaces. */
function nameOk(what: string, name: string): void {
  if (name.trim() === '') throw new ClientError('INVALID_ARGUMENT', `a ${what} is needed (not only spaces)`);
  if (name.length > 200)
    throw new ClientError(
      'INVALID_ARGUMENT',
      `a ${what} is at most 200 characters (this one has ${name.length})`,
    );
}

/** A send the relay refused for good (Backchannel.refusedSends). */
export interface RefusedSend {
  readonly channel: ChannelId;
  readonly msgId: string;
  /** The relay's code (CERT_REVOKED, CHANNEL_CLOSED…) or the SDK's. */
  readonly code: string;
  readonly message: string;
  /** When it was refused (ms). */
  readonly at: number;
  /** The event's kind (message, proposal…), and its title or the start of its text. */
  readonly kind?: string;
  readonly summary?: string;
}

export interface BackchannelOptions {
  readonly store: LocalStore;
  readonly mls: (identity: DeviceIdentity, certs: CertificateBook) => MlsFactory;
  readonly relays?: readonly string[];
  readonly now?: () => number;
  readonly random: (n: number) => Uint8Array;
  /** Ed25519 backend; Node callers pass the node:crypto one (ed25519Node). Default: noble. */
  readonly signatures?: SignatureSuite;
  /** SHA-256 backend for event commitments; Node callers pass sha256Node. Default: noble. */
  readonly sha256?: Sha256;
  readonly fetch?: (input: string, init: RequestInit) => Promise<Response>;
  /**
   * Sync verifies each page's envelope signatures through this (Node callers pass
   * SignatureWorkers: a worker thread verifies one page while the next is decoded and stored).
   * Default: one by one with `signatures`, on the calling thread.
   */
  readonly verifier?: BatchVerifier;
  /** SHA-256 leaf hash of transcript entries (Node callers pass leafHashNode). Default: noble. */
  readonly leafHash?: (entry: Uint8Array) => Uint8Array;
  /** Post-compromise security: refresh this device's MLS leaf this often (default 7 days)… */
  readonly updateEveryMs?: number;
  /** …or after this many sent messages (default 1,000). */
  readonly updateEveryMessages?: number;
  /**
   * How envelopes are posted: 'http' (default) or 'ws', one authenticated WebSocket per relay
   * endpoint with binary frames (PROTOCOL.md §11), HTTP when the socket cannot be opened.
   */
  readonly transport?: 'http' | 'ws';
  /** The WebSocket constructor for `transport: 'ws'` (Node: `ws`). Default: globalThis.WebSocket. */
  readonly webSocket?: WebSocketConstructor;
  /**
   * Adding devices enrolled after a channel opened (addNewDevices, admin and principal devices):
   * the party's device list is read again at most every `deviceListTtlMs` (default 60 s; sooner
   * when something suggests it changed), and a device with no key package to claim is claimed
   * again after a backoff from `claimBackoffMs.min` to `.max` (default 5 s to 10 min). See
   * join-schedule.ts.
   */
  readonly deviceListTtlMs?: number;
  readonly claimBackoffMs?: JoinScheduleOptions['claimBackoffMs'];
}

const KEY_PACKAGE_POOL = 10;
/** Roles that add their own party's devices to a channel (the relay's MANAGER_ROLES). */
const ADDERS: readonly Role[] = ['admin', 'principal'];
const ONE = new Uint8Array([1]);

export class Backchannel {
  readonly #opts: BackchannelOptions;
  readonly #store: LocalStore;
  #identity: DeviceIdentity | undefined;
  #ctx: EngineContext | undefined;
  #outbox: Outbox | undefined;
  readonly #channels = new Map<ChannelId, Channel>();
  #relayKey: string | undefined;
  /** Relay keys retired through rotation statements, newest first: still trusted for what they signed. */
  #retiredRelayKeys: readonly string[] = [];
  /** A rotation look-up in flight (#learnRelayRotation): one at a time. */
  #rotation: Promise<boolean> | undefined;
  /** The running live() sessions: each follows the channels this device joins meanwhile. */
  readonly #lives = new Set<Live>();
  /** checkInbox runs one at a time (live() reads the inbox on its own while callers may too). */
  #inboxTurn: Promise<unknown> = Promise.resolve();
  /** When addNewDevices reads the party's device list and claims key packages (join-schedule.ts). */
  readonly #joins: JoinSchedule;

  private constructor(opts: BackchannelOptions, identity: DeviceIdentity | undefined) {
    this.#opts = opts;
    this.#store = opts.store;
    this.#identity = identity;
    this.#joins = new JoinSchedule(opts.now ?? Date.now, {
      ...(opts.deviceListTtlMs === undefined ? {} : { deviceListTtlMs: opts.deviceListTtlMs }),
      ...(opts.claimBackoffMs === undefined ? {} : { claimBackoffMs: opts.claimBackoffMs }),
    });
  }

  static async open(opts: BackchannelOptions): Promise<Backchannel> {
    const idBytes = await opts.store.get(keys.identity);
    const bc = new Backchannel(opts, idBytes === undefined ? undefined : decodeIdentity(idBytes));
    if (bc.#identity !== undefined) await bc.#wire(bc.#identity);
    return bc;
  }

  get now(): number {
    return (this.#opts.now ?? Date.now)();
  }

  get identity(): DeviceIdentity {
    if (this.#identity === undefined) {
      throw new ClientError(
        'NOT_INITIALIZED',
        'this device has no identity yet: run `backchannel init` first',
      );
    }
    return this.#identity;
  }

  get initialized(): boolean {
    return this.#identity !== undefined;
  }

  get store(): LocalStore {
    return this.#store;
  }

  get relay(): RelayClient {
    return this.#context().relay;
  }

  /** The parties' root keys and the device certificates this device has verified. */
  get certificates(): CertificateBook {
    return this.#context().certs;
  }

  /** The injected randomness (salts, ids). */
  random(n: number): Uint8Array {
    return this.#opts.random(n);
  }

  /** The relay checkpoint key this device pinned on first use (C2SP verifier key string). */
  get relayKey(): string | undefined {
    return this.#relayKey;
  }

  /** Every relay key this device trusts: the pinned one, then those retired by rotations. */
  get relayKeys(): readonly string[] {
    return this.#relayKey === undefined ? [] : [this.#relayKey, ...this.#retiredRelayKeys];
  }

  /**
   * Moves to the relay's new checkpoint key when the relay serves a rotation statement from the
   * pinned key, signed by both (transcript/rotation.ts); the old key stays trusted for what it
   * signed. True when it moved. Asked when a checkpoint or receipt is signed by an unknown key
   * (by sync, receipts, and the witness, which may watch channels this device is not in).
   */
  learnRelayRotation(): Promise<boolean> {
    return this.#learnRelayRotation();
  }

  #learnRelayRotation(): Promise<boolean> {
    this.#rotation ??= this.#rotate().finally(() => {
      this.#rotation = undefined;
    });
    return this.#rotation;
  }

  async #rotate(): Promise<boolean> {
    const pinned = this.#relayKey;
    if (pinned === undefined) return false;
    const info = await this.relay.relayInfo();
    const statements = info.rotations ?? (info.rotation === undefined ? [] : [info.rotation]);
    if (info.vkey === pinned || statements.length === 0) return false;
    const start = relayVerifierKey(pinned);
    if (!start.ok) return false;
    // Step by step from the pinned key, each statement retiring exactly the key reached so far
    // (a device several rotations behind follows the chain), to the key the relay names.
    const suite = this.#opts.signatures ?? nobleEd25519;
    let at = start.value;
    const passed: string[] = [pinned];
    for (let moved = true; moved && encodeVerifierKey(at) !== info.vkey; ) {
      moved = false;
      for (const s of statements) {
        const to = verifyKeyRotation(s, at, suite);
        if (!to.ok || passed.includes(encodeVerifierKey(to.value))) continue;
        at = to.value;
        passed.push(encodeVerifierKey(at));
        moved = true;
        break;
      }
    }
    if (encodeVerifierKey(at) !== info.vkey) return false;
    const newlyRetired = passed.slice(0, -1).reverse();
    const retired = [...newlyRetired, ...this.#retiredRelayKeys.filter((k) => !passed.includes(k))];
    await this.#store.put([
      [keys.relayKey, utf8(info.vkey)],
      [keys.relayRetiredKeys, utf8(JSON.stringify(retired))],
    ]);
    this.#relayKey = info.vkey;
    this.#retiredRelayKeys = retired;
    return true;
  }

  get outbox(): Outbox {
    if (this.#outbox === undefined) throw new ClientError('NOT_INITIALIZED', 'device not initialized');
    return this.#outbox;
  }

  #context(): EngineContext {
    if (this.#ctx === undefined) throw new ClientError('NOT_INITIALIZED', 'device not initialized');
    return this.#ctx;
  }

  #wsTransport(): NonNullable<RelayClientOptions['envelopeTransport']> {
    const WebSocket =
      this.#opts.webSocket ??
      (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket ??
      (() => {
        throw new ClientError('INVALID_ARGUMENT', "transport 'ws' needs a WebSocket constructor");
      })();
    // One signing clock for every socket of this device: auth frames never share a millisecond.
    const now = signingClock(this.#opts.now ?? Date.now);
    return (endpoint, auth, timeoutMs, onLost) =>
      new WsEnvelopeTransport({
        endpoint,
        device: auth.device,
        secretKey: auth.secretKey,
        ...(auth.suite === undefined ? {} : { suite: auth.suite }),
        relayName: auth.relayName,
        WebSocket,
        now,
        timeoutMs,
        ...(onLost === undefined ? {} : { onLost }),
      });
  }

  async #wire(identity: DeviceIdentity): Promise<void> {
    const relays =
      this.#opts.relays !== undefined && this.#opts.relays.length > 0 ? this.#opts.relays : identity.relays;
    const relay = new RelayClient({
      endpoints: relays,
      auth: {
        device: identity.device,
        secretKey: identity.deviceSecretKey,
        suite: this.#opts.signatures ?? nobleEd25519,
      },
      ...(this.#opts.fetch === undefined ? {} : { fetch: this.#opts.fetch }),
      ...(this.#opts.now === undefined ? {} : { now: this.#opts.now }),
      ...(this.#opts.transport === 'ws' ? { envelopeTransport: this.#wsTransport() } : {}),
      // Request signatures name the relay this device pinned (PROTOCOL.md §11).
      relayName: () => this.#pinnedRelayName(),
    });
    const suite = this.#opts.signatures ?? nobleEd25519;
    const certs = new CertificateBook(this.#store, relay, identity, suite);
    const receipts = new ReceiptLedger(this.#opts.sha256 ?? sha256);
    await certs.load();
    const pinned = await this.#store.get(keys.relayKey);
    this.#relayKey = pinned === undefined ? undefined : new TextDecoder().decode(pinned);
    this.#retiredRelayKeys = retiredKeysOf(await this.#store.get(keys.relayRetiredKeys));
    this.#ctx = {
      store: this.#store,
      relay,
      identity,
      mls: this.#opts.mls(identity, certs),
      certs,
      now: this.#opts.now ?? Date.now,
      random: this.#opts.random,
      suite,
      sha256: this.#opts.sha256 ?? sha256,
      relayKey: () => this.#relayKey,
      relayKeys: () => this.relayKeys,
      learnRelayRotation: () => this.#learnRelayRotation(),
      leafHash: this.#opts.leafHash ?? leafHash,
      ...(this.#opts.verifier === undefined ? {} : { verifier: this.#opts.verifier }),
      queued: (items) => this.#outbox?.queued(items),
      receipts,
    };
    // A batch's receipts share one signature: each is checked once.
    const hash = this.#opts.sha256 ?? sha256;
    const receiptSuite = memoizedVerify(suite, hash);
    const receiptProblems = new WeakMap<AppendAnswer, string>();
    this.#outbox = new Outbox(this.#store, relay, {
      // A receipt signed by no key this device trusts may come after a relay key rotation: the
      // device asks for the rotation statement and checks the receipt again. When the relay
      // cannot be asked, the item stays in the outbox (the error is retryable) and its post is
      // answered again, the same receipt with it: an honest relay is not put on record meanwhile.
      onAcked: async (item, a) => {
        if (a.receipt === undefined || receiptProblems.get(a) !== NOT_SIGNED) return;
        const moved = await this.#learnRelayRotation().catch((e: unknown) => {
          // Never a refusal of the envelope: the relay took it.
          if (e instanceof ClientError && e.retryable) throw e;
          throw new ClientError(
            'RELAY_ERROR',
            `the relay key could not be checked: ${(e as Error).message}`,
            {
              retryable: true,
            },
          );
        });
        if (!moved) return;
        const problem = this.#receiptProblem(item, a.seq, a.receipt, receiptSuite, hash);
        if (problem === undefined) receiptProblems.delete(a);
        else receiptProblems.set(a, problem);
      },
      // Each receipt is checked once, as its answer arrives: one that names another envelope
      // means the answer was routed to the wrong post (not an ack: the item is posted again);
      // any other problem is kept, written with the ack as evidence (below).
      checkAck: (item, a) => {
        if (a.receipt === undefined) return undefined;
        const problem = this.#receiptProblem(item, a.seq, a.receipt, receiptSuite, hash);
        if (problem === MISROUTED)
          return new ClientError('RELAY_ERROR', "the relay answered with another envelope's receipt", {
            retryable: true,
          });
        if (problem !== undefined) receiptProblems.set(a, problem);
        return undefined;
      },
      // Relay receipts are kept, written with the removal of their items from the outbox; one
      // that does not vouch for what was sent is kept apart, as evidence.
      ackedRecords: (answers) =>
        answers.flatMap(([item, a]): [string, Uint8Array][] => {
          if (a.receipt === undefined) return [];
          const problem = receiptProblems.get(a);
          if (problem === undefined) {
            const kept: [string, Uint8Array] = [`rr:${item.channel}:${item.id}`, utf8(a.receipt)];
            const contradicted = receipts.receipted(item.channel, item.id, a.receipt);
            return contradicted === undefined ? [kept] : [kept, contradicted];
          }
          return [
            [`rr-invalid:${item.channel}:${item.id}`, utf8(JSON.stringify({ receipt: a.receipt, problem }))],
          ];
        }),
      onRejected: async (item, err) => {
        const summary = await this.#ownEventSummary(item);
        // Heartbeats and receipts are automatic signals, not something the user wrote: a refused
        // one is not kept (nobody would dismiss it; the next one goes out on its own).
        if (summary.kind === 'heartbeat' || summary.kind === 'receipt') return;
        const refusal: Omit<RefusedSend, 'channel' | 'msgId'> = {
          code: err.cause_code ?? err.code,
          message: err.message,
          at: this.now,
          ...summary,
        };
        await this.#store.put([[`rejected:${item.channel}:${item.id}`, utf8(JSON.stringify(refusal))]]);
      },
    });
  }

  /**
   * Why a relay receipt does not vouch for this envelope (undefined when it does): it must decode,
   * name this channel, message id, sequence number and envelope hash, and verify under the relay
   * key this device pinned (not checked while none is pinned).
   */
  #receiptProblem(
    item: OutboxItem,
    seq: number,
    receipt: string,
    suite: SignatureSuite,
    hash: Sha256,
  ): string | undefined {
    const r = decodeRelayReceipt(receipt);
    if (!r.ok) return `malformed receipt (${r.code})`;
    const b = r.value.body;
    if (b.channel !== item.channel || b.msgId !== item.id) return MISROUTED;
    if (b.seq !== seq) return 'the receipt names another sequence number than the answer';
    if (!constantTimeEqual(b.envelopeHash, hash(item.wire))) return 'the receipt is for other envelope bytes';
    // The relay's time for it lies between this device queueing it and now, within the clock
    // skew the relay allows signed requests: later entries are never dated before it (§7), so a
    // relay cannot date what it logs afterwards (a revoked device's envelope) earlier than this.
    const now = this.now;
    if (b.receivedAt < item.createdAt - RELAY_CLOCK_SKEW_MS || b.receivedAt > now + RELAY_CLOCK_SKEW_MS)
      return `the relay dated it ${new Date(b.receivedAt).toISOString()}, outside this device's clock (queued ${new Date(item.createdAt).toISOString()}, acknowledged ${new Date(now).toISOString()}) by more than ${RELAY_CLOCK_SKEW_MS / 60_000} minutes`;
    const trusted = trustedRelayKeys({ relayKeys: () => this.relayKeys });
    if (trusted.length > 0 && !trusted.some((k) => verifyRelayReceipt(r.value, k.publicKey, suite, hash)))
      return NOT_SIGNED;
    return undefined;
  }

  /** The name in the pinned relay key (undefined while none is pinned, or it does not parse). */
  #pinnedRelayName(): string | undefined {
    if (this.#relayKey === undefined) return undefined;
    const key = relayVerifierKey(this.#relayKey);
    return key.ok ? key.value.name : undefined;
  }

  async #saveIdentity(
    identity: DeviceIdentity,
    also: ReadonlyArray<[string, Uint8Array]> = [],
  ): Promise<void> {
    if (this.#identity !== undefined) {
      throw new ClientError('ALREADY_INITIALIZED', 'this device already has an identity');
    }
    await this.#store.put([[keys.identity, encodeIdentity(identity)], ...also]);
    this.#identity = identity;
    await this.#wire(identity);
    // Trust on first use: pin the relay's checkpoint key; every later checkpoint must carry it.
    const info = await this.relay.relayInfo();
    this.#relayKey = info.vkey;
    await this.#store.put([[keys.relayKey, utf8(info.vkey)]]);
  }

  /** Creates a new party with this device as its first (admin-capable) device, and registers it. */
  async createParty(opts: {
    partyName: string;
    deviceName: string;
    role?: Role;
    relays: string[];
  }): Promise<DeviceIdentity> {
    return this.#setUpRootHolder(this.#opts.random(32), { ...opts, role: opts.role ?? 'admin' });
  }

  /**
   * This device as the holder of the party's root key (`rootSeed`): a new device key certified by
   * it, saved, the contact card published, the device registered, key packages uploaded.
   */
  async #setUpRootHolder(
    rootSeed: Uint8Array,
    opts: { partyName: string; deviceName: string; role: Role; relays: readonly string[] },
  ): Promise<DeviceIdentity> {
    nameOk('party name', opts.partyName);
    nameOk('device name', opts.deviceName);
    const identity = newParty({ rootSeed, deviceSeed: this.#opts.random(32), now: this.now, ...opts });
    await this.#saveIdentity(identity);
    await this.publishCard();
    await this.#register(identity.certificate, identity.deviceSecretKey);
    await this.#replenishKeyPackages();
    return identity;
  }

  /**
   * Sets this device up as a new device of a party restored from its recovery kit
   * (recovery.ts): a new device key, certified by the restored root key (role admin unless
   * said), registered, with key packages; the contact card is published again. The lost device
   * is still a member until this device revokes it (`revokeDevice`); the party's admin and
   * principal devices then remove it from their channels and add this one.
   */
  async recoverParty(opts: {
    recovered: RecoveredParty;
    deviceName: string;
    role?: Role;
    relays?: string[];
  }): Promise<DeviceIdentity> {
    return this.#setUpRootHolder(opts.recovered.rootSecretKey, {
      partyName: opts.recovered.partyName,
      deviceName: opts.deviceName,
      role: opts.role ?? 'admin',
      relays: opts.relays ?? opts.recovered.relays,
    });
  }

  /**
   * Admin: the party's recovery kit — its root key sealed under a new recovery code (recovery.ts).
   * Nothing is sent: the kit and the code are for the party to keep apart, offline.
   */
  async recoveryKit(kdf?: ScryptParams): Promise<{ kit: RecoveryKitFile; code: string }> {
    const id = this.identity;
    if (id.rootSecretKey === undefined)
      throw new ClientError(
        'NOT_ADMIN',
        'only the device holding the party root key can write its recovery kit',
      );
    const code = newRecoveryCodeWith(this.#opts.random);
    const kit = await sealRecoveryKit(
      { party: id.party, partyName: id.partyName, rootSecretKey: id.rootSecretKey, relays: id.relays },
      code,
      this.#opts.random,
      this.now,
      kdf,
    );
    return { kit, code };
  }

  /** Enrolls this device from an identity an admin sealed into an invite. */
  /**
   * Enrolls this device from an invite's identity. The invite carries the device key, so the relay
   * lets one installation redeem it: the first to claim it with its `installation` id (random
   * bytes it keeps: a retry sends the same; default, made and kept in this store). Another is
   * refused with INVITE_INVALID (INVITE_USED): two installations must not share a key.
   */
  async enroll(identity: DeviceIdentity, opts: { installation?: Uint8Array } = {}): Promise<void> {
    // Saved with a marker first (signed requests need it); an enrollment that failed on the way
    // is finished by enroll() with the same invite, or by the next syncAll.
    if (this.#identity === undefined) await this.#saveIdentity(identity, [[keys.enrollmentPending, ONE]]);
    else if (
      this.#identity.device !== identity.device ||
      (await this.#store.get(keys.enrollmentPending)) === undefined
    )
      throw new ClientError('ALREADY_INITIALIZED', 'this device already has an identity');
    await this.#finishEnrollment(opts.installation);
  }

  /**
   * Registers the device and redeems its invite as this installation, then uploads key packages.
   * Refused (another installation redeemed it): the identity is deleted from this store, which
   * must not go on with a key another installation holds.
   */
  async #finishEnrollment(given?: Uint8Array): Promise<void> {
    const identity = this.identity;
    await this.#register(identity.certificate, identity.deviceSecretKey);
    const stored = await this.#store.get(keys.installation);
    const installation = given ?? stored ?? this.#opts.random(16);
    if (stored === undefined) await this.#store.put([[keys.installation, installation]]);
    try {
      await this.relay.claimEnrollment(installation);
    } catch (e) {
      if (!(e instanceof ClientError && e.cause_code === 'INVITE_USED')) throw e;
      await this.#store.put([
        [keys.identity, undefined],
        [keys.relayKey, undefined],
        [keys.enrollmentPending, undefined],
      ]);
      this.#identity = undefined;
      throw new ClientError('INVITE_INVALID', e.message.replace(/^INVITE_USED: /, ''), {
        causeCode: 'INVITE_USED',
      });
    }
    await this.#replenishKeyPackages();
    await this.#store.put([[keys.enrollmentPending, undefined]]);
  }

  /** Admin: issues a certificate for a new device; returns its identity to seal in an invite. */
  async addDevice(name: string, role: Role): Promise<DeviceIdentity> {
    nameOk('device name', name);
    const { certificate, identity } = issueMemberDevice(
      this.identity,
      this.#opts.random(32),
      name,
      role,
      this.now,
    );
    // The admin generated the new device's key (it travels sealed in the invite), so it proves it.
    await this.#register(certificate, identity.deviceSecretKey);
    this.#joins.stale();
    return identity;
  }

  /** Registers a certificate at the relay with the device key's proof of possession. */
  async #register(certificate: DeviceCertificate, deviceSecretKey: Uint8Array): Promise<void> {
    const bytes = encodeDeviceCertificate(certificate);
    await this.relay.registerDevice(
      bytes,
      proveDeviceKey(deviceSecretKey, bytes, this.#opts.signatures ?? nobleEd25519),
    );
  }

  /**
   * This party's devices, read again from the relay's directory: each certificate and revocation
   * is shown only if the party's root key signed it (`refused` counts the directory entries that
   * did not verify), and a revocation this device already holds stays shown even if the relay's
   * answer leaves it out.
   */
  async partyDevices(): Promise<{ readonly devices: PartyDevice[]; readonly refused: number }> {
    const certs = this.#context().certs;
    const at = this.now;
    const { refused } = await certs.refreshParty(this.identity.party, at);
    return { devices: certs.devicesOf(this.identity.party, at), refused };
  }

  /** Admin: revokes a device at the relay and removes it from every channel this device administers. */
  async revokeDevice(device: string, reason: string): Promise<void> {
    const id = this.identity;
    if (id.rootSecretKey === undefined)
      throw new ClientError('NOT_ADMIN', 'only the admin device can revoke devices');
    const r = issueRevocation(id.rootSecretKey, id.rootPublicKey, device as never, this.now, reason);
    await this.relay.revoke(encodeRevocation(r));
    this.#joins.stale();
    // This device's book keeps the revocation it just issued (verified, as any other it learns).
    await this.#context().certs.rememberRevocations(id.party, [r]);
    // This device revoked itself (its store was lost or restored, a new device replaces it): the
    // relay refuses it from now on; the party's other devices, or the other parties', remove it.
    if (device === id.device) return;
    // The revocation is in effect; the removals follow. One that fails (the relay unreachable)
    // does not stop the others, and the party's admin and principal devices remove it too.
    let failure: unknown;
    for (const chId of await this.channelIds()) {
      const ch = await this.channel(chId);
      if (ch.record.removed || ch.group?.members().some((m) => m.device === device) !== true) continue;
      try {
        await ch.sync();
        await this.#removeRevoked(ch);
      } catch (e) {
        failure ??= e;
      }
    }
    if (failure instanceof ClientError)
      throw new ClientError(
        failure.code,
        `device ${device} is revoked, but could not be removed from every channel yet (${failure.message}); the next sync tries again`,
        {
          retryable: failure.retryable,
          ...(failure.cause_code === undefined ? {} : { causeCode: failure.cause_code }),
        },
      );
    if (failure !== undefined) throw failure;
  }

  async publishCard(): Promise<Uint8Array> {
    const id = this.identity;
    if (id.rootSecretKey === undefined)
      throw new ClientError('NOT_ADMIN', 'only the admin device can publish the card');
    const card = encodeContactCard(
      makeContactCard({
        rootSecretKey: id.rootSecretKey,
        rootPublicKey: id.rootPublicKey,
        displayName: id.partyName,
        relays: [...id.relays],
        devices: [id.certificate],
        issuedAt: this.now,
      }),
    );
    await this.relay.putCard(card);
    return card;
  }

  /** The display name on a known party's contact card (see CertificateBook.nameOf). */
  partyName(party: PartyId): string | undefined {
    return this.#context().certs.nameOf(party);
  }

  /** A party's root public key as this device pinned it (from its verified contact card). */
  rootKey(party: PartyId): Uint8Array | undefined {
    return this.#context().certs.rootKey(party);
  }

  fingerprint(): string {
    return fingerprint(this.identity.rootPublicKey);
  }

  async #replenishKeyPackages(): Promise<void> {
    const ctx = this.#context();
    const existing = await this.#store.keys(keys.keyPackagePrefix);
    const fresh: GeneratedKeyPackage[] = [];
    const writes: [string, Uint8Array][] = [];
    let n = existing.length === 0 ? 0 : Number((existing.at(-1) as string).slice(3)) + 1;
    const hasLastResort = existing.length > 0;
    const lastResort = hasLastResort ? undefined : await ctx.mls.generateKeyPackage(true);
    if (lastResort !== undefined) writes.push([keys.keyPackage(n++), encodeKp(lastResort)]);
    for (let i = existing.length; i < KEY_PACKAGE_POOL; i++) {
      const kp = await ctx.mls.generateKeyPackage(false);
      fresh.push(kp);
      writes.push([keys.keyPackage(n++), encodeKp(kp)]);
    }
    if (writes.length === 0) return;
    await this.#store.put(writes);
    await this.relay.uploadKeyPackages(
      fresh.map((k) => k.publicBytes),
      lastResort?.publicBytes,
    );
  }

  /**
   * What this device sent that the relay refused for good (its outbox dropped it: a revoked
   * device, a channel closed meanwhile…), oldest first, until dismissed. A user must be told:
   * the composer showed it as sent.
   */
  async refusedSends(): Promise<RefusedSend[]> {
    const out: RefusedSend[] = [];
    for (const key of await this.#store.keys('rejected:')) {
      const [, channel = '', msgId = ''] = key.split(':');
      const raw = await this.#store.get(key);
      if (raw === undefined) continue;
      const text = new TextDecoder().decode(raw);
      // Records of earlier versions hold the code alone.
      let r: Partial<RefusedSend> = { code: text, message: '', at: 0 };
      try {
        const parsed: unknown = JSON.parse(text);
        if (typeof parsed === 'object' && parsed !== null) r = parsed as Partial<RefusedSend>;
      } catch {
        // the code alone
      }
      out.push({
        channel: channel as ChannelId,
        msgId,
        code: String(r.code ?? 'UNKNOWN'),
        message: String(r.message ?? ''),
        at: Number(r.at ?? 0),
        ...(typeof r.kind === 'string' ? { kind: r.kind } : {}),
        ...(typeof r.summary === 'string' ? { summary: r.summary } : {}),
      });
    }
    return out.sort((a, b) => a.at - b.at);
  }

  /** Forgets a refused send once the user has seen it. */
  async dismissRefusedSend(channel: string, msgId: string): Promise<void> {
    await this.#store.put([[`rejected:${channel}:${msgId}`, undefined]]);
  }

  /** The kind and a short text of an event this device sent, from its own sealed copy. */
  async #ownEventSummary(item: OutboxItem): Promise<{ kind?: string; summary?: string }> {
    const env = decodeEnvelope(item.wire);
    if (!env.ok) return {};
    const body = env.value.body;
    if (body.kind !== 'application' || body.commitment === undefined) return { kind: body.kind };
    const sealed = await this.#store.get(keys.own(item.channel, item.id));
    if (sealed === undefined) return {};
    const opened = openSealedEvent(sealed, body.commitment, this.#opts.sha256 ?? sha256);
    if (!opened.ok) return {};
    const e = opened.value.event as { kind: string; text?: unknown; title?: unknown };
    const words = typeof e.title === 'string' ? e.title : typeof e.text === 'string' ? e.text : undefined;
    return {
      kind: e.kind,
      ...(words === undefined ? {} : { summary: words.length > 120 ? `${words.slice(0, 119)}…` : words }),
    };
  }

  async channelIds(): Promise<ChannelId[]> {
    return (await this.#store.keys('ch:')).map((k) => k.slice(3) as ChannelId);
  }

  async channel(id: string): Promise<Channel> {
    const cid = parseChannelId(id);
    let ch = this.#channels.get(cid);
    if (ch === undefined) {
      ch = await Channel.load(this.#context(), cid);
      this.#channels.set(cid, ch);
    }
    return ch;
  }

  /** Opens a channel to another party's contact card: the outreach. */
  async outreach(
    toParty: PartyId,
    note: string,
    opts: { mediator?: 'none' | 'blind' | 'member'; deliveryBoundMs?: number } = {},
  ): Promise<Channel> {
    const ctx = this.#context();
    const me = this.identity;
    if (toParty === me.party)
      throw new ClientError(
        'INVALID_ARGUMENT',
        `${toParty} is your own party: an outreach goes to another party's contact card`,
      );
    // The relay's rule for the opening commit, checked before any key package is claimed.
    const role = me.certificate.body.role;
    if (!ADDERS.includes(role))
      throw new ClientError(
        'EVENT_REJECTED',
        `a ${role} device may not open a channel: an outreach is made from an admin or principal device of your party (ask a principal or your admin)`,
        { causeCode: 'ROLE_FORBIDDEN' },
      );
    await ctx.certs.rememberCard(await this.relay.getCard(toParty));
    const theirs = await this.relay.claimKeyPackages(toParty);
    if (theirs.length === 0)
      throw new ClientError('NO_KEY_PACKAGES', `party ${toParty} has no device to reach`);
    // Our other devices join too; having none is fine.
    const mine = (
      await this.relay.claimKeyPackages(me.party).catch((e: unknown) => {
        if (e instanceof ClientError && e.cause_code === 'KEY_PACKAGES_EXHAUSTED') return [];
        throw e;
      })
    ).filter((k) => k.device !== me.device);
    for (const k of [...theirs, ...mine]) {
      if (ctx.certs.accept(k.certificate, this.now) === undefined) {
        throw new ClientError(
          'NO_KEY_PACKAGES',
          `the relay handed out a key package for device ${k.device} whose certificate does not verify`,
        );
      }
    }
    const id = channelIdFrom(this.#opts.random(16));
    const own = await ctx.mls.generateKeyPackage(false);
    const group = await ctx.mls.create(utf8(id), own);
    const ch = await Channel.adopt(ctx, id, group, 0);
    this.#channels.set(id, ch);
    const all = [...theirs, ...mine];
    try {
      await ch.commit(
        (g) => g.add(all.map((k) => k.keyPackage)),
        { add: all.map((k) => k.device as never), remove: [] },
        [toParty, me.party],
      );
    } catch (e) {
      // Refused (here or by the relay): the channel never existed. A commit whose answer was
      // lost stays, to be adopted by the next sync should the relay have taken it (Channel.neverOpened).
      if (!isRetryable(e)) await this.#forget(id);
      throw e;
    }
    await ch.send(
      {
        kind: 'outreach',
        from: me.party,
        to: toParty,
        note,
        ...(opts.mediator === undefined ? {} : { mediator: opts.mediator }),
        ...(opts.deliveryBoundMs === undefined ? {} : { deliveryBoundMs: opts.deliveryBoundMs }),
      },
      { to: [toParty] },
    );
    await this.outbox.flush();
    for (const live of this.#lives) live.joined(ch);
    return ch;
  }

  /**
   * Reads the party inbox: joins channels this device was welcomed to (each running live()
   * follows them). Returns the joined ones. Calls run one at a time.
   */
  checkInbox(): Promise<ChannelId[]> {
    const run = this.#inboxTurn.then(
      () => this.#checkInbox(),
      () => this.#checkInbox(),
    );
    this.#inboxTurn = run.catch(() => undefined);
    return run;
  }

  async #checkInbox(): Promise<ChannelId[]> {
    const ctx = this.#context();
    const cursorBytes = await this.#store.get(keys.inboxCursor);
    let cursor = cursorBytes === undefined ? 0 : Number(new TextDecoder().decode(cursorBytes));
    const joined: ChannelId[] = [];
    const items = await this.relay.getInbox(cursor);
    for (const item of items) {
      cursor = Math.max(cursor, item.cursor);
      const d = decodeEntry(item.entry);
      // Another device's Welcome may mean a device of this party this device has not listed yet.
      if (d.ok && d.value.envelope.body.sender !== ctx.identity.device) this.#joins.stale();
      if (!d.ok || d.value.envelope.body.kind !== 'welcome') continue;
      const channel = d.value.entry.channel;
      if ((await this.#store.get(keys.channel(channel))) !== undefined) continue;
      for (const p of d.value.envelope.body.to ?? []) {
        if (ctx.certs.rootKey(p) === undefined) await ctx.certs.rememberCard(await this.relay.getCard(p));
        await ctx.certs.refreshParty(p, this.now);
      }
      const kpKeys = await this.#store.keys(keys.keyPackagePrefix);
      const candidates: GeneratedKeyPackage[] = [];
      for (const k of kpKeys) {
        const b = await this.#store.get(k);
        if (b !== undefined) candidates.push(decodeKp(b));
      }
      let result: Awaited<ReturnType<MlsFactory['join']>>;
      try {
        result = await ctx.mls.join(d.value.envelope.body.mls, candidates);
      } catch {
        continue; // not for this device (or refused by our credential policy)
      }
      const ch = await Channel.adopt(ctx, channel, result.group, result.group.epoch);
      this.#channels.set(channel, ch);
      const usedKey = kpKeys[result.used];
      if (
        usedKey !== undefined &&
        candidates[result.used] !== undefined &&
        !isLastResort(kpKeys, result.used)
      ) {
        await this.#store.put([[usedKey, undefined]]);
      }
      joined.push(channel);
    }
    await this.#store.put([[keys.inboxCursor, utf8(String(cursor))]]);
    for (const id of joined) {
      const ch = this.#channels.get(id);
      if (ch !== undefined) for (const live of this.#lives) live.joined(ch);
    }
    if (joined.length > 0) await this.#replenishKeyPackages();
    return joined;
  }

  /**
   * Follows every channel of this device live: with `transport: 'ws'`, its entries are pushed on
   * the socket and folded with the checks of sync; otherwise (or while the socket is down) each
   * channel is polled over HTTP. The streams follow endpoint failover. The inbox is watched too
   * (pushed hints on the socket, else polled): channels this device joins or opens while live are
   * followed without a call to `live.follow`. `opts.channels` limits it to those channels.
   */
  async live(opts: LiveOptions = {}): Promise<Live> {
    // The named channels must exist before anything starts.
    const named: Channel[] = [];
    for (const id of opts.channels ?? []) named.push(await this.channel(id));
    // Delivered receipts go out as records arrive, as syncAll sends them (LiveOptions).
    const withReceipts: LiveOptions =
      opts.acknowledgeDelivery === false
        ? opts
        : {
            ...opts,
            onRecords: (ch, records) => {
              opts.onRecords?.(ch, records);
              this.#acknowledgeLive(ch);
            },
          };
    // Registered before the channels are listed: one joined meanwhile is not missed.
    const live: Live = new Live(this.relay, withReceipts, {
      checkInbox: () => this.checkInbox(),
      stopped: () => this.#lives.delete(live),
    });
    this.#lives.add(live);
    try {
      if (opts.channels !== undefined) for (const ch of named) live.follow(ch);
      else for (const id of await this.channelIds()) live.follow(await this.channel(id));
    } catch (e) {
      live.stop();
      throw e;
    }
    return live;
  }

  /**
   * Delivers queued sends, then syncs every channel, then adds this party's devices enrolled
   * since a channel opened (addNewDevices; a refusal or a rate limit is kept in `joinProblems`, not thrown: the next sync tries again).
   */
  async syncAll(onProgress?: Parameters<Channel['sync']>[0]): Promise<void> {
    // An enrollment that stopped before it redeemed its invite (or uploaded key packages).
    if ((await this.#store.get(keys.enrollmentPending)) !== undefined) await this.#finishEnrollment();
    this.joined = await this.checkInbox();
    await this.outbox.flush();
    this.dropped = [];
    for (const id of await this.channelIds()) {
      const ch = await this.channel(id);
      if (ch.record.removed) continue;
      try {
        await ch.sync(onProgress);
      } catch (e) {
        const never = ch.neverOpened(e);
        if (never === 'no') throw e;
        // Its opening commit may still reach the relay: the channel is left for a later sync.
        if (never === 'settling') continue;
        await this.#forget(id);
        this.dropped.push(id);
        continue;
      }
      await this.#acknowledgeDelivery(ch);
      if (ch.updateDue(this.#opts.updateEveryMs, this.#opts.updateEveryMessages)) await ch.selfUpdate();
    }
    this.joinProblems = [];
    this.added = [];
    this.removed = [];
    try {
      this.added = await this.addNewDevices();
    } catch (e) {
      if (!(e instanceof ClientError) || e.code === 'RELAY_UNREACHABLE') throw e;
      this.joinProblems = [e];
    }
    await this.outbox.flush();
  }

  /** The channels the last syncAll joined (Welcomes in the inbox). */
  joined: ChannelId[] = [];
  /**
   * The outreach channels the last syncAll dropped: their opening commit never reached the relay
   * (Channel.neverOpened), so nothing was sent and the outreach is to be made again.
   */
  dropped: ChannelId[] = [];

  /**
   * After `e` failed a sync of `ch`: drops the channel when it never opened at the relay, as
   * syncAll does (Channel.neverOpened; listed in `dropped`). True when it did.
   */
  async dropIfNeverOpened(ch: Channel, e: unknown): Promise<boolean> {
    if (ch.neverOpened(e) !== 'yes') return false;
    await this.#forget(ch.id);
    this.dropped.push(ch.id);
    return true;
  }

  /** Deletes what this device holds of a channel that never opened at the relay. */
  async #forget(id: ChannelId): Promise<void> {
    this.#channels.delete(id);
    const held = [
      keys.channel(id),
      keys.mls(id),
      ...(await this.#store.keys(keys.pendingCommitPrefix(id))),
      ...(await this.#store.keys(keys.owedDisclosurePrefix(id))),
    ];
    await this.#store.put(held.map((k) => [k, undefined] as [string, undefined]));
  }
  /** What the last syncAll added (addNewDevices), and why it could not, if it could not. */
  added: Array<{ channel: ChannelId; devices: DeviceId[] }> = [];
  /** What the last addNewDevices removed: revoked devices of this party still in a channel. */
  removed: Array<{ channel: ChannelId; devices: DeviceId[] }> = [];
  joinProblems: ClientError[] = [];

  /**
   * Adds this party's devices enrolled after a channel opened (join.ts) to each channel this
   * device is in, when its role may add devices (admin, principal: the relay's rule). Returns
   * what it added (`only`: in these channels). Two devices of the party adding at once: the relay takes one commit, the
   * other syncs and finds the device added.
   */
  async addNewDevices(
    only?: readonly ChannelId[],
  ): Promise<Array<{ channel: ChannelId; devices: DeviceId[] }>> {
    const me = this.identity;
    this.removed = [];
    if (!ADDERS.includes(me.certificate.body.role)) return [];
    const channels: Channel[] = [];
    for (const id of only ?? (await this.channelIds())) {
      const ch = await this.channel(id);
      const l = ch.view.state.lifecycle;
      if (!ch.record.removed && ch.group !== undefined && l !== 'none' && l !== 'closed') channels.push(ch);
    }
    if (channels.length === 0) return [];
    // Devices and revocations as the relay's directory has them, each certificate verified: read
    // again when the last read is older than deviceListTtlMs or something suggests a change.
    if (this.#joins.deviceListDue()) {
      const at = this.now;
      const certs = this.#context().certs;
      await certs.refreshParty(me.party, at);
      this.#joins.deviceListRead(
        at,
        certs.validDevices(me.party, at).map((c) => c.body.device),
      );
      // The other parties' revocations too: a party whose every device in a channel was revoked
      // is re-seated (#reseat). One that cannot be read now is read on the next pass.
      const others = new Set<PartyId>();
      for (const ch of channels)
        for (const m of ch.group?.members() ?? [])
          if (m.certificate.body.party !== me.party) others.add(m.certificate.body.party);
      for (const p of others) {
        try {
          await certs.refreshParty(p, at);
        } catch (e) {
          if (!(e instanceof ClientError)) throw e;
        }
      }
    }
    const out: Array<{ channel: ChannelId; devices: DeviceId[] }> = [];
    let removalFailure: unknown;
    for (const ch of channels) {
      const removed = await this.#removeRevoked(ch).catch((e: unknown) => {
        // Adding the party's new devices goes on; the failure is reported once all are done.
        removalFailure ??= e;
        return [];
      });
      if (removed.length > 0) this.removed.push({ channel: ch.id, devices: removed });
      const devices = await this.#addMissing(ch);
      const reseated = await this.#reseat(ch).catch((e: unknown) => {
        removalFailure ??= e;
        return [];
      });
      if (devices.length + reseated.length > 0)
        out.push({ channel: ch.id, devices: [...devices, ...reseated] });
    }
    if (out.length > 0) await this.outbox.flush();
    if (removalFailure !== undefined) {
      if (out.length > 0) this.added = out;
      throw removalFailure;
    }
    return out;
  }

  /**
   * Removes from `ch` the devices of this party that its root revoked: the admin that revoked a
   * device removes it from the channels it is in (revokeDevice), and every other admin or
   * principal device of the party from the rest — a channel the admin is not in (a recovered or
   * new admin device, a channel its principal opened) would otherwise keep a revoked member, which
   * the relay refuses but which still holds the group's keys. Only a revocation the root signed
   * counts (CertificateBook.refreshParty), never a device missing from the relay's list.
   */
  async #removeRevoked(ch: Channel): Promise<DeviceId[]> {
    const me = this.identity;
    const certs = this.#context().certs;
    for (let attempt = 0; ; attempt++) {
      const group = ch.group;
      if (group === undefined || ch.record.removed) return [];
      const now = this.now;
      const revoked = group
        .members()
        .filter(
          (m) =>
            m.certificate.body.party === me.party &&
            m.device !== me.device &&
            certs.isRevoked(me.party, m.device, now),
        )
        .map((m) => m.device);
      if (revoked.length === 0) return [];
      try {
        await ch.commit((g) => g.remove(revoked), { add: [], remove: revoked });
        return revoked;
      } catch (e) {
        // Another device of the party removed it (or committed) first — the relay refuses a stale
        // epoch, or the group applied that removal meanwhile and no longer holds the device:
        // catch up and look again (nothing left to remove ends it).
        if (attempt < 3 && e instanceof ClientError && e.code !== 'RELAY_UNREACHABLE') {
          await ch.sync();
          continue;
        }
        throw e;
      }
    }
  }

  async #addMissing(ch: Channel): Promise<DeviceId[]> {
    const ctx = this.#context();
    const me = this.identity;
    for (let attempt = 0; ; attempt++) {
      const group = ch.group;
      if (group === undefined || ch.record.removed) return [];
      const missing = missingDevices(ctx, new Set(group.members().map((m) => m.device)));
      if (missing.length === 0) return [];
      const claimed: ClaimedKeyPackage[] = [];
      for (const d of missing) {
        // A device that had no key package (or whose Add failed) waits out its backoff: every
        // claim spends this device's claim budget at the relay.
        if (!this.#joins.mayClaim(d)) continue;
        const got = await this.relay.claimKeyPackages(me.party, d).catch((e: unknown) => {
          if (e instanceof ClientError && e.cause_code === 'KEY_PACKAGES_EXHAUSTED') return [];
          if (e instanceof ClientError && e.code === 'RATE_LIMITED') this.#joins.rateLimited(e.retryAfterMs);
          throw e;
        });
        const valid = got.filter(
          (k) => k.device === d && ctx.certs.accept(k.certificate, this.now) !== undefined,
        );
        if (valid.length === 0) this.#joins.failed(d);
        claimed.push(...valid);
      }
      if (claimed.length === 0) return [];
      const devices = claimed.map((k) => k.device as DeviceId);
      try {
        // The Welcome goes to every party's inbox: the new device must fetch each party's
        // card to check every member's credential before it can join.
        await ch.commit((g) => g.add(claimed.map((k) => k.keyPackage)), { add: devices, remove: [] }, [
          ...ch.view.state.parties,
        ]);
      } catch (e) {
        // RFC 9420 §14: the relay takes one commit per epoch. Another device of this party may
        // have added the device first: catch up and look again.
        if (attempt < 3 && e instanceof ClientError && e.cause_code === 'EPOCH_STALE') {
          await ch.sync();
          continue;
        }
        for (const d of devices) this.#joins.failed(d);
        throw e;
      }
      for (const d of devices) this.#joins.added(d);
      // The join.context the commit recorded as owed (durably, with it).
      await ch.discloseOwed();
      return devices;
    }
  }

  /**
   * Re-seats another party whose every device in `ch` its root revoked (it lost its only device
   * there and recovered the party onto a new one, PROTOCOL.md §9): one commit removes those
   * devices and adds the party's current ones (a key package each, as an outreach does), then a
   * join.context discloses to them what that party's own adder would (join.ts). Nothing to do
   * while one of its devices there is not revoked: the party adds its own devices itself.
   */
  async #reseat(ch: Channel): Promise<DeviceId[]> {
    const ctx = this.#context();
    const me = this.identity;
    for (let attempt = 0; ; attempt++) {
      const group = ch.group;
      if (group === undefined || ch.record.removed) return [];
      const now = this.now;
      const byParty = new Map<PartyId, DeviceId[]>();
      for (const m of group.members()) {
        const party = m.certificate.body.party;
        if (party !== me.party) byParty.set(party, [...(byParty.get(party) ?? []), m.device]);
      }
      // A party with nothing to claim last time waits out its backoff (join-schedule.ts); the
      // next party to re-seat is not held up behind it.
      const seat = [...byParty].find(
        ([party, devices]) =>
          devices.every((d) => ctx.certs.isRevoked(party, d, now)) && this.#joins.mayClaim(party),
      );
      if (seat === undefined) return [];
      const [party, revoked] = seat;
      const claimed = (
        await this.relay.claimKeyPackages(party).catch((e: unknown) => {
          if (e instanceof ClientError && e.cause_code === 'KEY_PACKAGES_EXHAUSTED') return [];
          if (e instanceof ClientError && e.code === 'RATE_LIMITED') this.#joins.rateLimited(e.retryAfterMs);
          throw e;
        })
      ).filter(
        (k) =>
          !revoked.includes(k.device as DeviceId) &&
          ctx.certs.accept(k.certificate, now)?.body.party === party,
      );
      // The party has no device to seat yet (none enrolled, or none with a key package): later.
      if (claimed.length === 0) {
        this.#joins.failed(party);
        return [];
      }
      const devices = claimed.map((k) => k.device as DeviceId);
      try {
        await ch.commit(
          (g) =>
            g.replace(
              revoked,
              claimed.map((k) => k.keyPackage),
            ),
          { add: devices, remove: revoked },
          [...ch.view.state.parties],
        );
      } catch (e) {
        // Another device re-seated the party first (the relay takes one commit per epoch).
        if (attempt < 3 && e instanceof ClientError && e.cause_code === 'EPOCH_STALE') {
          await ch.sync();
          continue;
        }
        // The claimed key packages are spent: the party waits out a backoff before the next claim.
        this.#joins.failed(party);
        throw e;
      }
      this.#joins.added(party);
      // The join.context the commit recorded as owed (durably, with it).
      await ch.discloseOwed();
      return devices;
    }
  }

  /** Automatic delivery receipts: one per batch, for what our party has not yet acknowledged. */
  /** Channels whose delivered receipts live() is sending, and whether records came meanwhile. */
  readonly #liveAcks = new Map<ChannelId, { again: boolean }>();

  /**
   * Sends the delivered receipt of what live() just folded, and delivers it: one run per channel
   * at a time, and one more when records came during it. A failure is left to the next records
   * or syncAll (the receipt is owed until sent: #acknowledgeDelivery reads it from the state).
   */
  #acknowledgeLive(ch: Channel): void {
    const running = this.#liveAcks.get(ch.id);
    if (running !== undefined) {
      running.again = true;
      return;
    }
    const run = { again: false };
    this.#liveAcks.set(ch.id, run);
    void (async () => {
      try {
        do {
          run.again = false;
          await this.#acknowledgeDelivery(ch);
        } while (run.again);
        await this.outbox.flush();
      } catch {
        // retried with the next records, or by the next syncAll
      } finally {
        this.#liveAcks.delete(ch.id);
      }
    })();
  }

  /** Per channel, the delivered receipt being sent (#acknowledgeDelivery): one at a time. */
  readonly #ackTurns = new Map<ChannelId, Promise<unknown>>();

  /**
   * Sends the automatic delivered receipt of what `ch` holds, as syncAll and live() do (one at a
   * time per channel, so that two callers do not both send it).
   */
  acknowledgeDelivery(ch: Channel): Promise<void> {
    return this.#acknowledgeDelivery(ch);
  }

  #acknowledgeDelivery(ch: Channel): Promise<void> {
    const turn = this.#ackTurns.get(ch.id) ?? Promise.resolve();
    const next = turn.then(
      () => this.#sendDeliveryReceipt(ch),
      () => this.#sendDeliveryReceipt(ch),
    );
    this.#ackTurns.set(
      ch.id,
      next.catch(() => undefined),
    );
    return next;
  }

  async #sendDeliveryReceipt(ch: Channel): Promise<void> {
    const me = this.identity.party;
    const s = ch.view.state;
    if (s.lifecycle === 'closed' || s.lifecycle === 'none' || !s.parties.includes(me)) return;
    const ids = [...s.receipts.entries()]
      .filter(([, r]) => r.from !== me && r.delivered[me] === undefined)
      .map(([id]) => id as EventId)
      .slice(0, 1000);
    if (
      ids.length === 0 ||
      (await this.#store.get(keys.receiptSent(ch.id, ids.at(-1) as string))) !== undefined
    )
      return;
    // The marker goes with the receipt, in one write: neither without the other after a stop.
    await ch.sendMany([{ kind: 'receipt', type: 'delivered', of: ids } as DraftEvent], {
      also: [[keys.receiptSent(ch.id, ids.at(-1) as string), ONE]],
    });
  }

  close(): void {
    for (const live of [...this.#lives]) live.stop();
    this.#ctx?.relay.close();
    this.#store.close();
  }
}

// The first key package ever stored (kp:00000000) is the device's last-resort package.
function isLastResort(kpKeys: readonly string[], index: number): boolean {
  return kpKeys[index] === keys.keyPackage(0);
}

function encodeKp(k: GeneratedKeyPackage): Uint8Array {
  const out = new Uint8Array(4 + k.publicBytes.length + k.privateBytes.length);
  new DataView(out.buffer).setUint32(0, k.publicBytes.length);
  out.set(k.publicBytes, 4);
  out.set(k.privateBytes, 4 + k.publicBytes.length);
  return out;
}

function decodeKp(b: Uint8Array): GeneratedKeyPackage {
  const n = new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(0);
  return { publicBytes: b.slice(4, 4 + n), privateBytes: b.slice(4 + n) };
}
