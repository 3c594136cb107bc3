/**
 * RFC 9162 §2.1 Merkle tree hashing (SHA-256), proofs and their verification.
 *
 * Storage model: an append-only log stores, for every level, the hash of each complete
 * (perfect) subtree — node (level, index) covers leaves [index·2^level, (index+1)·2^level).
 * appendLeaf() yields exactly the nodes that become complete, and every proof is generated
 * from O(log n) of those stored nodes (a right-edge subtree that is not perfect is folded
 * from the perfect subtrees it is made of).
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { constantTimeEqual } from '../bytes/index.ts';

const EMPTY_ROOT = sha256(new Uint8Array(0));

/**
 * SHA-256 as a function of its input, for leafHashWith and inclusionRoot (defaulting to noble's,
 * pure JavaScript, runs anywhere); a Node caller may pass node:crypto's, 2× faster on short input.
 * Both give the same bytes, so the choice never changes a root or a proof.
 */
export type Sha256Fn = (data: Uint8Array) => Uint8Array;

/** RFC 9162 §2.1.1: MTH({d(0)}) = SHA-256(0x00 || d(0)). */
export function leafHash(data: Uint8Array): Uint8Array {
  return leafHashWith(sha256, data);
}

/** leafHash with the given SHA-256 (the hash first: safe to pass leafHash itself to `map`). */
export function leafHashWith(hash: Sha256Fn, data: Uint8Array): Uint8Array {
  const b = new Uint8Array(data.length + 1);
  b[0] = 0;
  b.set(data, 1);
  return hash(b);
}

/** RFC 9162 §2.1.1: MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n])). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  return nodeHashWith(sha256, left, right);
}

/** nodeHash with the given SHA-256. */
export function nodeHashWith(hash: Sha256Fn, left: Uint8Array, right: Uint8Array): Uint8Array {
  const b = new Uint8Array(65);
  b[0] = 1;
  b.set(left, 1);
  b.set(right, 33);
  return hash(b);
}

export function emptyRoot(): Uint8Array {
  return EMPTY_ROOT.slice();
}

/** Largest power of two strictly smaller than n (n ≥ 2). */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function isPow2(n: number): boolean {
  return n > 0 && 2 ** Math.round(Math.log2(n)) === n;
}

/** Reads the stored hash of a perfect subtree. */
export type NodeReader = (level: number, index: number) => Uint8Array;

export interface NodeRef {
  readonly level: number;
  readonly index: number;
}

/** The perfect subtrees whose fold is MTH(D[a:b]) (left to right). */
export function rangeNodes(a: number, b: number): NodeRef[] {
  const out: NodeRef[] = [];
  let start = a;
  while (start < b) {
    // largest aligned power of two that fits
    let size = 1;
    while (start % (size * 2) === 0 && start + size * 2 <= b) size *= 2;
    out.push({ level: Math.log2(size), index: start / size });
    start += size;
  }
  return out;
}

/** MTH(D[a:b]) from stored perfect subtrees: fold the right-edge decomposition from the right. */
export function rangeHash(a: number, b: number, read: NodeReader): Uint8Array {
  if (b <= a) return emptyRoot();
  const nodes = rangeNodes(a, b).map((n) => read(n.level, n.index));
  let h = nodes[nodes.length - 1] as Uint8Array;
  for (let i = nodes.length - 2; i >= 0; i--) h = nodeHash(nodes[i] as Uint8Array, h);
  return h;
}

/** The root of a tree of `size` leaves. */
export function rootAt(size: number, read: NodeReader): Uint8Array {
  return rangeHash(0, size, read);
}

/** The ranges whose hashes form the inclusion proof of leaf m in D[0:n] (RFC 9162 §2.1.3.1), bottom-up. */
export function inclusionRanges(m: number, n: number): Array<readonly [number, number]> {
  const out: Array<readonly [number, number]> = [];
  const path = (m0: number, a: number, b: number) => {
    const n0 = b - a;
    if (n0 <= 1) return;
    const k = splitPoint(n0);
    if (m0 < k) {
      path(m0, a, a + k);
      out.push([a + k, b]);
    } else {
      path(m0 - k, a + k, b);
      out.push([a, a + k]);
    }
  };
  path(m, 0, n);
  return out;
}

/** The ranges whose hashes form the consistency proof from size m to n (RFC 9162 §2.1.4.1). */
export function consistencyRanges(m: number, n: number): Array<readonly [number, number]> {
  const out: Array<readonly [number, number]> = [];
  const sub = (m0: number, a: number, b: number, complete: boolean) => {
    const n0 = b - a;
    if (m0 === n0) {
      if (!complete) out.push([a, b]);
      return;
    }
    const k = splitPoint(n0);
    if (m0 <= k) {
      sub(m0, a, a + k, complete);
      out.push([a + k, b]);
    } else {
      sub(m0 - k, a + k, b, false);
      out.push([a, a + k]);
    }
  };
  if (m > 0 && m < n) sub(m, 0, n, true);
  return out;
}

export function inclusionProof(m: number, n: number, read: NodeReader): Uint8Array[] {
  if (!(m >= 0 && m < n)) throw new RangeError('leaf index out of range');
  return inclusionRanges(m, n).map(([a, b]) => rangeHash(a, b, read));
}

export function consistencyProof(m: number, n: number, read: NodeReader): Uint8Array[] {
  if (!(m >= 0 && m <= n)) throw new RangeError('sizes out of range');
  return consistencyRanges(m, n).map(([a, b]) => rangeHash(a, b, read));
}

/** Every stored node a proof needs — for stores that fetch them in one query. */
export function nodesForRanges(ranges: ReadonlyArray<readonly [number, number]>): NodeRef[] {
  return ranges.flatMap(([a, b]) => rangeNodes(a, b));
}

const half = (x: number) => Math.floor(x / 2);
const lsb = (x: number) => x % 2 === 1;

/** RFC 9162 §2.1.3.2. Never throws: a bad proof is `false`. */
export function verifyInclusion(
  leaf: Uint8Array,
  index: number,
  size: number,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): boolean {
  if (root.length !== 32) return false;
  const r = inclusionRoot(leaf, index, size, proof);
  return r !== undefined && constantTimeEqual(r, root);
}

/**
 * The root an inclusion proof leads to (RFC 9162 §2.1.3.2 steps 1–7 without the final
 * comparison), or undefined when the proof is malformed for (index, size). Never throws.
 */
export function inclusionRoot(
  leaf: Uint8Array,
  index: number,
  size: number,
  proof: readonly Uint8Array[],
  hash: Sha256Fn = sha256,
): Uint8Array | undefined {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size)
    return undefined;
  if (leaf.length !== 32) return undefined;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (p.length !== 32) return undefined;
    // §2.1.3.2 step 6a: if sn is 0, the proof is too long.
    if (sn === 0) return undefined;
    if (lsb(fn) || fn === sn) {
      r = nodeHashWith(hash, p, r);
      if (!lsb(fn)) {
        while (!lsb(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      r = nodeHashWith(hash, r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  // §2.1.3.2 step 7: the proof must be consumed exactly (sn = 0).
  return sn === 0 ? r : undefined;
}

/** RFC 9162 §2.1.4.2. Never throws: a bad proof is `false`. */
export function verifyConsistency(
  size1: number,
  size2: number,
  proof: readonly Uint8Array[],
  root1: Uint8Array,
  root2: Uint8Array,
): boolean {
  if (!Number.isSafeInteger(size1) || !Number.isSafeInteger(size2) || size1 < 0 || size2 < size1)
    return false;
  // A proof from the empty tree proves nothing: refuse it (as transparency-dev/merkle does).
  if (size1 === 0) return false;
  // Equal sizes: nothing to prove, the two roots must simply be the same bytes.
  if (size1 === size2) return proof.length === 0 && constantTimeEqual(root1, root2);
  if (root1.length !== 32 || root2.length !== 32) return false;
  if (proof.some((p) => p.length !== 32)) return false;
  // §2.1.4.2 step 2: if first is an exact power of 2, prepend first_hash to the proof.
  const path = isPow2(size1) ? [root1, ...proof] : [...proof];
  if (path.length === 0) return false;
  let fn = size1 - 1;
  let sn = size2 - 1;
  while (lsb(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr = path[0] as Uint8Array;
  let sr = path[0] as Uint8Array;
  for (let i = 1; i < path.length; i++) {
    const c = path[i] as Uint8Array;
    if (sn === 0) return false;
    if (lsb(fn) || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (!lsb(fn)) {
        while (!lsb(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  // §2.1.4.2 step 7: both roots must match and the proof must be consumed exactly.
  return sn === 0 && constantTimeEqual(fr, root1) && constantTimeEqual(sr, root2);
}

/** The right edge of the tree: one perfect-subtree root per set bit of `size`, largest first. */
export interface TreeState {
  readonly size: number;
  readonly frontier: readonly Uint8Array[];
}

export const EMPTY_TREE: TreeState = { size: 0, frontier: [] };

export interface StoredNode {
  readonly level: number;
  readonly index: number;
  readonly hash: Uint8Array;
}

/** Appends one leaf hash; returns the new state and the perfect subtrees that became complete. */
export function appendLeaf(
  state: TreeState,
  leaf: Uint8Array,
  hash: Sha256Fn = sha256,
): { state: TreeState; nodes: StoredNode[] } {
  const frontier = [...state.frontier, leaf];
  const nodes: StoredNode[] = [{ level: 0, index: state.size, hash: leaf }];
  let level = 0;
  // Each trailing 1-bit of the old size merges two equal subtrees into one a level up.
  let s = state.size;
  let idx = state.size;
  while (lsb(s)) {
    const right = frontier.pop() as Uint8Array;
    const left = frontier.pop() as Uint8Array;
    const h = nodeHashWith(hash, left, right);
    frontier.push(h);
    level++;
    idx = half(idx);
    nodes.push({ level, index: idx, hash: h });
    s = half(s);
  }
  return { state: { size: state.size + 1, frontier }, nodes };
}

export function treeRoot(state: TreeState, hash: Sha256Fn = sha256): Uint8Array {
  if (state.size === 0) return emptyRoot();
  let h = state.frontier[state.frontier.length - 1] as Uint8Array;
  for (let i = state.frontier.length - 2; i >= 0; i--)
    h = nodeHashWith(hash, state.frontier[i] as Uint8Array, h);
  return h;
}

/** MTH of a list of leaf hashes, straight from the definition (for tests and small trees). */
export function rootOfLeaves(leaves: readonly Uint8Array[]): Uint8Array {
  if (leaves.length === 0) return emptyRoot();
  if (leaves.length === 1) return leaves[0] as Uint8Array;
  const k = splitPoint(leaves.length);
  return nodeHash(rootOfLeaves(leaves.slice(0, k)), rootOfLeaves(leaves.slice(k)));
}

/** An in-memory node store (tests, benchmarks, clients that keep a whole log). */
export class MemoryNodeStore {
  readonly #levels: Uint8Array[][] = [];
  #state: TreeState = EMPTY_TREE;

  get state(): TreeState {
    return this.#state;
  }

  append(leaf: Uint8Array): void {
    const r = appendLeaf(this.#state, leaf);
    for (const n of r.nodes) {
      let lvl = this.#levels[n.level];
      if (lvl === undefined) {
        lvl = [];
        this.#levels[n.level] = lvl;
      }
      lvl[n.index] = n.hash;
    }
    this.#state = r.state;
  }

  readonly read: NodeReader = (level, index) => {
    const h = this.#levels[level]?.[index];
    if (h === undefined) throw new RangeError(`no stored node at level ${level} index ${index}`);
    return h;
  };
}
