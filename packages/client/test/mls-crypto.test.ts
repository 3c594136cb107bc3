/**
 * Our node:crypto CryptoProvider against ts-mls's default backend, primitive by primitive, on
 * random inputs: the same bytes out (hash, HMAC, HKDF extract/expand at every length class),
 * ciphertexts each side opens, signatures each side verifies, and tampering refused; then a
 * group with one member on each backend.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import fc from 'fast-check';
import {
  encodeDeviceCertificate,
  issueDeviceCertificate,
  isWeakEd25519Key,
  keyPairFromSeed,
  nobleEd25519,
  utf8,
} from '@backchannel/protocol';
import {
  encodeKeyPackage,
  type GroupConfig,
  GroupSession,
  generateDeviceKeyPackage,
  suiteImpl,
} from '@backchannel/protocol/group';
import {
  type CiphersuiteImpl,
  type CryptoProvider,
  defaultCryptoProvider,
  getCiphersuiteFromName,
  getCiphersuiteImpl,
} from 'ts-mls';
import { describe, expect, it } from 'vitest';
import edgeVectors from '../../protocol/test/vectors/ed25519-edge.json' with { type: 'json' };
import {
  ed25519Backend,
  ed25519Node,
  nodeMlsCrypto,
  opensslEd25519,
  sha256Node,
} from '../src/sdk/mls-crypto.node.ts';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const bytes = (max: number) => fc.uint8Array({ minLength: 0, maxLength: max });
const SUITES = [
  'MLS_256_XWING_AES256GCM_SHA512_Ed25519',
  'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519',
] as const;

describe.each(SUITES)('node:crypto provider, %s', (name) => {
  const load = async (): Promise<[CiphersuiteImpl, CiphersuiteImpl]> => {
    const cs = getCiphersuiteFromName(name);
    return [await getCiphersuiteImpl(cs, nodeMlsCrypto), await getCiphersuiteImpl(cs, defaultCryptoProvider)];
  };

  it('hashes, MACs and derives the same bytes as the default backend', async () => {
    const [ours, ref] = await load();
    const h = ours.kdf.size;
    // One block, a partial block, exactly one, one more than one, and several (RFC 5869 §2.3).
    const lengths = fc.constantFrom(4, 12, 16, 32, h, h + 1, 2 * h + 7);
    await fc.assert(
      fc.asyncProperty(
        bytes(300),
        fc.uint8Array({ minLength: 1, maxLength: 80 }), // WebCrypto refuses empty HMAC keys; MLS has none
        bytes(100),
        lengths,
        async (data, key, info, len) => {
          expect(hex(await ours.hash.digest(data))).toBe(hex(await ref.hash.digest(data)));
          expect(hex(await ours.hash.mac(key, data))).toBe(hex(await ref.hash.mac(key, data)));
          expect(await ours.hash.verifyMac(key, await ref.hash.mac(key, data), data)).toBe(true);
          // MLS extracts with a hash-sized salt or none (the reference refuses other lengths).
          const salt = await ref.hash.digest(key);
          expect(hex(await ours.kdf.extract(salt, data))).toBe(hex(await ref.kdf.extract(salt, data)));
          const prk = await ref.kdf.extract(new Uint8Array(0), data);
          expect(hex(await ours.kdf.extract(new Uint8Array(0), data))).toBe(hex(prk));
          const out = await ours.kdf.expand(prk, info, len);
          expect(out.length).toBe(len);
          expect(hex(out)).toBe(hex(await ref.kdf.expand(prk, info, len)));
        },
      ),
      { numRuns: 60 },
    );
    expect(ours.kdf.size).toBe(ref.kdf.size);
  });

  it('refuses a wrong MAC and an over-long expansion', async () => {
    const [ours] = await load();
    const key = new Uint8Array(32).fill(1);
    const data = new Uint8Array(10).fill(2);
    const mac = await ours.hash.mac(key, data);
    mac[0] = (mac[0] as number) ^ 1;
    expect(await ours.hash.verifyMac(key, mac, data)).toBe(false);
    expect(await ours.hash.verifyMac(key, mac.subarray(1), data)).toBe(false);
    await expect(ours.kdf.expand(key, data, 255 * ours.kdf.size + 1)).rejects.toThrow(RangeError);
  });

  it('seals what the default backend opens and opens what it seals; tampering is refused', async () => {
    const [ours, ref] = await load();
    const keyLen = ours.hpke.keyLength;
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ minLength: keyLen, maxLength: keyLen }),
        fc.uint8Array({ minLength: 12, maxLength: 12 }),
        bytes(40),
        bytes(1200),
        async (key, nonce, aad, pt) => {
          const ct = await ours.hpke.encryptAead(key, nonce, aad, pt);
          expect(hex(ct)).toBe(hex(await ref.hpke.encryptAead(key, nonce, aad, pt)));
          expect(hex(await ref.hpke.decryptAead(key, nonce, aad, ct))).toBe(hex(pt));
          expect(hex(await ours.hpke.decryptAead(key, nonce, aad, ct))).toBe(hex(pt));
          const bad = ct.slice();
          bad[bad.length - 1] = (bad[bad.length - 1] as number) ^ 1;
          await expect(ours.hpke.decryptAead(key, nonce, aad, bad)).rejects.toThrow();
          await expect(ours.hpke.decryptAead(key, nonce, new Uint8Array([...aad, 0]), ct)).rejects.toThrow();
        },
      ),
      { numRuns: 40 },
    );
    await expect(
      ours.hpke.decryptAead(
        new Uint8Array(keyLen),
        new Uint8Array(12),
        new Uint8Array(0),
        new Uint8Array(15),
      ),
    ).rejects.toThrow();
  });

  it('signs what the default backend verifies and verifies what it signs', async () => {
    const [ours, ref] = await load();
    const { signKey, publicKey } = await ours.signature.keygen();
    const other = await ref.signature.keygen();
    const m = new Uint8Array(1100).fill(3);
    const sig = await ours.signature.sign(signKey, m);
    expect(hex(sig)).toBe(hex(await ref.signature.sign(signKey, m))); // Ed25519 is deterministic
    expect(await ref.signature.verify(publicKey, m, sig)).toBe(true);
    expect(await ours.signature.verify(other.publicKey, m, await ref.signature.sign(other.signKey, m))).toBe(
      true,
    );
    expect(await ours.signature.verify(other.publicKey, m, sig)).toBe(false);
    expect(await ours.signature.verify(publicKey, m.subarray(1), sig)).toBe(false);
  });

  it('draws fresh random bytes of the asked length', async () => {
    const [ours] = await load();
    const a = ours.rng.randomBytes(32);
    const b = ours.rng.randomBytes(32);
    expect(a.length).toBe(32);
    expect(hex(a)).not.toBe(hex(b));
    expect(ours.rng.randomBytes(4).length).toBe(4);
  });
});

it('sha256Node matches noble on random inputs', () => {
  fc.assert(
    fc.property(bytes(2000), (d) => {
      expect(hex(sha256Node(d))).toBe(hex(sha256(d)));
    }),
    { numRuns: 100 },
  );
});

describe.each(SUITES)('a group with one member on each backend, %s', (suite) => {
  it('exchanges application messages both ways', async () => {
    const member = async (i: number, crypto: CryptoProvider) => {
      const cfg: GroupConfig = { suite, crypto, policy: { credential: () => true, commit: () => true } };
      const key = keyPairFromSeed(new Uint8Array(32).fill(40 + i));
      const root = keyPairFromSeed(new Uint8Array(32).fill(60 + i));
      const cert = issueDeviceCertificate({
        rootSecretKey: root.secretKey,
        rootPublicKey: root.publicKey,
        devicePublicKey: key.publicKey,
        name: `d${i}`,
        role: 'principal',
        notBefore: 0,
        notAfter: Date.now() + 1e9,
      });
      const kp = await generateDeviceKeyPackage({
        certificate: encodeDeviceCertificate(cert),
        deviceSecretKey: key.secretKey,
        devicePublicKey: key.publicKey,
        nowSeconds: Math.floor(Date.now() / 1000),
        impl: await suiteImpl(suite, crypto),
      });
      return { cfg, kp };
    };
    const n = await member(1, nodeMlsCrypto);
    const d = await member(2, defaultCryptoProvider);
    const a = await GroupSession.create(n.cfg, utf8('c_mixed'), n.kp);
    const c = await a.commit({ add: [encodeKeyPackage(d.kp.publicPackage)] });
    const { session: b } = await GroupSession.join(d.cfg, c.welcome as Uint8Array, [d.kp]);
    for (let i = 0; i < 3; i++) {
      const toB = await b.process(await a.encrypt(utf8(`node ${i}`), utf8('ad')));
      expect(toB.kind === 'application' && new TextDecoder().decode(toB.plaintext)).toBe(`node ${i}`);
      const toA = await a.process(await b.encrypt(utf8(`default ${i}`), utf8('ad')));
      expect(toA.kind === 'application' && new TextDecoder().decode(toA.plaintext)).toBe(`default ${i}`);
    }
  });
});

describe('Ed25519 suites of a Node device (libsodium, OpenSSL fallback)', () => {
  it('loads libsodium on this machine and signs byte-identically to noble; all verify each other', () => {
    expect(ed25519Backend).toBe('libsodium');
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), bytes(300), (seed, msg) => {
        const kp = keyPairFromSeed(seed);
        const sigs = [ed25519Node, opensslEd25519, nobleEd25519].map((s) => s.sign(msg, kp.secretKey));
        for (const sig of sigs) expect(hex(sig)).toBe(hex(sigs[2] as Uint8Array));
        for (const s of [ed25519Node, opensslEd25519, nobleEd25519]) {
          expect(s.verify(sigs[0] as Uint8Array, msg, kp.publicKey)).toBe(true);
          const bad = (sigs[0] as Uint8Array).slice();
          bad[msg.length % 64] = (bad[msg.length % 64] as number) ^ 1;
          expect(s.verify(bad, msg, kp.publicKey)).toBe(false);
        }
      }),
      { numRuns: 100 },
    );
  });

  it('signs with the seed an array holds now, when the same array is reused for another key', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        bytes(100),
        (first, second, msg) => {
          const seed = first.slice();
          expect(hex(ed25519Node.sign(msg, seed))).toBe(hex(nobleEd25519.sign(msg, first)));
          seed.set(second);
          expect(hex(ed25519Node.sign(msg, seed))).toBe(hex(nobleEd25519.sign(msg, second)));
          expect(hex(ed25519Node.sign(msg, second.slice()))).toBe(hex(nobleEd25519.sign(msg, second)));
        },
      ),
      { numRuns: 50 },
    );
  });

  it('refuses every signature libraries disagree on, in every suite (one acceptance rule)', () => {
    const fromHex = (h: string) => new Uint8Array(Buffer.from(h, 'hex'));
    for (const s of [ed25519Node, opensslEd25519, nobleEd25519]) {
      for (const r of edgeVectors.refused) {
        expect(s.verify(fromHex(r.signature), fromHex(r.message), fromHex(r.publicKey)), r.why).toBe(false);
      }
    }
    expect(isWeakEd25519Key(keyPairFromSeed(new Uint8Array(32).fill(7)).publicKey)).toBe(false);
  });
});
