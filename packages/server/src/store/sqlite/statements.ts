/**
 * The SQL of the embedded store, by name, and the one seam it runs through: an executor that is
 * either a connection on this thread (reads; tests on ':memory:') or the writer thread
 * (writer-thread.node.ts), so the write path's commits and their fsyncs never block the relay's
 * event loop.
 */
import type { Database, Statement } from 'better-sqlite3';

export const SQL = {
  getCard: 'SELECT party, root_public_key, card, issued_at FROM parties WHERE party = ?',
  getDevice: 'SELECT * FROM devices WHERE device = ?',
  // Many devices in one statement: a JSON array of their ids.
  getDevicesIn: 'SELECT * FROM devices WHERE device IN (SELECT value FROM json_each(?))',
  listDevices: 'SELECT * FROM devices WHERE party = ? ORDER BY device',
  listRevocations: 'SELECT * FROM revocations WHERE party = ? ORDER BY device',
  countKeyPackages:
    'SELECT COALESCE(SUM(last_resort = 0), 0) AS one_time, COALESCE(MAX(last_resort), 0) AS last_resort FROM key_packages WHERE device = ?',
  chanId: 'SELECT id FROM channels WHERE channel = ?',
  getChannel: 'SELECT * FROM channels WHERE channel = ?',
  getMember: 'SELECT device, party, added_seq, removed_seq FROM members WHERE chan = ? AND device = ?',
  listMembers:
    'SELECT device, party, added_seq, removed_seq FROM members WHERE chan = ? ORDER BY added_seq, device',
  findMessage: 'SELECT seq, envelope_hash, received_at FROM entries WHERE chan = ? AND msg_id = ?',
  // Many msgIds in one statement: a JSON array of them (each looked up by the unique index).
  findMessagesIn:
    'SELECT msg_id, seq, envelope_hash, received_at FROM entries WHERE chan = ? AND msg_id IN (SELECT value FROM json_each(?))',
  getEntries:
    'SELECT seq, msg_id, sender, envelope_hash, received_at, entry FROM entries WHERE chan = ? AND seq >= ? AND seq < ? ORDER BY seq LIMIT ?',
  // The sizes of the entries getEntries would return, without reading them (a page's byte budget).
  getEntrySizes:
    'SELECT length(entry) FROM entries WHERE chan = ? AND seq >= ? AND seq < ? ORDER BY seq LIMIT ?',
  getNode: 'SELECT hash FROM nodes WHERE chan = ? AND level = ? AND idx = ?',
  getCheckpointAt: 'SELECT size, note, issued_at FROM checkpoints WHERE chan = ? AND size = ?',
  getLatestCheckpoint:
    'SELECT size, note, issued_at FROM checkpoints WHERE chan = ? ORDER BY size DESC LIMIT 1',
  getCheckpointAfter:
    'SELECT size, note, issued_at FROM checkpoints WHERE chan = ? AND size > ? ORDER BY size LIMIT 1',
  countCosignatures: 'SELECT count(*) FROM cosignatures WHERE chan = ? AND size = ? AND party = ?',
  getCosignatures: 'SELECT line FROM cosignatures WHERE chan = ? AND size = ? ORDER BY line',
  // The first parameter is a device (or NULL): items past its removal from their channel are left out.
  getInbox: `SELECT i.cursor, c.channel, i.seq, e.entry FROM inbox i
         JOIN channels c ON c.id = i.chan JOIN entries e ON e.chan = i.chan AND e.seq = i.seq
         LEFT JOIN members m ON m.chan = i.chan AND m.device = ?
       WHERE i.party = ? AND i.cursor > ? AND (m.removed_seq IS NULL OR i.seq <= m.removed_seq)
       ORDER BY i.cursor LIMIT ?`,
  putCard: `INSERT INTO parties (party, root_public_key, card, issued_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (party) DO UPDATE SET card = excluded.card, issued_at = excluded.issued_at`,
  putDevice: `INSERT INTO devices (device, party, public_key, role, not_before, not_after, certificate, revoked_at)
       VALUES (@device, @party, @publicKey, @role, @notBefore, @notAfter, @certificate,
               (SELECT revoked_at FROM revocations WHERE device = @device AND party = @party))
       ON CONFLICT (device) DO UPDATE SET role = excluded.role, not_before = excluded.not_before,
         not_after = excluded.not_after, certificate = excluded.certificate`,
  putRevocation: `INSERT INTO revocations (device, party, revoked_at, revocation) VALUES (?, ?, ?, ?)
       ON CONFLICT (device, party) DO UPDATE SET revoked_at = excluded.revoked_at, revocation = excluded.revocation
       WHERE excluded.revoked_at < revocations.revoked_at`,
  markRevoked:
    'UPDATE devices SET revoked_at = ? WHERE device = ? AND party = ? AND (revoked_at IS NULL OR revoked_at > ?)',
  addKeyPackage: 'INSERT INTO key_packages (device, last_resort, key_package) VALUES (?, ?, ?)',
  deleteLastResort: 'DELETE FROM key_packages WHERE device = ? AND last_resort = 1',
  takeOneTime:
    'SELECT id, key_package FROM key_packages WHERE device = ? AND last_resort = 0 ORDER BY id LIMIT 1',
  deleteKeyPackage: 'DELETE FROM key_packages WHERE id = ?',
  takeLastResort: 'SELECT key_package FROM key_packages WHERE device = ? AND last_resort = 1 LIMIT 1',
  insertChannel: `INSERT INTO channels (channel, epoch, size, frontier, last_at, created_at)
       VALUES (@channel, @epoch, @size, @frontier, @lastAt, @createdAt)`,
  updateChannel:
    'UPDATE channels SET epoch = @epoch, size = @size, frontier = @frontier, last_at = @lastAt WHERE id = @id',
  putMember: `INSERT INTO members (chan, device, party, added_seq, removed_seq) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (chan, device) DO UPDATE SET party = excluded.party, added_seq = excluded.added_seq,
         removed_seq = excluded.removed_seq`,
  appendEntry:
    'INSERT INTO entries (chan, seq, msg_id, sender, envelope_hash, received_at, entry) VALUES (?, ?, ?, ?, ?, ?, ?)',
  putNode: 'INSERT OR REPLACE INTO nodes (chan, level, idx, hash) VALUES (?, ?, ?, ?)',
  putCheckpoint: 'INSERT OR REPLACE INTO checkpoints (chan, size, note, issued_at) VALUES (?, ?, ?, ?)',
  addCosignature: 'INSERT OR IGNORE INTO cosignatures (chan, size, line, party) VALUES (?, ?, ?, ?)',
  addInbox: 'INSERT INTO inbox (party, chan, seq) VALUES (?, ?, ?)',
  claimEnrollment: 'INSERT OR IGNORE INTO enrollments (device, installation, enrolled_at) VALUES (?, ?, ?)',
  getEnrollment: 'SELECT installation, enrolled_at FROM enrollments WHERE device = ?',
} as const;

export type StatementName = keyof typeof SQL;

/** Statements that return their single column's value instead of a row object. */
export const PLUCKED: readonly StatementName[] = [
  'chanId',
  'getNode',
  'getCosignatures',
  'countCosignatures',
  'getEntrySizes',
  'takeLastResort',
];

export interface RunResult {
  readonly changes: number;
  readonly lastInsertRowid: number;
}

/**
 * Runs named statements. `run` returns nothing: on the writer thread it is queued and sent with
 * the next call that waits for an answer (a failure then fails that call and the transaction).
 */
export interface Executor {
  run(name: StatementName, ...params: unknown[]): void;
  result(name: StatementName, ...params: unknown[]): RunResult | Promise<RunResult>;
  get(name: StatementName, ...params: unknown[]): unknown;
  all(name: StatementName, ...params: unknown[]): unknown[] | Promise<unknown[]>;
}

/** An executor on a connection of this thread: every call runs at once. */
export class LocalExecutor implements Executor {
  readonly #s = new Map<StatementName, Statement>();

  constructor(db: Database) {
    for (const name of Object.keys(SQL) as StatementName[]) {
      const s = db.prepare(SQL[name]);
      this.#s.set(name, PLUCKED.includes(name) ? s.pluck() : s);
    }
  }

  #stmt(name: StatementName): Statement {
    return this.#s.get(name) as Statement;
  }

  run(name: StatementName, ...params: unknown[]): void {
    this.#stmt(name).run(...params);
  }

  result(name: StatementName, ...params: unknown[]): RunResult {
    const r = this.#stmt(name).run(...params);
    return { changes: r.changes, lastInsertRowid: Number(r.lastInsertRowid) };
  }

  get(name: StatementName, ...params: unknown[]): unknown {
    return this.#stmt(name).get(...params);
  }

  all(name: StatementName, ...params: unknown[]): unknown[] {
    return this.#stmt(name).all(...params);
  }
}
