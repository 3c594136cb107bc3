/**
 * Backchannel.partyDevices (what `device list` and the web app's Members screen show): a device
 * and its state are shown only as the party's root key signed them. A relay that adds a forged
 * revocation, a forged certificate or damaged bytes to its directory answer changes nothing shown,
 * and each such entry is counted; a revocation once verified stays shown when the relay drops it.
 */
import {
  deviceIdFromKey,
  encodeCanonical,
  keyPairFromSeed,
  signWithLabel,
  toBase64url,
} from '@backchannel/protocol';
import { describe, expect, it } from 'vitest';
import { inProcessRelay, RELAY_URL } from './in-process.ts';

/** What the relay's directory answer becomes for the device under test. */
type Tamper = (body: { certificates: string[]; revocations: string[] }) => {
  certificates: string[];
  revocations: string[];
};

describe('partyDevices', () => {
  it('lists only what the root signed, counts what it did not, and keeps a verified revocation', {
    timeout: 60_000,
  }, async () => {
    const r = inProcessRelay('bc-party-devices-');
    let tamper: Tamper = (b) => b;
    const a = await r.device('a');
    await a.createParty({ partyName: 'A', deviceName: 'admin', relays: [RELAY_URL] });
    const minister = await a.addDevice('minister', 'principal');
    const staff = await a.addDevice('staff', 'staff');
    const m = await r.device('m', {
      wrap: async (input, _init, res) => {
        if (!/\/v1\/parties\/[^/]+\/devices$/.test(input) || !res.ok) return res;
        const body = (await res.json()) as { certificates: string[]; revocations: string[] };
        return new Response(JSON.stringify(tamper(body)), {
          status: res.status,
          headers: { 'content-type': 'application/json' },
        });
      },
    });
    await m.enroll(minister);
    const party = minister.party;

    // Entries for party A signed by a key that is not A's root: a revocation of the staff laptop
    // and a certificate for a device A never enrolled; and bytes that are no entry at all.
    const other = keyPairFromSeed(new Uint8Array(32).fill(7));
    const device = keyPairFromSeed(new Uint8Array(32).fill(9));
    const forgedRevocation = { v: 1, party, device: staff.device, revokedAt: Date.now(), reason: 'forged' };
    const forgedCert = {
      v: 1,
      party,
      device: deviceIdFromKey(device.publicKey),
      devicePublicKey: device.publicKey,
      name: 'intruder',
      role: 'principal',
      notBefore: Date.now() - 1000,
      notAfter: Date.now() + 86_400_000,
    };
    const signed = (label: 'revocation' | 'device-certificate', body: object) =>
      toBase64url(
        encodeCanonical({ body, sig: signWithLabel(other.secretKey, label, encodeCanonical(body)) }),
      );
    tamper = (b) => ({
      certificates: [
        ...b.certificates,
        signed('device-certificate', forgedCert),
        toBase64url(new Uint8Array([1, 2, 3])),
      ],
      revocations: [...b.revocations, signed('revocation', forgedRevocation)],
    });

    const before = await m.partyDevices();
    expect(before.refused).toBe(3);
    const byName = (list: typeof before.devices) => new Map(list.map((d) => [d.name, d]));
    expect([...byName(before.devices).keys()].sort()).toEqual(['admin', 'minister', 'staff']);
    expect(byName(before.devices).get('staff')?.state).toBe('active');
    expect(byName(before.devices).get('minister')?.role).toBe('principal');

    // The admin revokes the laptop for real: shown as revoked, with its reason and time.
    tamper = (b) => b;
    await a.revokeDevice(staff.device, 'left the delegation');
    const after = await m.partyDevices();
    expect(after.refused).toBe(0);
    const revoked = byName(after.devices).get('staff');
    expect(revoked?.state).toBe('revoked');
    expect(revoked?.reason).toBe('left the delegation');
    expect(revoked?.revokedAt).toBeLessThanOrEqual(Date.now());

    // A relay that now drops the revocation (and the certificate) cannot make it active again.
    tamper = (b) => ({ certificates: b.certificates, revocations: [] });
    const hidden = await m.partyDevices();
    expect(byName(hidden.devices).get('staff')?.state).toBe('revoked');
    for (const d of [a, m]) d.close();
  });
});

describe('names', () => {
  it('a party or device name of only spaces, or over 200 characters, is INVALID_ARGUMENT in words', async () => {
    const r = inProcessRelay('bc-names-');
    const a = await r.device('a');
    await expect(
      a.createParty({ partyName: '   ', deviceName: 'desk', relays: [RELAY_URL] }),
    ).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: 'a party name is needed (not only spaces)',
    });
    await expect(
      a.createParty({ partyName: 'A', deviceName: '', relays: [RELAY_URL] }),
    ).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: 'a device name is needed (not only spaces)',
    });
    await a.createParty({ partyName: 'A', deviceName: 'desk', relays: [RELAY_URL] });
    await expect(a.addDevice('x'.repeat(201), 'staff')).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: 'a device name is at most 200 characters (this one has 201)',
    });
  });
});
