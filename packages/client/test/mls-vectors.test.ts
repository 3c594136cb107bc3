/**
 * The MLS working group's interoperability vectors (../../protocol/test/vectors/mls), run against
 * the pinned ts-mls with OUR node:crypto backend and with the library's default backend:
 * welcome (decrypt group secrets with the init key, decrypt and verify the GroupInfo and its
 * confirmation tag) and message-protection (unprotect the given application message).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  type CiphersuiteImpl,
  type CryptoProvider,
  decodeMlsMessage,
  defaultCryptoProvider,
  defaultKeyRetentionConfig,
  getCiphersuiteImpl,
} from 'ts-mls';
import { getCiphersuiteFromId, getCiphersuiteNameFromId } from 'ts-mls/crypto/ciphersuite.js';
import { verifyGroupInfoConfirmationTag, verifyGroupInfoSignature } from 'ts-mls/groupInfo.js';
import { makeKeyPackageRef } from 'ts-mls/keyPackage.js';
import { unprotectPrivateMessage } from 'ts-mls/messageProtection.js';
import { createSecretTree } from 'ts-mls/secretTree.js';
import { decryptGroupInfo, decryptGroupSecrets } from 'ts-mls/welcome.js';
import { describe, expect, it } from 'vitest';
import { nodeMlsCrypto } from '../src/sdk/mls-crypto.node.ts';

const dir = join(import.meta.dirname, '../../protocol/test/vectors/mls');
const hex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));
const load = <T>(f: string) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as T[];

interface WelcomeVector {
  cipher_suite: number;
  init_priv: string;
  key_package: string;
  signer_pub: string;
  welcome: string;
}
interface ProtectionVector {
  cipher_suite: number;
  group_id: string;
  epoch: number;
  tree_hash: string;
  confirmed_transcript_hash: string;
  signature_pub: string;
  encryption_secret: string;
  sender_data_secret: string;
  application: string;
  application_priv: string;
}

const providers: Array<[string, CryptoProvider]> = [
  ['node:crypto backend', nodeMlsCrypto],
  ['ts-mls default backend', defaultCryptoProvider],
];

async function impl(id: number, provider: CryptoProvider): Promise<CiphersuiteImpl | undefined> {
  try {
    return await getCiphersuiteImpl(getCiphersuiteFromId(id as never), provider);
  } catch {
    return undefined;
  }
}

const welcomes = load<WelcomeVector>('welcome.json');
const protections = load<ProtectionVector>('message-protection.json');
// Suites run here; the others are listed (not silently skipped): 3 needs the optional
// ChaCha20-Poly1305 HPKE backend and 4/6 the X448/Ed448 ones, which Backchannel does not install.
const SUPPORTED = new Set([1, 2, 5, 7]);
const NOT_INSTALLED = [3, 4, 6];

describe('MLS test vectors', () => {
  it('covers the Ed25519/X25519 suite Backchannel uses for interoperability', () => {
    expect(welcomes.some((v) => v.cipher_suite === 1)).toBe(true);
    expect(protections.some((v) => v.cipher_suite === 1)).toBe(true);
    const unsupported = [...welcomes, ...protections]
      .map((v) => v.cipher_suite)
      .filter((s) => !SUPPORTED.has(s));
    expect([...new Set(unsupported)].sort()).toEqual(NOT_INSTALLED);
  });

  for (const [label, provider] of providers) {
    it.each(welcomes.filter((v) => SUPPORTED.has(v.cipher_suite)))(
      `welcome, suite %#, ${label}`,
      async (v) => {
        const cs = (await impl(v.cipher_suite, provider)) as CiphersuiteImpl;
        expect(cs.name).toBe(getCiphersuiteNameFromId(v.cipher_suite as never));
        const kpMsg = decodeMlsMessage(hex(v.key_package), 0)?.[0];
        const wMsg = decodeMlsMessage(hex(v.welcome), 0)?.[0];
        if (kpMsg?.wireformat !== 'mls_key_package' || wMsg?.wireformat !== 'mls_welcome')
          throw new Error('vector decode');
        const ref = await makeKeyPackageRef(kpMsg.keyPackage, cs.hash);
        const priv = await cs.hpke.importPrivateKey(hex(v.init_priv));
        const secrets = await decryptGroupSecrets(priv, ref, wMsg.welcome, cs.hpke);
        expect(secrets).toBeDefined();
        const psk = new Uint8Array(cs.kdf.size);
        const joiner = (secrets as { joinerSecret: Uint8Array }).joinerSecret;
        const gi = await decryptGroupInfo(wMsg.welcome, joiner, psk, cs);
        expect(gi).toBeDefined();
        if (gi === undefined) return;
        expect(await verifyGroupInfoSignature(gi, hex(v.signer_pub), cs.signature)).toBe(true);
        expect(await verifyGroupInfoConfirmationTag(gi, joiner, psk, cs)).toBe(true);
        // A wrong signer key fails.
        const wrong = hex(v.signer_pub);
        wrong[0] = (wrong[0] as number) ^ 1;
        expect(await verifyGroupInfoSignature(gi, wrong, cs.signature).catch(() => false)).toBe(false);
      },
    );

    it.each(protections.filter((v) => SUPPORTED.has(v.cipher_suite)))(
      `message protection, suite %#, ${label}`,
      async (v) => {
        const cs = (await impl(v.cipher_suite, provider)) as CiphersuiteImpl;
        const ctx = {
          version: 'mls10' as const,
          cipherSuite: getCiphersuiteNameFromId(v.cipher_suite as never),
          groupId: hex(v.group_id),
          epoch: BigInt(v.epoch),
          treeHash: hex(v.tree_hash),
          confirmedTranscriptHash: hex(v.confirmed_transcript_hash),
          extensions: [],
        };
        const msg = decodeMlsMessage(hex(v.application_priv), 0)?.[0];
        if (msg?.wireformat !== 'mls_private_message') throw new Error('vector decode');
        const tree = await createSecretTree(2, hex(v.encryption_secret), cs.kdf);
        const r = await unprotectPrivateMessage(
          hex(v.sender_data_secret),
          msg.privateMessage,
          tree,
          [],
          ctx,
          defaultKeyRetentionConfig,
          cs,
          hex(v.signature_pub),
        );
        const content = r.content.content;
        expect(content.contentType).toBe('application');
        expect(
          Buffer.from((content as { applicationData: Uint8Array }).applicationData).toString('hex'),
        ).toBe(v.application);
        // A flipped ciphertext byte fails to unprotect.
        const bad = hex(v.application_priv);
        bad[bad.length - 1] = (bad[bad.length - 1] as number) ^ 1;
        const badMsg = decodeMlsMessage(bad, 0)?.[0];
        if (badMsg?.wireformat !== 'mls_private_message') throw new Error('decode');
        const fresh = await createSecretTree(2, hex(v.encryption_secret), cs.kdf);
        await expect(
          unprotectPrivateMessage(
            hex(v.sender_data_secret),
            badMsg.privateMessage,
            fresh,
            [],
            ctx,
            defaultKeyRetentionConfig,
            cs,
            hex(v.signature_pub),
          ),
        ).rejects.toThrow();
      },
    );
  }
});
