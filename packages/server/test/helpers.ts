/**
 * Test fixtures: parties, devices, signed requests and envelopes (fake MLS bytes — the relay
 * never parses MLS), and a relay built with createRelay() for app.request() tests.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type ChannelId,
  channelIdFrom,
  type DeviceId,
  decodeDeviceCertificate,
  decodeEntry,
  type EnvelopeBody,
  encodeContactCard,
  encodeDeviceCertificate,
  eventIdFrom,
  fromBase64url,
  issueDeviceCertificate,
  proveDeviceKey,
  issueRevocation,
  encodeRevocation,
  type KeyPair,
  keyPairFromSeed,
  makeContactCard,
  type PartyId,
  partyIdFromKey,
  type Role,
  requestHeaders,
  type SignedEnvelope,
  signEnvelope,
  toBase64url,
  unwrap,
  utf8,
} from '@backchannel/protocol';
import { leafHash, parseNote, verifyInclusion, verifyNote } from '@backchannel/protocol/transcript';
import { expect } from 'vitest';
import { type RelayConfigInput, resolveConfig } from '../src/config.ts';
import { nodeEd25519 } from '../src/ed25519.node.ts';
import { createRelay, type RelayCore } from '../src/relay.ts';
import { openPostgresStore } from '../src/store/postgres/pg-store.ts';
import { openSqliteStore } from '../src/store/sqlite/sqlite-store.ts';
import type { Store } from '../src/store/store.ts';
import type { Verifier } from '../src/verify-pool.node.ts';
import { dropSchema, PG_URL, uniqueName } from './services.ts';

export const suite = nodeEd25519();
const HOUR = 3_600_000;

export function seedOf(label: string): Uint8Array {
  return new Uint8Array(createHash('sha256').update(label).digest());
}

export interface TestParty {
  readonly name: string;
  readonly root: KeyPair;
  readonly party: PartyId;
}

export interface TestDevice {
  readonly kp: KeyPair;
  readonly device: DeviceId;
  readonly party: TestParty;
  readonly role: Role;
  readonly certificate: Uint8Array;
}

export function makeParty(name: string): TestParty {
  const root = keyPairFromSeed(seedOf(`party ${name} ${Math.random()}`));
  return { name, root, party: partyIdFromKey(root.publicKey) };
}

export function makeDevice(
  party: TestParty,
  name: string,
  role: Role = 'negotiator',
  window: { notBefore?: number; notAfter?: number } = {},
): TestDevice {
  const kp = keyPairFromSeed(seedOf(`device ${party.name} ${name} ${Math.random()}`));
  const now = Date.now();
  const cert = issueDeviceCertificate({
    rootSecretKey: party.root.secretKey,
    rootPublicKey: party.root.publicKey,
    devicePublicKey: kp.publicKey,
    name,
    role,
    notBefore: window.notBefore ?? now - HOUR,
    notAfter: window.notAfter ?? now + 365 * 24 * HOUR,
  });
  return { kp, device: cert.body.device, party, role, certificate: encodeDeviceCertificate(cert) };
}

/** The body of POST /v1/devices: a certificate (the device's own by default) and the device key's proof. */
export function registration(d: TestDevice, certificate: Uint8Array = d.certificate) {
  return {
    certificate: toBase64url(certificate),
    proof: toBase64url(proveDeviceKey(d.kp.secretKey, certificate)),
  };
}

export function cardOf(
  party: TestParty,
  issuedAt = Date.now(),
  devices: readonly TestDevice[] = [],
): Uint8Array {
  return encodeContactCard(
    makeContactCard({
      rootSecretKey: party.root.secretKey,
      rootPublicKey: party.root.publicKey,
      displayName: party.name,
      relays: ['http://127.0.0.1:8787'],
      devices: devices.map((d) => unwrap(decodeDeviceCertificate(d.certificate))),
      issuedAt,
    }),
  );
}

export function revocationOf(device: TestDevice, revokedAt = Date.now() - 1000): Uint8Array {
  return encodeRevocation(
    issueRevocation(
      device.party.root.secretKey,
      device.party.root.publicKey,
      device.device,
      revokedAt,
      'left',
    ),
  );
}

export function newChannel(): ChannelId {
  return channelIdFrom(randomBytes(16));
}

export function envelope(
  dev: TestDevice,
  channel: ChannelId,
  fields: Partial<Omit<EnvelopeBody, 'v' | 'channel'>> = {},
): SignedEnvelope {
  const kind = fields.kind ?? 'application';
  return signEnvelope(
    {
      v: 1,
      channel,
      sender: fields.sender ?? dev.device,
      msgId: fields.msgId ?? eventIdFrom(randomBytes(16)),
      epoch: fields.epoch ?? 1,
      kind,
      mls: fields.mls ?? randomBytes(64),
      ...(kind === 'application' ? { commitment: fields.commitment ?? randomBytes(32) } : {}),
      sentAt: fields.sentAt ?? Date.now(),
      ...(fields.to === undefined ? {} : { to: fields.to }),
      ...(fields.members === undefined ? {} : { members: fields.members }),
    },
    dev.kp.secretKey,
    suite,
  );
}

/** A commit at `epoch` adding/removing devices (creating the channel when epoch is 0). */
export function commit(
  dev: TestDevice,
  channel: ChannelId,
  epoch: number,
  add: readonly TestDevice[] = [],
  remove: readonly TestDevice[] = [],
  to?: PartyId[],
): SignedEnvelope {
  return envelope(dev, channel, {
    kind: 'commit',
    epoch,
    members: { add: add.map((d) => d.device), remove: remove.map((d) => d.device) },
    ...(to === undefined ? {} : { to }),
  });
}

export interface Answer<T = Record<string, unknown>> {
  readonly status: number;
  readonly body: T;
  readonly headers: Headers;
}

type Fetcher = (path: string, init: RequestInit) => Promise<Response>;

/** Calls the relay as a device would: signed headers, JSON bodies. */
export class Caller {
  readonly #fetch: Fetcher;
  /** The relay's name (GET /v1/relay), fetched before the first signed request: it is signed. */
  #relayName: Promise<string> | undefined;
  constructor(fetcher: Fetcher) {
    this.#fetch = fetcher;
  }

  relayName(): Promise<string> {
    this.#relayName ??= this.#fetch('/v1/relay', { method: 'GET' })
      .then(async (r) => {
        const name = ((await r.json()) as { name?: unknown }).name;
        if (typeof name !== 'string') throw new Error(`GET /v1/relay answered ${r.status}`);
        return name;
      })
      .catch((e: unknown) => {
        this.#relayName = undefined;
        throw e;
      });
    return this.#relayName;
  }

  async call<T = Record<string, unknown>>(
    method: string,
    path: string,
    opts: {
      as?: TestDevice;
      json?: unknown;
      raw?: Uint8Array;
      contentType?: string;
      time?: number;
      headers?: Record<string, string>;
      /** Sign for this relay name instead of the called relay's own. */
      relay?: string;
    } = {},
  ): Promise<Answer<T>> {
    const bytes = opts.raw ?? (opts.json === undefined ? new Uint8Array(0) : utf8(JSON.stringify(opts.json)));
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.json !== undefined || opts.raw !== undefined)
      headers['content-type'] = opts.contentType ?? 'application/json';
    if (opts.as !== undefined) {
      Object.assign(
        headers,
        requestHeaders(
          opts.as.device,
          opts.as.kp.secretKey,
          method,
          path,
          opts.time ?? Date.now(),
          bytes,
          opts.relay ?? (await this.relayName()),
          suite,
        ),
      );
    }
    const res = await this.#fetch(path, {
      method,
      headers,
      ...(bytes.length > 0 || opts.raw !== undefined ? { body: bytes as Uint8Array<ArrayBuffer> } : {}),
    });
    const text = await res.text();
    let body: unknown = {};
    try {
      body = text.length === 0 ? {} : JSON.parse(text);
    } catch {
      body = { text };
    }
    return { status: res.status, body: body as T, headers: res.headers };
  }

  post(path: string, as: TestDevice | undefined, json: unknown) {
    return this.call('POST', path, { ...(as === undefined ? {} : { as }), json });
  }

  get(path: string, as?: TestDevice) {
    return this.call('GET', path, as === undefined ? {} : { as });
  }

  async publishParty(party: TestParty, devices: readonly TestDevice[]): Promise<void> {
    const r = await this.call('PUT', '/v1/cards', { json: { card: toBase64url(cardOf(party)) } });
    if (r.status !== 200) throw new Error(`card: ${r.status} ${JSON.stringify(r.body)}`);
    for (const d of devices) {
      const rd = await this.post('/v1/devices', undefined, registration(d));
      if (rd.status !== 200) throw new Error(`device: ${rd.status} ${JSON.stringify(rd.body)}`);
    }
  }

  append(dev: TestDevice, env: SignedEnvelope, channel: ChannelId = env.body.channel) {
    return this.call<AppendBody>('POST', `/v1/channels/${channel}/envelopes`, {
      as: dev,
      json: { envelope: toBase64url(env.wire) },
    });
  }
}

export interface AppendBody {
  seq: number;
  leafIndex: number;
  receivedAt: number;
  inclusionProof: string[];
  checkpoint: string;
  size: number;
  duplicate: boolean;
  receipt?: string;
  error?: { code: string; message: string };
}

export interface TestRelay {
  readonly core: RelayCore;
  readonly caller: Caller;
  readonly dir: string;
  close(): Promise<void>;
}

export type StoreKind = 'sqlite' | 'postgres';

/**
 * A relay driven through app.request(), on a temporary SQLite file or on a schema of its own in
 * the test PostgreSQL (services.ts: check servicesUp first), dropped on close. `pgPoolSize` is
 * the PostgreSQL store's number of connections (default 4).
 */
export async function testRelay(
  kind: StoreKind = 'sqlite',
  config: RelayConfigInput = {},
  opts: { pgPoolSize?: number; verifier?: Verifier } = {},
): Promise<TestRelay> {
  const dir = mkdtempSync(join(tmpdir(), 'bc-relay-'));
  const schema = kind === 'postgres' ? uniqueName('bc_relay') : undefined;
  const store: Store =
    schema === undefined
      ? openSqliteStore({ path: join(dir, 'relay.db') })
      : await openPostgresStore({ url: PG_URL, schema, max: opts.pgPoolSize ?? 4 });
  const core = createRelay({
    config: resolveConfig({ dataDir: dir, ...config }),
    store,
    seed: seedOf(`relay ${dir}`),
    ...(opts.verifier === undefined ? {} : { verifier: opts.verifier }),
  });
  const caller = new Caller(async (path, init) => core.app.request(path, init));
  return {
    core,
    caller,
    dir,
    async close() {
      await core.close();
      if (schema !== undefined) await dropSchema(schema);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Checks an append answer: the checkpoint verifies under the relay key and the proof includes the entry. */
export function verifyAppend(relay: RelayCore, a: AppendBody, entry: Uint8Array): boolean {
  const note = parseNote(a.checkpoint);
  if (!note.ok || !verifyNote(note.value, [relay.signer.verifier]).ok) return false;
  const lines = note.value.text.split('\n');
  const root = Buffer.from(lines[2] as string, 'base64');
  return verifyInclusion(
    leafHash(entry),
    a.seq,
    a.size,
    a.inclusionProof.map((p) => fromBase64url(p)),
    root,
  );
}

export function entrySeq(entry: Uint8Array): number {
  const d = decodeEntry(entry);
  if (!d.ok) throw new Error(d.message);
  return d.value.entry.seq;
}

/** Reads a channel's whole log, page by page, checking each page starts where the last ended. */
export async function readLog(caller: Caller, channel: string, as: TestDevice): Promise<Uint8Array[]> {
  const entries: Uint8Array[] = [];
  for (;;) {
    const page = await caller.get(`/v1/channels/${channel}/entries?from=${entries.length}`, as);
    const rows = page.body.entries as { seq: number; entry: string }[];
    if (rows.length === 0) return entries;
    for (const row of rows) {
      expect(row.seq).toBe(entries.length);
      entries.push(fromBase64url(row.entry));
    }
  }
}

/**
 * Every acknowledged message is in the log exactly once, at the seq its client was told, and the
 * log holds nothing else but the channel's opening entry.
 */
export function expectAckedOnce(entries: readonly Uint8Array[], acked: ReadonlyMap<string, number>): void {
  const bySeq = new Map<string, number>();
  entries.forEach((e, seq) => {
    const d = decodeEntry(e);
    if (!d.ok) throw new Error(d.message);
    const id = d.value.envelope.body.msgId;
    expect(bySeq.has(id), `msgId ${id} twice`).toBe(false);
    bySeq.set(id, seq);
  });
  for (const [msgId, seq] of acked) expect(bySeq.get(msgId), msgId).toBe(seq);
  expect(entries.length).toBe(1 + acked.size);
}
