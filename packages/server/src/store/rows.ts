/**
 * Row shapes both stores read (SQLite hands out Buffers, PostgreSQL Uint8Arrays: both are
 * Uint8Array) and their conversion to records, as plain Uint8Array views.
 */
import type { DeviceId, PartyId, Role } from '@backchannel/protocol';
import type { DeviceRecord, EntryRecord } from './store.ts';

export const bytes = (b: Uint8Array): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);

/** A channel head's Merkle frontier as stored: its 32-byte hashes back to back. */
export function encodeFrontier(f: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(f.length * 32);
  f.forEach((h, i) => {
    out.set(h, i * 32);
  });
  return out;
}

export function decodeFrontier(b: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i + 32 <= b.length; i += 32) out.push(b.slice(i, i + 32));
  return out;
}

export interface DeviceRow {
  device: string;
  party: string;
  public_key: Uint8Array;
  role: string;
  not_before: number;
  not_after: number;
  certificate: Uint8Array;
  revoked_at: number | null;
}

export interface EntryRow {
  seq: number;
  msg_id: string;
  sender: string;
  envelope_hash: Uint8Array;
  received_at: number;
  entry: Uint8Array;
}

export interface MemberRow {
  device: string;
  party: string;
  added_seq: number;
  removed_seq: number | null;
}

export const toDevice = (r: DeviceRow): DeviceRecord => ({
  device: r.device as DeviceId,
  party: r.party as PartyId,
  publicKey: bytes(r.public_key),
  role: r.role as Role,
  notBefore: r.not_before,
  notAfter: r.not_after,
  certificate: bytes(r.certificate),
  revokedAt: r.revoked_at ?? undefined,
});

export const toEntry = (r: EntryRow): EntryRecord => ({
  seq: r.seq,
  msgId: r.msg_id,
  sender: r.sender as DeviceId,
  envelopeHash: bytes(r.envelope_hash),
  receivedAt: r.received_at,
  entry: bytes(r.entry),
});
