/**
 * A sender holds the relay to its receipts: the entry the relay logs for an envelope this device
 * sent must be the receipted envelope at the receipted position, dated no earlier than the
 * receipt (PROTOCOL.md §7). A contradiction is kept as evidence under `rr-contradicted:`, with
 * the receipt and the entry; both are signed by the relay.
 *
 * The entry and the receipt arrive in either order (a pushed entry can overtake the answer to the
 * post): whichever comes first waits here, in memory, for the other; an entry whose receipt was
 * kept in an earlier run is compared with the stored one.
 */
import { type DecodedEntry, toBase64url, utf8 } from '@backchannel/protocol';
import { decodeRelayReceipt, receiptDisagreement } from '@backchannel/protocol/attest';
import type { LocalStore } from './storage.ts';

type Write = [string, Uint8Array];

/** An entry as logged: decoded, and its bytes (the Merkle leaf). */
export interface OwnEntry {
  readonly d: DecodedEntry;
  readonly bytes: Uint8Array;
}

/** Entries logged before their receipt arrived, at most this many (oldest forgotten first). */
const MAX_WAITING = 10_000;

export class ReceiptLedger {
  readonly #hash: (bytes: Uint8Array) => Uint8Array;
  /** `${channel}:${msgId}` → the entry logged for it, while its receipt has not arrived. */
  readonly #waiting = new Map<string, OwnEntry>();

  constructor(hash: (bytes: Uint8Array) => Uint8Array) {
    this.#hash = hash;
  }

  /**
   * This device's own entries of a page the channel applies: the evidence to write with the page
   * for those that contradict a receipt already kept; the others wait for their receipt.
   */
  async logged(store: LocalStore, channel: string, own: readonly OwnEntry[]): Promise<Write[]> {
    const out: Write[] = [];
    for (const e of own) {
      const key = `${channel}:${e.d.envelope.body.msgId}`;
      const kept = await store.get(`rr:${key}`);
      if (kept === undefined) {
        this.#wait(key, e);
        continue;
      }
      const w = this.#compare(key, text.decode(kept), e);
      if (w !== undefined) out.push(w);
    }
    return out;
  }

  /** A receipt that passed the sender's checks: the evidence to write with it, if its entry was
   * logged already and contradicts it. */
  receipted(channel: string, msgId: string, receipt: string): Write | undefined {
    const key = `${channel}:${msgId}`;
    const e = this.#waiting.get(key);
    if (e === undefined) return undefined;
    this.#waiting.delete(key);
    return this.#compare(key, receipt, e);
  }

  #wait(key: string, e: OwnEntry): void {
    if (this.#waiting.size >= MAX_WAITING) {
      const oldest = this.#waiting.keys().next();
      if (oldest.done !== true) this.#waiting.delete(oldest.value);
    }
    this.#waiting.set(key, e);
  }

  #compare(key: string, receipt: string, { d, bytes }: OwnEntry): Write | undefined {
    const r = decodeRelayReceipt(receipt);
    // Kept receipts passed the sender's checks; one that no longer decodes proves nothing here.
    if (!r.ok) return undefined;
    const problem = receiptDisagreement(r.value.body, d.entry, this.#hash);
    if (problem === undefined) return undefined;
    const why =
      problem === 'earlier'
        ? `the relay receipted it at ${iso(r.value.body.receivedAt)} and logged it dated ${iso(d.entry.receivedAt)}, earlier`
        : `the relay receipted it at position ${r.value.body.seq} and logged it at ${d.entry.seq}, or other envelope bytes`;
    return [
      `rr-contradicted:${key}`,
      utf8(JSON.stringify({ receipt, seq: d.entry.seq, entry: toBase64url(bytes), problem: why })),
    ];
  }
}

/** Kept receipts are this device's own writes (base64url): decoded leniently, checked after. */
const text = new TextDecoder();
const iso = (t: number) => new Date(t).toISOString();
