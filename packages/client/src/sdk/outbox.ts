/**
 * The outbox: every send is persisted (sealed) before it is posted, retried with exponential
 * backoff until the relay acknowledges it, and idempotent — the relay answers a retry of the
 * same envelope (same client message id) with the original sequence number — so a send
 * survives a client crash, a relay restart and hours offline.
 */
import { ClientError } from './errors.ts';
import type { AppendAnswer, RelayClient } from './relay-client.ts';
import type { LocalStore, OutboxItem } from './storage.ts';

export interface OutboxHandlers {
  onAcked(item: OutboxItem, answer: AppendAnswer): Promise<void>;
  onRejected(item: OutboxItem, error: ClientError): Promise<void>;
  /**
   * An error when the answer is not for this item (a misrouted answer): the item stays queued and
   * is posted again (idempotent), instead of being taken as acknowledged.
   */
  checkAck?(item: OutboxItem, answer: AppendAnswer): ClientError | undefined;
  /**
   * Once per flush: records to write in the same transaction that takes the acknowledged items
   * out of the outbox (e.g. their relay receipts).
   */
  ackedRecords?(
    answers: ReadonlyArray<readonly [OutboxItem, AppendAnswer]>,
  ): ReadonlyArray<readonly [string, Uint8Array]>;
}

export interface FlushResult {
  readonly sent: number;
  readonly rejected: number;
  readonly pending: number;
  /** Set when the flush stopped on a retryable failure. */
  readonly retryAfterMs?: number;
}

export class Outbox {
  readonly #store: LocalStore;
  readonly #relay: RelayClient;
  readonly #handlers: OutboxHandlers;
  #flushing: Promise<FlushResult> | undefined;
  #failures = 0;
  /** Bumped by `queued()`; a pass lists the outbox again when it moved. */
  #queuedCount = 0;
  /** Wakes a pass waiting for its posts when items are queued. */
  #wake: (() => void) | undefined;
  #finished = 0;
  #progress: Array<() => void> = [];
  /** Durably queued items handed to the running pass (see `queued`). */
  #handed: OutboxItem[] = [];

  constructor(store: LocalStore, relay: RelayClient, handlers: OutboxHandlers) {
    this.#store = store;
    this.#relay = relay;
    this.#handlers = handlers;
  }

  async enqueue(item: OutboxItem): Promise<void> {
    await this.#store.outboxAdd(item);
    this.queued();
  }

  /** Items this outbox acknowledged or refused since it was opened (a sender paces itself on it). */
  get finished(): number {
    return this.#finished;
  }

  /** Resolves when the next item is acknowledged or refused. */
  progress(): Promise<void> {
    return new Promise((resolve) => this.#progress.push(resolve));
  }

  #finish(): void {
    this.#finished++;
    const waiting = this.#progress;
    this.#progress = [];
    for (const w of waiting) w();
  }

  async pending(): Promise<number> {
    return (await this.#store.outboxList()).length;
  }

  /**
   * Posts everything queued. With concurrency 1 (the default) in order; with more, up to that many
   * requests in flight (their relative order is then the relay's arrival order). Concurrent calls
   * share one pass; items queued while a pass runs (see `queued`) are posted by it.
   */
  flush(concurrency = 1): Promise<FlushResult> {
    this.#flushing ??= this.#flushOnce(concurrency).finally(() => {
      this.#flushing = undefined;
    });
    return this.#flushing;
  }

  /**
   * Tells a running pass that items were queued (Channel.sendMany calls it, with the items, once
   * they are durable): it posts them too instead of ending, so a steady sender is not held up by
   * the end of each pass.
   */
  queued(items?: readonly OutboxItem[]): void {
    // Items handed over are taken by a running pass as they are; otherwise it lists the outbox.
    if (items !== undefined && this.#flushing !== undefined) this.#handed.push(...items);
    else this.#queuedCount++;
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** Flushes until empty or until `deadline`, sleeping per the backoff between attempts. */
  async drain(deadline: number, now: () => number = Date.now): Promise<FlushResult> {
    for (;;) {
      const r = await this.flush();
      if (r.pending === 0 || r.retryAfterMs === undefined) return r;
      const wait = Math.min(r.retryAfterMs, deadline - now());
      if (wait <= 0) return r;
      await new Promise((res) => setTimeout(res, wait));
    }
  }

  async #flushOnce(concurrency: number): Promise<FlushResult> {
    const width = Math.max(1, concurrency);
    const items: OutboxItem[] = [];
    const taken = new Set<string>();
    let listedAt = -1;
    const take = (list: readonly OutboxItem[]) => {
      for (const item of list) {
        if (taken.has(item.id)) continue;
        taken.add(item.id);
        items.push(item);
      }
    };
    const list = async () => {
      listedAt = this.#queuedCount;
      this.#handed = [];
      take(await this.#store.outboxList());
    };
    let sent = 0;
    let rejected = 0;
    let retry: ClientError | undefined;
    let next = 0;
    let acked: string[] = [];
    let answered: Array<readonly [OutboxItem, AppendAnswer]> = [];
    // Acknowledged items leave the outbox with their records (receipts), in one transaction per
    // window's worth (and at the end): an item acknowledged but not yet removed when the device
    // crashes is posted again and answered as a duplicate (same message id), so nothing is sent twice.
    const settle = async () => {
      const ids = acked;
      const answers = answered;
      acked = [];
      answered = [];
      const records = answers.length > 0 ? (this.#handlers.ackedRecords?.(answers) ?? []) : [];
      await this.#store.outboxRemove(ids, records);
    };
    const post = async (item: OutboxItem) => {
      try {
        const answer = await this.#relay.postEnvelope(item.channel, item.wire);
        const wrong = this.#handlers.checkAck?.(item, answer);
        if (wrong !== undefined) throw wrong;
        await this.#handlers.onAcked(item, answer);
        answered.push([item, answer]);
        acked.push(item.id);
        this.#failures = 0;
        sent++;
        this.#finish();
      } catch (e) {
        const err =
          e instanceof ClientError
            ? e
            : new ClientError('RELAY_ERROR', 'unexpected failure while sending', { retryable: true });
        if (err.retryable) {
          retry ??= err;
          return;
        }
        await this.#handlers.onRejected(item, err);
        acked.push(item.id);
        rejected++;
        this.#finish();
      }
    };
    await list();
    let running = 0;
    let done: (() => void) | undefined;
    const launch = (item: OutboxItem) => {
      running++;
      void post(item).finally(() => {
        running--;
        const d = done;
        done = undefined;
        d?.();
      });
    };
    for (;;) {
      if (this.#handed.length > 0) {
        take(this.#handed);
        this.#handed = [];
      }
      while (retry === undefined && running < width && next < items.length)
        launch(items[next++] as OutboxItem);
      if (acked.length >= width) {
        await settle();
        continue;
      }
      if (retry === undefined && this.#queuedCount !== listedAt) {
        await list();
        continue;
      }
      if (running === 0) break;
      // A post finishes, or items are queued.
      await new Promise<void>((resolve) => {
        done = resolve;
        if (retry === undefined && next >= items.length) this.#wake = resolve;
      });
      this.#wake = undefined;
    }
    // Handed over too late for this pass: they are in the store, the next pass lists them.
    this.#handed = [];
    await settle();
    if (retry !== undefined) {
      this.#failures++;
      const backoff = Math.min(30_000, 250 * 2 ** Math.min(this.#failures, 7));
      const after = (retry as ClientError).retryAfterMs ?? 0;
      return {
        sent,
        rejected,
        pending: items.length - sent - rejected,
        retryAfterMs: Math.max(backoff, after),
      };
    }
    return { sent, rejected, pending: 0 };
  }
}
