-- Backchannel relay on PostgreSQL, schema 1. Same model as the SQLite schema (store/migrations/),
-- keyed by the channel id text instead of a local rowid. Blobs are bytea, times are ms since the epoch.

CREATE TABLE parties (
  party text PRIMARY KEY,
  root_public_key bytea NOT NULL,
  card bytea NOT NULL,
  issued_at bigint NOT NULL
);

CREATE TABLE devices (
  device text PRIMARY KEY,
  party text NOT NULL,
  public_key bytea NOT NULL,
  role text NOT NULL,
  not_before bigint NOT NULL,
  not_after bigint NOT NULL,
  certificate bytea NOT NULL,
  revoked_at bigint
);
CREATE INDEX devices_party ON devices (party);

CREATE TABLE revocations (
  device text PRIMARY KEY,
  party text NOT NULL,
  revoked_at bigint NOT NULL,
  revocation bytea NOT NULL
);
CREATE INDEX revocations_party ON revocations (party);

CREATE TABLE key_packages (
  id bigserial PRIMARY KEY,
  device text NOT NULL,
  last_resort boolean NOT NULL,
  key_package bytea NOT NULL
);
CREATE INDEX key_packages_device ON key_packages (device, last_resort, id);

-- Channels: the Delivery Service state (epoch), the Merkle log's right edge, the access list.
CREATE TABLE channels (
  channel text PRIMARY KEY,
  epoch bigint NOT NULL,
  size bigint NOT NULL,
  frontier bytea NOT NULL,
  last_at bigint NOT NULL,
  created_at bigint NOT NULL
);

CREATE TABLE members (
  channel text NOT NULL REFERENCES channels (channel),
  device text NOT NULL,
  party text NOT NULL,
  added_seq bigint NOT NULL,
  removed_seq bigint,
  PRIMARY KEY (channel, device)
);

-- The transcript: entries (leaf data), perfect-subtree hashes, signed checkpoints, cosignatures.
CREATE TABLE entries (
  channel text NOT NULL REFERENCES channels (channel),
  seq bigint NOT NULL,
  msg_id text NOT NULL,
  sender text NOT NULL,
  envelope_hash bytea NOT NULL,
  received_at bigint NOT NULL,
  entry bytea NOT NULL,
  PRIMARY KEY (channel, seq)
);
CREATE UNIQUE INDEX entries_msg_id ON entries (channel, msg_id);

CREATE TABLE nodes (
  channel text NOT NULL,
  level integer NOT NULL,
  idx bigint NOT NULL,
  hash bytea NOT NULL,
  PRIMARY KEY (channel, level, idx)
);

CREATE TABLE checkpoints (
  channel text NOT NULL,
  size bigint NOT NULL,
  note text NOT NULL,
  issued_at bigint NOT NULL,
  PRIMARY KEY (channel, size)
);

CREATE TABLE cosignatures (
  channel text NOT NULL,
  size bigint NOT NULL,
  line text NOT NULL,
  PRIMARY KEY (channel, size, line)
);

-- Party inboxes. Cursors are handed out under a transaction-scoped advisory lock, so their order
-- is the commit order even with several relay nodes writing.
CREATE TABLE inbox (
  cursor bigserial PRIMARY KEY,
  party text NOT NULL,
  channel text NOT NULL,
  seq bigint NOT NULL
);
CREATE INDEX inbox_party ON inbox (party, cursor);

-- Cluster facts every node checks at start (the checkpoint verifier key).
CREATE TABLE relay_meta (
  key text PRIMARY KEY,
  value text NOT NULL
);
