-- Schema 2 (as SQLite's 0002): a revocation is keyed by (device, party), the party whose root
-- signed it. Keyed by device alone, one party's revocation of a device id stood for every party's
-- device with that id (and replaced that party's own, earlier-dated revocation record).
ALTER TABLE revocations DROP CONSTRAINT revocations_pkey;
ALTER TABLE revocations ADD PRIMARY KEY (device, party);

-- A device marked revoked by another party's revocation is its own party's again.
UPDATE devices SET revoked_at = (
  SELECT r.revoked_at FROM revocations r WHERE r.device = devices.device AND r.party = devices.party
);
