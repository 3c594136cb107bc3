/**
 * HTTP client for the relay API: signs each request with the device key, fails over between
 * several endpoints of the same relay (direct, or through a mediator's forwarding address),
 * and turns every refusal into a ClientError with a decision (retryable, retryAfterMs).
 */
import {
  type DeviceId,
  fromBase64url,
  requestHeaders,
  type SignatureSuite,
  toBase64url,
} from '@backchannel/protocol';
import { isValidKeyName } from '@backchannel/protocol/transcript';
import { z } from 'zod';
import { ClientError } from './errors.ts';

export interface DeviceAuth {
  readonly device: DeviceId;
  readonly secretKey: Uint8Array;
  /** Ed25519 backend for request signatures (default: noble). */
  readonly suite?: SignatureSuite;
}

/**
 * What a transport needs to authenticate: the device, and the name of the relay its signature is
 * for (PROTOCOL.md §11) — a string when known, else a promise (fetched once from GET /v1/relay).
 */
export interface TransportAuth extends DeviceAuth {
  readonly relayName: () => string | Promise<string>;
}

export interface AppendAnswer {
  readonly seq: number;
  readonly leafIndex: number;
  readonly receivedAt: number;
  readonly inclusionProof: readonly string[];
  readonly checkpoint: string;
  /** The relay's signed receipt for the envelope (accountable mediator), when it gives one. */
  readonly receipt?: string;
}

export interface EntriesAnswer {
  readonly entries: ReadonlyArray<{ seq: number; entry: Uint8Array }>;
  readonly checkpoint: string;
}

export interface InboxItem {
  readonly cursor: number;
  readonly channel: string;
  readonly seq: number;
  readonly entry: Uint8Array;
}

export interface ClaimedKeyPackage {
  readonly device: string;
  readonly certificate: Uint8Array;
  readonly keyPackage: Uint8Array;
}

/**
 * One channel's pushed entries, as the relay streams them (PROTOCOL.md §11). The listener checks
 * nothing the relay says: it hands entries and checkpoints to the SDK's verification.
 */
export interface EntryListener {
  /** Where to (re)start the stream: asked at each subscribe (the seq after the last one folded). */
  from(): number;
  /** The relay confirmed the subscription: entries from `from` follow, then live ones. */
  up(from: number): void;
  entry(seq: number, entry: Uint8Array): void;
  /** A signed checkpoint, sent once the entries before it were sent. */
  checkpoint(size: number, note: string): void;
  /**
   * The stream stopped (socket lost, or the relay ended it with `code`). It is renewed when the
   * socket is back, except after NOT_A_MEMBER (final: the listener is dropped).
   */
  down(code?: string): void;
}

/**
 * The relay's inbox hints for this device's party (PROTOCOL.md §11: `{type: "inbox", item}` on
 * every authenticated socket of the party). A hint only says "read the inbox": the inbox itself is
 * durable and read over HTTP, and a busy socket may skip hints.
 */
export interface InboxListener {
  /** The socket is authenticated: hints come from now on (what came before: read the inbox). */
  up(): void;
  /** The relay pushed an inbox item. */
  hint(): void;
  /** The socket is gone: no hints until `up` (the caller polls the inbox meanwhile). */
  down(): void;
}

/** Another way to post envelopes (a WebSocket): undefined when it cannot now (then HTTP is used). */
export interface EnvelopeTransport {
  post(wire: Uint8Array): Promise<AppendAnswer | undefined>;
  close(): void;
  /** Pushed entries of a channel (a WebSocket transport): the unsubscribe function. */
  subscribe?(channel: string, listener: EntryListener): () => void;
  /** Inbox hints on the same socket (kept open for them): the function that stops them. */
  subscribeInbox?(listener: InboxListener): () => void;
}

/**
 * Makes the envelope transport of one endpoint. `onLost`, when given, is called when the socket
 * that carries subscriptions is lost (closed, silent past its keep-alive, or could not be opened
 * again); the transport then does not reconnect on its own: the RelayClient moves every
 * subscription to another endpoint (it passes `onLost` only when it has another one).
 */
export type EnvelopeTransportFactory = (
  endpoint: string,
  auth: TransportAuth,
  timeoutMs: number,
  onLost?: () => void,
) => EnvelopeTransport;

type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

/**
 * The shapes of the relay's answers, checked before use: a relay (or anything between) may send
 * any JSON, and a missing field must be a ClientError, not a TypeError deep in the SDK. Objects
 * stay open and keep unknown keys (z.looseObject): a newer relay may add fields.
 */
const str = z.string();
const b64u = z.string().regex(/^[A-Za-z0-9_-]*$/);
const count = z.number().int().nonnegative();
const answers = {
  relayInfo: z.looseObject({
    name: str,
    vkey: str,
    rotation: str.optional(),
    rotations: z.array(str).max(64).optional(),
  }),
  card: z.looseObject({ card: b64u }),
  devices: z.looseObject({ certificates: z.array(b64u), revocations: z.array(b64u) }),
  claimed: z.looseObject({
    keyPackages: z.array(z.looseObject({ device: str, certificate: b64u, keyPackage: b64u })),
  }),
  append: z.looseObject({
    seq: count,
    leafIndex: count,
    receivedAt: count,
    inclusionProof: z.array(b64u),
    checkpoint: str,
    receipt: str.optional(),
  }),
  // Entry bytes are checked once, by bytesOf (the same base64url rule), not twice: pages are large.
  entries: z.looseObject({ entries: z.array(z.looseObject({ seq: count, entry: str })), checkpoint: str }),
  checkpoint: z.looseObject({ checkpoint: str, cosignatures: z.array(str).optional() }),
  checkpointAt: z.looseObject({ checkpoint: str, size: count, cosignatures: z.array(str) }),
  cosignatures: z.looseObject({ cosignatures: count }),
  proof: z.looseObject({ proof: z.array(b64u) }),
  inbox: z.looseObject({
    items: z.array(z.looseObject({ cursor: count, channel: str, seq: count, entry: b64u })),
  }),
  any: z.unknown(),
};

function answer<T>(schema: z.ZodType<T>, json: unknown, path: string): T {
  const r = schema.safeParse(json);
  if (r.success) return r.data;
  const at = r.error.issues[0]?.path.join('.') ?? '';
  throw new ClientError('RELAY_ERROR', `relay answered ${path.split('?')[0]} with a malformed body (${at})`);
}

export interface RelayClientOptions {
  readonly endpoints: readonly string[];
  readonly auth?: DeviceAuth;
  readonly now?: () => number;
  readonly fetch?: FetchLike;
  readonly timeoutMs?: number;
  /** Envelope posts go through the transport this makes for an endpoint (default: HTTP only). */
  readonly envelopeTransport?: EnvelopeTransportFactory;
  /**
   * The name of the relay this device pinned (the name in its pinned checkpoint key): every
   * request signature names it (PROTOCOL.md §11), so a signed request is good at this relay only.
   * Undefined while nothing is pinned: then the name GET /v1/relay gives, fetched once.
   */
  readonly relayName?: () => string | undefined;
}

const enc = new TextEncoder();

/** A socket lost this many times in a row (none lasted between) waits before the next one. */
const MOVE_MIN_MS = 250;
const MOVE_MAX_MS = 5_000;
/** A socket whose streams were up this long was a working one: its loss moves them at once. */
const STABLE_MS = 10_000;

/**
 * A clock for signing requests and auth frames: `now`, but never the same millisecond twice.
 * Ed25519 signatures are deterministic, so a request signed again within the same millisecond
 * (a failover retry, two sockets opened at once) would be byte-identical, and a relay that
 * already took the first (any node of a cluster) would refuse it as a replay (AUTH_REPLAY).
 */
export function signingClock(now: () => number): () => number {
  let last = -1; // the first reading passes as it is, even 0
  return () => {
    last = Math.max(now(), last + 1);
    return last;
  };
}

/** A subscription kept across transports: `w` is what the transport holds, `off` ends it there. */
interface Kept<L> {
  readonly w: L;
  off: (() => void) | undefined;
}

interface TransportSlot {
  readonly endpoint: string;
  t: EnvelopeTransport;
  /** When a stream (or inbox hints) first came up on it. */
  upAt: number | undefined;
}

export class RelayClient {
  readonly #endpoints: string[];
  readonly #auth: DeviceAuth | undefined;
  readonly #now: () => number;
  /** The time a request is signed at (signingClock). */
  readonly #signingTime: () => number;
  readonly #fetch: FetchLike;
  readonly #timeoutMs: number;
  readonly #makeTransport: RelayClientOptions['envelopeTransport'];
  readonly #pinnedName: (() => string | undefined) | undefined;
  /** The relay's name as GET /v1/relay gave it (first answer), when none is pinned. */
  #fetchedName: Promise<string> | undefined;
  #transport: TransportSlot | undefined;
  #current = 0;
  /** Entry streams and inbox hints, moved to the new transport when the endpoint changes. */
  readonly #subs = new Map<string, Kept<EntryListener>>();
  readonly #inboxSubs = new Set<Kept<InboxListener>>();
  /** Sockets lost in a row with none lasting STABLE_MS between, and the pending move. */
  #lostInARow = 0;
  #moveTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(opts: RelayClientOptions) {
    if (opts.endpoints.length === 0)
      throw new ClientError('INVALID_ARGUMENT', 'at least one relay endpoint is needed');
    this.#endpoints = opts.endpoints.map((e) => e.replace(/\/+$/, ''));
    this.#auth = opts.auth;
    this.#now = opts.now ?? Date.now;
    this.#signingTime = signingClock(this.#now);
    this.#fetch = opts.fetch ?? ((i, init) => fetch(i, init));
    this.#timeoutMs = opts.timeoutMs ?? 15_000;
    this.#makeTransport = opts.envelopeTransport;
    this.#pinnedName = opts.relayName;
  }

  get endpoint(): string {
    return this.#endpoints[this.#current] as string;
  }

  get endpoints(): readonly string[] {
    return this.#endpoints;
  }

  withAuth(auth: DeviceAuth): RelayClient {
    return new RelayClient({
      endpoints: this.#endpoints,
      auth,
      now: this.#now,
      fetch: this.#fetch,
      timeoutMs: this.#timeoutMs,
      ...(this.#makeTransport === undefined ? {} : { envelopeTransport: this.#makeTransport }),
      ...(this.#pinnedName === undefined ? {} : { relayName: this.#pinnedName }),
    });
  }

  /**
   * The name of the relay that request signatures are for: the pinned one, else the name
   * GET /v1/relay answered (fetched once, on the first signed request; fetched again after a
   * failure).
   */
  relayName(): Promise<string> {
    const pinned = this.#pinnedName?.();
    if (pinned !== undefined) return Promise.resolve(pinned);
    this.#fetchedName ??= this.relayInfo()
      .then((i) => {
        // A note key name (C2SP signed-note), as the relay's checkpoints carry it.
        if (!isValidKeyName(i.name))
          throw new ClientError('RELAY_ERROR', 'relay answered /v1/relay with an invalid name');
        return i.name;
      })
      .catch((e: unknown) => {
        this.#fetchedName = undefined;
        throw e;
      });
    return this.#fetchedName;
  }

  /** The pinned name as is (a socket's auth frame goes out at once), else relayName(). */
  #knownRelayName(): string | Promise<string> {
    return this.#pinnedName?.() ?? this.relayName();
  }

  /** Closes the envelope transport's socket, if any, and ends its subscriptions (the next post opens another). */
  close(): void {
    clearTimeout(this.#moveTimer);
    this.#moveTimer = undefined;
    this.#subs.clear();
    this.#inboxSubs.clear();
    this.#transport?.t.close();
    this.#transport = undefined;
  }

  /** One request, failing over to the next endpoint when one is unreachable or unavailable. */
  async request<T>(
    method: string,
    path: string,
    schema: z.ZodType<T>,
    body?: unknown,
    opts: { signed?: boolean } = {},
  ): Promise<T> {
    const bytes = body === undefined ? new Uint8Array(0) : enc.encode(JSON.stringify(body));
    const signed = opts.signed !== false && this.#auth !== undefined;
    // PROTOCOL.md §11: the signature names the relay; learnt before the first signed request.
    const relayName = signed ? await this.relayName() : '';
    let lastError: ClientError | undefined;
    for (let attempt = 0; attempt < this.#endpoints.length; attempt++) {
      const idx = (this.#current + attempt) % this.#endpoints.length;
      const base = this.#endpoints[idx] as string;
      const headers: Record<string, string> = {};
      if (body !== undefined) headers['content-type'] = 'application/json';
      if (signed && this.#auth !== undefined) {
        Object.assign(
          headers,
          requestHeaders(
            this.#auth.device,
            this.#auth.secretKey,
            method,
            path,
            this.#signingTime(),
            bytes,
            relayName,
            this.#auth.suite,
          ),
        );
      }
      const got = await this.#exchange(base, path, {
        method,
        headers,
        ...(body === undefined ? {} : { body: bytes }),
      });
      if (got instanceof ClientError) {
        lastError = got;
        continue;
      }
      const { res, text } = got;
      let json: unknown;
      try {
        json = text.length === 0 ? {} : JSON.parse(text);
      } catch {
        // The relay answers JSON, errors included: this came from something in front of it (a
        // proxy's error page, a captive portal). Not the relay's word, so not a relay fault to
        // stop on: the next endpoint is tried, and alone it is an outage to retry.
        lastError = new ClientError(
          'RELAY_UNREACHABLE',
          `${base} answered ${res.status} with a body that is not JSON: not the relay (a proxy or captive portal?)`,
          { retryable: true },
        );
        continue;
      }
      this.#current = idx;
      if (res.ok) return answer(schema, json, path);
      throw errorFromResponse(res.status, json, res.headers.get('retry-after'));
    }
    throw (
      lastError ?? new ClientError('RELAY_UNREACHABLE', 'no relay endpoint answered', { retryable: true })
    );
  }

  /**
   * One HTTP exchange with one endpoint, the answer's body included, within timeoutMs: the answer,
   * or the retryable ClientError that sends the request on to the next endpoint.
   */
  async #exchange(
    base: string,
    path: string,
    init: RequestInit,
  ): Promise<{ res: Response; text: string } | ClientError> {
    const abort = new AbortController();
    // A timer that holds the event loop, unlike AbortSignal.timeout's: Node's fetch, on a
    // connection accepted and dropped at once (a forwarder whose backend is down), waits with no
    // socket, and with nothing else to hold it a CLI process ended mid-command (exit 13, nothing
    // said) instead of reporting the relay unreachable.
    const timer = setTimeout(
      () => abort.abort(new DOMException('relay request timed out', 'TimeoutError')),
      this.#timeoutMs,
    );
    try {
      let res: Response;
      try {
        res = await this.#fetch(`${base}${path}`, { ...init, signal: abort.signal });
      } catch {
        return new ClientError('RELAY_UNREACHABLE', `relay ${base} is unreachable`, { retryable: true });
      }
      if (res.status === 502 || res.status === 503 || res.status === 504) {
        await res.body?.cancel();
        return new ClientError('RELAY_UNREACHABLE', `relay ${base} is unavailable (${res.status})`, {
          retryable: true,
        });
      }
      // The body is read under the same deadline: a relay, or a proxy, that sends the headers
      // and then stalls or drops the connection mid-body is unreachable like one that never
      // answered — not a TimeoutError or undici's "terminated" TypeError (untyped, they stopped
      // `watch` and made a command exit 2 with INTERNAL).
      try {
        return { res, text: await res.text() };
      } catch {
        return new ClientError('RELAY_UNREACHABLE', `relay ${base} stopped answering mid-answer`, {
          retryable: true,
        });
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /** Who the relay is (unsigned); the first valid name answered is kept for request signatures. */
  async relayInfo(): Promise<{
    name: string;
    vkey: string;
    rotation?: string | undefined;
    rotations?: string[] | undefined;
  }> {
    const info = await this.request('GET', '/v1/relay', answers.relayInfo, undefined, { signed: false });
    if (this.#fetchedName === undefined && isValidKeyName(info.name))
      this.#fetchedName = Promise.resolve(info.name);
    return info;
  }

  putCard(card: Uint8Array): Promise<unknown> {
    return this.request('PUT', '/v1/cards', answers.any, { card: toBase64url(card) }, { signed: false });
  }

  async getCard(party: string): Promise<Uint8Array> {
    const path = `/v1/cards/${encodeURIComponent(party)}`;
    try {
      const r = await this.request('GET', path, answers.card, undefined, { signed: false });
      return bytesOf(r.card, path);
    } catch (e) {
      if (e instanceof ClientError && e.cause_code === 'PARTY_UNKNOWN')
        throw new ClientError(
          'CARD_UNKNOWN',
          `this relay has no contact card for ${party}: check the party id (its admin publishes the card with \`backchannel card publish\`)`,
          { causeCode: 'PARTY_UNKNOWN' },
        );
      throw e;
    }
  }

  /** `proof`: the device key's signature over the certificate (proveDeviceKey, PROTOCOL.md §4). */
  registerDevice(certificate: Uint8Array, proof: Uint8Array): Promise<unknown> {
    return this.request(
      'POST',
      '/v1/devices',
      answers.any,
      { certificate: toBase64url(certificate), proof: toBase64url(proof) },
      { signed: false },
    );
  }

  /** Redeems this device's invite for `installation` (the first installation keeps it). */
  claimEnrollment(installation: Uint8Array): Promise<unknown> {
    return this.request('POST', '/v1/devices/enrollment', answers.any, {
      installation: toBase64url(installation),
    });
  }

  revoke(revocation: Uint8Array): Promise<unknown> {
    return this.request(
      'POST',
      '/v1/revocations',
      answers.any,
      { revocation: toBase64url(revocation) },
      { signed: false },
    );
  }

  async listDevices(party: string): Promise<{ certificates: Uint8Array[]; revocations: Uint8Array[] }> {
    const path = `/v1/parties/${encodeURIComponent(party)}/devices`;
    const r = await this.request('GET', path, answers.devices);
    return {
      certificates: r.certificates.map((c) => bytesOf(c, path)),
      revocations: r.revocations.map((c) => bytesOf(c, path)),
    };
  }

  uploadKeyPackages(keyPackages: readonly Uint8Array[], lastResort?: Uint8Array): Promise<unknown> {
    return this.request('POST', '/v1/key-packages', answers.any, {
      keyPackages: keyPackages.map(toBase64url),
      ...(lastResort === undefined ? {} : { lastResort: toBase64url(lastResort) }),
    });
  }

  /** One key package per valid device of `party`, or only for `device` when it is named. */
  async claimKeyPackages(party: string, device?: string): Promise<ClaimedKeyPackage[]> {
    const path = '/v1/key-packages/claim';
    const r = await this.request(
      'POST',
      path,
      answers.claimed,
      device === undefined ? { party } : { party, device },
    );
    return r.keyPackages.map((k) => ({
      device: k.device,
      certificate: bytesOf(k.certificate, path),
      keyPackage: bytesOf(k.keyPackage, path),
    }));
  }

  /**
   * Envelope posts carry no request signature: the envelope's own device signature authenticates
   * them (PROTOCOL.md §11), and a replay only returns the original answer (idempotent by msgId).
   */
  async postEnvelope(channel: string, wire: Uint8Array): Promise<AppendAnswer> {
    const t = this.#envelopeTransport();
    if (t !== undefined) {
      const a = await t.post(wire);
      if (a !== undefined) return a;
    }
    return this.request(
      'POST',
      `/v1/channels/${channel}/envelopes`,
      answers.append as z.ZodType<AppendAnswer>,
      { envelope: toBase64url(wire) },
      { signed: false },
    );
  }

  /**
   * Streams a channel's entries to `listener` over the envelope transport's socket; undefined
   * when there is no such transport (HTTP only: the caller polls `getEntries`). The stream follows
   * endpoint failover: when the socket's endpoint is lost (or posts and requests moved to another
   * endpoint), the listener goes down and is subscribed again on the new endpoint's socket, from
   * its `from()`.
   */
  subscribe(channel: string, listener: EntryListener): (() => void) | undefined {
    const t = this.#envelopeTransport();
    if (t?.subscribe === undefined) return undefined;
    const kept: Kept<EntryListener> = {
      w: {
        from: () => listener.from(),
        up: (from) => {
          this.#streamUp();
          listener.up(from);
        },
        entry: (seq, entry) => listener.entry(seq, entry),
        checkpoint: (size, note) => listener.checkpoint(size, note),
        down: (code) => {
          // Final (the transport dropped it too): not moved to another endpoint.
          if ((code === 'NOT_A_MEMBER' || code === 'CHANNEL_UNKNOWN') && this.#subs.get(channel) === kept)
            this.#subs.delete(channel);
          listener.down(code);
        },
      },
      off: undefined,
    };
    this.#subs.set(channel, kept);
    kept.off = t.subscribe(channel, kept.w);
    return () => {
      if (this.#subs.get(channel) !== kept) return;
      this.#subs.delete(channel);
      kept.off?.();
    };
  }

  /**
   * Inbox hints for this device's party on the envelope transport's socket (opened and kept open
   * for them); undefined when there is no such transport (the caller polls `getInbox`). Follows
   * endpoint failover as `subscribe` does.
   */
  subscribeInbox(listener: InboxListener): (() => void) | undefined {
    const t = this.#envelopeTransport();
    if (t?.subscribeInbox === undefined) return undefined;
    const kept: Kept<InboxListener> = {
      w: {
        up: () => {
          this.#streamUp();
          listener.up();
        },
        hint: () => listener.hint(),
        down: () => listener.down(),
      },
      off: undefined,
    };
    this.#inboxSubs.add(kept);
    kept.off = t.subscribeInbox(kept.w);
    return () => {
      if (!this.#inboxSubs.delete(kept)) return;
      kept.off?.();
    };
  }

  /** A stream came up on the current transport: its loss after STABLE_MS resets the backoff (#lost). */
  #streamUp(): void {
    if (this.#transport !== undefined) this.#transport.upAt ??= Date.now();
  }

  /** The transport for the current endpoint (after a failover, a new one for the new endpoint). */
  #envelopeTransport(): EnvelopeTransport | undefined {
    if (this.#makeTransport === undefined || this.#auth === undefined) return undefined;
    const slot = this.#transport?.endpoint === this.endpoint ? this.#transport : this.#newTransport();
    return slot?.t;
  }

  /**
   * A transport for the current endpoint, replacing the old one (closed): every subscription goes
   * down on the old socket and is renewed on the new one, from its listener's `from()` (the
   * listener skips what it already folded: no gap, no duplicate).
   */
  #newTransport(): TransportSlot | undefined {
    const make = this.#makeTransport;
    const auth = this.#auth;
    if (make === undefined || auth === undefined) return undefined;
    clearTimeout(this.#moveTimer);
    this.#moveTimer = undefined;
    this.#transport?.t.close();
    const slot: TransportSlot = {
      endpoint: this.endpoint,
      t: undefined as unknown as EnvelopeTransport,
      upAt: undefined,
    };
    const onLost = this.#endpoints.length > 1 ? () => this.#lost(slot) : undefined;
    slot.t = make(
      slot.endpoint,
      { ...auth, relayName: () => this.#knownRelayName() },
      this.#timeoutMs,
      onLost,
    );
    this.#transport = slot;
    for (const [channel, kept] of this.#subs) {
      kept.w.down();
      kept.off = slot.t.subscribe?.(channel, kept.w);
    }
    for (const kept of this.#inboxSubs) {
      kept.w.down();
      kept.off = slot.t.subscribeInbox?.(kept.w);
    }
    return slot;
  }

  /**
   * The socket carrying subscriptions was lost (with several endpoints only): they move to the
   * endpoint HTTP requests moved to, else to the next one. A move happens at once for each
   * endpoint in turn; when all of them were lost in a row, the next waits 0.25 s, doubling to 5 s
   * (HTTP polling covers the wait).
   */
  #lost(slot: TransportSlot): void {
    if (this.#transport !== slot || this.#moveTimer !== undefined) return;
    const n = this.#endpoints.length;
    const at = this.#endpoints.indexOf(slot.endpoint);
    if (this.#current === at) this.#current = (at + 1) % n;
    // Only a socket that lasted starts the backoff again: one whose streams came up and were
    // dropped at once (a relay that authenticates, then closes every socket) counts as lost, or
    // the moves between endpoints would loop as fast as sockets open.
    if (slot.upAt !== undefined && Date.now() - slot.upAt >= STABLE_MS) this.#lostInARow = 0;
    const k = this.#lostInARow++;
    const wait = k < n ? 0 : Math.min(MOVE_MAX_MS, MOVE_MIN_MS * 2 ** (k - n));
    this.#moveTimer = setTimeout(() => {
      this.#moveTimer = undefined;
      if (this.#transport === slot) this.#newTransport();
    }, wait);
    (this.#moveTimer as { unref?: () => void }).unref?.();
  }

  async getEntries(channel: string, from: number, limit = 1000): Promise<EntriesAnswer> {
    const path = `/v1/channels/${channel}/entries?from=${from}&limit=${limit}`;
    const r = await this.request('GET', path, answers.entries);
    return {
      entries: r.entries.map((e) => ({ seq: e.seq, entry: bytesOf(e.entry, path) })),
      checkpoint: r.checkpoint,
    };
  }

  async getCheckpoint(channel: string): Promise<{ checkpoint: string; cosignatures?: string[] }> {
    return this.request(
      'GET',
      `/v1/channels/${channel}/checkpoint`,
      answers.checkpoint as z.ZodType<{ checkpoint: string; cosignatures?: string[] }>,
    );
  }

  /** The checkpoint issued at `size`, with the witness cosignature lines stored for it. */
  async getCheckpointAt(
    channel: string,
    size: number,
  ): Promise<{ checkpoint: string; size: number; cosignatures: string[] }> {
    return this.request('GET', `/v1/channels/${channel}/checkpoints/${size}`, answers.checkpointAt);
  }

  async postCosignature(
    channel: string,
    size: number,
    cosignature: string,
  ): Promise<{ cosignatures: number }> {
    return this.request('POST', `/v1/channels/${channel}/cosignatures`, answers.cosignatures, {
      size,
      cosignature,
    });
  }

  async getConsistency(channel: string, from: number, to: number): Promise<string[]> {
    const r = await this.request(
      'GET',
      `/v1/channels/${channel}/proof/consistency?from=${from}&to=${to}`,
      answers.proof,
    );
    return r.proof;
  }

  async getInbox(after: number): Promise<InboxItem[]> {
    const path = `/v1/inbox?after=${after}`;
    const r = await this.request('GET', path, answers.inbox);
    return r.items.map((i) => ({ ...i, entry: bytesOf(i.entry, path) }));
  }
}

/** base64url from the relay; text that only looks like it is a malformed answer (RELAY_ERROR). */
function bytesOf(s: string, path: string): Uint8Array {
  try {
    return fromBase64url(s);
  } catch {
    throw new ClientError(
      'RELAY_ERROR',
      `relay answered ${path.split('?')[0]} with bytes that are not base64url`,
    );
  }
}

function errorFromResponse(status: number, json: unknown, retryAfter: string | null): ClientError {
  // any JSON may come back, null included
  const err =
    json !== null && typeof json === 'object'
      ? (json as { error?: { code?: unknown; message?: unknown; retryAfterMs?: unknown } }).error
      : undefined;
  const code = typeof err?.code === 'string' ? err.code : `HTTP_${status}`;
  const message = typeof err?.message === 'string' ? err.message : `relay answered ${status}`;
  if (status === 429) {
    // a delay only when it is one: "soon", "-5" or 1e400 fall back to a second
    const delay = (x: number) => (Number.isFinite(x) && x >= 0 ? x : undefined);
    const ms =
      (typeof err?.retryAfterMs === 'number' ? delay(err.retryAfterMs) : undefined) ??
      (retryAfter !== null && retryAfter.trim() !== '' ? delay(Number(retryAfter) * 1000) : undefined) ??
      1000;
    return new ClientError('RATE_LIMITED', message, { retryable: true, retryAfterMs: ms, causeCode: code });
  }
  if (status >= 500) return new ClientError('RELAY_ERROR', message, { retryable: true, causeCode: code });
  return new ClientError('RELAY_REFUSED', `${code}: ${message}`, { causeCode: code });
}
