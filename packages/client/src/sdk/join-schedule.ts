/**
 * When a device that adds its party's new devices to channels (join.ts) reads the party's device
 * list and claims key packages: a quiet sync loop must not cost a relay request on every pass.
 *
 * - The party's device list is read at most every `deviceListTtlMs` (default 60 s: a device
 *   enrolled meanwhile waits at most that long for a running sync loop to add it), and at the next
 *   sync after something suggests it changed (`stale()`): this device added or revoked a device, an
 *   item arrived in the party inbox (a Welcome: another device of the party may have added one), or
 *   an attempt to add a device failed (it may have been revoked).
 * - A device whose claim came back empty (it has uploaded no key package yet; the relay also hands
 *   out none for a revoked device) or whose Add failed is not claimed again before its backoff
 *   ends: `claimBackoffMs.min` (default 5 s), doubled on each failure up to `claimBackoffMs.max`
 *   (default 10 min). Every claim, answered or not, spends the claiming device's budget
 *   (the relay's rateLimits.keyPackageClaims). The backoff ends when an Add of the device succeeds
 *   or the party's device list changes. A RATE_LIMITED answer pauses every claim as long as the
 *   relay asks.
 *
 * Kept in memory: a new process (each CLI command) reads the list and claims afresh.
 */
import type { DeviceId, PartyId } from '@backchannel/protocol';

export interface JoinScheduleOptions {
  /** How long the party's device list is trusted before it is read again (default 60 s). */
  readonly deviceListTtlMs?: number;
  /** The first wait after a failed claim or Add of a device, and the longest (default 5 s, 10 min). */
  readonly claimBackoffMs?: { readonly min: number; readonly max: number };
}

const DEVICE_LIST_TTL_MS = 60_000;
const CLAIM_BACKOFF_MS = { min: 5_000, max: 600_000 } as const;

export class JoinSchedule {
  readonly #now: () => number;
  readonly #ttl: number;
  readonly #min: number;
  readonly #max: number;
  /** When the device list was last read (undefined: never, or stale since). */
  #listedAt: number | undefined;
  /** The party's valid devices at the last read, sorted and joined. */
  #listed: string | undefined;
  readonly #backoff = new Map<DeviceId | PartyId, { readonly failures: number; readonly until: number }>();
  #pausedUntil = 0;

  constructor(now: () => number, opts: JoinScheduleOptions = {}) {
    this.#now = now;
    this.#ttl = opts.deviceListTtlMs ?? DEVICE_LIST_TTL_MS;
    this.#min = opts.claimBackoffMs?.min ?? CLAIM_BACKOFF_MS.min;
    this.#max = opts.claimBackoffMs?.max ?? CLAIM_BACKOFF_MS.max;
    if (!(this.#ttl >= 0) || !(this.#min > 0) || !(this.#max >= this.#min))
      throw new RangeError('deviceListTtlMs must be ≥ 0 and claimBackoffMs 0 < min ≤ max');
  }

  /** Whether the device list should be read now. */
  deviceListDue(): boolean {
    const at = this.#listedAt;
    const now = this.#now();
    // A clock that went back makes the cached list due too.
    return at === undefined || now - at >= this.#ttl || now < at;
  }

  /**
   * Records a read of the device list that started at `at`, with the valid devices it gave. When
   * they changed since the last read, every claim backoff ends.
   */
  deviceListRead(at: number, devices: readonly DeviceId[]): void {
    const key = [...devices].sort().join(' ');
    if (this.#listed !== undefined && key !== this.#listed) this.#backoff.clear();
    this.#listed = key;
    this.#listedAt = at;
  }

  /** Something suggests the device list changed: read it at the next sync. */
  stale(): void {
    this.#listedAt = undefined;
  }

  /** Whether a key package of `device` (or of party `device`, to re-seat it) may be claimed now. */
  mayClaim(device: DeviceId | PartyId): boolean {
    const now = this.#now();
    return now >= this.#pausedUntil && now >= (this.#backoff.get(device)?.until ?? 0);
  }

  /** The claim of `device` came back empty, or its Add failed: wait, longer each time. */
  failed(device: DeviceId | PartyId): void {
    const failures = (this.#backoff.get(device)?.failures ?? 0) + 1;
    const wait = Math.min(this.#max, this.#min * 2 ** Math.min(failures - 1, 30));
    this.#backoff.set(device, { failures, until: this.#now() + wait });
    this.stale();
  }

  /** `device` was added: its backoff ends. */
  added(device: DeviceId | PartyId): void {
    this.#backoff.delete(device);
  }

  /** The relay refused a claim for the claim budget: no claim before `retryAfterMs`. */
  rateLimited(retryAfterMs: number | undefined): void {
    this.#pausedUntil = this.#now() + (retryAfterMs ?? this.#min);
  }
}
