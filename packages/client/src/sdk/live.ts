/**
 * Live delivery: each followed channel is subscribed on the WebSocket of the envelope transport
 * (binary entry frames, from the seq after the last one folded) and every pushed entry goes
 * through the verification of sync (Channel.ingestPushed): continuity, signature, certificate,
 * MLS, commitment, and each pushed checkpoint against this device's own Merkle root. A gap, an
 * entry out of order or a checkpoint ahead of what arrived is fetched as a range (sync); a lost
 * socket resumes from the last folded seq; while there is no live subscription (no socket, HTTP
 * transport, relay refused) the channel is polled over HTTP.
 */
import type { ChannelId } from '@backchannel/protocol';
import type { Channel } from './channel.ts';
import type { EventRecord } from './channel-record.ts';
import { ClientError } from './errors.ts';
import type { EntryListener, RelayClient } from './relay-client.ts';

export interface LiveOptions {
  /** New records of a channel, once verified and stored (pushed, fetched after a gap, or polled). */
  readonly onRecords?: (channel: Channel, records: readonly EventRecord[]) => void;
  /**
   * A channel that stopped being followed, and why: a fork (its evidence kept), a transcript the
   * relay broke, a failing local store. Network failures are retried, not reported.
   */
  readonly onError?: (channel: ChannelId, error: unknown) => void;
  /** Polling period over HTTP while a channel has no live subscription (default 1,000 ms). */
  readonly pollMs?: number;
}

/** After the frames already read are handled (they are folded together). */
const nextTurn: (f: () => void) => void =
  (globalThis as { setImmediate?: (f: () => void) => void }).setImmediate ?? ((f) => setTimeout(f, 0));

type Item =
  | { readonly seq: number; readonly entry: Uint8Array }
  | { readonly note: string; readonly due?: boolean };

/**
 * Pushed checkpoints are checked (signature, and the root against this device's own) at most
 * this often while entries stream; the last one skipped is checked this long after it came, so a
 * quiet channel always rests on a verified checkpoint. Each one still says whether entries are
 * missing (a gap is fetched at once).
 */
const CHECK_EVERY_MS = 250;

class Follower implements EntryListener {
  readonly ch: Channel;
  readonly #o: LiveOptions;
  #queue: Item[] = [];
  #live = false;
  #stopped = false;
  #final = false;
  /** When a pushed checkpoint was last checked, and the latest one not checked yet. */
  #checkedAt = 0;
  #unchecked: string | undefined;
  #checkTimer: ReturnType<typeof setTimeout> | undefined;
  #draining: Promise<void> | undefined;
  #unsubscribe: (() => void) | undefined;
  readonly #poll: ReturnType<typeof setInterval>;
  readonly #stop: () => void;

  constructor(ch: Channel, relay: RelayClient, o: LiveOptions, stop: () => void) {
    this.ch = ch;
    this.#o = o;
    this.#stop = stop;
    this.#unsubscribe = relay.subscribe(ch.id, this);
    this.#poll = setInterval(() => {
      if (!this.#live) this.#schedule();
    }, o.pollMs ?? 1000);
    (this.#poll as { unref?: () => void }).unref?.();
  }

  /** Whether entries are streaming on the socket. */
  get live(): boolean {
    return this.#live;
  }

  // --- EntryListener (the socket's frames)

  from(): number {
    return this.ch.record.nextSeq;
  }

  up(): void {
    this.#live = true;
  }

  entry(seq: number, entry: Uint8Array): void {
    this.#queue.push({ seq, entry });
    this.#schedule();
  }

  checkpoint(_size: number, note: string): void {
    this.#queue.push({ note });
    this.#schedule();
  }

  down(code?: string): void {
    this.#live = false;
    // What was queued is dropped: the stream resumes from the last folded seq.
    this.#queue = [];
    if (code === 'NOT_A_MEMBER' || code === 'CHANNEL_UNKNOWN') {
      // Final: one last fetch (up to the removal), then the channel is no longer followed.
      this.#final = true;
      this.#schedule();
    }
  }

  close(): void {
    this.#stopped = true;
    clearInterval(this.#poll);
    clearTimeout(this.#checkTimer);
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    this.#queue = [];
  }

  /** Resolves once everything received so far is folded. */
  async idle(): Promise<void> {
    while (this.#draining !== undefined) await this.#draining;
  }

  // --- folding

  /** One drain at a time; frames that arrive meanwhile are folded by it, in batches. */
  #schedule(): void {
    if (this.#draining !== undefined || this.#stopped) return;
    this.#draining = new Promise<void>((resolve) => nextTurn(resolve))
      .then(() => this.#drain())
      .catch((e: unknown) => this.#fail(e))
      .finally(() => {
        this.#draining = undefined;
        if (this.#queue.length > 0) this.#schedule();
      });
  }

  async #drain(): Promise<void> {
    if (!this.#live && this.#queue.length === 0) {
      await this.#fetch(); // polling (no live subscription)
      if (this.#final) {
        this.close();
        this.#stop();
      }
      return;
    }
    while (this.#queue.length > 0 && !this.#stopped) {
      // Everything received meanwhile is folded at once (one write), checked against the last
      // checkpoint among it, as sync checks a page against the checkpoint it came with; entries
      // after that checkpoint are folded too, their checkpoint checked when it comes.
      const items = this.#queue;
      this.#queue = [];
      let last = -1;
      for (let i = 0; i < items.length; i++) if ('note' in (items[i] as Item)) last = i;
      const head: { seq: number; entry: Uint8Array }[] = [];
      const tail: { seq: number; entry: Uint8Array }[] = [];
      for (let i = 0; i < items.length; i++) {
        const it = items[i] as Item;
        if (!('note' in it)) (i < last ? head : tail).push(it);
      }
      if (last >= 0) {
        const cp = items[last] as { note: string; due?: boolean };
        const now = Date.now();
        const check = cp.due === true || now - this.#checkedAt >= CHECK_EVERY_MS;
        if (check) {
          this.#checkedAt = now;
          this.#unchecked = undefined;
        } else this.#checkLater(cp.note);
        await this.#ingest(head, cp.note, check);
      }
      if (tail.length > 0) await this.#ingest(tail, undefined, false);
    }
  }

  /** The latest unchecked checkpoint is checked CHECK_EVERY_MS after it came (if none was since). */
  #checkLater(note: string): void {
    this.#unchecked = note;
    if (this.#checkTimer !== undefined) return;
    this.#checkTimer = setTimeout(() => {
      this.#checkTimer = undefined;
      const n = this.#unchecked;
      if (n === undefined || this.#stopped) return;
      this.#unchecked = undefined;
      this.#queue.push({ note: n, due: true });
      this.#schedule();
    }, CHECK_EVERY_MS);
    (this.#checkTimer as { unref?: () => void }).unref?.();
  }

  async #ingest(
    entries: ReadonlyArray<{ seq: number; entry: Uint8Array }>,
    note: string | undefined,
    verify: boolean,
  ) {
    const r = await this.ch.ingestPushed(entries, note, { verify });
    this.#emit(r.records);
    if (r.rest.length === 0 && !r.behind) return;
    // A gap or a break in the sequence: the range is fetched, then what followed it is folded
    // (what the fetch already covered is skipped). Still a gap after that: dropped, and the next
    // checkpoint (or poll) fetches it.
    await this.#fetch();
    if (r.rest.length > 0) this.#emit((await this.ch.ingestPushed(r.rest, note, { verify })).records);
  }

  async #fetch(): Promise<void> {
    try {
      this.#emit(await this.ch.sync());
    } catch (e) {
      if (e instanceof ClientError && e.retryable) return; // the relay is unreachable: next time
      throw e;
    }
  }

  #emit(records: readonly EventRecord[]): void {
    if (records.length > 0) this.#o.onRecords?.(this.ch, records);
  }

  #fail(e: unknown): void {
    if (this.#stopped) return;
    this.close();
    this.#stop();
    this.#o.onError?.(this.ch.id, e);
  }
}

/** The channels a device follows live (Backchannel.live). */
export class Live {
  readonly #relay: RelayClient;
  readonly #o: LiveOptions;
  readonly #followers = new Map<ChannelId, Follower>();

  constructor(relay: RelayClient, opts: LiveOptions) {
    this.#relay = relay;
    this.#o = opts;
  }

  /** Follows one more channel (one this device just joined); following it twice is a no-op. */
  follow(ch: Channel): void {
    if (this.#followers.has(ch.id)) return;
    const f = new Follower(ch, this.#relay, this.#o, () => this.#followers.delete(ch.id));
    this.#followers.set(ch.id, f);
  }

  /** Whether the channel's entries are streaming on the socket (false: polled, or not followed). */
  isLive(channel: ChannelId): boolean {
    return this.#followers.get(channel)?.live === true;
  }

  /** Resolves once every followed channel has folded what it received so far. */
  async idle(): Promise<void> {
    for (const f of [...this.#followers.values()]) await f.idle();
  }

  stop(): void {
    for (const f of this.#followers.values()) f.close();
    this.#followers.clear();
  }
}
