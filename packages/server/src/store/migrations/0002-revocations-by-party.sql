-- Schema 2: a revocation is keyed by (device, party), the party whose root signed it. Keyed by
-- device alone, one party's revocation of a device id stood for every party's device with that id
-- (and replaced that party's own, earlier-dated revocation record).
CREATE TABLE revocations_by_party (
  device TEXT NOT NULL,
  party TEXT NOT NULL,
  revoked_at INTEGER NOT NULL,
  revocation BLOB NOT NULL,
  PRIMARY KEY (device, party)
) STRICT;
INSERT INTO revocations_by_party (device, party, revoked_at, revocation)
  SELECT device, party, revoked_at, revocation FROM revocations;
DROP TABLE revocations;
ALTER TABLE revocations_by_party RENAME TO revocations;
CREATE INDEX revocations_party ON revocations (party);

-- A device marked revoked by another party's revocation is its own party's again.
UPDATE devices SET revoked_at = (
  SELECT r.revoked_at FROM revocations r WHERE r.device = devices.device AND r.party = devices.party
);
