/**
 * Group commit. Appends from all requests are queued and written in batches: one durable store
 * transaction per batch (SQLite: WAL, synchronous=FULL), each touched channel's checkpoint signed
 * once per batch, answers released only after the transaction has committed. The rules (epoch,
 * access list, idempotency) run here, in queue order, against the state the batch is building.
 */
import {
  type ChannelId,
  constantTimeEqual,
  type DeviceId,
  type PartyId,
  type SignedEnvelope,
} from '@backchannel/protocol';
import type { RelayReceiptBody } from '@backchannel/protocol/attest';
import { appendLeaf, type StoredNode, treeRoot } from '@backchannel/protocol/transcript';
import { deviceStatus } from '../directory/devices.ts';
import { leafHashNode, sha256 } from '../ed25519.node.ts';
import { RelayError } from '../errors.ts';
import type { Fanout, PublishedChannel, PublishedEntry, PublishedInboxItem } from '../fanout/fanout.ts';
import type { ChannelHead, DeviceRecord, MemberRecord, MessageRef, Store, WriteTx } from '../store/store.ts';
import type { CheckpointSigner } from './checkpoints.ts';
import { encodeEntryFast } from './entry-codec.ts';
import { type NodeCache, ProofBuilder } from './node-cache.ts';
import { checkEpoch, checkMembershipChange, checkOpeningCommit, isCurrentMember } from './rules.ts';

export interface AppendInput {
  readonly env: SignedEnvelope;
  /** The authenticated sender (already checked to be the envelope's signer). */
  readonly sender: DeviceRecord;
  /** SHA-256 of the envelope wire bytes. */
  readonly envelopeHash: Uint8Array;
  /** The directory's revocation mark taken before the sender was checked (DeviceDirectory.mark). */
  readonly revocationMark?: number;
}

export interface AppendResult {
  readonly seq: number;
  readonly receivedAt: number;
  readonly inclusionProof: Uint8Array[];
  /** The signed checkpoint the proof is against, and its size. */
  readonly checkpoint: string;
  readonly size: number;
  /** True when this was a retry of an envelope already in the log. */
  readonly duplicate: boolean;
  /** The relay's signed receipt, CBOR({body, [batch,] sig}) (one signature per batch). */
  readonly receipt: Uint8Array;
}

export interface AppenderMetrics {
  batch(size: number, commitSeconds: number): void;
  outcome(kind: 'accepted' | 'duplicate' | 'rejected', n: number): void;
}

export interface AppenderDeps {
  readonly store: Store;
  readonly signer: CheckpointSigner;
  readonly cache: NodeCache;
  readonly fanout: Fanout;
  readonly now: () => number;
  readonly maxBatch: number;
  /**
   * Envelope bytes being accepted at once (reserve/release): beyond it an append is refused
   * with RELAY_BUSY before anything is queued. Default: no cap.
   */
  readonly maxInFlightBytes?: number;
  readonly metrics?: AppenderMetrics;
  readonly onError?: (e: unknown) => void;
  /** Whether the device was revoked since a mark (DeviceDirectory.revokedSince). */
  readonly revokedSince?: (device: DeviceId, mark: number) => boolean;
  /**
   * A shared store's batch read a sender's record and found it changed from the one this node
   * authenticated it with (another node wrote the change, its fan-out message lost): the
   * directory forgets its copy and, for a revocation, closes the device's sockets here.
   */
  readonly senderChanged?: (rec: DeviceRecord) => void;
}

interface ChannelState {
  readonly head: ChannelHead;
  readonly members: ReadonlyMap<DeviceId, MemberRecord>;
}

interface Pending {
  readonly input: AppendInput;
  readonly resolve: (r: AppendResult) => void;
  readonly reject: (e: unknown) => void;
  outcome?: { seq: number; receivedAt: number; duplicate: boolean } | RelayError;
}

/** One channel's share of a batch: a working copy of its state and what the batch added. */
class ChannelWork {
  readonly channel: ChannelId;
  head: ChannelHead | undefined;
  members: Map<DeviceId, MemberRecord>;
  readonly nodes: StoredNode[] = [];
  readonly entries: PublishedEntry[] = [];
  /** Checkpoints this batch signed for the channel, by increasing size. */
  readonly checkpoints: Array<{ size: number; note: string }> = [];
  /** The log's size before this batch: entries from here on were written by it. */
  readonly startSize: number;
  readonly msgIds = new Map<string, { seq: number; hash: Uint8Array; receivedAt: number }>();
  /** Entries already in the log among the batch's msgIds for this channel (one lookup per batch). */
  known = new Map<string, MessageRef>();

  constructor(channel: ChannelId, state: ChannelState | undefined) {
    this.channel = channel;
    this.head = state?.head;
    this.startSize = state?.head.size ?? 0;
    this.members = new Map(state?.members ?? []);
  }
}

interface CheckpointRef {
  readonly size: number;
  readonly note: string;
}

function receiptBody(p: Pending, o: { seq: number; receivedAt: number }): RelayReceiptBody {
  const b = p.input.env.body;
  return {
    v: 1,
    channel: b.channel,
    msgId: b.msgId,
    envelopeHash: p.input.envelopeHash,
    seq: o.seq,
    receivedAt: o.receivedAt,
  };
}

/** Whether a device's record differs in what the relay acts on (revocation, validity, role). */
function changed(was: DeviceRecord, now: DeviceRecord): boolean {
  return (
    was.revokedAt !== now.revokedAt ||
    was.role !== now.role ||
    was.notBefore !== now.notBefore ||
    was.notAfter !== now.notAfter
  );
}

const MAX_STATE_CACHE = 10_000;
/** Batches in flight with a pipelined store: one committing, one built behind it. */
const MAX_OUTSTANDING = 2;

export class Appender {
  readonly #d: AppenderDeps;
  readonly #queue: Pending[] = [];
  readonly #states = new Map<ChannelId, ChannelState>();
  #scheduled = false;
  /** A batch is being built (its store transaction is open). */
  #running = false;
  /** Batches built and not yet answered (committing, or waiting to). */
  #outstanding = 0;
  /**
   * With a pipelined store: the msgIds of batches built but not yet known committed, per channel
   * (a retry arriving meanwhile is answered from here; once committed, the store has them).
   */
  readonly #uncommitted = new Map<
    ChannelId,
    Map<string, { seq: number; hash: Uint8Array; receivedAt: number }>
  >();
  #closing = false;
  #idle: Array<() => void> = [];
  /** Batches that failed so far: a batch being built when one fails is abandoned (see below). */
  #failures = 0;
  /** Envelope bytes reserved by appends being accepted (decoded, verified, queued, committing). */
  #inFlight = 0;
  readonly #maxInFlight: number;

  constructor(deps: AppenderDeps) {
    this.#d = deps;
    this.#maxInFlight = deps.maxInFlightBytes ?? Number.POSITIVE_INFINITY;
  }

  get queued(): number {
    return this.#queue.length;
  }

  get inFlightBytes(): number {
    return this.#inFlight;
  }

  /**
   * Reserves `n` envelope bytes for an append about to be accepted, or refuses it (RELAY_BUSY,
   * retryable) when that would exceed the cap. An append is always admitted when nothing else is
   * in flight. Refused before it is queued: an accepted append is never dropped by the cap.
   */
  reserve(n: number): void {
    if (this.#inFlight > 0 && this.#inFlight + n > this.#maxInFlight) {
      throw new RelayError('RELAY_BUSY', 'the relay holds too many envelope bytes in flight; retry', {
        retryAfterMs: 1_000,
      });
    }
    this.#inFlight += n;
  }

  /** Gives back what reserve() took, once the append is answered (accepted or refused). */
  release(n: number): void {
    this.#inFlight -= n;
  }

  submit(input: AppendInput): Promise<AppendResult> {
    if (this.#closing) return Promise.reject(new RelayError('NOT_READY', 'the relay is shutting down'));
    return new Promise<AppendResult>((resolve, reject) => {
      this.#queue.push({ input, resolve, reject });
      this.#schedule();
    });
  }

  /** Stops taking appends and resolves once every queued one has been answered. */
  async close(): Promise<void> {
    this.#closing = true;
    if (!this.#running && this.#outstanding === 0 && this.#queue.length === 0) return;
    await new Promise<void>((r) => this.#idle.push(r));
  }

  #schedule(): void {
    if (this.#scheduled || this.#running) return;
    this.#scheduled = true;
    // setImmediate lets every request parsed in this turn of the event loop join the batch.
    setImmediate(() => {
      this.#scheduled = false;
      void this.#drain();
    });
  }

  async #drain(): Promise<void> {
    if (this.#running || this.#outstanding >= MAX_OUTSTANDING) return;
    const batch = this.#queue.splice(0, this.#d.maxBatch);
    if (batch.length === 0) {
      this.#settle();
      return;
    }
    this.#running = true;
    this.#outstanding++;
    let released = false;
    // With a pipelined store the next batch is built while this one commits (at most one waits).
    const release = () => {
      if (released) return;
      released = true;
      this.#running = false;
      if (this.#queue.length > 0 && this.#outstanding < MAX_OUTSTANDING) this.#schedule();
    };
    try {
      await this.#runBatch(batch, this.#d.store.pipelined === true ? release : () => {});
    } finally {
      this.#outstanding--;
      release();
      if (this.#queue.length > 0) this.#schedule();
      this.#settle();
    }
  }

  /** Wakes close() once nothing is queued or under way. */
  #settle(): void {
    if (this.#running || this.#outstanding > 0 || this.#queue.length > 0) return;
    const waiters = this.#idle;
    this.#idle = [];
    for (const w of waiters) w();
  }

  /** `built` is called once the batch's transaction is written (its commit still under way). */
  async #runBatch(batch: Pending[], built: () => void): Promise<void> {
    const now = this.#d.now();
    const works = new Map<ChannelId, ChannelWork>();
    const inbox: Array<Omit<PublishedInboxItem, 'entry'>> = [];
    const started = performance.now();
    const pipelined = this.#d.store.pipelined === true;
    const failuresAtStart = this.#failures;
    try {
      const ids = new Map<ChannelId, string[]>();
      for (const p of batch) {
        const b = p.input.env.body;
        const list = ids.get(b.channel);
        if (list === undefined) ids.set(b.channel, [b.msgId]);
        else list.push(b.msgId);
      }
      await this.#d.store.write(async (tx) => {
        /** With a shared store: each sender's record as the store holds it now (see below). */
        let senders: Map<DeviceId, DeviceRecord> | undefined;
        if (this.#d.store.shared) {
          // Other nodes append too: one writer per channel, and the head is read under the lock.
          await tx.lockChannels([...ids.keys()], ids);
          // A revocation or role change written through another node reaches this one over the
          // fan-out, which may lose it (then this node's directory holds the old record for up to
          // its TTL). Read in this transaction, after the lock, every change committed before is
          // seen, and one committed later waits for this batch (ordered after it).
          senders = await tx.shareDevices([...new Set(batch.map((p) => p.input.sender.device))]);
        }
        /** Senders whose change this batch reported already (once each). */
        const told = new Set<DeviceId>();
        for (const p of batch) {
          try {
            let input = p.input;
            if (senders !== undefined) {
              const rec = senders.get(input.sender.device);
              if (rec !== undefined && !told.has(rec.device) && changed(input.sender, rec)) {
                told.add(rec.device);
                this.#d.senderChanged?.(rec);
              }
              const status = rec === undefined ? 'DEVICE_UNKNOWN' : deviceStatus(rec, now);
              if (status !== undefined) throw new RelayError(status, 'the envelope sender may not post now');
              // The record as the store holds it (its role may have changed through another node).
              // Same device id, same key: the id is derived from the key the envelope verified under.
              input = { ...input, sender: rec as DeviceRecord };
            }
            p.outcome = await this.#apply(tx, works, ids, inbox, input, now);
          } catch (e) {
            if (!(e instanceof RelayError)) throw e;
            p.outcome = e;
          }
        }
        for (const w of works.values()) {
          if (w.head === undefined || w.entries.length === 0) continue;
          const last = w.checkpoints[w.checkpoints.length - 1];
          if (last === undefined || last.size !== w.head.size) {
            const note = this.#d.signer.sign(w.channel, w.head.size, treeRoot(w.head, sha256));
            w.checkpoints.push({ size: w.head.size, note });
          }
          for (const c of w.checkpoints) await tx.putCheckpoint(w.channel, { ...c, issuedAt: now });
          await tx.putChannel(w.head);
        }
        if (pipelined) {
          // A batch that failed while this one was being built may have been this one's base:
          // nothing of it is cached or committed (thrown: rolled back, answered retryable).
          if (this.#failures !== failuresAtStart) {
            throw new RelayError('STORE_UNAVAILABLE', 'an earlier write failed; retry', {
              retryAfterMs: 1_000,
            });
          }
          // The next batch builds on this one's state before it commits.
          for (const w of works.values()) {
            if (w.head === undefined || w.entries.length === 0) continue;
            this.#remember(w);
            const ids = this.#uncommitted.get(w.channel) ?? new Map();
            this.#uncommitted.set(w.channel, ids);
            for (const [id, ref] of w.msgIds) ids.set(id, ref);
          }
        }
        built();
      });
    } catch (e) {
      this.#failures++;
      built();
      this.#forgetUncommitted(works);
      // A pipelined batch built on this one fails with it; what was cached is no longer sure.
      if (pipelined) this.#states.clear();
      else for (const c of works.keys()) this.#states.delete(c);
      this.#d.onError?.(e);
      const err =
        e instanceof RelayError && e.code === 'STORE_UNAVAILABLE'
          ? e
          : new RelayError('INTERNAL', 'the append could not be made durable; retry');
      // Every append of the batch gets the retryable error, refusals too: they were decided on
      // state that was never committed (an earlier entry of this batch, or of a failed one).
      for (const p of batch) p.reject(err);
      return;
    }
    this.#d.metrics?.batch(batch.length, (performance.now() - started) / 1000);
    this.#forgetUncommitted(works);
    for (const w of works.values()) {
      if (w.head === undefined) continue;
      if (w.entries.length > 0 && !pipelined) this.#remember(w);
      for (const n of w.nodes) this.#d.cache.set(w.channel, n.level, n.index, n.hash);
    }
    // Subscribers first (the entries are durable now), then the writers' answers.
    this.#publish(works, inbox);
    try {
      await this.#answer(batch, works);
    } catch (e) {
      this.#d.onError?.(e);
      for (const p of batch)
        p.reject(new RelayError('INTERNAL', 'the append is durable but its proof failed; retry'));
    }
  }

  /** Drops a batch's msgIds from the uncommitted overlay (committed now, or failed). */
  #forgetUncommitted(works: Map<ChannelId, ChannelWork>): void {
    for (const w of works.values()) {
      const ids = this.#uncommitted.get(w.channel);
      if (ids === undefined) continue;
      for (const id of w.msgIds.keys()) ids.delete(id);
      if (ids.size === 0) this.#uncommitted.delete(w.channel);
    }
  }

  #remember(w: ChannelWork): void {
    if (w.head === undefined) return;
    this.#states.delete(w.channel);
    if (this.#states.size >= MAX_STATE_CACHE) {
      const oldest = this.#states.keys().next();
      if (oldest.done !== true) this.#states.delete(oldest.value);
    }
    this.#states.set(w.channel, { head: w.head, members: w.members });
  }

  async #work(
    tx: WriteTx,
    works: Map<ChannelId, ChannelWork>,
    ids: ReadonlyMap<ChannelId, readonly string[]>,
    channel: ChannelId,
  ): Promise<ChannelWork> {
    let w = works.get(channel);
    if (w !== undefined) return w;
    let state = this.#states.get(channel);
    const batchIds = ids.get(channel) ?? [];
    let known: Map<string, MessageRef> | undefined;
    if (state === undefined || this.#d.store.shared) {
      // Shared store: the cache is a hint only, another node may have appended since. The head
      // is read under the channel lock; cached members are kept while the epoch has not moved
      // (the access list changes only in commits, and every commit advances the epoch).
      // Both reads go out together (one round trip on a networked store).
      const [head, found] = await Promise.all([tx.getChannel(channel), tx.findMessages(channel, batchIds)]);
      known = found;
      if (head === undefined) {
        this.#states.delete(channel);
        state = undefined;
      } else if (state !== undefined && head.epoch === state.head.epoch) {
        state = { head, members: state.members };
      } else {
        const members = new Map((await tx.listMembers(channel)).map((m) => [m.device, m] as const));
        state = { head, members };
        this.#states.set(channel, state);
      }
    }
    w = new ChannelWork(channel, state);
    // Idempotency: which of this batch's msgIds the log already holds, in one lookup.
    if (state !== undefined) w.known = known ?? (await this.#known(tx, channel, batchIds));
    works.set(channel, w);
    return w;
  }

  /**
   * The msgIds among `ids` already in the log. A pipelined store's transaction would wait for the
   * commits queued before it to answer, so it is asked through a read of what is committed, and
   * the batches still committing answer from the overlay (a batch leaves the overlay only once
   * its commit is known, when the read sees it).
   */
  async #known(tx: WriteTx, channel: ChannelId, ids: readonly string[]): Promise<Map<string, MessageRef>> {
    if (this.#d.store.pipelined !== true) return tx.findMessages(channel, ids);
    const pending = this.#uncommitted.get(channel);
    const out = new Map<string, MessageRef>();
    const ask: string[] = [];
    for (const id of ids) {
      const p = pending?.get(id);
      if (p === undefined) ask.push(id);
      else out.set(id, { seq: p.seq, envelopeHash: p.hash, receivedAt: p.receivedAt });
    }
    if (ask.length > 0) {
      const found = await this.#d.store.read((r) => r.findMessages(channel, ask));
      for (const [id, ref] of found) out.set(id, ref);
    }
    return out;
  }

  async #apply(
    tx: WriteTx,
    works: Map<ChannelId, ChannelWork>,
    ids: ReadonlyMap<ChannelId, readonly string[]>,
    inbox: Array<Omit<PublishedInboxItem, 'entry'>>,
    input: AppendInput,
    now: number,
  ): Promise<{ seq: number; receivedAt: number; duplicate: boolean }> {
    const { env, sender, envelopeHash } = input;
    const body = env.body;
    // A revocation heard of while this append was checked and queued: refused as if it came first.
    if (
      input.revocationMark !== undefined &&
      this.#d.revokedSince?.(sender.device, input.revocationMark) === true
    ) {
      throw new RelayError('CERT_REVOKED', 'the envelope sender was revoked');
    }
    const w = await this.#work(tx, works, ids, body.channel);

    // Idempotency on (channel, msgId): a retry with the same bytes gets the original answer.
    const stored = w.known.get(body.msgId);
    const prior =
      w.msgIds.get(body.msgId) ??
      (stored === undefined
        ? undefined
        : { seq: stored.seq, hash: stored.envelopeHash, receivedAt: stored.receivedAt });
    if (prior !== undefined) {
      if (!constantTimeEqual(prior.hash, envelopeHash)) {
        // To a non-member, the same answer as any other envelope of it: whether a msgId is taken
        // in a channel says the channel exists.
        if (w.head === undefined || !isCurrentMember(w.members.get(sender.device))) {
          throw new RelayError('NOT_A_MEMBER', 'not a member of this channel');
        }
        throw new RelayError('DUPLICATE_MESSAGE_ID', 'this msgId was already used for a different envelope');
      }
      return { seq: prior.seq, receivedAt: prior.receivedAt, duplicate: true };
    }

    // Access list and epoch.
    const creating = w.head === undefined;
    let head: ChannelHead;
    if (w.head === undefined) {
      if (body.kind !== 'commit' || body.epoch !== 0) {
        throw new RelayError('NOT_A_MEMBER', 'not a member of this channel');
      }
      checkOpeningCommit(body.members);
      head = { channel: body.channel, epoch: 0, size: 0, frontier: [], lastAt: now, createdAt: now };
    } else {
      head = w.head;
      if (!isCurrentMember(w.members.get(sender.device))) {
        throw new RelayError('NOT_A_MEMBER', 'not a member of this channel');
      }
    }
    checkEpoch(body, head.epoch);
    let added: ReadonlyArray<{ device: DeviceId; party: PartyId }> = [];
    let removed: readonly DeviceId[] = [];
    if (body.kind === 'commit' && body.members !== undefined) {
      const records = new Map<DeviceId, DeviceRecord>();
      for (const d of body.members.add) {
        const rec = d === sender.device ? sender : await tx.getDevice(d);
        if (rec !== undefined) records.set(d, rec);
      }
      // Another party's devices named for removal: the rule looks at whether their root revoked them.
      for (const d of body.members.remove) {
        const m = w.members.get(d);
        if (m === undefined || m.party === sender.party || records.has(d)) continue;
        const rec = await tx.getDevice(d);
        if (rec !== undefined) records.set(d, rec);
      }
      const current = creating
        ? new Map<DeviceId, MemberRecord>([
            [
              sender.device,
              {
                channel: body.channel,
                device: sender.device,
                party: sender.party,
                addedSeq: 0,
                removedSeq: undefined,
              },
            ],
          ])
        : w.members;
      const change = checkMembershipChange(sender, body.members, current, (d) => records.get(d), now);
      added = change.add;
      removed = change.remove;
    }

    // Append: the entry is the Merkle leaf.
    if (creating) await tx.putChannel(head);
    const seq = head.size;
    const receivedAt = Math.max(now, head.lastAt);
    const entry = encodeEntryFast({
      v: 1,
      seq,
      channel: body.channel,
      sender: sender.device,
      receivedAt,
      envelope: env.wire,
    });
    const grown = appendLeaf({ size: head.size, frontier: head.frontier }, leafHashNode(entry), sha256);
    await tx.appendEntry(body.channel, {
      seq,
      msgId: body.msgId,
      sender: sender.device,
      envelopeHash,
      receivedAt,
      entry,
    });
    await tx.putNodes(body.channel, grown.nodes);
    w.nodes.push(...grown.nodes);
    w.head = {
      ...head,
      size: grown.state.size,
      frontier: grown.state.frontier,
      lastAt: receivedAt,
      epoch: body.kind === 'commit' ? head.epoch + 1 : head.epoch,
    };
    w.msgIds.set(body.msgId, { seq, hash: envelopeHash, receivedAt });

    // Access list changes (the creator first).
    const changes: MemberRecord[] = [];
    if (creating) {
      changes.push({
        channel: body.channel,
        device: sender.device,
        party: sender.party,
        addedSeq: seq,
        removedSeq: undefined,
      });
    }
    for (const a of added) {
      changes.push({
        channel: body.channel,
        device: a.device,
        party: a.party,
        addedSeq: seq,
        removedSeq: undefined,
      });
    }
    for (const d of removed) {
      const m = w.members.get(d) as MemberRecord;
      changes.push({ ...m, removedSeq: seq });
    }
    for (const m of changes) {
      w.members.set(m.device, m);
      await tx.putMember(m);
    }
    // A removal gets its own checkpoint at the size right after it: former members are
    // served that one and nothing after.
    if (removed.length > 0) {
      w.checkpoints.push({
        size: w.head.size,
        note: this.#d.signer.sign(body.channel, w.head.size, treeRoot(w.head, sha256)),
      });
    }

    // Party inboxes (Welcome and outreach).
    for (const party of new Set(body.to ?? [])) {
      const cursor = await tx.addInboxItem(party, body.channel, seq);
      inbox.push({ party, cursor, channel: body.channel, seq });
    }
    w.entries.push({ seq, entry, removed });
    return { seq, receivedAt, duplicate: false };
  }

  /**
   * Answers each accepted append as of its first acceptance: with the first checkpoint issued
   * above its seq (the one that first covered it: this batch's, for an entry this batch wrote)
   * and an inclusion proof against it. A retry (a duplicate) gets that same checkpoint, read from
   * the store when its entry is older than this batch, and a receipt signed alone: retries of one
   * envelope are answered with the same bytes, whenever they come.
   */
  async #answer(batch: Pending[], works: Map<ChannelId, ChannelWork>): Promise<void> {
    const proofs = new Map<ChannelId, ProofBuilder>();
    const answered: Array<{ p: Pending; o: { seq: number; receivedAt: number; duplicate: boolean } }> = [];
    /** The checkpoint each answered append is answered with (parallel to `answered`). */
    const against: Array<CheckpointRef | undefined> = [];
    /** Indexes into `answered` of retries of entries older than this batch. */
    const older: number[] = [];
    let rejected = 0;
    for (const p of batch) {
      const o = p.outcome;
      if (o === undefined) {
        p.reject(new RelayError('INTERNAL', 'append was not processed'));
        continue;
      }
      if (o instanceof RelayError) {
        rejected++;
        p.reject(o);
        continue;
      }
      const channel = p.input.env.body.channel;
      const w = works.get(channel);
      let cp: CheckpointRef | undefined;
      if (w !== undefined && o.seq >= w.startSize) {
        for (const c of w.checkpoints) {
          if (c.size > o.seq) {
            cp = c;
            break;
          }
        }
      }
      if (cp === undefined) older.push(answered.length);
      let b = proofs.get(channel);
      if (b === undefined) {
        b = new ProofBuilder(channel, this.#d.cache);
        proofs.set(channel, b);
      }
      if (cp !== undefined) b.needInclusion(o.seq, cp.size);
      answered.push({ p, o });
      against.push(cp);
    }
    let pending = older.length > 0;
    for (const b of proofs.values()) pending ||= b.pending;
    if (pending) {
      await this.#d.store.read(async (tx) => {
        for (const i of older) {
          const { p, o } = answered[i] as (typeof answered)[number];
          const channel = p.input.env.body.channel;
          const cp = await tx.getCheckpointAfter(channel, o.seq);
          if (cp === undefined) throw new Error(`entry ${o.seq} of ${channel} has no checkpoint`);
          against[i] = cp;
          proofs.get(channel)?.needInclusion(o.seq, cp.size);
        }
        for (const b of proofs.values()) await b.load(tx);
      });
    }
    // One receipt signature per channel for the appends this batch wrote: a receipt's path then
    // names only receipts of its own channel, never another's traffic. A retry's is signed alone.
    const receipts = new Array<Uint8Array>(answered.length);
    const byChannel = new Map<ChannelId, number[]>();
    answered.forEach(({ p, o }, i) => {
      if (o.duplicate) {
        receipts[i] = this.#d.signer.receipts([receiptBody(p, o)])[0] as Uint8Array;
        return;
      }
      const ch = p.input.env.body.channel;
      const list = byChannel.get(ch);
      if (list === undefined) byChannel.set(ch, [i]);
      else list.push(i);
    });
    for (const idx of byChannel.values()) {
      const signed = this.#d.signer.receipts(
        idx.map((i) => {
          const { p, o } = answered[i] as (typeof answered)[number];
          return receiptBody(p, o);
        }),
      );
      idx.forEach((i, k) => {
        receipts[i] = signed[k] as Uint8Array;
      });
    }
    let accepted = 0;
    let duplicates = 0;
    answered.forEach(({ p, o }, i) => {
      const cp = against[i];
      const b = proofs.get(p.input.env.body.channel);
      if (cp === undefined || b === undefined) throw new Error('no checkpoint for an accepted append');
      if (o.duplicate) duplicates++;
      else accepted++;
      p.resolve({
        seq: o.seq,
        receivedAt: o.receivedAt,
        inclusionProof: b.inclusion(o.seq, cp.size),
        checkpoint: cp.note,
        size: cp.size,
        duplicate: o.duplicate,
        receipt: receipts[i] as Uint8Array,
      });
    });
    this.#d.metrics?.outcome('accepted', accepted);
    this.#d.metrics?.outcome('duplicate', duplicates);
    this.#d.metrics?.outcome('rejected', rejected);
  }

  #publish(works: Map<ChannelId, ChannelWork>, inbox: Array<Omit<PublishedInboxItem, 'entry'>>): void {
    const channels: PublishedChannel[] = [];
    const entryOf = new Map<string, Uint8Array>();
    for (const w of works.values()) {
      const last = w.checkpoints[w.checkpoints.length - 1];
      if (w.entries.length === 0 || last === undefined) continue;
      for (const e of w.entries) entryOf.set(`${w.channel}:${e.seq}`, e.entry);
      channels.push({ channel: w.channel, entries: w.entries, checkpoint: last });
    }
    const items = inbox.map((i) => ({ ...i, entry: entryOf.get(`${i.channel}:${i.seq}`) as Uint8Array }));
    if (channels.length > 0 || items.length > 0) this.#d.fanout.publish({ channels, inbox: items });
  }
}
