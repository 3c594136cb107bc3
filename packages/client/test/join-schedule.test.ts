/**
 * When an adding device reads its party's device list and claims a new device's key package
 * (sdk/join-schedule.ts), on an injected clock.
 */
import type { DeviceId } from '@backchannel/protocol';
import { describe, expect, it } from 'vitest';
import { JoinSchedule } from '../src/sdk/join-schedule.ts';

const d1 = 'd_one' as DeviceId;
const d2 = 'd_two' as DeviceId;

describe('the join schedule', () => {
  it('reads the device list once per TTL, and at once when it is stale or the clock went back', () => {
    let now = 1_000_000;
    const s = new JoinSchedule(() => now, { deviceListTtlMs: 60_000 });
    expect(s.deviceListDue()).toBe(true);
    s.deviceListRead(now, [d1]);
    now += 59_999;
    expect(s.deviceListDue()).toBe(false);
    now += 1;
    expect(s.deviceListDue()).toBe(true);
    s.deviceListRead(now, [d1]);
    s.stale();
    expect(s.deviceListDue()).toBe(true);
    s.deviceListRead(now, [d1]);
    now -= 1;
    expect(s.deviceListDue()).toBe(true);
  });

  it('backs a device off from 5 s, doubling to 10 min, per device; an Add or a changed list ends it', () => {
    let now = 0;
    const s = new JoinSchedule(() => now);
    const waits: number[] = [];
    for (let i = 0; i < 10; i++) {
      const start = now;
      s.failed(d1);
      while (!s.mayClaim(d1)) now += 1_000;
      waits.push(now - start);
    }
    expect(waits).toEqual([
      5_000, 10_000, 20_000, 40_000, 80_000, 160_000, 320_000, 600_000, 600_000, 600_000,
    ]);
    expect(s.mayClaim(d2)).toBe(true);
    s.failed(d1);
    expect(s.mayClaim(d1)).toBe(false);
    s.added(d1);
    expect(s.mayClaim(d1)).toBe(true);
    // A failure makes the list stale; the same list keeps the backoff, another one ends it.
    s.deviceListRead(now, [d1]);
    s.failed(d1);
    expect(s.deviceListDue()).toBe(true);
    s.deviceListRead(now, [d1]);
    expect(s.mayClaim(d1)).toBe(false);
    s.deviceListRead(now, [d1, d2]);
    expect(s.mayClaim(d1)).toBe(true);
  });

  it('pauses every claim for as long as the relay asks after a rate limit', () => {
    let now = 0;
    const s = new JoinSchedule(() => now, { claimBackoffMs: { min: 1_000, max: 8_000 } });
    s.rateLimited(30_000);
    now = 29_999;
    expect(s.mayClaim(d1) || s.mayClaim(d2)).toBe(false);
    now = 30_000;
    expect(s.mayClaim(d1) && s.mayClaim(d2)).toBe(true);
    expect(() => new JoinSchedule(() => now, { claimBackoffMs: { min: 5, max: 1 } })).toThrow(RangeError);
  });
});
