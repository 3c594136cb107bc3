/**
 * The device directory as the hot paths see it: registered devices by id, cached for a short
 * time (auth runs on every request) and invalidated locally when a certificate or revocation
 * is written.
 */
import type { DeviceId } from '@backchannel/protocol';
import type { RelayErrorCode } from '../errors.ts';
import type { DeviceRecord, Store } from '../store/store.ts';

export interface DeviceDirectoryOptions {
  readonly ttlMs?: number;
  readonly maxEntries?: number;
}

const REMEMBERED_REVOCATIONS = 10_000;

export class DeviceDirectory {
  readonly #store: Store;
  readonly #ttlMs: number;
  readonly #max: number;
  readonly #cache = new Map<DeviceId, { rec: DeviceRecord; until: number }>();
  readonly #listeners: Array<(device: DeviceId) => void> = [];
  /** Revocations this process has heard of, numbered in order (recent ones: see revokedSince). */
  readonly #revoked = new Map<DeviceId, number>();
  #revocations = 0;

  constructor(store: Store, opts: DeviceDirectoryOptions = {}) {
    this.#store = store;
    this.#ttlMs = opts.ttlMs ?? 30_000;
    this.#max = opts.maxEntries ?? 50_000;
  }

  async get(device: DeviceId, now: number): Promise<DeviceRecord | undefined> {
    const hit = this.#cache.get(device);
    if (hit !== undefined && hit.until > now) return hit.rec;
    const rec = await this.#store.read((tx) => tx.getDevice(device));
    if (rec === undefined) {
      this.#cache.delete(device);
      return undefined;
    }
    if (this.#cache.size >= this.#max) {
      const oldest = this.#cache.keys().next();
      if (oldest.done !== true) this.#cache.delete(oldest.value);
    }
    this.#cache.set(device, { rec, until: now + this.#ttlMs });
    return rec;
  }

  /** Forget a device (its certificate changed or it was revoked) and tell the listeners. */
  invalidate(device: DeviceId, revoked = false): void {
    this.#cache.delete(device);
    if (!revoked) return;
    this.#remember(device);
    for (const l of this.#listeners) l(device);
  }

  /**
   * A revocation another node wrote (heard over the fan-out): forget the cached record and count
   * it for revokedSince, without telling the listeners (they publish to the fan-out).
   */
  heardRevoked(device: DeviceId): void {
    this.#cache.delete(device);
    this.#remember(device);
  }

  #remember(device: DeviceId): void {
    this.#revoked.delete(device);
    this.#revoked.set(device, ++this.#revocations);
    if (this.#revoked.size > REMEMBERED_REVOCATIONS) {
      const oldest = this.#revoked.keys().next();
      if (oldest.done !== true) this.#revoked.delete(oldest.value);
    }
  }

  /** Where the revocations heard of stand now: give it to revokedSince later. */
  mark(): number {
    return this.#revocations;
  }

  /**
   * Whether `device` was revoked after `mark()` returned `mark`: an append checked before the
   * revocation was heard of is refused when its batch is built. Only the latest revocations are
   * remembered, enough for the milliseconds an append waits.
   */
  revokedSince(device: DeviceId, mark: number): boolean {
    return (this.#revoked.get(device) ?? 0) > mark;
  }

  /** Called with each device that gets revoked (the WebSocket hub closes its connections). */
  onRevoked(listener: (device: DeviceId) => void): void {
    this.#listeners.push(listener);
  }
}

/** Why a registered device may not act now, if it may not. */
export function deviceStatus(
  rec: DeviceRecord,
  now: number,
): Extract<RelayErrorCode, 'CERT_REVOKED' | 'CERT_EXPIRED' | 'CERT_NOT_YET_VALID'> | undefined {
  if (rec.revokedAt !== undefined && rec.revokedAt <= now) return 'CERT_REVOKED';
  if (now < rec.notBefore) return 'CERT_NOT_YET_VALID';
  if (now > rec.notAfter) return 'CERT_EXPIRED';
  return undefined;
}
