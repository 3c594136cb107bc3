/**
 * Live delivery: each followed channel is subscribed on the WebSocket of the envelope transport
 * (binary entry frames, from the seq after the last one folded) and every pushed entry goes
 * through the verification of sync (Channel.ingestPushed): continuity, signature, certificate,
 * MLS, commitment, and each pushed checkpoint against this device's own Merkle root. A gap, an
 * entry out of order or a checkpoint ahead of what arrived is fetched as a range (sync); a lost
 * socket resumes from the last folded seq; while there is no live subscription (no socket, HTTP
 * transport, relay refused) the channel is polled over HTTP. Subscriptions follow the relay
 * client's endpoint failover (a lost endpoint's streams resume on the next one, from the last
 * folded seq). The party inbox is watched too (hints pushed on the socket, polled without one):
 * a channel this device joins while live is followed at once.
 */
import type { ChannelId } from '@backchannel/protocol';
import type { Channel } from './channel.ts';
import type { EventRecord } from './channel-record.ts';
import { ClientError } from './errors.ts';
import type { EntryListener, InboxListener, RelayClient } from './relay-client.ts';

export interface LiveOptions {
  /** New records of a channel, once verified and stored (pushed, fetched after a gap, or polled). */
  readonly onRecords?: (channel: Channel, records: readonly EventRecord[]) => void;
  /**
   * A channel that stopped being followed, and why: a fork (its evidence kept), a transcript the
   * relay broke, a failing local store; `channel` undefined: the inbox is no longer watched (a
   * welcome that could not be read, a failing store). Network failures are retried, not reported.
   */
  readonly onError?: (channel: ChannelId | undefined, error: unknown) => void;
  /** Polling period over HTTP while a channel (or the inbox) has no live subscription (default 1,000 ms). */
  readonly pollMs?: number;
  /**
   * Follow only these channels (and neither watch the inbox nor follow channels joined later).
   * Default: every channel of this device, and each one it joins (welcome, outreach) while live.
   */
  readonly channels?: readonly ChannelId[];
  /** A followed channel's delivery changed: true once its entries stream on the socket, false when it falls back to polling. */
  readonly onDelivery?: (channel: ChannelId, live: boolean) => void;
  /**
   * Send the automatic delivered receipts as records arrive, as syncAll does (default true;
   * Backchannel.live). False: only syncAll sends them (W1's receiver sends nothing back).
   */
  readonly acknowledgeDelivery?: boolean;
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
  /**
   * Pushed entries could not be folded for a network failure (nothing of them applied: a page
   * needs the directory, say): the range is fetched on the next poll, until a fetch succeeds.
   */
  #behind = false;
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
      if (!this.#live || this.#behind) this.#schedule();
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
    if (this.#live) return;
    this.#live = true;
    this.#o.onDelivery?.(this.ch.id, true);
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
    if (this.#live && !this.#stopped) this.#o.onDelivery?.(this.ch.id, false);
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
    this.#live = false;
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
    if ((!this.#live || this.#behind) && this.#queue.length === 0) {
      await this.#fetch(); // polling (no live subscription), or catching up after a failed fold
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
    let r: Awaited<ReturnType<Channel['ingestPushed']>>;
    try {
      r = await this.ch.ingestPushed(entries, note, { verify });
    } catch (e) {
      if (!(e instanceof ClientError && e.retryable)) throw e;
      this.#behind = true;
      return;
    }
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
      this.#behind = false;
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

/**
 * The party inbox while live: read (Backchannel.checkInbox, which joins welcomed channels) when
 * the relay pushes a hint, when the socket comes up (hints sent while it was down are lost), and
 * every pollMs while there is no socket or the last read failed.
 */
class InboxWatch implements InboxListener {
  readonly #check: () => Promise<unknown>;
  readonly #fail: (e: unknown) => void;
  readonly #poll: ReturnType<typeof setInterval>;
  readonly #off: (() => void) | undefined;
  #live = false;
  #stopped = false;
  #running: Promise<void> | undefined;
  #again = false;
  /** The last read failed (the relay unreachable over HTTP): the next poll reads again anyway. */
  #failed = false;

  constructor(relay: RelayClient, check: () => Promise<unknown>, pollMs: number, fail: (e: unknown) => void) {
    this.#check = check;
    this.#fail = fail;
    this.#off = relay.subscribeInbox(this);
    this.#poll = setInterval(() => {
      if (!this.#live || this.#failed) this.#read();
    }, pollMs);
    (this.#poll as { unref?: () => void }).unref?.();
    if (this.#off === undefined) this.#read(); // no socket: the first poll now
  }

  up(): void {
    this.#live = true;
    this.#read();
  }

  hint(): void {
    this.#read();
  }

  down(): void {
    this.#live = false;
  }

  close(): void {
    this.#stopped = true;
    clearInterval(this.#poll);
    this.#off?.();
  }

  async idle(): Promise<void> {
    while (this.#running !== undefined) await this.#running;
  }

  /** One read at a time; hints that come meanwhile make it read once more. */
  #read(): void {
    if (this.#stopped) return;
    if (this.#running !== undefined) {
      this.#again = true;
      return;
    }
    this.#running = (async () => {
      do {
        this.#again = false;
        try {
          await this.#check();
          this.#failed = false;
        } catch (e) {
          if (e instanceof ClientError && e.retryable) {
            this.#failed = true; // the relay is unreachable: the next poll
            return;
          }
          if (this.#stopped) return;
          this.close();
          this.#fail(e);
          return;
        }
      } while (this.#again && !this.#stopped);
    })().finally(() => {
      this.#running = undefined;
    });
  }
}

/** How Live reads the inbox and tells its owner it stopped (Backchannel passes them). */
export interface LiveHooks {
  /** Reads the inbox; the channels it joins are handed to `joined`. */
  readonly checkInbox?: () => Promise<unknown>;
  readonly stopped?: () => void;
}

/** The channels a device follows live (Backchannel.live). */
export class Live {
  readonly #relay: RelayClient;
  readonly #o: LiveOptions;
  readonly #hooks: LiveHooks;
  readonly #followers = new Map<ChannelId, Follower>();
  readonly #inbox: InboxWatch | undefined;

  constructor(relay: RelayClient, opts: LiveOptions, hooks: LiveHooks = {}) {
    this.#relay = relay;
    this.#o = opts;
    this.#hooks = hooks;
    this.#inbox =
      opts.channels === undefined && hooks.checkInbox !== undefined
        ? new InboxWatch(relay, hooks.checkInbox, opts.pollMs ?? 1000, (e) => opts.onError?.(undefined, e))
        : undefined;
  }

  /** Follows one more channel; following it twice is a no-op. */
  follow(ch: Channel): void {
    if (this.#followers.has(ch.id) || ch.record.removed) return;
    const f = new Follower(ch, this.#relay, this.#o, () => this.#followers.delete(ch.id));
    this.#followers.set(ch.id, f);
  }

  /** A channel this device just joined or opened (Backchannel calls it): followed unless `channels` limits what is. */
  joined(ch: Channel): void {
    if (this.#o.channels === undefined) this.follow(ch);
  }

  /** The channels followed now. */
  get channels(): ChannelId[] {
    return [...this.#followers.keys()];
  }

  /** Whether the channel's entries are streaming on the socket (false: polled, or not followed). */
  isLive(channel: ChannelId): boolean {
    return this.#followers.get(channel)?.live === true;
  }

  /** Resolves once the inbox read and every followed channel have folded what they received so far. */
  async idle(): Promise<void> {
    await this.#inbox?.idle();
    for (const f of [...this.#followers.values()]) await f.idle();
  }

  stop(): void {
    this.#inbox?.close();
    for (const f of this.#followers.values()) f.close();
    this.#followers.clear();
    this.#hooks.stopped?.();
  }
}
