/**
 * startRelay(): the relay on a real port — SQLite under the data directory, the checkpoint key,
 * Node HTTP (Hono's adapter) and the WebSocket upgrade. close() drains in-flight batches first.
 */
import { mkdirSync } from 'node:fs';
import type { IncomingMessage, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { join } from 'node:path';
import { createAdaptorServer, type HttpBindings } from '@hono/node-server';
import type { Context } from 'hono';
import { keyPairFromSeed } from '@backchannel/protocol';
import { CheckpointSigner } from './channels/checkpoints.ts';
import { ConfigError, type RelayConfig, type RelayConfigInput, resolveConfig } from './config.ts';
import { nodeEd25519 } from './ed25519.node.ts';
import type { Fanout } from './fanout/fanout.ts';
import { LocalFanout } from './fanout/local.ts';
import { NatsFanout, natsSubjectFor } from './fanout/nats.ts';
import { RelayError } from './errors.ts';
import type { Log } from './http/context.ts';
import { answerRaw } from './http/raw-answer.node.ts';
import { RelayMetrics } from './metrics.ts';
import { createRelay, type RelayCore } from './relay.ts';
import { loadCheckpointKey, loadOrCreateCheckpointKey } from './relay-key.node.ts';
import { staticFiles } from './static.node.ts';
import { openPostgresStore } from './store/postgres/pg-store.ts';
import { openSqliteStore } from './store/sqlite/sqlite-store.ts';
import { type DataLock, lockDataDir } from './data-lock.node.ts';
import type { Store } from './store/store.ts';
import { attachWebSocket } from './ws/server.node.ts';

export interface StartRelayOptions {
  /** Configuration (validated and completed with defaults). */
  readonly config?: RelayConfigInput;
  readonly log?: Log;
  readonly now?: () => number;
}

export interface RunningRelay {
  readonly url: string;
  readonly port: number;
  readonly config: RelayConfig;
  readonly core: RelayCore;
  close(): Promise<void>;
}

function incomingOf(c: Context): IncomingMessage {
  return (c.env as HttpBindings).incoming;
}

/** Reads the body straight from the socket, with a cap. */
function readIncoming(c: Context, max: number): Promise<Uint8Array> {
  const inc = incomingOf(c);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    let over = false;
    inc.on('data', (chunk: Buffer) => {
      if (over) return;
      n += chunk.length;
      if (n > max) {
        over = true;
        reject(new RelayError('BODY_TOO_LARGE', `request body exceeds ${max} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    inc.on('end', () => {
      if (over) return;
      const b = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
      resolve(new Uint8Array(b.buffer, b.byteOffset, b.byteLength));
    });
    // The client closed the connection mid-body, or its chunked encoding broke: its fault, not
    // ours (a 400 in the metrics, no error in the log); nobody may be left to read the answer.
    inc.on('error', () =>
      reject(new RelayError('BODY_MALFORMED', 'the request body ended before it was complete')),
    );
  });
}

/**
 * Requests Node's HTTP parser refuses before the app sees them (a malformed request line or
 * header, a bad Content-Length, headers over 16 KiB) get the relay's JSON error too, not Node's
 * bare status line.
 */
function answerClientError(err: Error & { code?: string }, socket: Duplex, metrics: RelayMetrics): void {
  // A response already under way on this connection (keep-alive) is not written into; a client
  // gone, or too slow to send its request (the server's timeouts), gets nothing more.
  const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (
    !socket.writable ||
    inFlight?.headersSent === true ||
    err.code === 'ECONNRESET' ||
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
  ) {
    socket.destroy();
    return;
  }
  const e =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? new RelayError('HEADERS_TOO_LARGE', 'the request line and headers exceed 16 KiB')
      : new RelayError('REQUEST_INVALID', 'malformed HTTP request');
  metrics.refused(e.code, 'http');
  answerRaw(socket, e);
}

/** The store and fan-out the config names: SQLite + in-process, or PostgreSQL + NATS (or local). */
async function openBackends(
  config: RelayConfig,
  seed: Uint8Array,
  previousSeed: readonly Uint8Array[],
  log: Log | undefined,
): Promise<{ store: Store; fanout: Fanout }> {
  if (config.store === 'sqlite') {
    const store = openSqliteStore({
      path: join(config.dataDir, 'relay.db'),
      // Without its writer the relay cannot accept anything: /readyz turns 503 (the store's
      // `healthy`), and the operator is told why.
      onFatal: (e) => log?.error({ err: e.message }, 'the store writer thread died: no write can be made'),
    });
    return { store, fanout: new LocalFanout() };
  }
  const store = await openPostgresStore({ url: config.store, max: config.storePoolSize });
  try {
    const signerOf = (s: Uint8Array) =>
      new CheckpointSigner(config.relayName, s, keyPairFromSeed(s).publicKey, nodeEd25519());
    const vkey = signerOf(seed).vkey;
    const claim = await store.claimCheckpointKey(
      vkey,
      previousSeed.map((s) => signerOf(s).vkey),
    );
    if (!claim.ok) {
      throw new ConfigError(
        `checkpoint key: this database's relay signs as ${claim.recorded}; this node has ${vkey}. ` +
          'Give every node the same checkpoint key file (docs/OPERATIONS.md).',
      );
    }
    const fanout =
      config.fanout === 'local'
        ? new LocalFanout()
        : await NatsFanout.connect({
            url: config.fanout,
            subject: natsSubjectFor(config.relayName),
            ...(log === undefined ? {} : { log }),
          });
    return { store, fanout };
  } catch (e) {
    await store.close();
    throw e;
  }
}

export async function startRelay(opts: StartRelayOptions = {}): Promise<RunningRelay> {
  const config = resolveConfig(opts.config);
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  // The embedded store is this process's alone (PostgreSQL is shared by design).
  const lock = config.store === 'sqlite' ? lockDataDir(config.dataDir) : undefined;
  try {
    return await listen(config, opts, lock);
  } catch (e) {
    lock?.release();
    throw e;
  }
}

async function listen(
  config: RelayConfig,
  opts: StartRelayOptions,
  lock: DataLock | undefined,
): Promise<RunningRelay> {
  const seed = loadOrCreateCheckpointKey(config.dataDir, config.relayName, config.checkpointKeyFile);
  const previous = config.previousCheckpointKeyFile;
  const previousSeed = (
    previous === undefined ? [] : typeof previous === 'string' ? [previous] : previous
  ).map(loadCheckpointKey);
  const { store, fanout } = await openBackends(config, seed, previousSeed, opts.log);
  const now = opts.now ?? Date.now;
  const core = createRelay({
    config,
    store,
    seed,
    ...(previousSeed.length === 0 ? {} : { previousSeed }),
    now,
    fanout,
    ...(opts.log === undefined ? {} : { log: opts.log }),
    metrics: new RelayMetrics({ defaultMetrics: true }),
    readBody: readIncoming,
    clientAddress: (c) => incomingOf(c).socket.remoteAddress ?? 'unknown',
    ...(config.webDist === undefined ? {} : { staticFiles: staticFiles(config.webDist) }),
  });
  const server = createAdaptorServer({ fetch: core.app.fetch }) as Server;
  server.keepAliveTimeout = 30_000;
  server.on('clientError', (err: Error, socket: Duplex) => answerClientError(err, socket, core.metrics));
  const wss = attachWebSocket(server, {
    hub: core.hub,
    metrics: core.metrics,
    ipLimiter: core.limiters.ip,
    now,
    maxPayload: config.limits.wsFrameBytes * 2,
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  const url = `http://${host}:${port}`;
  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    config,
    core,
    close() {
      closing ??= (async () => {
        // Finish every queued append (their answers go out), close subscribers, then the sockets.
        await core.drain();
        await new Promise<void>((resolve) => {
          // After 2 s every connection still open is cut. server.close() also waits for upgraded
          // sockets, which closeAllConnections() does not reach: a WebSocket client that never
          // answers the close frame (gone without a reset, or not reading) would hold the
          // shutdown for ws's own close timeout (30 s).
          const t = setTimeout(() => {
            server.closeAllConnections();
            for (const ws of wss.clients) ws.terminate();
          }, 2_000);
          server.close(() => {
            clearTimeout(t);
            resolve();
          });
          server.closeIdleConnections();
        });
        wss.close();
        await core.close();
        lock?.release();
      })();
      return closing;
    },
  };
}
