/**
 * Recently written and recently read perfect-subtree hashes, so inclusion proofs for fresh
 * entries rarely touch the store. Bounded; oldest-inserted out first; a miss is read from the
 * store (every node is stored: the cache is only a shortcut).
 */
import type { ChannelId } from '@backchannel/protocol';
import {
  inclusionRanges,
  consistencyRanges,
  type NodeRef,
  nodeHashWith,
  nodesForRanges,
  rangeNodes,
} from '@backchannel/protocol/transcript';
import { sha256 } from '../ed25519.node.ts';
import type { ReadTx } from '../store/store.ts';

const key = (channel: ChannelId, level: number, index: number) => `${channel}:${level}:${index}`;

export class NodeCache {
  readonly #max: number;
  readonly #map = new Map<string, Uint8Array>();

  /**
   * ~700 bytes of RSS per entry (key, Map slot, a 32-byte Uint8Array with its own backing store):
   * 20,000 entries ≈ 14 MB. Fresh proofs need the nodes written last and a few old subtree roots
   * (a miss is one batched read).
   */
  constructor(maxEntries = 20_000) {
    this.#max = maxEntries;
  }

  get(channel: ChannelId, level: number, index: number): Uint8Array | undefined {
    return this.#map.get(key(channel, level, index));
  }

  set(channel: ChannelId, level: number, index: number, hash: Uint8Array): void {
    const k = key(channel, level, index);
    if (this.#map.has(k)) return;
    if (this.#map.size >= this.#max) {
      const oldest = this.#map.keys().next();
      if (oldest.done !== true) this.#map.delete(oldest.value);
    }
    this.#map.set(k, hash);
  }
}

/**
 * Builds RFC 9162 proofs for one channel from stored perfect subtrees: first collect the ranges
 * the proofs need, load the missing nodes in one read, then compute (each range hash once).
 */
export class ProofBuilder {
  readonly #channel: ChannelId;
  readonly #cache: NodeCache;
  readonly #nodes = new Map<string, Uint8Array>();
  readonly #missing: NodeRef[] = [];
  readonly #ranges = new Map<string, Uint8Array>();

  constructor(channel: ChannelId, cache: NodeCache) {
    this.#channel = channel;
    this.#cache = cache;
  }

  #need(ranges: ReadonlyArray<readonly [number, number]>): void {
    for (const r of nodesForRanges(ranges)) {
      const k = `${r.level}:${r.index}`;
      if (this.#nodes.has(k)) continue;
      const h = this.#cache.get(this.#channel, r.level, r.index);
      if (h !== undefined) this.#nodes.set(k, h);
      else if (!this.#missing.some((m) => m.level === r.level && m.index === r.index)) this.#missing.push(r);
    }
  }

  needInclusion(index: number, size: number): void {
    this.#need(inclusionRanges(index, size));
  }

  needConsistency(from: number, to: number): void {
    this.#need(consistencyRanges(from, to));
  }

  /** Reads the nodes not in the cache (call inside a read transaction). */
  async load(tx: ReadTx): Promise<void> {
    if (this.#missing.length === 0) return;
    const hashes = await tx.readNodes(this.#channel, this.#missing);
    this.#missing.forEach((r, i) => {
      const h = hashes[i] as Uint8Array;
      this.#nodes.set(`${r.level}:${r.index}`, h);
      this.#cache.set(this.#channel, r.level, r.index, h);
    });
    this.#missing.length = 0;
  }

  get pending(): boolean {
    return this.#missing.length > 0;
  }

  #rangeHash(a: number, b: number): Uint8Array {
    const k = `${a}-${b}`;
    const hit = this.#ranges.get(k);
    if (hit !== undefined) return hit;
    const nodes = rangeNodes(a, b).map((n) => {
      const h = this.#nodes.get(`${n.level}:${n.index}`);
      if (h === undefined) throw new Error(`proof node ${n.level}/${n.index} was not loaded`);
      return h;
    });
    let h = nodes[nodes.length - 1] as Uint8Array;
    for (let i = nodes.length - 2; i >= 0; i--) h = nodeHashWith(sha256, nodes[i] as Uint8Array, h);
    this.#ranges.set(k, h);
    return h;
  }

  inclusion(index: number, size: number): Uint8Array[] {
    return inclusionRanges(index, size).map(([a, b]) => this.#rangeHash(a, b));
  }

  consistency(from: number, to: number): Uint8Array[] {
    return consistencyRanges(from, to).map(([a, b]) => this.#rangeHash(a, b));
  }
}
