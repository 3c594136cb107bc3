/**
 * Device authentication by signed requests (no passwords, no bearer tokens):
 *   x-bc-device: d_…   x-bc-time: <ms>   x-bc-sig: base64url(sig)
 *   sig = Ed25519(deviceKey, CBOR(['backchannel/v1 request', CBOR([METHOD, pathWithQuery, time, SHA-256(body)])]))
 * (protocol's requestSigningBody / signRequest). The time must be within the skew window, a
 * signature is accepted once, the device must be registered, its certificate valid and not revoked.
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
import type { DeviceRecord } from '../store/store.ts';
import type { Verifier } from '../verify-pool.node.ts';

export { REQUEST_HEADERS };

/**
 * Remembers accepted signatures for the skew window, in bounded memory. When full, the oldest
 * entry is evicted and the floor rises to its time: a request signed at or before the floor is
 * refused (it might be the replay of an evicted one), so eviction never opens a replay hole.
 */
export class ReplayCache {
  readonly #max: number;
  readonly #windowMs: number;
  readonly #seen = new Map<string, number>();
  #floor = -1;

  constructor(maxEntries: number, windowMs: number) {
    this.#max = maxEntries;
    this.#windowMs = windowMs;
  }

  get size(): number {
    return this.#seen.size;
  }

  check(key: string, time: number, now: number): 'ok' | 'replay' | 'too-old' {
    for (const [k, t] of this.#seen) {
      if (t >= now - this.#windowMs) break;
      this.#seen.delete(k);
    }
    if (time <= this.#floor) return 'too-old';
    if (this.#seen.has(key)) return 'replay';
    while (this.#seen.size >= this.#max) {
      const oldest = this.#seen.entries().next();
      if (oldest.done === true) break;
      this.#seen.delete(oldest.value[0]);
      this.#floor = Math.max(this.#floor, oldest.value[1]);
    }
    this.#seen.set(key, time);
    return 'ok';
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
): Uint8Array {
  return labelledMessage(
    'request',
    encodeCanonical([method.toUpperCase(), pathWithQuery, time, sha256(body)]),
  );
}

export class Authenticator {
  readonly #directory: DeviceDirectory;
  readonly #verifier: Verifier;
  readonly #replay: ReplayCache;
  readonly #skewMs: number;

  constructor(
    directory: DeviceDirectory,
    verifier: Verifier,
    opts: { skewMs: number; replayEntries: number },
  ) {
    this.#directory = directory;
    this.#verifier = verifier;
    this.#skewMs = opts.skewMs;
    this.#replay = new ReplayCache(opts.replayEntries, opts.skewMs * 2);
  }

  async verify(
    h: SignedHeaders,
    method: string,
    pathWithQuery: string,
    body: Uint8Array,
    now: number,
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
    if (
      !(await this.#verifier.verify(sig, requestMessage(method, pathWithQuery, time, body), rec.publicKey))
    ) {
      throw new RelayError('AUTH_INVALID', 'request signature does not verify');
    }
    const seen = this.#replay.check(h.sig.slice(0, 24), time, now);
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
    return rec;
  }
}
