/** What createApp needs (passed in: no globals, no process.env) and the per-request variables. */
import type { SignatureSuite } from '@backchannel/protocol';
import type { OpenAPIHono } from '@hono/zod-openapi';
import type { Context, MiddlewareHandler } from 'hono';
import type { Appender } from '../channels/appender.ts';
import type { CheckpointSigner } from '../channels/checkpoints.ts';
import type { NodeCache } from '../channels/node-cache.ts';
import type { RelayConfig } from '../config.ts';
import type { DeviceDirectory } from '../directory/devices.ts';
import type { RelayMetrics } from '../metrics.ts';
import type { DeviceRecord, Store } from '../store/store.ts';
import type { Verifier } from '../verify-pool.node.ts';
import type { Authenticator } from './auth.ts';
import type { RateLimiter } from './rate-limit.ts';

/** The slice of a pino logger the relay uses (never given a secret, a body or plaintext). */
export interface Log {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export const silentLog: Log = { debug() {}, info() {}, warn() {}, error() {} };

export interface AppDeps {
  readonly config: RelayConfig;
  readonly store: Store;
  readonly appender: Appender;
  readonly directory: DeviceDirectory;
  readonly auth: Authenticator;
  readonly signer: CheckpointSigner;
  readonly nodeCache: NodeCache;
  readonly suite: SignatureSuite;
  /** Verifies envelope and request signatures (a worker pool, or inline). */
  readonly verifier: Verifier;
  readonly metrics: RelayMetrics;
  readonly limiters: {
    readonly device: RateLimiter;
    readonly ip: RateLimiter;
    /** Unsigned directory posts, by client address. */
    readonly unsigned: RateLimiter;
    /** Key-package claims, by claiming device. */
    readonly keyPackageClaims: RateLimiter;
    /** State-changing requests, by device. */
    readonly writes: RateLimiter;
  };
  readonly now: () => number;
  readonly log: Log;
  /** Reads the request body up to max bytes (the Node server reads the socket directly). */
  readonly readBody?: (c: Context, max: number) => Promise<Uint8Array>;
  /** The client's address for per-IP limits (the Node server passes the socket's). */
  readonly clientAddress?: (c: Context) => string;
  /** False while starting or shutting down (readyz answers 503). */
  readonly ready?: () => boolean;
  /** Serves the web app for paths outside the API, when it is built. */
  readonly staticFiles?: MiddlewareHandler;
}

export interface RelayEnv {
  Variables: {
    rawBody: Uint8Array;
    /** The authenticated device (unset only on routes whose authentication is optional). */
    device: DeviceRecord;
  };
}

export type RelayApp = OpenAPIHono<RelayEnv>;
