import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ClientError } from '../src/sdk/errors.ts';
import { newParty } from '../src/sdk/identity.ts';
import { newInviteCode, openInvite, sealInvite } from '../src/sdk/invite.node.ts';
import { SqliteLocalStore } from '../src/sdk/sqlite.node.ts';

const kdf = { N: 1 << 10, r: 8, p: 1 };
const tmp = () => join(mkdtempSync(join(tmpdir(), 'bc-store-')), 'device.db');

describe('sealed local store', () => {
  it('round-trips records, entries and outbox items across a reopen', async () => {
    const path = tmp();
    const s = SqliteLocalStore.open({ path, passphrase: 'correct horse', kdf });
    await s.put([
      ['a', new Uint8Array([1, 2, 3])],
      ['b', new Uint8Array([4])],
    ]);
    await s.appendEntries('c_x', [
      { seq: 0, entry: new Uint8Array([9]) },
      { seq: 1, entry: new Uint8Array([8]) },
    ]);
    await s.outboxAdd({ id: 'e_1', channel: 'c_x', createdAt: 5, wire: new Uint8Array([7, 7]) });
    s.close();
    const r = SqliteLocalStore.open({ path, passphrase: 'correct horse' });
    expect(await r.get('a')).toEqual(new Uint8Array([1, 2, 3]));
    expect(await r.keys('')).toEqual(['a', 'b']);
    expect((await r.entries('c_x', 1, 10)).map((e) => e.seq)).toEqual([1]);
    expect((await r.outboxList())[0]?.wire).toEqual(new Uint8Array([7, 7]));
    await r.put([['a', undefined]]);
    expect(await r.get('a')).toBeUndefined();
    r.close();
  });

  it('refuses a wrong passphrase with PASSPHRASE_WRONG', () => {
    const path = tmp();
    SqliteLocalStore.open({ path, passphrase: 'right', kdf }).close();
    expect(() => SqliteLocalStore.open({ path, passphrase: 'wrong' })).toThrow(
      expect.objectContaining({ code: 'PASSPHRASE_WRONG' }),
    );
  });

  it('never writes a secret in plaintext to disk', async () => {
    const path = tmp();
    const s = SqliteLocalStore.open({ path, passphrase: 'pw', kdf });
    const secret = new TextEncoder().encode('TOP-SECRET-FALLBACK-POSITION-B');
    await s.put([['secret', secret]]);
    await s.appendEntries('c_y', [{ seq: 0, entry: secret }]);
    s.close();
    for (const f of [path, `${path}-wal`]) {
      let bytes: Buffer;
      try {
        bytes = readFileSync(f);
      } catch {
        continue;
      }
      expect(bytes.includes(Buffer.from('TOP-SECRET'))).toBe(false);
    }
  });
});

describe('invites', () => {
  const id = newParty({
    rootSeed: new Uint8Array(32).fill(1),
    deviceSeed: new Uint8Array(32).fill(2),
    partyName: 'A',
    deviceName: 'staff',
    role: 'staff',
    relays: ['http://127.0.0.1:1'],
    now: 1_700_000_000_000,
  });

  it('opens with the right code (case and dashes do not matter)', () => {
    const code = newInviteCode();
    const file = JSON.parse(JSON.stringify(sealInvite(id, code, kdf)));
    const opened = openInvite(file, code.toLowerCase().replaceAll('-', ' '));
    expect(opened.device).toBe(id.device);
    expect(opened.deviceSecretKey).toEqual(id.deviceSecretKey);
  });

  it('refuses a wrong code and a file that is not an invite with INVITE_INVALID', () => {
    const file = sealInvite(id, newInviteCode(), kdf);
    expect(() => openInvite(file, 'AAAA-AAAA-AAAA-AAAA')).toThrow(ClientError);
    expect(() => openInvite({ kind: 'other' }, 'x')).toThrow(
      expect.objectContaining({ code: 'INVITE_INVALID' }),
    );
  });
});
