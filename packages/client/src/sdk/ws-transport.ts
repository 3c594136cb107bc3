/**
 * Envelope posts over one authenticated WebSocket (PROTOCOL.md §11): `0x01 ‖ id ‖ wire` out,
 * a binary ack (or a JSON error frame with the same id) back, decoded into the AppendAnswer of
 * the HTTP route. Platform-neutral: the caller passes the WebSocket constructor (`ws` on Node).
 * Any socket failure rejects the posts in flight with a retryable ClientError; posts are
 * idempotent by message id, so the outbox's retry neither loses nor duplicates. The socket is
 * opened lazily, on the next post after a failure.
 */
import { type DeviceId, type SignatureSuite, signRequest, toBase64url } from '@backchannel/protocol';
import { ClientError } from './errors.ts';
import type { AppendAnswer, EnvelopeTransport } from './relay-client.ts';

/** The part of the WHATWG WebSocket API used here (the `ws` package and browsers have it). */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  // (`never`: each implementation has its own event types; only `data` of a message is read.)
  onopen: ((ev: never) => void) | null;
  onmessage: ((ev: never) => void) | null;
  onclose: ((ev: never) => void) | null;
  onerror: ((ev: never) => void) | null;
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface WsTransportOptions {
  /** The relay's HTTP(S) base URL; the socket goes to ws(s)://…/v1/ws. */
  readonly endpoint: string;
  readonly device: DeviceId;
  readonly secretKey: Uint8Array;
  readonly suite?: SignatureSuite;
  readonly WebSocket: WebSocketConstructor;
  readonly now: () => number;
  /** A socket with posts in flight and no answer for this long (or not ready by then) is dropped. */
  readonly timeoutMs: number;
  /** Larger envelopes go over HTTP (the relay's frame limit is below its envelope limit). */
  readonly maxFrameBytes?: number;
}

/** The relay's default frame limit is 400 KiB (`wsFrameBytes`); a larger frame closes the socket. */
const MAX_FRAME_BYTES = 400 * 1024;

interface Pending {
  readonly resolve: (a: AppendAnswer | undefined) => void;
  readonly reject: (e: ClientError) => void;
}

/** After a socket could not be opened or authenticated, posts go over HTTP for this long. */
const UNAVAILABLE_MS = 5_000;

/** Relay codes that are worth a retry (HTTP 5xx), as errorFromResponse decides them over HTTP. */
const RETRYABLE = new Set(['INTERNAL', 'NOT_READY', 'STORE_UNAVAILABLE', 'SLOW_CONSUMER']);

const td = new TextDecoder('utf-8', { fatal: true });

interface Socket {
  readonly ws: WebSocketLike;
  readonly ready: Promise<void>;
  readonly pending: Map<number, Pending>;
  nextId: number;
  lastHeard: number;
  timer: ReturnType<typeof setTimeout> | undefined;
  readyTimer: ReturnType<typeof setTimeout> | undefined;
  dead: boolean;
  /** Settles `ready`, once. */
  settle: { ok: () => void; no: (e: Error) => void } | undefined;
}

export class WsEnvelopeTransport implements EnvelopeTransport {
  readonly #o: WsTransportOptions;
  readonly #url: string;
  #sock: Socket | undefined;
  #unavailableUntil = 0;

  constructor(opts: WsTransportOptions) {
    this.#o = opts;
    this.#url = `${opts.endpoint.replace(/^http/i, 'ws').replace(/\/+$/, '')}/v1/ws`;
  }

  /**
   * Posts one envelope: its answer, or undefined when the socket could not be opened and
   * authenticated (nothing was sent: the caller posts over HTTP). Rejects with a ClientError.
   */
  async post(wire: Uint8Array): Promise<AppendAnswer | undefined> {
    if (wire.length + 5 > (this.#o.maxFrameBytes ?? MAX_FRAME_BYTES)) return undefined;
    if (this.#sock === undefined && Date.now() < this.#unavailableUntil) return undefined;
    const s = this.#sock ?? this.#open();
    try {
      await s.ready;
    } catch {
      this.#unavailableUntil = Date.now() + UNAVAILABLE_MS;
      return undefined;
    }
    if (s.dead) throw new ClientError('RELAY_UNREACHABLE', 'relay socket closed', { retryable: true });
    const id = s.nextId;
    s.nextId = (s.nextId + 1) >>> 0;
    const frame = new Uint8Array(5 + wire.length);
    frame[0] = 0x01;
    new DataView(frame.buffer).setUint32(1, id);
    frame.set(wire, 5);
    return new Promise<AppendAnswer | undefined>((resolve, reject) => {
      if (s.pending.size === 0) s.lastHeard = Date.now();
      s.pending.set(id, { resolve, reject });
      this.#watch(s);
      try {
        s.ws.send(frame);
      } catch {
        this.#fail(s, 'relay socket failed');
      }
    });
  }

  close(): void {
    const s = this.#sock;
    if (s !== undefined) this.#fail(s, 'relay socket closed by the client');
  }

  #open(): Socket {
    const ws = new this.#o.WebSocket(this.#url);
    ws.binaryType = 'arraybuffer';
    let settle: Socket['settle'];
    const ready = new Promise<void>((ok, no) => {
      settle = { ok, no };
    });
    const s: Socket = {
      ws,
      ready,
      pending: new Map(),
      nextId: 0,
      lastHeard: Date.now(),
      timer: undefined,
      readyTimer: undefined,
      dead: false,
      settle,
    };
    this.#sock = s;
    // Not authenticated in time (a connect that hangs, a proxy that forwards nothing): dropped,
    // and the posts waiting for it go over HTTP.
    s.readyTimer = setTimeout(() => {
      if (s.settle !== undefined) this.#fail(s, 'relay socket not ready in time');
    }, this.#o.timeoutMs);
    (s.readyTimer as { unref?: () => void }).unref?.();
    ws.onopen = () => {
      const time = this.#o.now();
      const sig = signRequest(this.#o.secretKey, 'WS', '/v1/ws', time, new Uint8Array(0), this.#o.suite);
      ws.send(JSON.stringify({ type: 'auth', device: this.#o.device, time, sig: toBase64url(sig) }));
    };
    ws.onmessage = (ev: { data: unknown }) => {
      const data = ev.data;
      if (typeof data === 'string') {
        this.#onText(s, data, () => {
          clearTimeout(s.readyTimer);
          s.settle?.ok();
          s.settle = undefined;
        });
      } else if (data instanceof ArrayBuffer) this.#onAck(s, new Uint8Array(data));
    };
    ws.onerror = () => this.#fail(s, 'relay socket failed');
    ws.onclose = () => this.#fail(s, 'relay socket closed');
    return s;
  }

  #onText(s: Socket, text: string, ready: () => void): void {
    let f: { type?: unknown; id?: unknown; code?: unknown; message?: unknown };
    try {
      f = JSON.parse(text) as typeof f;
    } catch {
      this.#fail(s, 'relay sent a frame that is not JSON');
      return;
    }
    if (f === null || typeof f !== 'object') {
      this.#fail(s, 'relay sent a malformed frame');
      return;
    }
    if (f.type === 'ready') {
      ready();
      return;
    }
    if (f.type !== 'error' || typeof f.id !== 'number') return;
    const p = s.pending.get(f.id);
    if (p === undefined) return;
    s.pending.delete(f.id);
    s.lastHeard = Date.now(); // only answers to posts count: other frames (inbox pushes) do not
    const code = typeof f.code === 'string' ? f.code : 'RELAY_ERROR';
    const message = typeof f.message === 'string' ? f.message : 'relay refused the envelope';
    // A frame the relay does not take over the socket (too large for a frame, envelopes over
    // HTTP only) is no refusal of the envelope: it goes over HTTP.
    if (code.startsWith('FRAME_')) p.resolve(undefined);
    else p.reject(errorFromFrame(code, message));
  }

  #onAck(s: Socket, b: Uint8Array): void {
    let decoded: { id: number; answer: AppendAnswer };
    try {
      decoded = decodeAck(b);
    } catch (e) {
      this.#fail(s, (e as Error).message, false);
      return;
    }
    const p = s.pending.get(decoded.id);
    if (p === undefined) return;
    s.pending.delete(decoded.id);
    s.lastHeard = Date.now();
    p.resolve(decoded.answer);
  }

  /**
   * Drops the socket and rejects what is in flight, retryably: RELAY_UNREACHABLE, or RELAY_ERROR
   * when the relay sent a malformed ack (which post it answered is unknown, so none is refused for
   * it; the re-posts are idempotent).
   */
  #fail(s: Socket, why: string, reachable = true): void {
    if (s.dead) return;
    s.dead = true;
    if (this.#sock === s) this.#sock = undefined;
    clearTimeout(s.timer);
    clearTimeout(s.readyTimer);
    s.settle?.no(new Error(why));
    s.settle = undefined;
    s.ws.onopen = s.ws.onmessage = s.ws.onerror = s.ws.onclose = null;
    s.ws.onerror = () => undefined; // `ws` emits an error for a socket closed while connecting
    try {
      s.ws.close();
    } catch {
      // already closed
    }
    const err = reachable
      ? new ClientError('RELAY_UNREACHABLE', why, { retryable: true })
      : new ClientError('RELAY_ERROR', why, { retryable: true });
    for (const p of s.pending.values()) p.reject(err);
    s.pending.clear();
  }

  /** One timer per socket, not per post: a socket silent with posts in flight is dropped. */
  #watch(s: Socket): void {
    if (s.timer !== undefined) return;
    const check = () => {
      s.timer = undefined;
      if (s.dead || s.pending.size === 0) return;
      const idle = Date.now() - s.lastHeard;
      if (idle >= this.#o.timeoutMs) {
        this.#fail(s, 'relay socket timed out');
        return;
      }
      s.timer = setTimeout(check, this.#o.timeoutMs - idle);
      (s.timer as { unref?: () => void }).unref?.();
    };
    s.timer = setTimeout(check, this.#o.timeoutMs);
    (s.timer as { unref?: () => void }).unref?.();
  }
}

/** A refusal by code, as errorFromResponse maps the same code over HTTP. */
export function errorFromFrame(code: string, message: string): ClientError {
  if (code === 'RATE_LIMITED')
    return new ClientError('RATE_LIMITED', message, { retryable: true, retryAfterMs: 1000, causeCode: code });
  if (RETRYABLE.has(code))
    return new ClientError('RELAY_ERROR', message, { retryable: true, causeCode: code });
  return new ClientError('RELAY_REFUSED', `${code}: ${message}`, { causeCode: code });
}

/**
 * A binary ack (layout in PROTOCOL.md §11), checked field by field: exact length, safe integers,
 * a UTF-8 checkpoint. Anything else throws (the relay, or something between, misbehaved).
 */
export function decodeAck(b: Uint8Array): { id: number; answer: AppendAnswer } {
  const bad = (what: string) => new Error(`relay sent a malformed ack (${what})`);
  if (b.length < 35 || b[0] !== 0x02) throw bad('kind');
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const u64 = (at: number) => {
    const hi = v.getUint32(at);
    if (hi >= 2 ** 21) throw bad('integer');
    return hi * 2 ** 32 + v.getUint32(at + 4);
  };
  if (((b[5] as number) & ~1) !== 0) throw bad('flags');
  const seq = u64(6);
  const receivedAt = u64(14);
  u64(22);
  const n = b[30] as number;
  let at = 31 + n * 32;
  if (at + 2 > b.length) throw bad('proof');
  const inclusionProof: string[] = [];
  for (let i = 0; i < n; i++) inclusionProof.push(toBase64url(b.subarray(31 + i * 32, 63 + i * 32)));
  const noteLen = v.getUint16(at);
  if (at + 2 + noteLen + 2 > b.length) throw bad('checkpoint');
  let checkpoint: string;
  try {
    checkpoint = td.decode(b.subarray(at + 2, at + 2 + noteLen));
  } catch {
    throw bad('checkpoint');
  }
  at += 2 + noteLen;
  const receiptLen = v.getUint16(at);
  if (at + 2 + receiptLen !== b.length) throw bad('length');
  const receipt = receiptLen === 0 ? undefined : toBase64url(b.subarray(at + 2));
  return {
    id: v.getUint32(1),
    answer: {
      seq,
      leafIndex: seq,
      receivedAt,
      inclusionProof,
      checkpoint,
      ...(receipt === undefined ? {} : { receipt }),
    },
  };
}
