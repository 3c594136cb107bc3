/**
 * The shared store: PostgreSQL through postgres.js, for several relay nodes on one database.
 * Write transactions are READ COMMITTED and take a transaction-scoped advisory lock per channel
 * they append to (lockChannels, in one global order), so one channel has one writer at a time
 * across nodes and seq is assigned from the head read under that lock. Read transactions are
 * REPEATABLE READ READ ONLY: one committed snapshot. Entry and node inserts are buffered and
 * sent as multi-row inserts (before a read that needs them and before COMMIT), so a batch costs
 * a handful of round trips, not one per append. Durability is PostgreSQL's (synchronous_commit).
 */
import type { ChannelId, DeviceId, PartyId } from '@backchannel/protocol';
import type { NodeRef, StoredNode } from '@backchannel/protocol/transcript';
import postgres from 'postgres';
import { RelayError } from '../../errors.ts';
import type {
  CardRecord,
  ChannelHead,
  CheckpointRecord,
  ClaimedPackage,
  DeviceRecord,
  EntryRecord,
  InboxItemRecord,
  MemberRecord,
  MessageRef,
  ReadTx,
  RevocationRecord,
  Store,
  WriteTx,
} from '../store.ts';
import { isTransientPgError, STORE_RETRY_AFTER_MS, storeUnavailable } from './pg-errors.ts';
import { entriesThatFit } from '../store.ts';
import { migratePostgres } from './pg-migrate.ts';
import {
  bytes,
  type DeviceRow,
  decodeFrontier,
  type EntryRow,
  encodeFrontier,
  type MemberRow,
  toDevice,
  toEntry,
} from '../rows.ts';

export interface PostgresStoreOptions {
  /** postgres://user@host:port/database (a `schema` query parameter selects the schema). */
  readonly url: string;
  /** Schema for every table (created when missing); default: the URL's `schema`, else `public`. */
  readonly schema?: string;
  /** Pool size (default 10). */
  readonly max?: number;
  /** Seconds to wait for a connection before failing with STORE_UNAVAILABLE (default 5). */
  readonly connectTimeoutS?: number;
  /**
   * Seconds a transaction may take, start to end, before it is given up with STORE_UNAVAILABLE
   * (default 30). The database ends a session left idle inside a transaction for as long.
   */
  readonly transactionTimeoutS?: number;
}

const DEFAULT_CONNECT_TIMEOUT_S = 5;
const DEFAULT_TRANSACTION_TIMEOUT_S = 30;

/**
 * Fails with STORE_UNAVAILABLE when `work` has not started within `ms` (`started()`; without
 * it, when it has not settled). postgres.js's connect_timeout bounds one connection attempt, but
 * a connection closed during its handshake (a proxy or port forwarder that accepts and drops
 * while the database is down) is retried without end, so a query would wait for as long as the
 * outage lasts. `onLate` runs when the deadline passes first; `work` may still settle later.
 */
export async function withStartDeadline<T>(
  work: Promise<T>,
  ms: number,
  started: () => boolean = () => false,
  onLate: () => void = () => {},
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    const check = () => {
      if (started()) return;
      onLate();
      reject(storeUnavailable());
    };
    timer = setTimeout(check, ms);
  });
  work.catch(() => {}); // settling after the deadline is not an unhandled rejection
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

type Sql = postgres.Sql<{ bigint: number }>;
type TxSql = postgres.TransactionSql<{ bigint: number }>;

interface HeadRow {
  channel: string;
  epoch: number;
  size: number;
  frontier: Uint8Array;
  last_at: number;
  created_at: number;
}

interface AheadRow {
  channel: string;
  msg_id: string;
  seq: number;
  envelope_hash: Uint8Array;
  received_at: number;
}

const toHead = (r: HeadRow): ChannelHead => ({
  channel: r.channel as ChannelId,
  epoch: r.epoch,
  size: r.size,
  frontier: decodeFrontier(bytes(r.frontier)),
  lastAt: r.last_at,
  createdAt: r.created_at,
});

const toMember = (channel: ChannelId, r: MemberRow): MemberRecord => ({
  channel,
  device: r.device as DeviceId,
  party: r.party as PartyId,
  addedSeq: r.added_seq,
  removedSeq: r.removed_seq ?? undefined,
});

interface PendingEntry {
  channel: string;
  seq: number;
  msg_id: string;
  sender: string;
  envelope_hash: Uint8Array;
  received_at: number;
  entry: Uint8Array;
}

interface PendingNode {
  channel: string;
  level: number;
  idx: number;
  hash: Uint8Array;
}

/** Rows per multi-row INSERT (PostgreSQL allows 65,535 parameters per statement). */
const INSERT_CHUNK = 1000;

/** A statement asked for once the transaction is over (committed, rolled back or lost). */
function transactionOver(): RelayError {
  return new RelayError('STORE_UNAVAILABLE', 'the database transaction has ended; retry', {
    retryAfterMs: STORE_RETRY_AFTER_MS,
  });
}

/**
 * One transaction. Its first failed statement fails it: every later call throws that error and
 * sends nothing (PostgreSQL would refuse the statements anyway, 25P02). Once the transaction is
 * over — begin() settled, which it does without waiting for fn when the connection is lost —
 * nothing more is sent either, and a statement still waiting is given up: postgres.js 3.4 leaves
 * statements queued on a lost connection pending forever, and writes one sent after the loss to a
 * null socket (an uncaught TypeError that ends the process) or to the next session of that
 * connection.
 */
class PgTx implements WriteTx {
  readonly #raw: TxSql;
  /** Writes whose result nobody waits for, sent (pipelined, in order) at the next flush. */
  #deferred: Array<(sql: TxSql) => PromiseLike<unknown>> = [];
  #entries: PendingEntry[] = [];
  #nodes: PendingNode[] = [];
  /** msgId → seq of buffered entries, per channel (findMessage must see them). */
  readonly #pendingMsg = new Map<string, PendingEntry>();
  /** Heads read with the channel locks, each answered once (until the channel is written). */
  readonly #aheadHeads = new Map<ChannelId, ChannelHead | undefined>();
  /** msgIds looked up with the channel locks, per channel, and what was found. */
  readonly #aheadMsgs = new Map<ChannelId, { asked: Set<string>; found: Map<string, MessageRef> }>();
  /** The first statement that failed (boxed: any value can be thrown). */
  #failure: { error: unknown } | undefined;
  #over = false;
  /** Given up by its caller (it ran past its deadline): it rolls back, if it ever can. */
  #abandoned = false;
  /** Rejects once the transaction is over: statements still waiting are given up. */
  readonly #ended: Promise<never>;
  #end!: (e: unknown) => void;

  constructor(sql: TxSql) {
    this.#raw = sql;
    this.#ended = new Promise<never>((_, reject) => {
      this.#end = reject;
    });
    this.#ended.catch(() => {});
  }

  /**
   * Runs fn as the body of begin(). If the transaction ended while fn ran (its connection was
   * lost), the answer is never given: postgres.js would send COMMIT or ROLLBACK on a connection
   * that is gone (begin() has already rejected, so nobody waits for it). An abandoned one fails,
   * so that ROLLBACK follows its statements on a connection that still exists.
   */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    let out: { ok: true; value: T } | { ok: false; error: unknown };
    try {
      out = { ok: true, value: await fn() };
    } catch (error) {
      out = { ok: false, error };
    }
    // A lost connection is reported by the socket's close event, which may come after its
    // statements failed: let pending I/O be seen before ROLLBACK is sent.
    if (!out.ok || this.#failure !== undefined) await new Promise((r) => setImmediate(r));
    if (this.#over) return new Promise<T>(() => {});
    if (!out.ok) throw out.error;
    return out.value;
  }

  /** The transaction is over (begin() settled): nothing more is sent. */
  end(): void {
    if (this.#over) return;
    this.#over = true;
    this.#end(transactionOver());
  }

  /**
   * Its caller stopped waiting: statements still waiting are given up and no other is sent, so
   * fn fails and postgres.js rolls back. A connection that stopped answering (a network path
   * that drops packets rather than resetting) is not reported lost until TCP gives up, ~15 min.
   */
  abandon(): void {
    if (this.#over || this.#abandoned) return;
    this.#abandoned = true;
    this.#end(transactionOver());
  }

  #refuseIfDone(): void {
    if (this.#failure !== undefined) throw this.#failure.error;
    if (this.#over || this.#abandoned) throw transactionOver();
  }

  /** Sends statements, unless the transaction failed or is over; records a failure. */
  async #send<T>(statements: (sql: TxSql) => PromiseLike<T>): Promise<T> {
    this.#refuseIfDone();
    try {
      return await Promise.race([statements(this.#raw), this.#ended]);
    } catch (e) {
      this.#failure ??= { error: e };
      throw e;
    }
  }

  /** Sends statements once every buffered write is on its way (statements run in order). */
  async #run<T>(statements: (sql: TxSql) => PromiseLike<T>): Promise<T> {
    await this.flush();
    return this.#send(statements);
  }

  #defer(make: (sql: TxSql) => PromiseLike<unknown>): void {
    this.#deferred.push(make);
  }

  /** Sends the buffered writes, pipelined in one round trip: deferred statements, then entries and nodes. */
  async flush(): Promise<void> {
    if (this.#deferred.length === 0 && this.#entries.length === 0 && this.#nodes.length === 0) return;
    const deferred = this.#deferred;
    const entries = this.#entries;
    const nodes = this.#nodes;
    this.#deferred = [];
    this.#entries = [];
    this.#nodes = [];
    this.#pendingMsg.clear();
    await this.#send(async (sql) => {
      const work: PromiseLike<unknown>[] = deferred.map((make) => make(sql));
      for (let i = 0; i < entries.length; i += INSERT_CHUNK) {
        const rows = entries.slice(i, i + INSERT_CHUNK);
        work.push(
          sql`INSERT INTO entries ${sql(rows, 'channel', 'seq', 'msg_id', 'sender', 'envelope_hash', 'received_at', 'entry')}`,
        );
      }
      for (let i = 0; i < nodes.length; i += INSERT_CHUNK) {
        const rows = nodes.slice(i, i + INSERT_CHUNK);
        work.push(
          sql`INSERT INTO nodes ${sql(rows, 'channel', 'level', 'idx', 'hash')}
              ON CONFLICT (channel, level, idx) DO UPDATE SET hash = excluded.hash`,
        );
      }
      // Pipelined on the transaction's connection; wait for all so none is left unobserved.
      const results = await Promise.allSettled(work);
      for (const r of results) if (r.status === 'rejected') throw r.reason;
    });
  }

  async getCard(party: PartyId): Promise<CardRecord | undefined> {
    const [r] = await this.#run(
      (sql) =>
        sql<
          { party: string; root_public_key: Uint8Array; card: Uint8Array; issued_at: number }[]
        >`SELECT party, root_public_key, card, issued_at FROM parties WHERE party = ${party}`,
    );
    if (r === undefined) return undefined;
    return {
      party: r.party as PartyId,
      rootPublicKey: bytes(r.root_public_key),
      card: bytes(r.card),
      issuedAt: r.issued_at,
    };
  }

  async getDevice(device: DeviceId): Promise<DeviceRecord | undefined> {
    const [r] = await this.#run((sql) => sql<DeviceRow[]>`SELECT * FROM devices WHERE device = ${device}`);
    return r === undefined ? undefined : toDevice(r);
  }

  async listDevices(party: PartyId): Promise<DeviceRecord[]> {
    const rows = await this.#run(
      (sql) => sql<DeviceRow[]>`SELECT * FROM devices WHERE party = ${party} ORDER BY device`,
    );
    return rows.map(toDevice);
  }

  async listRevocations(party: PartyId): Promise<RevocationRecord[]> {
    const rows = await this.#run(
      (sql) =>
        sql<
          { device: string; party: string; revoked_at: number; revocation: Uint8Array }[]
        >`SELECT device, party, revoked_at, revocation FROM revocations WHERE party = ${party} ORDER BY device`,
    );
    return rows.map((r) => ({
      device: r.device as DeviceId,
      party: r.party as PartyId,
      revokedAt: r.revoked_at,
      revocation: bytes(r.revocation),
    }));
  }

  async countKeyPackages(device: DeviceId): Promise<{ oneTime: number; lastResort: boolean }> {
    const [r] = await this.#run(
      (sql) => sql<{ one_time: number; last_resort: boolean }[]>`
      SELECT count(*) FILTER (WHERE NOT last_resort) AS one_time, COALESCE(bool_or(last_resort), false) AS last_resort
      FROM key_packages WHERE device = ${device}`,
    );
    return { oneTime: r?.one_time ?? 0, lastResort: r?.last_resort ?? false };
  }

  async getChannel(channel: ChannelId): Promise<ChannelHead | undefined> {
    if (this.#aheadHeads.has(channel)) {
      const head = this.#aheadHeads.get(channel);
      this.#aheadHeads.delete(channel);
      return head;
    }
    const [r] = await this.#run(
      (sql) => sql<HeadRow[]>`
      SELECT channel, epoch, size, frontier, last_at, created_at FROM channels WHERE channel = ${channel}`,
    );
    return r === undefined ? undefined : toHead(r);
  }

  async getMember(channel: ChannelId, device: DeviceId): Promise<MemberRecord | undefined> {
    const [r] = await this.#run(
      (sql) => sql<MemberRow[]>`
      SELECT device, party, added_seq, removed_seq FROM members WHERE channel = ${channel} AND device = ${device}`,
    );
    return r === undefined ? undefined : toMember(channel, r);
  }

  async listMembers(channel: ChannelId): Promise<MemberRecord[]> {
    const rows = await this.#run(
      (sql) => sql<MemberRow[]>`
      SELECT device, party, added_seq, removed_seq FROM members WHERE channel = ${channel}
      ORDER BY added_seq, device`,
    );
    return rows.map((r) => toMember(channel, r));
  }

  async findMessage(channel: ChannelId, msgId: string): Promise<MessageRef | undefined> {
    const p = this.#pendingMsg.get(`${channel}\n${msgId}`);
    if (p !== undefined) return { seq: p.seq, envelopeHash: p.envelope_hash, receivedAt: p.received_at };
    const [r] = await this.#run(
      (sql) => sql<{ seq: number; envelope_hash: Uint8Array; received_at: number }[]>`
      SELECT seq, envelope_hash, received_at FROM entries WHERE channel = ${channel} AND msg_id = ${msgId}`,
    );
    return r === undefined
      ? undefined
      : { seq: r.seq, envelopeHash: bytes(r.envelope_hash), receivedAt: r.received_at };
  }

  async findMessages(channel: ChannelId, msgIds: readonly string[]): Promise<Map<string, MessageRef>> {
    const out = new Map<string, MessageRef>();
    const ask: string[] = [];
    const ahead = this.#aheadMsgs.get(channel);
    this.#aheadMsgs.delete(channel);
    for (const id of msgIds) {
      const p = this.#pendingMsg.get(`${channel}\n${id}`);
      if (p !== undefined)
        out.set(id, { seq: p.seq, envelopeHash: p.envelope_hash, receivedAt: p.received_at });
      else if (ahead?.asked.has(id) === true) {
        const f = ahead.found.get(id);
        if (f !== undefined) out.set(id, f);
      } else ask.push(id);
    }
    if (ask.length === 0) return out;
    const rows = await this.#run(
      (sql) => sql<{ msg_id: string; seq: number; envelope_hash: Uint8Array; received_at: number }[]>`
      SELECT msg_id, seq, envelope_hash, received_at FROM entries
      WHERE channel = ${channel} AND msg_id = ANY(${ask}::text[])`,
    );
    for (const r of rows) {
      out.set(r.msg_id, { seq: r.seq, envelopeHash: bytes(r.envelope_hash), receivedAt: r.received_at });
    }
    return out;
  }

  async getEntries(
    channel: ChannelId,
    from: number,
    limit: number,
    until?: number,
    maxBytes?: number,
  ): Promise<EntryRecord[]> {
    if (limit <= 0) return [];
    const end = until ?? Number.MAX_SAFE_INTEGER;
    let n = limit;
    if (maxBytes !== undefined) {
      // The sizes first (octet_length reads no entry bytes), then only the entries that fit.
      const sizes = await this.#run(
        (sql) => sql<{ n: number }[]>`
        SELECT octet_length(entry) AS n FROM entries
        WHERE channel = ${channel} AND seq >= ${from} AND seq < ${end} ORDER BY seq LIMIT ${limit}`,
      );
      n = entriesThatFit(
        sizes.map((s) => s.n),
        maxBytes,
      );
      if (n === 0) return [];
    }
    const rows = await this.#run(
      (sql) => sql<EntryRow[]>`
      SELECT seq, msg_id, sender, envelope_hash, received_at, entry FROM entries
      WHERE channel = ${channel} AND seq >= ${from} AND seq < ${end} ORDER BY seq LIMIT ${n}`,
    );
    return rows.map(toEntry);
  }

  async readNodes(channel: ChannelId, refs: readonly NodeRef[]): Promise<Uint8Array[]> {
    if (refs.length === 0) return [];
    const levels = refs.map((r) => r.level);
    const idxs = refs.map((r) => r.index);
    const rows = await this.#run(
      (sql) => sql<{ level: number; idx: number; hash: Uint8Array }[]>`
      SELECT n.level, n.idx, n.hash FROM nodes n
      JOIN unnest(${levels}::int[], ${idxs}::bigint[]) AS w(level, idx) ON n.level = w.level AND n.idx = w.idx
      WHERE n.channel = ${channel}`,
    );
    const got = new Map(rows.map((r) => [`${r.level}:${r.idx}`, r.hash] as const));
    return refs.map((r) => {
      const h = got.get(`${r.level}:${r.index}`);
      if (h === undefined) throw new Error(`missing node ${r.level}/${r.index} of ${channel}`);
      return bytes(h);
    });
  }

  async getCheckpoint(channel: ChannelId, size?: number): Promise<CheckpointRecord | undefined> {
    const [r] =
      size === undefined
        ? await this.#run(
            (sql) => sql<{ size: number; note: string; issued_at: number }[]>`
            SELECT size, note, issued_at FROM checkpoints WHERE channel = ${channel} ORDER BY size DESC LIMIT 1`,
          )
        : await this.#run(
            (sql) => sql<{ size: number; note: string; issued_at: number }[]>`
            SELECT size, note, issued_at FROM checkpoints WHERE channel = ${channel} AND size = ${size}`,
          );
    if (r === undefined) return undefined;
    const lines = await this.#run(
      (sql) => sql<{ line: string }[]>`
      SELECT line FROM cosignatures WHERE channel = ${channel} AND size = ${r.size} ORDER BY line COLLATE "C"`,
    );
    return { size: r.size, note: r.note, issuedAt: r.issued_at, cosignatures: lines.map((l) => l.line) };
  }

  async getCheckpointAfter(
    channel: ChannelId,
    seq: number,
  ): Promise<Omit<CheckpointRecord, 'cosignatures'> | undefined> {
    const [r] = await this.#run(
      (sql) => sql<{ size: number; note: string; issued_at: number }[]>`
      SELECT size, note, issued_at FROM checkpoints WHERE channel = ${channel} AND size > ${seq}
      ORDER BY size LIMIT 1`,
    );
    return r === undefined ? undefined : { size: r.size, note: r.note, issuedAt: r.issued_at };
  }

  async getInbox(
    party: PartyId,
    after: number,
    limit: number,
    device?: DeviceId,
  ): Promise<InboxItemRecord[]> {
    const rows = await this.#run(
      (sql) => sql<{ cursor: number; channel: string; seq: number; entry: Uint8Array }[]>`
      SELECT i.cursor, i.channel, i.seq, e.entry FROM inbox i
        JOIN entries e ON e.channel = i.channel AND e.seq = i.seq
        LEFT JOIN members m ON m.channel = i.channel AND m.device = ${device ?? null}
      WHERE i.party = ${party} AND i.cursor > ${after}
        AND (m.removed_seq IS NULL OR i.seq <= m.removed_seq)
      ORDER BY i.cursor LIMIT ${limit}`,
    );
    return rows.map((r) => ({
      cursor: r.cursor,
      channel: r.channel as ChannelId,
      seq: r.seq,
      entry: bytes(r.entry),
    }));
  }

  // --- writes

  async lockChannels(
    channels: readonly ChannelId[],
    readAhead?: ReadonlyMap<ChannelId, readonly string[]>,
  ): Promise<void> {
    if (channels.length === 0) return;
    const list = [...channels];
    const pairs: Array<[string, string]> = [];
    for (const [c, ids] of readAhead ?? []) for (const id of ids) pairs.push([c, id]);
    const [heads, msgs] = await this.#run(async (sql) => {
      // One global order (by lock key), so two nodes' batches never wait on each other in a cycle.
      const lock = sql`
        SELECT pg_advisory_xact_lock(hashtext(current_schema() || ':channel'), k)
        FROM (SELECT DISTINCT hashtext(c) AS k FROM unnest(${list}::text[]) AS c ORDER BY k) AS keys`;
      // Pipelined behind the lock on the same connection: under READ COMMITTED each statement
      // takes its snapshot when it starts, i.e. once the lock is held, so these see the latest commit.
      const heads = sql<HeadRow[]>`
        SELECT channel, epoch, size, frontier, last_at, created_at FROM channels
        WHERE channel = ANY(${list}::text[])`;
      const msgs = sql<AheadRow[]>`
        SELECT e.channel, e.msg_id, e.seq, e.envelope_hash, e.received_at FROM entries e
        JOIN unnest(${pairs.map((p) => p[0])}::text[], ${pairs.map((p) => p[1])}::text[]) AS w(channel, msg_id)
          ON e.channel = w.channel AND e.msg_id = w.msg_id`;
      const [l, h, m] = await Promise.allSettled([lock, heads, msgs]);
      if (l.status === 'rejected') throw l.reason;
      if (h.status === 'rejected') throw h.reason;
      if (m.status === 'rejected') throw m.reason;
      return [h.value, m.value] as const;
    });
    for (const c of list) this.#aheadHeads.set(c, undefined);
    for (const r of heads) this.#aheadHeads.set(r.channel as ChannelId, toHead(r));
    for (const [c, ids] of readAhead ?? []) this.#aheadMsgs.set(c, { asked: new Set(ids), found: new Map() });
    for (const r of msgs) {
      this.#aheadMsgs.get(r.channel as ChannelId)?.found.set(r.msg_id, {
        seq: r.seq,
        envelopeHash: bytes(r.envelope_hash),
        receivedAt: r.received_at,
      });
    }
  }

  async putCard(rec: CardRecord): Promise<void> {
    await this.#run(
      (sql) => sql`
      INSERT INTO parties (party, root_public_key, card, issued_at)
      VALUES (${rec.party}, ${rec.rootPublicKey}, ${rec.card}, ${rec.issuedAt})
      ON CONFLICT (party) DO UPDATE SET card = excluded.card, issued_at = excluded.issued_at`,
    );
  }

  async putDevice(rec: Omit<DeviceRecord, 'revokedAt'>): Promise<void> {
    await this.lockDevices([rec.device]);
    await this.#run(
      (sql) => sql`
      INSERT INTO devices (device, party, public_key, role, not_before, not_after, certificate, revoked_at)
      VALUES (${rec.device}, ${rec.party}, ${rec.publicKey}, ${rec.role}, ${rec.notBefore}, ${rec.notAfter},
              ${rec.certificate}, (SELECT revoked_at FROM revocations WHERE device = ${rec.device} AND party = ${rec.party}))
      ON CONFLICT (device) DO UPDATE SET role = excluded.role, not_before = excluded.not_before,
        not_after = excluded.not_after, certificate = excluded.certificate`,
    );
  }

  /*
   * Device locks: transaction-scoped advisory locks, one per device id, in one global order (by
   * lock key). A change to a device's record (putDevice, putRevocation, lockDevices) takes its lock
   * exclusive; an append batch takes its senders' shared (shareDevices), so a change waits for the
   * batches that read the record before it, and a batch that waits for a change reads its result.
   * Advisory rather than row locks: nothing is written to the devices' rows for each batch (a
   * FOR SHARE would write a lock marker and, with several nodes, a MultiXact every time).
   */
  async lockDevices(devices: readonly DeviceId[]): Promise<void> {
    if (devices.length === 0) return;
    const list = [...devices];
    await this.#run(
      (sql) => sql`
        SELECT pg_advisory_xact_lock(hashtext(current_schema() || ':device'), k)
        FROM (SELECT DISTINCT hashtext(d) AS k FROM unnest(${list}::text[]) AS d ORDER BY k) AS keys`,
    );
  }

  async shareDevices(devices: readonly DeviceId[]): Promise<Map<DeviceId, DeviceRecord>> {
    if (devices.length === 0) return new Map();
    const list = [...devices];
    const rows = await this.#run(async (sql) => {
      const lock = sql`
        SELECT pg_advisory_xact_lock_shared(hashtext(current_schema() || ':device'), k)
        FROM (SELECT DISTINCT hashtext(d) AS k FROM unnest(${list}::text[]) AS d ORDER BY k) AS keys`;
      // Pipelined behind the locks on the same connection: under READ COMMITTED this statement
      // takes its snapshot when it starts, once the locks are held, so it sees the latest change.
      const recs = sql<DeviceRow[]>`SELECT * FROM devices WHERE device = ANY(${list}::text[])`;
      const [l, r] = await Promise.allSettled([lock, recs]);
      if (l.status === 'rejected') throw l.reason;
      if (r.status === 'rejected') throw r.reason;
      return r.value;
    });
    return new Map(rows.map((r) => [r.device as DeviceId, toDevice(r)] as const));
  }

  async putRevocation(rec: RevocationRecord): Promise<void> {
    await this.lockDevices([rec.device]);
    await this.#run(
      (sql) => sql`
      INSERT INTO revocations (device, party, revoked_at, revocation)
      VALUES (${rec.device}, ${rec.party}, ${rec.revokedAt}, ${rec.revocation})
      ON CONFLICT (device, party) DO UPDATE SET revoked_at = excluded.revoked_at, revocation = excluded.revocation
      WHERE excluded.revoked_at < revocations.revoked_at`,
    );
    await this.#run(
      (sql) => sql`
      UPDATE devices SET revoked_at = ${rec.revokedAt}
      WHERE device = ${rec.device} AND party = ${rec.party}
        AND (revoked_at IS NULL OR revoked_at > ${rec.revokedAt})`,
    );
  }

  async addKeyPackages(
    device: DeviceId,
    oneTime: readonly Uint8Array[],
    lastResort?: Uint8Array,
  ): Promise<void> {
    if (oneTime.length > 0) {
      const rows = oneTime.map((kp) => ({ device, last_resort: false, key_package: kp }));
      await this.#run(
        (sql) => sql`INSERT INTO key_packages ${sql(rows, 'device', 'last_resort', 'key_package')}`,
      );
    }
    if (lastResort !== undefined) {
      await this.#run((sql) => sql`DELETE FROM key_packages WHERE device = ${device} AND last_resort`);
      await this.#run(
        (sql) =>
          sql`INSERT INTO key_packages (device, last_resort, key_package) VALUES (${device}, true, ${lastResort})`,
      );
    }
  }

  async claimEnrollment(
    device: DeviceId,
    installation: Uint8Array,
    at: number,
  ): Promise<{ installation: Uint8Array; at: number }> {
    await this.#run(
      (sql) =>
        sql`INSERT INTO enrollments (device, installation, enrolled_at) VALUES (${device}, ${installation}, ${at})
            ON CONFLICT (device) DO NOTHING`,
    );
    const [r] = await this.#run(
      (sql) =>
        sql<{ installation: Uint8Array; enrolled_at: string | number }[]>`
        SELECT installation, enrolled_at FROM enrollments WHERE device = ${device}`,
    );
    if (r === undefined) throw new Error(`no enrollment recorded for ${device}`);
    return { installation: bytes(r.installation), at: Number(r.enrolled_at) };
  }

  async takeKeyPackage(device: DeviceId): Promise<ClaimedPackage | undefined> {
    // SKIP LOCKED: two nodes claiming at once get two different one-time packages.
    const [one] = await this.#run(
      (sql) => sql<{ key_package: Uint8Array }[]>`
      DELETE FROM key_packages WHERE id = (
        SELECT id FROM key_packages WHERE device = ${device} AND NOT last_resort
        ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
      RETURNING key_package`,
    );
    if (one !== undefined) return { keyPackage: bytes(one.key_package), lastResort: false };
    const [last] = await this.#run(
      (sql) => sql<{ key_package: Uint8Array }[]>`
      SELECT key_package FROM key_packages WHERE device = ${device} AND last_resort LIMIT 1`,
    );
    return last === undefined ? undefined : { keyPackage: bytes(last.key_package), lastResort: true };
  }

  async putChannel(head: ChannelHead): Promise<void> {
    this.#aheadHeads.delete(head.channel);
    const frontier = encodeFrontier(head.frontier);
    this.#defer(
      (sql) => sql`
      INSERT INTO channels (channel, epoch, size, frontier, last_at, created_at)
      VALUES (${head.channel}, ${head.epoch}, ${head.size}, ${frontier}, ${head.lastAt}, ${head.createdAt})
      ON CONFLICT (channel) DO UPDATE SET epoch = excluded.epoch, size = excluded.size,
        frontier = excluded.frontier, last_at = excluded.last_at`,
    );
  }

  async putMember(rec: MemberRecord): Promise<void> {
    this.#defer(
      (sql) => sql`
      INSERT INTO members (channel, device, party, added_seq, removed_seq)
      VALUES (${rec.channel}, ${rec.device}, ${rec.party}, ${rec.addedSeq}, ${rec.removedSeq ?? null})
      ON CONFLICT (channel, device) DO UPDATE SET party = excluded.party, added_seq = excluded.added_seq,
        removed_seq = excluded.removed_seq`,
    );
  }

  async appendEntry(channel: ChannelId, rec: EntryRecord): Promise<void> {
    this.#aheadMsgs.delete(channel);
    const key = `${channel}\n${rec.msgId}`;
    if (this.#pendingMsg.has(key) || this.#entries.some((e) => e.channel === channel && e.seq === rec.seq)) {
      // Let the database refuse it, as it would unbuffered.
      await this.flush();
    }
    const row: PendingEntry = {
      channel,
      seq: rec.seq,
      msg_id: rec.msgId,
      sender: rec.sender,
      envelope_hash: rec.envelopeHash,
      received_at: rec.receivedAt,
      entry: rec.entry,
    };
    this.#entries.push(row);
    this.#pendingMsg.set(key, row);
    if (this.#entries.length >= INSERT_CHUNK) await this.flush();
  }

  async putNodes(channel: ChannelId, nodes: readonly StoredNode[]): Promise<void> {
    for (const n of nodes) this.#nodes.push({ channel, level: n.level, idx: n.index, hash: n.hash });
    if (this.#nodes.length >= INSERT_CHUNK) await this.flush();
  }

  async putCheckpoint(channel: ChannelId, rec: Omit<CheckpointRecord, 'cosignatures'>): Promise<void> {
    this.#defer(
      (sql) => sql`
      INSERT INTO checkpoints (channel, size, note, issued_at)
      VALUES (${channel}, ${rec.size}, ${rec.note}, ${rec.issuedAt})
      ON CONFLICT (channel, size) DO UPDATE SET note = excluded.note, issued_at = excluded.issued_at`,
    );
  }

  async lockCheckpoint(channel: ChannelId, size: number): Promise<void> {
    await this.#run(
      (sql) => sql`
      SELECT 1 FROM checkpoints WHERE channel = ${channel} AND size = ${size} FOR UPDATE`,
    );
  }

  async countCosignatures(channel: ChannelId, size: number, party: PartyId): Promise<number> {
    const [r] = await this.#run(
      (sql) => sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM cosignatures WHERE channel = ${channel} AND size = ${size} AND party = ${party}`,
    );
    return r?.n ?? 0;
  }

  async addCosignature(channel: ChannelId, size: number, line: string, party: PartyId): Promise<boolean> {
    const r = await this.#run(
      (sql) => sql`
      INSERT INTO cosignatures (channel, size, line, party) VALUES (${channel}, ${size}, ${line}, ${party})
      ON CONFLICT DO NOTHING`,
    );
    return r.count === 1;
  }

  async addInboxItem(party: PartyId, channel: ChannelId, seq: number): Promise<number> {
    // Cursors must grow in commit order (a reader resumes after the last cursor it saw): one
    // transaction at a time takes them. Channel locks are all taken before this one.
    await this.#run((sql) => sql`SELECT pg_advisory_xact_lock(hashtext(current_schema() || ':inbox'), 0)`);
    const [r] = await this.#run(
      (sql) => sql<{ cursor: number }[]>`
      INSERT INTO inbox (party, channel, seq) VALUES (${party}, ${channel}, ${seq}) RETURNING cursor`,
    );
    if (r === undefined) throw new Error('inbox insert returned no cursor');
    return r.cursor;
  }
}

function schemaOf(url: string, explicit: string | undefined): { url: string; schema: string } {
  const u = new URL(url);
  const fromUrl = u.searchParams.get('schema');
  u.searchParams.delete('schema');
  const schema = explicit ?? fromUrl ?? 'public';
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
    throw new RelayError('REQUEST_INVALID', 'store schema must be a lowercase SQL identifier');
  }
  return { url: u.toString(), schema };
}

export class PostgresStore implements Store {
  readonly kind = 'postgres' as const;
  readonly shared = true;
  readonly schema: string;
  readonly #sql: Sql;
  /** How long a statement or transaction may wait to start (PostgresStoreOptions.connectTimeoutS). */
  readonly #startMs: number;
  /** How long a transaction may take in all (PostgresStoreOptions.transactionTimeoutS). */
  readonly #txMs: number;
  #closed = false;
  #claims = 0;

  constructor(
    sql: Sql,
    schema: string,
    startTimeoutMs = DEFAULT_CONNECT_TIMEOUT_S * 1000,
    transactionTimeoutMs = DEFAULT_TRANSACTION_TIMEOUT_S * 1000,
  ) {
    this.#sql = sql;
    this.schema = schema;
    this.#startMs = startTimeoutMs;
    this.#txMs = transactionTimeoutMs;
  }

  async #guard<T>(run: () => Promise<T>): Promise<T> {
    if (this.#closed) throw new Error('store is closed');
    try {
      return await run();
    } catch (e) {
      if (isTransientPgError(e)) throw storeUnavailable();
      throw e;
    }
  }

  read<T>(fn: (tx: ReadTx) => Promise<T>): Promise<T> {
    return this.#guard(() => this.#transaction('isolation level repeatable read read only', fn));
  }

  write<T>(fn: (tx: WriteTx) => Promise<T>): Promise<T> {
    return this.#guard(() =>
      this.#transaction('', async (tx) => {
        const r = await fn(tx);
        await tx.flush();
        return r;
      }),
    );
  }

  /**
   * Settles once the transaction has ended: committed, rolled back, or its connection lost (then
   * begin() rejects at once, without waiting for fn). The transaction is then over for fn too.
   * A BEGIN the server refused transiently is tried once more (fn has not run, so nothing is
   * repeated): postgres.js 3.4 fails the first statement on a connection it reopened after a
   * session ended mid-statement with that session's error (57P01 and the like). A connection
   * that cannot be made (refused, timed out) is not tried again: that would only double the wait.
   */
  async #transaction<T>(options: string, fn: (tx: PgTx) => Promise<T>, retry = true): Promise<T> {
    let tx: PgTx | undefined;
    let abandoned = false;
    try {
      const begun = this.#sql.begin(options, (sql) => {
        // Too late: the caller was told STORE_UNAVAILABLE, so nothing may run (this rolls back).
        if (abandoned) throw storeUnavailable();
        const t = new PgTx(sql);
        tx = t;
        return t.run(() => fn(t));
      }) as Promise<T>;
      // Over once begin() has settled (not when its caller stops waiting, below).
      begun.then(
        () => tx?.end(),
        () => tx?.end(),
      );
      const started = withStartDeadline(
        begun,
        this.#startMs,
        () => tx !== undefined,
        () => {
          abandoned = true;
        },
      );
      // Started, it must also end in time: a statement whose answer never comes (the connection
      // stopped answering) would otherwise hold this transaction, and the node's appender behind
      // it, until TCP gives up. An in-doubt COMMIT is answered like a lost connection: retryable
      // (appends are idempotent by msgId).
      return await withStartDeadline(started, this.#txMs, undefined, () => {
        abandoned = true;
        tx?.abandon();
      });
    } catch (e) {
      if (tx === undefined && retry && e instanceof postgres.PostgresError && isTransientPgError(e)) {
        return this.#transaction(options, fn, false);
      }
      throw e;
    }
  }

  /**
   * Records the cluster's checkpoint verifier key on first start; every later node must sign
   * with the same key (two keys would give one channel two incompatible histories of checkpoints).
   * A node started with the retiring key (`previous`, a key rotation; or several, a chain) moves
   * the record from it.
   */
  async claimCheckpointKey(
    vkey: string,
    previous?: string | readonly string[],
  ): Promise<{ ok: true } | { ok: false; recorded: string }> {
    return this.#guard(async () => {
      for (const from of previous === undefined ? [] : typeof previous === 'string' ? [previous] : previous)
        await withStartDeadline(
          this.#sql`UPDATE relay_meta SET value = ${vkey} WHERE key = 'checkpoint_vkey' AND value = ${from}`,
          this.#startMs,
        );
      await withStartDeadline(
        this
          .#sql`INSERT INTO relay_meta (key, value) VALUES ('checkpoint_vkey', ${vkey}) ON CONFLICT DO NOTHING`,
        this.#startMs,
      );
      const [r] = await withStartDeadline(
        this.#sql<{ value: string }[]>`SELECT value FROM relay_meta WHERE key = 'checkpoint_vkey'`,
        this.#startMs,
      );
      if (r === undefined || r.value === vkey) return { ok: true };
      return { ok: false, recorded: r.value };
    });
  }

  /**
   * Store.claimRequest: one insert. A statement the server refused transiently (PostgresError:
   * it did not run, e.g. the first statement on a reopened connection failing with the old
   * session's error) is tried once more; a lost connection is not (the insert may have
   * committed, and a second try would call the request a replay): the caller gets
   * STORE_UNAVAILABLE and signs again. Every ~1,000 claims the expired rows are deleted, in the
   * background (a failure there fails no request; the next round deletes them).
   */
  async claimRequest(
    device: DeviceId,
    sig: string,
    signedAt: number,
    forgetBefore: number,
  ): Promise<boolean> {
    // A claim that lands after its deadline only records a signature its device will not use
    // again (told STORE_UNAVAILABLE, it signs anew).
    const claim = () =>
      withStartDeadline(
        this.#sql`INSERT INTO request_signatures (device, sig, signed_at)
      VALUES (${device}, ${sig}, ${signedAt}) ON CONFLICT DO NOTHING RETURNING 1`,
        this.#startMs,
      );
    return this.#guard(async () => {
      let rows: readonly unknown[];
      try {
        rows = await claim();
      } catch (e) {
        if (!(e instanceof postgres.PostgresError && isTransientPgError(e))) throw e;
        rows = await claim();
      }
      if (++this.#claims % 1_000 === 0 && !this.#closed)
        this.#sql`DELETE FROM request_signatures WHERE signed_at < ${forgetBefore}`.catch(() => {});
      return rows.length === 1;
    });
  }

  /** A cheap round trip (readiness). */
  async ping(): Promise<void> {
    await this.#guard(() => withStartDeadline(this.#sql`SELECT 1`, this.#startMs));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#sql.end({ timeout: 5 });
  }
}

export async function openPostgresStore(opts: PostgresStoreOptions): Promise<PostgresStore> {
  const { url, schema } = schemaOf(opts.url, opts.schema);
  const txMs = (opts.transactionTimeoutS ?? DEFAULT_TRANSACTION_TIMEOUT_S) * 1000;
  const sql: Sql = postgres(url, {
    max: opts.max ?? 10,
    connect_timeout: opts.connectTimeoutS ?? DEFAULT_CONNECT_TIMEOUT_S,
    onnotice: () => {},
    connection: {
      search_path: schema,
      application_name: 'backchannel-relay',
      // A node cut off inside a transaction (packets dropped, no reset) would hold its channels'
      // locks for hours (the server's TCP keepalive): the server ends such a session once the
      // node has given the transaction up anyway (transactionTimeoutS).
      idle_in_transaction_session_timeout: txMs,
    },
    types: {
      bigint: {
        to: 20,
        from: [20],
        serialize: (x: number) => String(x),
        parse: (x: string) => Number(x),
      },
    },
  });
  const startMs = (opts.connectTimeoutS ?? DEFAULT_CONNECT_TIMEOUT_S) * 1000;
  // Bounded like every transaction (withStartDeadline): behind a proxy that accepts and drops,
  // the relay would otherwise wait at start for as long as the outage lasts, saying nothing.
  // A migration that starts after the deadline runs nothing (the caller gave up and ends the pool).
  let begun = false;
  let abandoned = false;
  try {
    await withStartDeadline(
      migratePostgres(sql, schema, undefined, () => {
        if (abandoned) throw storeUnavailable();
        begun = true;
      }),
      startMs,
      () => begun,
      () => {
        abandoned = true;
      },
    );
  } catch (e) {
    await sql.end({ timeout: 1 });
    if (isTransientPgError(e)) throw storeUnavailable();
    throw e;
  }
  return new PostgresStore(sql, schema, startMs, txMs);
}
