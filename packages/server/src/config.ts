/**
 * Relay configuration: defaults < JSON file (BACKCHANNEL_CONFIG or --config) < environment <
 * command-line flags. Validated with zod; an invalid value stops the relay with the field's name.
 * Pure: the caller passes env, flags and the file reader in (main.node.ts does the I/O).
 */
import { delimiter } from 'node:path';
import { MAX_ENVELOPE_BYTES } from '@backchannel/protocol';
import { z } from 'zod';

/** The largest envelope as JSON ({envelope: base64url}) plus slack. */
export const MAX_ENVELOPE_JSON_BYTES = Math.ceil(MAX_ENVELOPE_BYTES / 3) * 4 + 1024;

const bucket = z.strictObject({
  perSecond: z.number().positive(),
  burst: z.number().int().positive(),
});

/** The relay name when none is configured: fine on one machine, shared by every relay left at it. */
export const DEFAULT_RELAY_NAME = 'backchannel.local';

export const configSchema = z.strictObject({
  port: z.number().int().min(0).max(65_535).default(8787),
  host: z.string().min(1).default('127.0.0.1'),
  dataDir: z.string().min(1).default('./data'),
  /** Names the relay in checkpoint origins (`<name>/<channel>`) and as the note key name. */
  relayName: z
    .string()
    .min(1)
    .max(200)
    .regex(/^[^\s+\u2014/]+$/, 'no whitespace, "+", "/" or em dash')
    .default(DEFAULT_RELAY_NAME),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /**
   * Storage: "sqlite" (embedded, under dataDir) or a postgres:// URL (several relay nodes may
   * share one database; a `schema` query parameter selects the schema). Never logged: it may
   * hold a password.
   */
  store: z
    .string()
    .refine((s) => s === 'sqlite' || /^postgres(ql)?:\/\/[^\s]+$/.test(s), 'must be "sqlite" or postgres://…')
    .default('sqlite'),
  /** Fan-out between relay nodes: "local" (in-process, one node) or a nats:// URL. */
  fanout: z
    .string()
    .refine((s) => s === 'local' || /^nats:\/\/[^\s]+$/.test(s), 'must be "local" or nats://…')
    .default('local'),
  /** PostgreSQL connections per node. */
  storePoolSize: z.number().int().min(1).max(100).default(10),
  /** The checkpoint signing key file (default: <dataDir>/checkpoint-key). Every node of a cluster needs the same key. */
  checkpointKeyFile: z.string().min(1).optional(),
  /**
   * During a key rotation: the retiring checkpoint key's file — or the files of every earlier
   * key still to be followed, oldest first. The relay then publishes, at /v1/relay, a rotation
   * statement signed by each key and its successor, by which devices and witnesses that pinned
   * an earlier key move to the current one (PROTOCOL.md §8).
   */
  previousCheckpointKeyFile: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
  /**
   * When set, GET /metrics answers only a request with `Authorization: Bearer <token>` (401
   * AUTH_MISSING / AUTH_INVALID otherwise): for a relay whose port is reachable by others. Unset,
   * /metrics is open (aggregate counts, nothing per device or channel).
   */
  metricsToken: z.string().min(16, 'the metrics token must be at least 16 characters').optional(),
  /** Worker threads verifying Ed25519 signatures off the event loop (0 = inline). */
  verifyThreads: z.number().int().min(0).max(16).default(1),
  /** Static web app to serve at / (defaults to apps/web/dist when it exists). */
  webDist: z.string().optional(),
  limits: z
    .strictObject({
      envelopeBodyBytes: z.number().int().positive().default(MAX_ENVELOPE_JSON_BYTES),
      cardBodyBytes: z
        .number()
        .int()
        .positive()
        .default(768 * 1024),
      keyPackageBodyBytes: z
        .number()
        .int()
        .positive()
        .default(512 * 1024),
      bodyBytes: z
        .number()
        .int()
        .positive()
        .default(64 * 1024),
      wsFrameBytes: z
        .number()
        .int()
        .positive()
        .default(400 * 1024),
      /** A page of GET …/entries holds at most this many bytes of entries (as base64url), and at least one entry. */
      pageBytes: z
        .number()
        .int()
        .min(1024)
        .default(8 * 1024 * 1024),
      /**
       * Envelope bytes being accepted at once, across every request and socket (decoded, verified,
       * queued for the group commit); beyond it an append is refused with RELAY_BUSY (503).
       */
      inFlightBytes: z
        .number()
        .int()
        .positive()
        .default(256 * 1024 * 1024),
    })
    .prefault({}),
  rateLimits: z
    .strictObject({
      device: bucket.default({ perSecond: 1000, burst: 2000 }),
      ip: bucket.default({ perSecond: 2000, burst: 4000 }),
      /** Unsigned directory posts (cards, device certificates, revocations), per client address. */
      unsigned: bucket.default({ perSecond: 10, burst: 100 }),
      /** Key-package claims, per claiming device (each hands out a one-time package per device of a party). */
      keyPackageClaims: bucket.default({ perSecond: 0.2, burst: 20 }),
      /**
       * State-changing requests (signed POST/PUT/DELETE, envelope posts signed or not, WebSocket
       * sends), per device. Sized for people; load generators raise it in their config.
       */
      writes: bucket.default({ perSecond: 20, burst: 200 }),
    })
    .prefault({}),
  auth: z
    .strictObject({
      skewMs: z
        .number()
        .int()
        .positive()
        .default(5 * 60_000),
      replayCacheEntries: z.number().int().positive().default(200_000),
      /**
       * How long a node acts on its cached copy of a device's record (certificate, revocation)
       * before reading it again. Unset: 30 s with SQLite (every change passes through this node),
       * 5 s on a shared store, where it bounds how long a request by a device revoked through
       * another node is still served when the fan-out lost that news (appends are checked anyway).
       */
      deviceCacheMs: z.number().int().min(0).max(300_000).optional(),
    })
    .prefault({}),
  batch: z
    .strictObject({
      maxItems: z.number().int().positive().max(10_000).default(512),
    })
    .prefault({}),
  ws: z
    .strictObject({
      /** Above this many buffered bytes a subscriber stops getting live entries and catches up later. */
      highWaterBytes: z
        .number()
        .int()
        .positive()
        .default(1 << 20),
      /** A subscriber that stays behind this long, or buffers this much, is dropped. */
      dropAfterMs: z.number().int().positive().default(60_000),
      maxBufferedBytes: z
        .number()
        .int()
        .positive()
        .default(16 << 20),
      authTimeoutMs: z.number().int().positive().default(10_000),
      maxSubscriptions: z.number().int().positive().default(256),
      /**
       * The longest a connection acts on its device record (revoked? certificate still valid?)
       * before re-reading it from the store; a revocation written on another node is seen within it.
       */
      revalidateMs: z.number().int().min(100).max(300_000).default(15_000),
      /** Authenticated WebSocket connections one device may hold; the next is refused (TOO_MANY_CONNECTIONS). */
      maxConnectionsPerDevice: z.number().int().min(1).max(1024).default(16),
    })
    .prefault({}),
});

export type RelayConfig = z.infer<typeof configSchema>;
export type RelayConfigInput = z.input<typeof configSchema>;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** The environment variables the relay reads. */
export function configFromEnv(env: Readonly<Record<string, string | undefined>>): RelayConfigInput {
  const out: Record<string, unknown> = {};
  const num = (name: string): number | undefined => {
    const v = env[name];
    if (v === undefined || v === '') return undefined;
    const n = Number(v);
    if (!Number.isFinite(n)) throw new ConfigError(`${name} must be a number`);
    return n;
  };
  const port = num('PORT');
  if (port !== undefined) out.port = port;
  const set = (key: string, name: string) => {
    const v = env[name];
    if (v !== undefined && v !== '') out[key] = v;
  };
  set('host', 'HOST');
  set('dataDir', 'BACKCHANNEL_DATA');
  set('relayName', 'BACKCHANNEL_RELAY_NAME');
  set('logLevel', 'LOG_LEVEL');
  set('store', 'BACKCHANNEL_STORE');
  set('fanout', 'BACKCHANNEL_FANOUT');
  set('webDist', 'BACKCHANNEL_WEB_DIST');
  set('checkpointKeyFile', 'BACKCHANNEL_CHECKPOINT_KEY_FILE');
  set('metricsToken', 'BACKCHANNEL_METRICS_TOKEN');
  // Several files (a chain of rotations, oldest first) separated like PATH entries.
  const previous = env.BACKCHANNEL_PREVIOUS_CHECKPOINT_KEY_FILE;
  if (previous !== undefined && previous !== '')
    out.previousCheckpointKeyFile = previous.includes(delimiter) ? previous.split(delimiter) : previous;
  return out as RelayConfigInput;
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    if (k === '__proto__' || k === 'constructor' || k === 'prototype') continue;
    const prev = out[k];
    out[k] = isPlainObject(prev) && isPlainObject(v) ? merge(prev, v) : v;
  }
  return out;
}

/** Parses the JSON text of a config file (refusing `__proto__` keys). */
export function parseConfigFile(text: string, name: string): RelayConfigInput {
  let v: unknown;
  try {
    v = JSON.parse(text, (k, x: unknown) => {
      if (k === '__proto__') throw new ConfigError(`${name}: forbidden key __proto__`);
      return x;
    });
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw new ConfigError(`${name} is not valid JSON`);
  }
  if (!isPlainObject(v)) throw new ConfigError(`${name} must hold a JSON object`);
  return v as RelayConfigInput;
}

/** Merges the layers (later wins) and validates the result. */
export function resolveConfig(...layers: ReadonlyArray<RelayConfigInput | undefined>): RelayConfig {
  let merged: Record<string, unknown> = {};
  for (const l of layers) if (l !== undefined) merged = merge(merged, l as Record<string, unknown>);
  const r = configSchema.safeParse(merged);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new ConfigError(`config ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`);
  }
  if (r.data.store === 'sqlite' && r.data.fanout !== 'local') {
    throw new ConfigError('config fanout: nats:// needs a shared store (postgres://); SQLite is one node');
  }
  return r.data;
}

/**
 * What the operator should hear at start-up about the relay's name: a relay reachable beyond this
 * machine (not listening on a loopback address) under the default name shares it with every other
 * relay left at the default, and devices bind each signed request to the name (PROTOCOL.md §11).
 */
export function relayNameWarning(config: Pick<RelayConfig, 'relayName' | 'host'>): string | undefined {
  const loopback = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/i.test(config.host);
  if (config.relayName !== DEFAULT_RELAY_NAME || loopback) return undefined;
  return `this relay listens on ${config.host} under the default name ${DEFAULT_RELAY_NAME}: give it a name of its own (--name, BACKCHANNEL_RELAY_NAME or relayName in the config file), a domain you control; devices bind every signed request to it, and relays that share a name accept each other's requests`;
}
