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
import { ClientError } from './errors.ts';

export interface DeviceAuth {
  readonly device: DeviceId;
  readonly secretKey: Uint8Array;
  /** Ed25519 backend for request signatures (default: noble). */
  readonly suite?: SignatureSuite;
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

type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

export interface RelayClientOptions {
  readonly endpoints: readonly string[];
  readonly auth?: DeviceAuth;
  readonly now?: () => number;
  readonly fetch?: FetchLike;
  readonly timeoutMs?: number;
}

const enc = new TextEncoder();

export class RelayClient {
  readonly #endpoints: string[];
  readonly #auth: DeviceAuth | undefined;
  readonly #now: () => number;
  readonly #fetch: FetchLike;
  readonly #timeoutMs: number;
  #current = 0;

  constructor(opts: RelayClientOptions) {
    if (opts.endpoints.length === 0)
      throw new ClientError('INVALID_ARGUMENT', 'at least one relay endpoint is needed');
    this.#endpoints = opts.endpoints.map((e) => e.replace(/\/+$/, ''));
    this.#auth = opts.auth;
    this.#now = opts.now ?? Date.now;
    this.#fetch = opts.fetch ?? ((i, init) => fetch(i, init));
    this.#timeoutMs = opts.timeoutMs ?? 15_000;
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
    });
  }

  /** One request, failing over to the next endpoint when one is unreachable or unavailable. */
  async request<T>(
    method: string,
    path: string,
    body?: unknown,
    opts: { signed?: boolean } = {},
  ): Promise<T> {
    const bytes = body === undefined ? new Uint8Array(0) : enc.encode(JSON.stringify(body));
    let lastError: ClientError | undefined;
    for (let attempt = 0; attempt < this.#endpoints.length; attempt++) {
      const idx = (this.#current + attempt) % this.#endpoints.length;
      const base = this.#endpoints[idx] as string;
      const headers: Record<string, string> = {};
      if (body !== undefined) headers['content-type'] = 'application/json';
      if (opts.signed !== false && this.#auth !== undefined) {
        Object.assign(
          headers,
          requestHeaders(
            this.#auth.device,
            this.#auth.secretKey,
            method,
            path,
            this.#now(),
            bytes,
            this.#auth.suite,
          ),
        );
      }
      let res: Response;
      try {
        res = await this.#fetch(`${base}${path}`, {
          method,
          headers,
          ...(body === undefined ? {} : { body: bytes }),
          signal: AbortSignal.timeout(this.#timeoutMs),
        });
      } catch {
        lastError = new ClientError('RELAY_UNREACHABLE', `relay ${base} is unreachable`, { retryable: true });
        continue;
      }
      if (res.status === 502 || res.status === 503 || res.status === 504) {
        lastError = new ClientError('RELAY_UNREACHABLE', `relay ${base} is unavailable (${res.status})`, {
          retryable: true,
        });
        await res.body?.cancel();
        continue;
      }
      this.#current = idx;
      const text = await res.text();
      let json: unknown;
      try {
        json = text.length === 0 ? {} : JSON.parse(text);
      } catch {
        throw new ClientError('RELAY_ERROR', `relay answered ${res.status} with a body that is not JSON`, {
          retryable: res.status >= 500,
        });
      }
      if (res.ok) return json as T;
      throw errorFromResponse(res.status, json, res.headers.get('retry-after'));
    }
    throw (
      lastError ?? new ClientError('RELAY_UNREACHABLE', 'no relay endpoint answered', { retryable: true })
    );
  }

  relayInfo(): Promise<{ name: string; vkey: string }> {
    return this.request('GET', '/v1/relay', undefined, { signed: false });
  }

  putCard(card: Uint8Array): Promise<unknown> {
    return this.request('PUT', '/v1/cards', { card: toBase64url(card) }, { signed: false });
  }

  async getCard(party: string): Promise<Uint8Array> {
    const r = await this.request<{ card: string }>(
      'GET',
      `/v1/cards/${encodeURIComponent(party)}`,
      undefined,
      {
        signed: false,
      },
    );
    return fromBase64url(r.card);
  }

  registerDevice(certificate: Uint8Array): Promise<unknown> {
    return this.request('POST', '/v1/devices', { certificate: toBase64url(certificate) }, { signed: false });
  }

  revoke(revocation: Uint8Array): Promise<unknown> {
    return this.request(
      'POST',
      '/v1/revocations',
      { revocation: toBase64url(revocation) },
      { signed: false },
    );
  }

  async listDevices(party: string): Promise<{ certificates: Uint8Array[]; revocations: Uint8Array[] }> {
    const r = await this.request<{ certificates: string[]; revocations: string[] }>(
      'GET',
      `/v1/parties/${encodeURIComponent(party)}/devices`,
    );
    return {
      certificates: r.certificates.map((c) => fromBase64url(c)),
      revocations: r.revocations.map((c) => fromBase64url(c)),
    };
  }

  uploadKeyPackages(keyPackages: readonly Uint8Array[], lastResort?: Uint8Array): Promise<unknown> {
    return this.request('POST', '/v1/key-packages', {
      keyPackages: keyPackages.map(toBase64url),
      ...(lastResort === undefined ? {} : { lastResort: toBase64url(lastResort) }),
    });
  }

  async claimKeyPackages(party: string): Promise<ClaimedKeyPackage[]> {
    const r = await this.request<{
      keyPackages: { device: string; certificate: string; keyPackage: string }[];
    }>('POST', '/v1/key-packages/claim', { party });
    return r.keyPackages.map((k) => ({
      device: k.device,
      certificate: fromBase64url(k.certificate),
      keyPackage: fromBase64url(k.keyPackage),
    }));
  }

  /**
   * Envelope posts carry no request signature: the envelope's own device signature authenticates
   * them (PROTOCOL.md §11), and a replay only returns the original answer (idempotent by msgId).
   */
  postEnvelope(channel: string, wire: Uint8Array): Promise<AppendAnswer> {
    return this.request(
      'POST',
      `/v1/channels/${channel}/envelopes`,
      { envelope: toBase64url(wire) },
      { signed: false },
    );
  }

  async getEntries(channel: string, from: number, limit = 1000): Promise<EntriesAnswer> {
    const r = await this.request<{ entries: { seq: number; entry: string }[]; checkpoint: string }>(
      'GET',
      `/v1/channels/${channel}/entries?from=${from}&limit=${limit}`,
    );
    return {
      entries: r.entries.map((e) => ({ seq: e.seq, entry: fromBase64url(e.entry) })),
      checkpoint: r.checkpoint,
    };
  }

  async getCheckpoint(channel: string): Promise<{ checkpoint: string; cosignatures?: string[] }> {
    return this.request('GET', `/v1/channels/${channel}/checkpoint`);
  }

  /** The checkpoint issued at `size`, with the witness cosignature lines stored for it. */
  async getCheckpointAt(
    channel: string,
    size: number,
  ): Promise<{ checkpoint: string; size: number; cosignatures: string[] }> {
    return this.request('GET', `/v1/channels/${channel}/checkpoints/${size}`);
  }

  async postCosignature(
    channel: string,
    size: number,
    cosignature: string,
  ): Promise<{ cosignatures: number }> {
    return this.request('POST', `/v1/channels/${channel}/cosignatures`, { size, cosignature });
  }

  async getConsistency(channel: string, from: number, to: number): Promise<string[]> {
    const r = await this.request<{ proof: string[] }>(
      'GET',
      `/v1/channels/${channel}/proof/consistency?from=${from}&to=${to}`,
    );
    return r.proof;
  }

  async getInbox(after: number): Promise<InboxItem[]> {
    const r = await this.request<{
      items: { cursor: number; channel: string; seq: number; entry: string }[];
    }>('GET', `/v1/inbox?after=${after}`);
    return r.items.map((i) => ({ ...i, entry: fromBase64url(i.entry) }));
  }
}

function errorFromResponse(status: number, json: unknown, retryAfter: string | null): ClientError {
  const err = (json as { error?: { code?: unknown; message?: unknown; retryAfterMs?: unknown } }).error;
  const code = typeof err?.code === 'string' ? err.code : `HTTP_${status}`;
  const message = typeof err?.message === 'string' ? err.message : `relay answered ${status}`;
  if (status === 429) {
    const ms =
      typeof err?.retryAfterMs === 'number'
        ? err.retryAfterMs
        : retryAfter !== null
          ? Number(retryAfter) * 1000
          : 1000;
    return new ClientError('RATE_LIMITED', message, { retryable: true, retryAfterMs: ms, causeCode: code });
  }
  if (status >= 500) return new ClientError('RELAY_ERROR', message, { retryable: true, causeCode: code });
  return new ClientError('RELAY_REFUSED', `${code}: ${message}`, { causeCode: code });
}
