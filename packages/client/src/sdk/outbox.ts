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

  constructor(store: LocalStore, relay: RelayClient, handlers: OutboxHandlers) {
    this.#store = store;
    this.#relay = relay;
    this.#handlers = handlers;
  }

  async enqueue(item: OutboxItem): Promise<void> {
    await this.#store.outboxAdd(item);
  }

  async pending(): Promise<number> {
    return (await this.#store.outboxList()).length;
  }

  /**
   * Posts everything queued. With concurrency 1 (the default) in order; with more, up to that many
   * requests in flight (their relative order is then the relay's arrival order). Concurrent calls
   * share one pass.
   */
  flush(concurrency = 1): Promise<FlushResult> {
    this.#flushing ??= this.#flushOnce(concurrency).finally(() => {
      this.#flushing = undefined;
    });
    return this.#flushing;
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
    const items = await this.#store.outboxList();
    let sent = 0;
    let rejected = 0;
    let retry: ClientError | undefined;
    let next = 0;
    const worker = async () => {
      while (retry === undefined && next < items.length) {
        const item = items[next++] as OutboxItem;
        try {
          const answer = await this.#relay.postEnvelope(item.channel, item.wire);
          const wrong = this.#handlers.checkAck?.(item, answer);
          if (wrong !== undefined) throw wrong;
          await this.#handlers.onAcked(item, answer);
          answered.push([item, answer]);
          // Removal is batched: an acknowledged item re-posted after a crash is answered by the
          // relay as a duplicate (same message id), so nothing is sent twice.
          acked.push(item.id);
          this.#failures = 0;
          sent++;
        } catch (e) {
          const err =
            e instanceof ClientError
              ? e
              : new ClientError('RELAY_ERROR', 'unexpected failure while sending', { retryable: true });
          if (err.retryable) {
            retry = err;
            return;
          }
          await this.#handlers.onRejected(item, err);
          acked.push(item.id);
          rejected++;
        }
      }
    };
    const acked: string[] = [];
    const answered: Array<readonly [OutboxItem, AppendAnswer]> = [];
    await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker));
    const records = answered.length > 0 ? (this.#handlers.ackedRecords?.(answered) ?? []) : [];
    await this.#store.outboxRemove(acked, records);
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
