/**
 * The embedded store's threads dying under it: the checkpointer (close must still finish) and
 * the writer (the store says it is unhealthy, every write fails at once, nothing hangs).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PartyId } from '@backchannel/protocol';
import { afterEach, describe, expect, it, vi } from 'vitest';

// Every Worker the store makes, in order: [writer, checkpointer].
const workers = vi.hoisted(() => [] as Array<{ terminate(): Promise<number> }>);
vi.mock('node:worker_threads', async (original) => {
  const m = await original<typeof import('node:worker_threads')>();
  class Recorded extends m.Worker {
    constructor(...args: ConstructorParameters<typeof m.Worker>) {
      super(...args);
      workers.push(this);
    }
  }
  return { ...m, Worker: Recorded, default: { ...m, Worker: Recorded } };
});

const { openSqliteStore } = await import('../../src/store/sqlite/sqlite-store.ts');

const card = {
  party: 'p_threads' as PartyId,
  rootPublicKey: new Uint8Array(32),
  card: new Uint8Array([1]),
  issuedAt: 1,
};

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  workers.length = 0;
});

function open(onFatal?: (e: Error) => void) {
  const dir = mkdtempSync(join(tmpdir(), 'bc-threads-'));
  dirs.push(dir);
  return openSqliteStore({ path: join(dir, 'relay.db'), ...(onFatal === undefined ? {} : { onFatal }) });
}

const within = <T>(p: Promise<T>, ms: number) =>
  Promise.race([p, new Promise<'timed out'>((r) => setTimeout(() => r('timed out'), ms))]);

describe('sqlite store threads', () => {
  it('closes even when its checkpointer thread already exited', async () => {
    const store = open();
    expect(workers).toHaveLength(2);
    await workers[1]?.terminate();
    await store.write(async (tx) => tx.putCard(card));
    expect(await within(store.close(), 5_000)).toBeUndefined();
  });

  it('a dead writer thread: reported once, the store unhealthy, every write refused at once', async () => {
    const fatal: Error[] = [];
    const store = open((e) => fatal.push(e));
    expect(store.healthy).toBe(true);
    await workers[0]?.terminate();
    await new Promise((r) => setTimeout(r, 50));
    expect(fatal).toHaveLength(1);
    expect(store.healthy).toBe(false);
    for (let i = 0; i < 3; i++) {
      const w = store.write(async (tx) => {
        await tx.putCard(card);
        return tx.getCard(card.party);
      });
      expect(
        await within(
          w.then(
            () => 'written',
            (e: Error) => e.message,
          ),
          2_000,
        ),
      ).toMatch(/writer thread/);
    }
    // Reads go on (the reader connection is this thread's), and close does not hang.
    expect(await store.read(async (tx) => tx.getCard(card.party))).toBeUndefined();
    expect(await within(store.close(), 5_000)).toBeUndefined();
    expect(fatal).toHaveLength(1);
  });
});
