/**
 * Assembles a relay from its parts — store, group-commit appender, fan-out, WebSocket hub, HTTP
 * app — without binding a port (server.node.ts does that). Tests use it with app.request().
 */
import { keyPairFromSeed, type SignatureSuite } from '@backchannel/protocol';
import { createApp } from './app.ts';
import { acceptEnvelope } from './channels/accept.ts';
import { Appender } from './channels/appender.ts';
import { CheckpointSigner } from './channels/checkpoints.ts';
import { NodeCache } from './channels/node-cache.ts';
import type { RelayConfig } from './config.ts';
import { DeviceDirectory } from './directory/devices.ts';
import { nodeEd25519 } from './ed25519.node.ts';
import type { Fanout } from './fanout/fanout.ts';
import { LocalFanout } from './fanout/local.ts';
import { Authenticator } from './http/auth.ts';
import type { AppDeps, Log, RelayApp } from './http/context.ts';
import { silentLog } from './http/context.ts';
import { RateLimiter } from './http/rate-limit.ts';
import { RelayError } from './errors.ts';
import { RelayMetrics } from './metrics.ts';
import type { Store } from './store/store.ts';
import { inlineVerifier, type Verifier, VerifyPool } from './verify-pool.node.ts';
import { Hub } from './ws/hub.ts';

export interface RelayCoreOptions {
  readonly config: RelayConfig;
  readonly store: Store;
  /** The checkpoint signing key's 32-byte seed. */
  readonly seed: Uint8Array;
  /**
   * During a key rotation, the retiring key's seed (or every earlier key's, oldest first):
   * /v1/relay then serves the rotation statements.
   */
  readonly previousSeed?: Uint8Array | readonly Uint8Array[];
  readonly now?: () => number;
  readonly log?: Log;
  readonly suite?: SignatureSuite;
  readonly metrics?: RelayMetrics;
  readonly fanout?: Fanout;
  /** Signature verification (default: a worker pool of config.verifyThreads, or inline). */
  readonly verifier?: Verifier;
  readonly readBody?: AppDeps['readBody'];
  readonly clientAddress?: AppDeps['clientAddress'];
  readonly staticFiles?: AppDeps['staticFiles'];
}

export interface RelayCore {
  readonly app: RelayApp;
  readonly hub: Hub;
  readonly appender: Appender;
  readonly store: Store;
  readonly signer: CheckpointSigner;
  readonly metrics: RelayMetrics;
  readonly auth: Authenticator;
  readonly limiters: AppDeps['limiters'];
  /** Stops taking writes (readyz turns 503), answers the queued ones, closes the subscribers. */
  drain(): Promise<void>;
  /** drain(), then closes the fan-out and the store. */
  close(): Promise<void>;
}

export function createRelay(o: RelayCoreOptions): RelayCore {
  const { config, store } = o;
  const now = o.now ?? Date.now;
  const log = o.log ?? silentLog;
  const suite = o.suite ?? nodeEd25519();
  const metrics = o.metrics ?? new RelayMetrics();
  const fanout: Fanout = o.fanout ?? new LocalFanout();
  const signer = new CheckpointSigner(
    config.relayName,
    o.seed,
    keyPairFromSeed(o.seed).publicKey,
    suite,
    o.previousSeed === undefined
      ? []
      : o.previousSeed instanceof Uint8Array
        ? [o.previousSeed]
        : o.previousSeed,
  );
  const nodeCache = new NodeCache();
  const directory = new DeviceDirectory(store, {
    ttlMs: config.auth.deviceCacheMs ?? (store.shared ? 5_000 : 30_000),
  });
  const verifier: Verifier =
    o.verifier ?? (config.verifyThreads > 0 ? new VerifyPool(config.verifyThreads) : inlineVerifier(suite));
  const auth = new Authenticator(directory, verifier, {
    skewMs: config.auth.skewMs,
    replayEntries: config.auth.replayCacheEntries,
    relayName: signer.name,
    ...(store.shared && store.claimRequest !== undefined ? { claim: store.claimRequest.bind(store) } : {}),
  });
  const appender = new Appender({
    store,
    signer,
    cache: nodeCache,
    fanout,
    now,
    maxBatch: config.batch.maxItems,
    maxInFlightBytes: config.limits.inFlightBytes,
    metrics,
    onError: (e) => log.error({ err: { message: (e as Error).message } }, 'append batch failed'),
    revokedSince: (device, mark) => directory.revokedSince(device, mark),
    senderChanged: (rec) =>
      directory.invalidate(rec.device, rec.revokedAt !== undefined && rec.revokedAt <= now()),
  });
  const limiters = {
    device: new RateLimiter(config.rateLimits.device),
    ip: new RateLimiter(config.rateLimits.ip),
    unsigned: new RateLimiter(config.rateLimits.unsigned),
    keyPackageClaims: new RateLimiter(config.rateLimits.keyPackageClaims),
    writes: new RateLimiter(config.rateLimits.writes),
  };
  /** An envelope append (WebSocket send, unsigned HTTP post) is a request and a write of its device. */
  const limitDevice = (device: string, now: number) => {
    for (const scope of ['device', 'writes'] as const) {
      const wait = limiters[scope].take(device, now);
      if (wait > 0) {
        metrics.rateLimited.inc({ scope });
        throw new RelayError('RATE_LIMITED', 'too many requests; slow down', { retryAfterMs: wait });
      }
    }
  };
  const accept = { directory, verifier, appender, now, limitDevice, signer };
  const hub = new Hub({
    store,
    // The hub takes a `device` token for every frame (a send frame included), as HTTP does for
    // every request; a send frame is also a write.
    append: (device, wire) => {
      const wait = limiters.writes.take(device.device, now());
      if (wait > 0) {
        metrics.rateLimited.inc({ scope: 'writes' });
        return Promise.reject(
          new RelayError('RATE_LIMITED', 'too many writes; slow down', { retryAfterMs: wait }),
        );
      }
      return acceptEnvelope(accept, wire, { signedBy: device });
    },
    limits: {
      device: (device, t) => {
        const wait = limiters.device.take(device, t);
        if (wait > 0) metrics.rateLimited.inc({ scope: 'device' });
        return wait;
      },
      address: (address, t) => {
        const wait = limiters.ip.take(address, t);
        if (wait > 0) metrics.rateLimited.inc({ scope: 'ip' });
        return wait;
      },
    },
    auth,
    now,
    metrics,
    log,
    options: {
      ...config.ws,
      maxFrameChars: config.limits.wsFrameBytes,
      pageBytes: config.limits.pageBytes,
    },
  });
  const unsubscribeFanout = fanout.subscribe((m) => {
    hub.publish(m);
    // A revocation written on any node: forget the cached record, close the device's sockets.
    for (const d of m.revoked ?? []) {
      directory.heardRevoked(d);
      hub.closeDevice(d);
    }
  });
  const unsubscribeResync = fanout.onResync?.(() => hub.resync());
  const unsubscribe = () => {
    unsubscribeFanout();
    unsubscribeResync?.();
  };
  // Local listeners hear it at once; other nodes through the fan-out (LocalFanout: this node only).
  directory.onRevoked((d) => fanout.publish({ channels: [], inbox: [], revoked: [d] }));
  let ready = true;
  const app = createApp({
    config,
    store,
    appender,
    directory,
    auth,
    signer,
    nodeCache,
    suite,
    verifier,
    metrics,
    limiters,
    now,
    log,
    ready: () => ready && store.healthy !== false,
    ...(o.readBody === undefined ? {} : { readBody: o.readBody }),
    ...(o.clientAddress === undefined ? {} : { clientAddress: o.clientAddress }),
    ...(o.staticFiles === undefined ? {} : { staticFiles: o.staticFiles }),
  });
  let draining: Promise<void> | undefined;
  let closing: Promise<void> | undefined;
  const drain = () => {
    draining ??= (async () => {
      ready = false;
      await appender.close();
      hub.closeAll();
    })();
    return draining;
  };
  return {
    app,
    hub,
    appender,
    store,
    signer,
    metrics,
    auth,
    limiters,
    drain,
    close() {
      closing ??= (async () => {
        await drain();
        unsubscribe();
        await fanout.close();
        await verifier.close();
        await store.close();
      })();
      return closing;
    },
  };
}
