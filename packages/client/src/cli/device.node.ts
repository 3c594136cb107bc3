import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { Backchannel } from '../sdk/client.ts';
import { ClientError } from '../sdk/errors.ts';
import { createMlsFactory } from '../sdk/mls-factory.ts';
import { ed25519Node, nodeMlsCrypto, sha256Node } from '../sdk/mls-crypto.node.ts';
import { leafHashNode, SignatureWorkers } from '../sdk/sync-crypto.node.ts';
import type { KdfParams } from '../sdk/sealed-box.node.ts';
import { randomNode } from '../sdk/random.node.ts';
import { SqliteLocalStore } from '../sdk/sqlite.node.ts';

export interface GlobalOptions {
  readonly home?: string;
  readonly passphraseFile?: string;
  readonly relay?: string[];
  readonly json?: boolean;
}

export function homeDir(o: GlobalOptions): string {
  return o.home ?? process.env.BACKCHANNEL_HOME ?? join(homedir(), '.backchannel');
}

function passphrase(o: GlobalOptions): string {
  if (o.passphraseFile !== undefined) return readFileSync(o.passphraseFile, 'utf8').replace(/\r?\n$/, '');
  const env = process.env.BACKCHANNEL_PASSPHRASE;
  if (env !== undefined && env.length > 0) return env;
  throw new ClientError(
    'INVALID_ARGUMENT',
    'no passphrase: set BACKCHANNEL_PASSPHRASE or pass --passphrase-file FILE (the device store is encrypted with it)',
  );
}

/** Test and demo runs may lower the scrypt cost; real devices keep the default. */
function kdfFromEnv(): KdfParams | undefined {
  const n = process.env.BACKCHANNEL_KDF_N;
  return n === undefined ? undefined : { N: Number(n), r: 8, p: 1 };
}

/**
 * Opens this device. `transport: 'ws'` posts envelopes and receives live entries on one
 * authenticated WebSocket per relay endpoint (`ws`), HTTP where the socket is unavailable.
 * `writerThread`: commit on a writer thread (for a command that runs on and receives steadily,
 * such as watch; a one-shot command does not pay for starting the thread).
 */
export async function openDevice(
  o: GlobalOptions,
  opts: { transport?: 'http' | 'ws'; writerThread?: boolean } = {},
): Promise<Backchannel> {
  const kdf = kdfFromEnv();
  const store = SqliteLocalStore.open({
    path: join(homeDir(o), 'device.db'),
    passphrase: passphrase(o),
    ...(kdf === undefined ? {} : { kdf }),
    ...(opts.writerThread === true ? { writerThread: true } : {}),
  });
  return Backchannel.open({
    store,
    mls: (identity, certs) => createMlsFactory({ identity, certs, crypto: nodeMlsCrypto, now: Date.now }),
    ...(o.relay === undefined || o.relay.length === 0 ? {} : { relays: o.relay }),
    random: randomNode,
    signatures: ed25519Node,
    sha256: sha256Node,
    verifier: signatureWorkers,
    leafHash: leafHashNode,
    ...(opts.transport === 'ws' ? { transport: 'ws' as const, webSocket: WebSocket } : {}),
  });
}

/**
 * One verify worker for the process, helped by the main thread while it waits (started on first
 * sync; idle, it does not hold the process).
 */
const signatureWorkers = new SignatureWorkers({ threads: 1, inline: ed25519Node });
