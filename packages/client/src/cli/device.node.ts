import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { readTextFile } from './output.ts';
import { fromBase64url, toBase64url } from '@backchannel/protocol';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { CorkedWebSocket } from '../sdk/websocket.node.ts';
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

/** The shortest passphrase a new device store is sealed with. */
const MIN_PASSPHRASE = 8;

function passphrase(o: GlobalOptions): string {
  if (o.passphraseFile !== undefined) {
    let text: string;
    try {
      text = readTextFile(o.passphraseFile);
    } catch (e) {
      // Named as the passphrase file (other failures, e.g. a folder, are said as for any file).
      if ((e as { code?: unknown }).code !== 'ENOENT') throw e;
      throw new ClientError(
        'INVALID_ARGUMENT',
        `the passphrase file ${o.passphraseFile} does not exist: check --passphrase-file`,
      );
    }
    const p = text.replace(/\r?\n$/, '');
    if (p.length === 0)
      throw new ClientError(
        'INVALID_ARGUMENT',
        `the passphrase file ${o.passphraseFile} is empty: write the device's passphrase in it`,
      );
    return p;
  }
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

const storePath = (o: GlobalOptions) => join(homeDir(o), 'device.db');

/**
 * Opens this device. Only `init` (`create: true`) makes a new device store: any other command on
 * a home without one says so, rather than leave behind a store sealed with whatever passphrase was
 * set (which the later `init` could not open). `transport: 'ws'` posts envelopes and receives live entries on one
 * authenticated WebSocket per relay endpoint (`ws`), HTTP where the socket is unavailable.
 * `writerThread`: commit on a writer thread (for a command that runs on and receives steadily,
 * such as watch; a one-shot command does not pay for starting the thread).
 */
export async function openDevice(
  o: GlobalOptions,
  opts: {
    transport?: 'http' | 'ws';
    writerThread?: boolean;
    create?: boolean;
    /** BackchannelOptions.deviceListTtlMs (default 60 s). */
    deviceListTtlMs?: number;
  } = {},
): Promise<Backchannel> {
  const kdf = kdfFromEnv();
  const path = storePath(o);
  const secret = passphrase(o);
  if (opts.create === true && !existsSync(path) && [...secret].length < MIN_PASSPHRASE)
    throw new ClientError(
      'INVALID_ARGUMENT',
      `the passphrase is shorter than ${MIN_PASSPHRASE} characters: it alone protects this device's keys at rest; choose a longer one (a sentence is best)`,
    );
  if (opts.create !== true && !existsSync(path)) {
    throw new ClientError(
      'NOT_INITIALIZED',
      `no device in ${homeDir(o)}: run \`backchannel init party\` (a new party) or \`backchannel init device\` (from an invite) first, or point --home or BACKCHANNEL_HOME at an existing device`,
    );
  }
  let store: SqliteLocalStore;
  try {
    store = SqliteLocalStore.open({
      path,
      passphrase: secret,
      // One process per device at a time: say why nothing happens while another one holds it.
      onLockWait: (holder) => process.stderr.write(`note: waiting for this device, in use by ${holder}…\n`),
      ...(kdf === undefined ? {} : { kdf }),
      ...(opts.writerThread === true ? { writerThread: true } : {}),
    });
  } catch (e) {
    if (e instanceof ClientError && e.code === 'PASSPHRASE_WRONG')
      throw new ClientError(
        'PASSPHRASE_WRONG',
        `the passphrase does not unlock the device in ${homeDir(o)} (check BACKCHANNEL_PASSPHRASE or --passphrase-file)`,
      );
    throw e;
  }
  return Backchannel.open({
    store,
    mls: (identity, certs) => createMlsFactory({ identity, certs, crypto: nodeMlsCrypto, now: Date.now }),
    ...(o.relay === undefined || o.relay.length === 0 ? {} : { relays: o.relay }),
    random: randomNode,
    signatures: ed25519Node,
    sha256: sha256Node,
    verifier: signatureWorkers,
    leafHash: leafHashNode,
    ...(opts.transport === 'ws' ? { transport: 'ws' as const, webSocket: CorkedWebSocket } : {}),
    ...(opts.deviceListTtlMs === undefined ? {} : { deviceListTtlMs: opts.deviceListTtlMs }),
  });
}

/**
 * `init`: sets up a device in a home that has none, all or nothing. When `fn` fails (the relay is
 * unreachable, an invite code is wrong…) the store this command created is removed, so that the
 * same command can simply be run again.
 */
/**
 * This home's installation id (Backchannel.enroll): kept in a file beside the device store, which
 * a failed `init` removes, so that a retry in the same home, after an answer that never came,
 * redeems the invite as the same installation. Another home is another installation.
 */
export function installationId(o: GlobalOptions): Uint8Array {
  const file = join(homeDir(o), 'installation');
  if (existsSync(file)) {
    try {
      const id = fromBase64url(readTextFile(file).trim());
      if (id.length >= 16 && id.length <= 32) return id;
    } catch {
      // unreadable: this home takes a new id (a redemption by the old one is then another's)
    }
  }
  const id = randomNode(16);
  mkdirSync(homeDir(o), { recursive: true });
  writeFileSync(file, `${toBase64url(id)}\n`, { mode: 0o600 });
  return id;
}

export async function initDevice<T>(o: GlobalOptions, fn: (bc: Backchannel) => Promise<T>): Promise<T> {
  const path = storePath(o);
  const fresh = !existsSync(path);
  const bc = await openDevice(o, { create: true });
  // Judged under the device lock: another `init` of this home that got there first (and was
  // waited for) made a device that is not this command's to remove.
  const created = fresh && !bc.initialized;
  const remove = () => {
    for (const f of [path, `${path}-wal`, `${path}-shm`]) rmSync(f, { force: true });
  };
  // Interrupted (Ctrl-C, SIGTERM) while it waits on the relay: the store it made goes too. Left
  // behind, it passed for a device (`status` answered "no channels yet") and a retry with another
  // passphrase failed PASSPHRASE_WRONG. The installation id stays: the relay may have redeemed the
  // invite before the interruption (see installationId).
  const interrupted = (signal: NodeJS.Signals) => {
    if (created) remove(); // under the lock still: it goes when this process ends
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  let ok = false;
  try {
    if (bc.initialized)
      throw new ClientError(
        'ALREADY_INITIALIZED',
        `${homeDir(o)} already holds device ${bc.identity.device} of party ${bc.identity.party}: use another --home or BACKCHANNEL_HOME for another device`,
      );
    const r = await fn(bc);
    ok = true;
    return r;
  } finally {
    process.off('SIGINT', interrupted);
    process.off('SIGTERM', interrupted);
    if (!ok && created) {
      // Removed while the lock is still held (an open file can be unlinked, except on Windows):
      // another `init` waiting for this home then finds no half-made store.
      try {
        remove();
        bc.close();
      } catch {
        bc.close();
        remove();
      }
    } else bc.close();
  }
}

/**
 * One verify worker for the process, helped by the main thread while it waits (started on first
 * sync; idle, it does not hold the process).
 */
const signatureWorkers = new SignatureWorkers({ threads: 1, inline: ed25519Node });
