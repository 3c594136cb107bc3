/**
 * Device authentication by signed requests (no passwords, no bearer tokens):
 *   x-bc-device: d_…   x-bc-time: <ms>   x-bc-sig: base64url(sig)
 *   sig = Ed25519(deviceKey, CBOR(['backchannel/v1 request',
 *                                  CBOR([METHOD, pathWithQuery, time, SHA-256(body), relayName])]))
 * (protocol's requestSigningBody / signRequest). `relayName` is this relay's own name (GET
 * /v1/relay `name`): a request signed for another relay does not verify here (AUTH_INVALID), so
 * what one relay saw cannot be replayed to another. The time must be within the skew window, a
 * signature is accepted once (remembered per device: ReplayCache; with several nodes, also in the
 * shared store, so a request used on one node is a replay on every other — envelope posts
 * excepted, which are idempotent), the device must be registered, its certificate valid and not
 * revoked.
 * WebSocket connections authenticate the same way with method 'WS', path '/v1/ws', empty body.
 */
import {
  type DeviceId,
  encodeCanonical,
  isId,
  labelledMessage,
  REQUEST_HEADERS,
} from '@backchannel/protocol';
import { type DeviceDirectory, deviceStatus } from '../directory/devices.ts';
import { sha256 } from '../ed25519.node.ts';
import { RelayError } from '../errors.ts';
import type { DeviceRecord, Store } from '../store/store.ts';
import type { Verifier } from '../verify-pool.node.ts';

export { REQUEST_HEADERS };

interface DeviceWindow {
  /** Accepted signatures (key → signed time), in arrival order. */
  readonly seen: Map<string, number>;
  /** Requests signed at or before this time are refused: an evicted signature might be among them. */
  floor: number;
}

/**
 * Remembers accepted signatures per device for the replay window, in bounded memory. When full,
 * the oldest signature of the least recently active other device is evicted and that device's
 * floor rises to its time: a request it signed at or before its floor is refused (it might
 * replay the evicted one), so eviction never opens a replay hole — and one device's clock or
 * traffic only ever moves its own floor, or the floor of a device idle for longer than it.
 * A device whose signatures were all evicted keeps only its floor until the floor is too old to
 * matter; past maxEntries such floors, the oldest is folded into one shared floor for devices
 * the cache holds nothing for (the only way devices affect one another, and only past
 * maxEntries devices evicted within the window).
 */
export class ReplayCache {
  readonly #max: number;
  readonly #windowMs: number;
  /** Devices with remembered signatures, least recently active first. */
  readonly #active = new Map<string, DeviceWindow>();
  /** Floors of devices whose signatures were all evicted, oldest first. */
  readonly #idle = new Map<string, number>();
  #lostFloor = -1;
  #size = 0;

  constructor(maxEntries: number, windowMs: number) {
    this.#max = maxEntries;
    this.#windowMs = windowMs;
  }

  /** Signatures remembered, all devices together. */
  get size(): number {
    return this.#size;
  }

  check(device: string, key: string, time: number, now: number): 'ok' | 'replay' | 'too-old' {
    this.#expire(now);
    const w = this.#active.get(device) ?? {
      seen: new Map<string, number>(),
      floor: this.#idle.get(device) ?? this.#lostFloor,
    };
    if (time <= w.floor) return 'too-old';
    if (w.seen.has(key)) return 'replay';
    this.#active.delete(device);
    this.#idle.delete(device);
    while (this.#size >= this.#max) if (!this.#evictOne(w)) break;
    w.seen.set(key, time);
    this.#size++;
    this.#active.set(device, w);
    return 'ok';
  }

  /** Evicts the oldest signature of the least recently active device (`current` when it is alone). */
  #evictOne(current: DeviceWindow): boolean {
    const first = this.#active.entries().next();
    const [device, w] = first.done === true ? [undefined, current] : first.value;
    const oldest = w.seen.entries().next();
    if (oldest.done === true) return false;
    w.seen.delete(oldest.value[0]);
    this.#size--;
    w.floor = Math.max(w.floor, oldest.value[1]);
    if (device !== undefined && w.seen.size === 0) {
      this.#active.delete(device);
      this.#remember(device, w.floor);
    }
    return true;
  }

  #remember(device: string, floor: number): void {
    this.#idle.set(device, floor);
    while (this.#idle.size > this.#max) {
      const oldest = this.#idle.entries().next();
      if (oldest.done === true) break;
      this.#idle.delete(oldest.value[0]);
      this.#lostFloor = Math.max(this.#lostFloor, oldest.value[1]);
    }
  }

  /**
   * Forgets what the time check refuses anyway (signed before now − window), a bounded amount
   * per call, from the least recently active devices.
   */
  #expire(now: number): void {
    const cutoff = now - this.#windowMs;
    let budget = 64;
    for (const [device, w] of this.#active) {
      for (const [k, t] of w.seen) {
        if (t >= cutoff || budget-- <= 0) break;
        w.seen.delete(k);
        this.#size--;
      }
      if (w.seen.size > 0) break;
      this.#active.delete(device);
      if (w.floor >= cutoff) this.#remember(device, w.floor);
    }
    for (const [device, floor] of this.#idle) {
      if (floor >= cutoff || budget-- <= 0) break;
      this.#idle.delete(device);
    }
  }
}

export interface SignedHeaders {
  readonly device: string | undefined;
  readonly time: string | undefined;
  readonly sig: string | undefined;
}

const SIG_RE = /^[A-Za-z0-9_-]{86}$/;
const TIME_RE = /^[0-9]{1,16}$/;

/** The exact bytes a device signs (same as protocol's requestSigningBody, hashed on node:crypto). */
export function requestMessage(
  method: string,
  pathWithQuery: string,
  time: number,
  body: Uint8Array,
  relayName: string,
): Uint8Array {
  return labelledMessage(
    'request',
    encodeCanonical([method.toUpperCase(), pathWithQuery, time, sha256(body), relayName]),
  );
}

/** A shared store's claimRequest (Store.claimRequest): false when another node took it first. */
type ClaimRequest = NonNullable<Store['claimRequest']>;

export class Authenticator {
  readonly #directory: DeviceDirectory;
  readonly #verifier: Verifier;
  readonly #replay: ReplayCache;
  readonly #skewMs: number;
  readonly #relayName: string;
  readonly #claim: ClaimRequest | undefined;

  constructor(
    directory: DeviceDirectory,
    verifier: Verifier,
    /** `relayName`: this relay's name, which every signature must name (PROTOCOL.md §11). */
    opts: {
      skewMs: number;
      replayEntries: number;
      relayName: string;
      /**
       * Several nodes: records the accepted signature for all of them (a shared store's
       * claimRequest); false when another node took it first.
       */
      claim?: ClaimRequest;
    },
  ) {
    this.#claim = opts.claim;
    this.#directory = directory;
    this.#verifier = verifier;
    this.#skewMs = opts.skewMs;
    this.#relayName = opts.relayName;
    this.#replay = new ReplayCache(opts.replayEntries, opts.skewMs * 2);
  }

  async verify(
    h: SignedHeaders,
    method: string,
    pathWithQuery: string,
    body: Uint8Array,
    now: number,
    opts: {
      /** false: this node's replay cache only (envelope posts, which are idempotent). */
      clusterWide?: boolean;
      /**
       * Runs once the signature and the device's standing are checked, before the cluster's
       * shared record is written (the rate limits: a device over its limit costs no insert).
       */
      admit?: (rec: DeviceRecord) => void;
    } = {},
  ): Promise<DeviceRecord> {
    if (h.device === undefined || h.time === undefined || h.sig === undefined) {
      throw new RelayError('AUTH_MISSING', 'this request must be signed (x-bc-device, x-bc-time, x-bc-sig)');
    }
    if (!isId(h.device, 'd_') || !TIME_RE.test(h.time) || !SIG_RE.test(h.sig)) {
      throw new RelayError('AUTH_INVALID', 'malformed authentication headers');
    }
    const time = Number(h.time);
    if (Math.abs(now - time) > this.#skewMs) {
      throw new RelayError('AUTH_EXPIRED', 'request time is outside the accepted window (check the clock)');
    }
    const device = h.device as DeviceId;
    const rec = await this.#directory.get(device, now);
    if (rec === undefined) throw new RelayError('DEVICE_UNKNOWN', 'this device is not registered');
    const sig = Buffer.from(h.sig, 'base64url');
    // PROTOCOL.md §11: the signature names this relay; one made for another relay (or for none,
    // the old four-field form) fails here like any forgery.
    const msg = requestMessage(method, pathWithQuery, time, body, this.#relayName);
    if (!(await this.#verifier.verify(sig, msg, rec.publicKey))) {
      throw new RelayError(
        'AUTH_INVALID',
        'request signature does not verify (it must be signed for this relay: the name GET /v1/relay gives)',
      );
    }
    const key = h.sig.slice(0, 24);
    const seen = this.#replay.check(device, key, time, now);
    if (seen === 'replay') throw new RelayError('AUTH_REPLAY', 'this signed request was already used');
    if (seen === 'too-old') throw new RelayError('AUTH_EXPIRED', 'request time is too old; sign it again');
    const status = deviceStatus(rec, now);
    if (status !== undefined) {
      throw new RelayError(
        status,
        status === 'CERT_REVOKED'
          ? 'this device was revoked by its party'
          : 'device certificate is not valid now',
      );
    }
    opts.admit?.(rec);
    // This node had not seen it; the other nodes of a cluster may have (one check for all of them),
    // made last: only a valid request of a device in good standing, within its rate limits, writes
    // to the shared record.
    if (
      this.#claim !== undefined &&
      opts.clusterWide !== false &&
      !(await this.#claim(device, key, time, now - 2 * this.#skewMs))
    ) {
      throw new RelayError('AUTH_REPLAY', 'this signed request was already used');
    }
    return rec;
  }
}
