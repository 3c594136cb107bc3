-- Backchannel relay, schema 5: which installation redeemed each device's invite, and when. An
-- invite carries the device's key: the first installation to enroll with it keeps it, and a second
-- redemption is refused (INVITE_USED) instead of two installations sharing one key.
CREATE TABLE enrollments (
  device text PRIMARY KEY,
  installation bytea NOT NULL,
  enrolled_at bigint NOT NULL
);
