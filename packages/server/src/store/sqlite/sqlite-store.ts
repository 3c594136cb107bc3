/**
 * The embedded store: SQLite through better-sqlite3, WAL journal, synchronous=FULL (a commit
 * returns only once the WAL is fsynced). One connection writes; a second one reads committed
 * snapshots, so a reader never sees a write transaction that is still open.
 */
import type { ChannelId, DeviceId, PartyId } from '@backchannel/protocol';
import type { NodeRef, StoredNode } from '@backchannel/protocol/transcript';
import BetterSqlite3, { type Database, type Statement } from 'better-sqlite3';
import { Mutex } from '../mutex.ts';
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
import { migrate } from './migrate.ts';
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

export interface SqliteStoreOptions {
  /** Database file, or ':memory:' (one connection; for tests). */
  readonly path: string;
}

/** Prepared statements of one connection. */
class Statements {
  readonly getCard: Statement;
  readonly getDevice: Statement;
  readonly listDevices: Statement;
  readonly listRevocations: Statement;
  readonly countKeyPackages: Statement;
  readonly chanId: Statement;
  readonly getChannel: Statement;
  readonly getMember: Statement;
  readonly listMembers: Statement;
  readonly findMessage: Statement;
  readonly getEntries: Statement;
  readonly getNode: Statement;
  readonly getCheckpointAt: Statement;
  readonly getLatestCheckpoint: Statement;
  readonly getCosignatures: Statement;
  readonly getInbox: Statement;
  // writes
  readonly putCard: Statement;
  readonly putDevice: Statement;
  readonly putRevocation: Statement;
  readonly markRevoked: Statement;
  readonly addKeyPackage: Statement;
  readonly deleteLastResort: Statement;
  readonly takeOneTime: Statement;
  readonly deleteKeyPackage: Statement;
  readonly takeLastResort: Statement;
  readonly insertChannel: Statement;
  readonly updateChannel: Statement;
  readonly putMember: Statement;
  readonly appendEntry: Statement;
  readonly putNode: Statement;
  readonly putCheckpoint: Statement;
  readonly addCosignature: Statement;
  readonly addInbox: Statement;

  constructor(db: Database) {
    this.getCard = db.prepare('SELECT party, root_public_key, card, issued_at FROM parties WHERE party = ?');
    this.getDevice = db.prepare('SELECT * FROM devices WHERE device = ?');
    this.listDevices = db.prepare('SELECT * FROM devices WHERE party = ? ORDER BY device');
    this.listRevocations = db.prepare('SELECT * FROM revocations WHERE party = ? ORDER BY device');
    this.countKeyPackages = db.prepare(
      'SELECT COALESCE(SUM(last_resort = 0), 0) AS one_time, COALESCE(MAX(last_resort), 0) AS last_resort FROM key_packages WHERE device = ?',
    );
    this.chanId = db.prepare('SELECT id FROM channels WHERE channel = ?').pluck();
    this.getChannel = db.prepare('SELECT * FROM channels WHERE channel = ?');
    this.getMember = db.prepare(
      'SELECT device, party, added_seq, removed_seq FROM members WHERE chan = ? AND device = ?',
    );
    this.listMembers = db.prepare(
      'SELECT device, party, added_seq, removed_seq FROM members WHERE chan = ? ORDER BY added_seq, device',
    );
    this.findMessage = db.prepare(
      'SELECT seq, envelope_hash, received_at FROM entries WHERE chan = ? AND msg_id = ?',
    );
    this.getEntries = db.prepare(
      'SELECT seq, msg_id, sender, envelope_hash, received_at, entry FROM entries WHERE chan = ? AND seq >= ? AND seq < ? ORDER BY seq LIMIT ?',
    );
    this.getNode = db.prepare('SELECT hash FROM nodes WHERE chan = ? AND level = ? AND idx = ?').pluck();
    this.getCheckpointAt = db.prepare(
      'SELECT size, note, issued_at FROM checkpoints WHERE chan = ? AND size = ?',
    );
    this.getLatestCheckpoint = db.prepare(
      'SELECT size, note, issued_at FROM checkpoints WHERE chan = ? ORDER BY size DESC LIMIT 1',
    );
    this.getCosignatures = db
      .prepare('SELECT line FROM cosignatures WHERE chan = ? AND size = ? ORDER BY line')
      .pluck();
    this.getInbox = db.prepare(
      `SELECT i.cursor, c.channel, i.seq, e.entry FROM inbox i
         JOIN channels c ON c.id = i.chan JOIN entries e ON e.chan = i.chan AND e.seq = i.seq
       WHERE i.party = ? AND i.cursor > ? ORDER BY i.cursor LIMIT ?`,
    );
    this.putCard = db.prepare(
      `INSERT INTO parties (party, root_public_key, card, issued_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (party) DO UPDATE SET card = excluded.card, issued_at = excluded.issued_at`,
    );
    this.putDevice = db.prepare(
      `INSERT INTO devices (device, party, public_key, role, not_before, not_after, certificate, revoked_at)
       VALUES (@device, @party, @publicKey, @role, @notBefore, @notAfter, @certificate,
               (SELECT revoked_at FROM revocations WHERE device = @device))
       ON CONFLICT (device) DO UPDATE SET role = excluded.role, not_before = excluded.not_before,
         not_after = excluded.not_after, certificate = excluded.certificate`,
    );
    this.putRevocation = db.prepare(
      `INSERT INTO revocations (device, party, revoked_at, revocation) VALUES (?, ?, ?, ?)
       ON CONFLICT (device) DO UPDATE SET revoked_at = excluded.revoked_at, revocation = excluded.revocation
       WHERE excluded.revoked_at < revocations.revoked_at`,
    );
    this.markRevoked = db.prepare(
      'UPDATE devices SET revoked_at = ? WHERE device = ? AND (revoked_at IS NULL OR revoked_at > ?)',
    );
    this.addKeyPackage = db.prepare(
      'INSERT INTO key_packages (device, last_resort, key_package) VALUES (?, ?, ?)',
    );
    this.deleteLastResort = db.prepare('DELETE FROM key_packages WHERE device = ? AND last_resort = 1');
    this.takeOneTime = db.prepare(
      'SELECT id, key_package FROM key_packages WHERE device = ? AND last_resort = 0 ORDER BY id LIMIT 1',
    );
    this.deleteKeyPackage = db.prepare('DELETE FROM key_packages WHERE id = ?');
    this.takeLastResort = db
      .prepare('SELECT key_package FROM key_packages WHERE device = ? AND last_resort = 1 LIMIT 1')
      .pluck();
    this.insertChannel = db.prepare(
      `INSERT INTO channels (channel, epoch, size, frontier, last_at, created_at)
       VALUES (@channel, @epoch, @size, @frontier, @lastAt, @createdAt)`,
    );
    this.updateChannel = db.prepare(
      'UPDATE channels SET epoch = @epoch, size = @size, frontier = @frontier, last_at = @lastAt WHERE id = @id',
    );
    this.putMember = db.prepare(
      `INSERT INTO members (chan, device, party, added_seq, removed_seq) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (chan, device) DO UPDATE SET party = excluded.party, added_seq = excluded.added_seq,
         removed_seq = excluded.removed_seq`,
    );
    this.appendEntry = db.prepare(
      'INSERT INTO entries (chan, seq, msg_id, sender, envelope_hash, received_at, entry) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    this.putNode = db.prepare('INSERT OR REPLACE INTO nodes (chan, level, idx, hash) VALUES (?, ?, ?, ?)');
    this.putCheckpoint = db.prepare(
      'INSERT OR REPLACE INTO checkpoints (chan, size, note, issued_at) VALUES (?, ?, ?, ?)',
    );
    this.addCosignature = db.prepare(
      'INSERT OR IGNORE INTO cosignatures (chan, size, line) VALUES (?, ?, ?)',
    );
    this.addInbox = db.prepare('INSERT INTO inbox (party, chan, seq) VALUES (?, ?, ?)');
  }
}

class SqliteTx implements WriteTx {
  readonly #s: Statements;
  readonly #ids: Map<ChannelId, number>;
  /** Channel ids created in this transaction (forgotten again if it rolls back). */
  readonly created: ChannelId[] = [];

  constructor(s: Statements, ids: Map<ChannelId, number>) {
    this.#s = s;
    this.#ids = ids;
  }

  #chan(channel: ChannelId): number | undefined {
    let id = this.#ids.get(channel);
    if (id === undefined) {
      id = this.#s.chanId.get(channel) as number | undefined;
      if (id !== undefined) this.#ids.set(channel, id);
    }
    return id;
  }

  #mustChan(channel: ChannelId): number {
    const id = this.#chan(channel);
    if (id === undefined) throw new Error(`unknown channel ${channel}`);
    return id;
  }

  async getCard(party: PartyId): Promise<CardRecord | undefined> {
    const r = this.#s.getCard.get(party) as
      | { party: string; root_public_key: Buffer; card: Buffer; issued_at: number }
      | undefined;
    if (r === undefined) return undefined;
    return {
      party: r.party as PartyId,
      rootPublicKey: bytes(r.root_public_key),
      card: bytes(r.card),
      issuedAt: r.issued_at,
    };
  }

  async getDevice(device: DeviceId): Promise<DeviceRecord | undefined> {
    const r = this.#s.getDevice.get(device) as DeviceRow | undefined;
    return r === undefined ? undefined : toDevice(r);
  }

  async listDevices(party: PartyId): Promise<DeviceRecord[]> {
    return (this.#s.listDevices.all(party) as DeviceRow[]).map(toDevice);
  }

  async listRevocations(party: PartyId): Promise<RevocationRecord[]> {
    const rows = this.#s.listRevocations.all(party) as {
      device: string;
      party: string;
      revoked_at: number;
      revocation: Buffer;
    }[];
    return rows.map((r) => ({
      device: r.device as DeviceId,
      party: r.party as PartyId,
      revokedAt: r.revoked_at,
      revocation: bytes(r.revocation),
    }));
  }

  async countKeyPackages(device: DeviceId): Promise<{ oneTime: number; lastResort: boolean }> {
    const r = this.#s.countKeyPackages.get(device) as { one_time: number; last_resort: number };
    return { oneTime: r.one_time, lastResort: r.last_resort === 1 };
  }

  async getChannel(channel: ChannelId): Promise<ChannelHead | undefined> {
    const r = this.#s.getChannel.get(channel) as
      | {
          id: number;
          channel: string;
          epoch: number;
          size: number;
          frontier: Buffer;
          last_at: number;
          created_at: number;
        }
      | undefined;
    if (r === undefined) return undefined;
    this.#ids.set(channel, r.id);
    return {
      channel,
      epoch: r.epoch,
      size: r.size,
      frontier: decodeFrontier(bytes(r.frontier)),
      lastAt: r.last_at,
      createdAt: r.created_at,
    };
  }

  async getMember(channel: ChannelId, device: DeviceId): Promise<MemberRecord | undefined> {
    const chan = this.#chan(channel);
    if (chan === undefined) return undefined;
    const r = this.#s.getMember.get(chan, device) as MemberRow | undefined;
    return r === undefined ? undefined : toMember(channel, r);
  }

  async listMembers(channel: ChannelId): Promise<MemberRecord[]> {
    const chan = this.#chan(channel);
    if (chan === undefined) return [];
    return (this.#s.listMembers.all(chan) as MemberRow[]).map((r) => toMember(channel, r));
  }

  async findMessage(channel: ChannelId, msgId: string): Promise<MessageRef | undefined> {
    const chan = this.#chan(channel);
    if (chan === undefined) return undefined;
    const r = this.#s.findMessage.get(chan, msgId) as
      | { seq: number; envelope_hash: Buffer; received_at: number }
      | undefined;
    return r === undefined
      ? undefined
      : { seq: r.seq, envelopeHash: bytes(r.envelope_hash), receivedAt: r.received_at };
  }

  async findMessages(channel: ChannelId, msgIds: readonly string[]): Promise<Map<string, MessageRef>> {
    const out = new Map<string, MessageRef>();
    for (const id of msgIds) {
      const m = await this.findMessage(channel, id);
      if (m !== undefined) out.set(id, m);
    }
    return out;
  }

  async getEntries(channel: ChannelId, from: number, limit: number, until?: number): Promise<EntryRecord[]> {
    const chan = this.#chan(channel);
    if (chan === undefined || limit <= 0) return [];
    const rows = this.#s.getEntries.all(chan, from, until ?? Number.MAX_SAFE_INTEGER, limit) as EntryRow[];
    return rows.map(toEntry);
  }

  async readNodes(channel: ChannelId, refs: readonly NodeRef[]): Promise<Uint8Array[]> {
    const chan = this.#mustChan(channel);
    return refs.map((r) => {
      const h = this.#s.getNode.get(chan, r.level, r.index) as Buffer | undefined;
      if (h === undefined) throw new Error(`missing node ${r.level}/${r.index} of ${channel}`);
      return bytes(h);
    });
  }

  async getCheckpoint(channel: ChannelId, size?: number): Promise<CheckpointRecord | undefined> {
    const chan = this.#chan(channel);
    if (chan === undefined) return undefined;
    const r = (
      size === undefined ? this.#s.getLatestCheckpoint.get(chan) : this.#s.getCheckpointAt.get(chan, size)
    ) as { size: number; note: string; issued_at: number } | undefined;
    if (r === undefined) return undefined;
    const cosignatures = this.#s.getCosignatures.all(chan, r.size) as string[];
    return { size: r.size, note: r.note, issuedAt: r.issued_at, cosignatures };
  }

  async getInbox(party: PartyId, after: number, limit: number): Promise<InboxItemRecord[]> {
    const rows = this.#s.getInbox.all(party, after, limit) as {
      cursor: number;
      channel: string;
      seq: number;
      entry: Buffer;
    }[];
    return rows.map((r) => ({
      cursor: r.cursor,
      channel: r.channel as ChannelId,
      seq: r.seq,
      entry: bytes(r.entry),
    }));
  }

  // --- writes

  async lockChannels(
    _channels: readonly ChannelId[],
    _readAhead?: ReadonlyMap<ChannelId, readonly string[]>,
  ): Promise<void> {
    // BEGIN IMMEDIATE: this connection is the database's only writer already.
  }

  async putCard(rec: CardRecord): Promise<void> {
    this.#s.putCard.run(rec.party, rec.rootPublicKey, rec.card, rec.issuedAt);
  }

  async putDevice(rec: Omit<DeviceRecord, 'revokedAt'>): Promise<void> {
    this.#s.putDevice.run({
      device: rec.device,
      party: rec.party,
      publicKey: rec.publicKey,
      role: rec.role,
      notBefore: rec.notBefore,
      notAfter: rec.notAfter,
      certificate: rec.certificate,
    });
  }

  async putRevocation(rec: RevocationRecord): Promise<void> {
    this.#s.putRevocation.run(rec.device, rec.party, rec.revokedAt, rec.revocation);
    this.#s.markRevoked.run(rec.revokedAt, rec.device, rec.revokedAt);
  }

  async addKeyPackages(
    device: DeviceId,
    oneTime: readonly Uint8Array[],
    lastResort?: Uint8Array,
  ): Promise<void> {
    for (const kp of oneTime) this.#s.addKeyPackage.run(device, 0, kp);
    if (lastResort !== undefined) {
      this.#s.deleteLastResort.run(device);
      this.#s.addKeyPackage.run(device, 1, lastResort);
    }
  }

  async takeKeyPackage(device: DeviceId): Promise<ClaimedPackage | undefined> {
    const one = this.#s.takeOneTime.get(device) as { id: number; key_package: Buffer } | undefined;
    if (one !== undefined) {
      this.#s.deleteKeyPackage.run(one.id);
      return { keyPackage: bytes(one.key_package), lastResort: false };
    }
    const last = this.#s.takeLastResort.get(device) as Buffer | undefined;
    return last === undefined ? undefined : { keyPackage: bytes(last), lastResort: true };
  }

  async putChannel(head: ChannelHead): Promise<void> {
    const frontier = encodeFrontier(head.frontier);
    const id = this.#chan(head.channel);
    if (id === undefined) {
      const r = this.#s.insertChannel.run({
        channel: head.channel,
        epoch: head.epoch,
        size: head.size,
        frontier,
        lastAt: head.lastAt,
        createdAt: head.createdAt,
      });
      this.#ids.set(head.channel, Number(r.lastInsertRowid));
      this.created.push(head.channel);
    } else {
      this.#s.updateChannel.run({ id, epoch: head.epoch, size: head.size, frontier, lastAt: head.lastAt });
    }
  }

  async putMember(rec: MemberRecord): Promise<void> {
    this.#s.putMember.run(
      this.#mustChan(rec.channel),
      rec.device,
      rec.party,
      rec.addedSeq,
      rec.removedSeq ?? null,
    );
  }

  async appendEntry(channel: ChannelId, rec: EntryRecord): Promise<void> {
    this.#s.appendEntry.run(
      this.#mustChan(channel),
      rec.seq,
      rec.msgId,
      rec.sender,
      rec.envelopeHash,
      rec.receivedAt,
      rec.entry,
    );
  }

  async putNodes(channel: ChannelId, nodes: readonly StoredNode[]): Promise<void> {
    const chan = this.#mustChan(channel);
    for (const n of nodes) this.#s.putNode.run(chan, n.level, n.index, n.hash);
  }

  async putCheckpoint(channel: ChannelId, rec: Omit<CheckpointRecord, 'cosignatures'>): Promise<void> {
    this.#s.putCheckpoint.run(this.#mustChan(channel), rec.size, rec.note, rec.issuedAt);
  }

  async addCosignature(channel: ChannelId, size: number, line: string): Promise<boolean> {
    return this.#s.addCosignature.run(this.#mustChan(channel), size, line).changes === 1;
  }

  async addInboxItem(party: PartyId, channel: ChannelId, seq: number): Promise<number> {
    return Number(this.#s.addInbox.run(party, this.#mustChan(channel), seq).lastInsertRowid);
  }
}

function toMember(channel: ChannelId, r: MemberRow): MemberRecord {
  return {
    channel,
    device: r.device as DeviceId,
    party: r.party as PartyId,
    addedSeq: r.added_seq,
    removedSeq: r.removed_seq ?? undefined,
  };
}

export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  readonly shared = false;
  readonly #writer: Database;
  readonly #reader: Database;
  readonly #ws: Statements;
  readonly #rs: Statements;
  readonly #writeLock = new Mutex();
  readonly #readLock: Mutex;
  readonly #ids = new Map<ChannelId, number>();
  #closed = false;

  constructor(opts: SqliteStoreOptions) {
    const memory = opts.path === ':memory:';
    this.#writer = new BetterSqlite3(opts.path);
    this.#writer.pragma('journal_mode = WAL');
    // Durability: a commit returns only after the WAL is fsynced. Never weaken this.
    this.#writer.pragma('synchronous = FULL');
    this.#writer.pragma('foreign_keys = ON');
    this.#writer.pragma('busy_timeout = 5000');
    migrate(this.#writer);
    this.#ws = new Statements(this.#writer);
    if (memory) {
      this.#reader = this.#writer;
      this.#rs = this.#ws;
      this.#readLock = this.#writeLock;
    } else {
      this.#reader = new BetterSqlite3(opts.path);
      this.#reader.pragma('busy_timeout = 5000');
      this.#reader.pragma('query_only = ON');
      this.#rs = new Statements(this.#reader);
      this.#readLock = new Mutex();
    }
  }

  read<T>(fn: (tx: ReadTx) => Promise<T>): Promise<T> {
    return this.#readLock.run(async () => {
      if (this.#closed) throw new Error('store is closed');
      const tx = new SqliteTx(this.#rs, this.#ids);
      this.#reader.exec('BEGIN');
      try {
        return await fn(tx);
      } finally {
        this.#reader.exec('COMMIT');
      }
    });
  }

  write<T>(fn: (tx: WriteTx) => Promise<T>): Promise<T> {
    return this.#writeLock.run(async () => {
      if (this.#closed) throw new Error('store is closed');
      const tx = new SqliteTx(this.#ws, this.#ids);
      this.#writer.exec('BEGIN IMMEDIATE');
      try {
        const r = await fn(tx);
        this.#writer.exec('COMMIT');
        return r;
      } catch (e) {
        if (this.#writer.inTransaction) this.#writer.exec('ROLLBACK');
        for (const c of tx.created) this.#ids.delete(c);
        throw e;
      }
    });
  }

  /** The writer connection's durability settings (for health checks and tests). */
  durability(): { journalMode: string; synchronous: 'OFF' | 'NORMAL' | 'FULL' | 'EXTRA' } {
    const sync = this.#writer.pragma('synchronous', { simple: true }) as number;
    return {
      journalMode: this.#writer.pragma('journal_mode', { simple: true }) as string,
      synchronous: (['OFF', 'NORMAL', 'FULL', 'EXTRA'] as const)[sync] ?? 'OFF',
    };
  }

  async close(): Promise<void> {
    await this.#writeLock.run(async () => {
      await this.#readLock.run(async () => {
        if (this.#closed) return;
        this.#closed = true;
        if (this.#reader !== this.#writer) this.#reader.close();
        this.#writer.close();
      });
    });
  }
}

export function openSqliteStore(opts: SqliteStoreOptions): SqliteStore {
  return new SqliteStore(opts);
}
