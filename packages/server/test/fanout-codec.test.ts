/** The fan-out wire form between relay nodes: round trips, splitting to the transport's limit, junk. */
import type { ChannelId, DeviceId, PartyId } from '@backchannel/protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeFanout, encodeFanout, FanoutDecodeError } from '../src/fanout/fanout-codec.ts';
import type { FanoutMessage } from '../src/fanout/fanout.ts';

const bytes = (n: number, fill = 7) => new Uint8Array(n).fill(fill);

function message(entryBytes: number, entries = 3): FanoutMessage {
  return {
    channels: [
      {
        channel: 'c_one' as ChannelId,
        entries: Array.from({ length: entries }, (_, i) => ({
          seq: 10 + i,
          entry: bytes(entryBytes, i),
          removed: i === 1 ? (['d_gone' as DeviceId] as const) : [],
        })),
        checkpoint: { size: 10 + entries, note: 'relay/c_one\n13\nROOT=\n\n— relay sig\n' },
      },
      {
        channel: 'c_two' as ChannelId,
        entries: [{ seq: 0, entry: bytes(5), removed: [] }],
        checkpoint: { size: 1, note: 'n' },
      },
    ],
    inbox: [
      { party: 'p_x' as PartyId, cursor: 2 ** 40, channel: 'c_two' as ChannelId, seq: 0, entry: bytes(5) },
    ],
  };
}

describe('fan-out codec', () => {
  it('round-trips a message with its origin, and revocations with or without entries', () => {
    const revokedOnly: FanoutMessage = {
      channels: [],
      inbox: [],
      revoked: ['d_a' as DeviceId, 'd_b' as DeviceId],
    };
    const [only] = encodeFanout('n', revokedOnly, 1 << 20);
    expect(decodeFanout(only as Uint8Array).message).toEqual(revokedOnly);
    const both = { ...message(10), revoked: ['d_c' as DeviceId] };
    const withRevoked = encodeFanout('n', both, 1 << 20);
    expect(withRevoked.map((p) => decodeFanout(p).message)).toEqual([both]);
    const m = message(100);
    const parts = encodeFanout('node-1', m, 1 << 20);
    expect(parts).toHaveLength(1);
    const d = decodeFanout(parts[0] as Uint8Array);
    expect(d.origin).toBe('node-1');
    expect(d.message).toEqual(m);
  });

  it('splits by channel to fit the transport, and sends an oversized channel as a hint without entries', () => {
    const m = message(400);
    const parts = encodeFanout('n', m, 1000);
    for (const p of parts) expect(p.length).toBeLessThanOrEqual(1000);
    const decoded = parts.map((p) => decodeFanout(p).message);
    const channels = decoded.flatMap((x) => x.channels);
    expect(channels.map((c) => c.channel)).toEqual(['c_one', 'c_two']);
    // c_one (3 × 400 bytes) does not fit: its checkpoint travels, its entries come from the store.
    expect(channels[0]?.entries).toEqual([]);
    expect(channels[0]?.checkpoint).toEqual(m.channels[0]?.checkpoint);
    expect(channels[1]).toEqual(m.channels[1]);
    expect(decoded.flatMap((x) => x.inbox)).toEqual(m.inbox);
  });

  it('refuses junk with a typed error, never a crash', () => {
    const good = encodeFanout('n', message(20), 1 << 20)[0] as Uint8Array;
    for (let cut = 0; cut < good.length; cut += 7) {
      expect(() => decodeFanout(good.slice(0, cut))).toThrow(FanoutDecodeError);
    }
    expect(() => decodeFanout(Uint8Array.of(...good, 0))).toThrow(/trailing/);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (junk) => {
        try {
          decodeFanout(junk);
        } catch (e) {
          expect(e).toBeInstanceOf(FanoutDecodeError);
        }
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.nat({ max: good.length - 1 }), fc.integer({ min: 1, max: 255 }), (at, x) => {
        const bad = good.slice();
        bad[at] = (bad[at] as number) ^ x;
        try {
          decodeFanout(bad);
        } catch (e) {
          expect(e).toBeInstanceOf(FanoutDecodeError);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
