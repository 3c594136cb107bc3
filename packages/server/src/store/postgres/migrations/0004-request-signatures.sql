-- Backchannel relay, schema 4: signed requests accepted by any node of a cluster, for the replay
-- window (the clock skew the relay allows, each side). Each node also keeps its own cache; this
-- table is what makes a request used on one node a replay on every other (envelope posts, which
-- are idempotent, are not recorded). Rows signed more than twice the clock skew ago are deleted as
-- nodes go (their time is refused anyway).
CREATE TABLE request_signatures (
  device text NOT NULL,
  sig text NOT NULL,
  signed_at bigint NOT NULL,
  PRIMARY KEY (device, sig)
);
CREATE INDEX request_signatures_signed_at ON request_signatures (signed_at);
