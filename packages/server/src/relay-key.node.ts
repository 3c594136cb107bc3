/**
 * The relay's checkpoint signing key: an Ed25519 seed created in the data directory on first
 * start (file mode 0600), stored in Go's note signer-key format
 * "PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>" so operators can use Go's tooling.
 */
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  existsSync,
  fsyncSync,
  openSync,
  readFileSync,
  statSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { concatBytes, keyPairFromSeed, toHex } from '@backchannel/protocol';
import { ALG_ED25519, keyId, parseSignerKey } from '@backchannel/protocol/transcript';
import { ConfigError } from './config.ts';

export const CHECKPOINT_KEY_FILE = 'checkpoint-key';

export function encodeSignerKey(name: string, seed: Uint8Array): string {
  const pub = keyPairFromSeed(seed).publicKey;
  const raw = Buffer.from(concatBytes(Uint8Array.of(ALG_ED25519), seed)).toString('base64');
  return `PRIVATE+KEY+${name}+${toHex(keyId(name, ALG_ED25519, pub))}+${raw}`;
}

/** Loads an existing key file (the retiring key of a rotation): its seed. */
export function loadCheckpointKey(path: string): Uint8Array {
  if (!existsSync(path)) throw new ConfigError(`${path}: no such checkpoint key file`);
  if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
  const parsed = parseSignerKey(readFileSync(path, 'utf8').trim());
  if (!parsed.ok) throw new ConfigError(`${path} is not a valid signer key (${parsed.message})`);
  return parsed.value.seed;
}

/** Loads the key, creating it (0600) when absent. Returns the seed. */
export function loadOrCreateCheckpointKey(dataDir: string, name: string, file?: string): Uint8Array {
  const path = file ?? join(dataDir, CHECKPOINT_KEY_FILE);
  if (existsSync(path)) return loadCheckpointKey(path);
  const seed = new Uint8Array(randomBytes(32));
  const fd = openSync(path, 'wx', 0o600);
  try {
    writeSync(fd, `${encodeSignerKey(name, seed)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return seed;
}
