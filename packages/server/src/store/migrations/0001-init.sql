-- Backchannel relay, schema 1. Every table is STRICT; blobs are raw bytes, times are ms since the epoch.

-- Directory: parties (registered by their self-signed contact card), devices, revocations.
CREATE TABLE parties (
  party TEXT PRIMARY KEY,
  root_public_key BLOB NOT NULL,
  card BLOB NOT NULL,
  issued_at INTEGER NOT NULL
) STRICT;

CREATE TABLE devices (
  device TEXT PRIMARY KEY,
  party TEXT NOT NULL,
  public_key BLOB NOT NULL,
  role TEXT NOT NULL,
  not_before INTEGER NOT NULL,
  not_after INTEGER NOT NULL,
  certificate BLOB NOT NULL,
  revoked_at INTEGER
) STRICT;
CREATE INDEX devices_party ON devices (party);

CREATE TABLE revocations (
  device TEXT PRIMARY KEY,
  party TEXT NOT NULL,
  revoked_at INTEGER NOT NULL,
  revocation BLOB NOT NULL
) STRICT;
CREATE INDEX revocations_party ON revocations (party);

CREATE TABLE key_packages (
  id INTEGER PRIMARY KEY,
  device TEXT NOT NULL,
  last_resort INTEGER NOT NULL CHECK (last_resort IN (0, 1)),
  key_package BLOB NOT NULL
) STRICT;
CREATE INDEX key_packages_device ON key_packages (device, last_resort, id);

-- Channels: the Delivery Service state (epoch), the Merkle log's right edge, the access list.
CREATE TABLE channels (
  id INTEGER PRIMARY KEY,
  channel TEXT NOT NULL UNIQUE,
  epoch INTEGER NOT NULL,
  size INTEGER NOT NULL,
  frontier BLOB NOT NULL,
  last_at INTEGER NOT NULL,
  created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE members (
  chan INTEGER NOT NULL REFERENCES channels (id),
  device TEXT NOT NULL,
  party TEXT NOT NULL,
  added_seq INTEGER NOT NULL,
  removed_seq INTEGER,
  PRIMARY KEY (chan, device)
) STRICT, WITHOUT ROWID;

-- The transcript: entries (leaf data), perfect-subtree hashes, signed checkpoints, cosignatures.
CREATE TABLE entries (
  chan INTEGER NOT NULL REFERENCES channels (id),
  seq INTEGER NOT NULL,
  msg_id TEXT NOT NULL,
  sender TEXT NOT NULL,
  envelope_hash BLOB NOT NULL,
  received_at INTEGER NOT NULL,
  entry BLOB NOT NULL,
  PRIMARY KEY (chan, seq)
) STRICT;
CREATE UNIQUE INDEX entries_msg_id ON entries (chan, msg_id);

CREATE TABLE nodes (
  chan INTEGER NOT NULL,
  level INTEGER NOT NULL,
  idx INTEGER NOT NULL,
  hash BLOB NOT NULL,
  PRIMARY KEY (chan, level, idx)
) STRICT, WITHOUT ROWID;

CREATE TABLE checkpoints (
  chan INTEGER NOT NULL,
  size INTEGER NOT NULL,
  note TEXT NOT NULL,
  issued_at INTEGER NOT NULL,
  PRIMARY KEY (chan, size)
) STRICT, WITHOUT ROWID;

CREATE TABLE cosignatures (
  chan INTEGER NOT NULL,
  size INTEGER NOT NULL,
  line TEXT NOT NULL,
  PRIMARY KEY (chan, size, line)
) STRICT, WITHOUT ROWID;

-- Party inboxes: Welcome and outreach envelopes named in body.to.
CREATE TABLE inbox (
  cursor INTEGER PRIMARY KEY AUTOINCREMENT,
  party TEXT NOT NULL,
  chan INTEGER NOT NULL,
  seq INTEGER NOT NULL
) STRICT;
CREATE INDEX inbox_party ON inbox (party, cursor);
