-- Backchannel relay, schema 3: who attached each witness cosignature, so the relay can cap the
-- lines one party attaches to one checkpoint. Written on its own: it assumes nothing of schema 2.
-- Lines stored before it have no party (NULL) and count towards no party's cap.
ALTER TABLE cosignatures ADD COLUMN party TEXT;
CREATE INDEX cosignatures_party ON cosignatures (chan, size, party);
