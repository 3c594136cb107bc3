/**
 * Envelope posts over one authenticated WebSocket (PROTOCOL.md §11): `0x01 ‖ id ‖ wire` out,
 * a binary ack (or a JSON error frame with the same id) back, decoded into the AppendAnswer of
 * the HTTP route. The same socket carries channel subscriptions with binary entry frames
 * (`0x03 ‖ channel ‖ seq ‖ entry`, then a JSON checkpoint): see `subscribe`, and the party's
 * inbox hints: see `subscribeInbox`. Platform-neutral: the caller passes the WebSocket
 * constructor (`ws` on Node).
 * Any socket failure rejects the posts in flight with a retryable ClientError; posts are
 * idempotent by message id, so the outbox's retry neither loses nor duplicates. The socket is
 * opened lazily, on the next post after a failure.
 */
import { type DeviceId, type SignatureSuite, signRequest, toBase64url } from '@backchannel/protocol';
import { ClientError } from './errors.ts';
import type { AppendAnswer, EntryListener, EnvelopeTransport, InboxListener } from './relay-client.ts';

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
  /** Drops the connection without a closing handshake (`ws` on Node has it; browsers do not). */
  terminate?(): void;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface WsTransportOptions {
  /** The relay's HTTP(S) base URL; the socket goes to ws(s)://…/v1/ws. */
  readonly endpoint: string;
  readonly device: DeviceId;
  readonly secretKey: Uint8Array;
  readonly suite?: SignatureSuite;
  /**
   * The name of the relay the auth frame is signed for (PROTOCOL.md §11): a string when known,
   * else a promise (RelayClient fetches it once from GET /v1/relay).
   */
  readonly relayName: () => string | Promise<string>;
  readonly WebSocket: WebSocketConstructor;
  readonly now: () => number;
  /** A socket with posts in flight and no answer for this long (or not ready by then) is dropped. */
  readonly timeoutMs: number;
  /** Larger envelopes go over HTTP (the relay's frame limit is below its envelope limit). */
  readonly maxFrameBytes?: number;
  /**
   * While channels are subscribed, a ping every this often (default 15 s); a socket that has not
   * answered one within timeoutMs is dropped, so a relay gone silent without closing the socket
   * is noticed and the subscriptions resume (HTTP polling covers the gap).
   */
  readonly keepAliveMs?: number;
  /**
   * The socket carrying subscriptions was lost (closed, failed, silent past the keep-alive, not
   * ready in time, or could not be opened). When given, the transport does not reconnect: the
   * owner moves the subscriptions to another endpoint (RelayClient's failover). Without it, a new
   * socket to this endpoint resubscribes after a backoff.
   */
  readonly onLost?: () => void;
}

const KEEPALIVE_MS = 15_000;

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
  /** The keep-alive's next ping (or deadline), and when the unanswered ping went out. */
  pingTimer: ReturnType<typeof setTimeout> | undefined;
  pingSentAt: number | undefined;
  /** When the relay said `ready` (undefined before). */
  readyAt: number | undefined;
  dead: boolean;
  /** Settles `ready`, once. */
  settle: { ok: () => void; no: (e: Error) => void } | undefined;
}

export class WsEnvelopeTransport implements EnvelopeTransport {
  readonly #o: WsTransportOptions;
  readonly #url: string;
  #sock: Socket | undefined;
  #unavailableUntil = 0;
  readonly #subs = new Map<string, EntryListener>();
  readonly #inbox = new Set<InboxListener>();
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  #reconnectMs = RECONNECT_MIN_MS;

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

  /**
   * Streams a channel's entries to `l` over this socket (binary frames), from `l.from()`, and again
   * from `l.from()` after every reconnect. Returns the unsubscribe function.
   */
  subscribe(channel: string, l: EntryListener): () => void {
    if (!/^c_[A-Za-z0-9_-]{22}$/.test(channel)) throw new Error('not a channel id');
    this.#subs.set(channel, l);
    const s = this.#sock ?? this.#open();
    if (s.settle === undefined && !s.dead) {
      this.#sendSubscribe(s, channel, l);
      this.#keepAlive(s);
    }
    return () => {
      if (this.#subs.get(channel) !== l) return;
      this.#subs.delete(channel);
      const now = this.#sock;
      if (now !== undefined && now.settle === undefined && !now.dead) {
        try {
          now.ws.send(JSON.stringify({ type: 'unsubscribe', channel }));
        } catch {
          // the socket is going: nothing to unsubscribe from
        }
      }
    };
  }

  /**
   * Hands the relay's inbox hints for this device's party to `l`; the socket is opened (and kept
   * open, reconnected, kept alive) for them as for a subscription. Returns the function that stops.
   */
  subscribeInbox(l: InboxListener): () => void {
    this.#inbox.add(l);
    const s = this.#sock ?? this.#open();
    if (s.settle === undefined && !s.dead) {
      l.up();
      this.#keepAlive(s);
    }
    return () => {
      this.#inbox.delete(l);
    };
  }

  /** Whether anything keeps the socket open: channel subscriptions or inbox listeners. */
  get #watched(): boolean {
    return this.#subs.size > 0 || this.#inbox.size > 0;
  }

  /** Whether the socket is open and authenticated. */
  get ready(): boolean {
    const s = this.#sock;
    return s !== undefined && !s.dead && s.settle === undefined;
  }

  close(): void {
    this.#subs.clear();
    this.#inbox.clear();
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    const s = this.#sock;
    if (s !== undefined) this.#fail(s, 'relay socket closed by the client');
  }

  #sendSubscribe(s: Socket, channel: string, l: EntryListener): void {
    try {
      s.ws.send(JSON.stringify({ type: 'subscribe', channel, from: l.from(), binary: true }));
    } catch {
      this.#fail(s, 'relay socket failed');
    }
  }

  /** With subscriptions and no socket: a new one after a backoff (0.25 s doubling to 5 s). */
  #scheduleReconnect(): void {
    if (!this.#watched || this.#reconnectTimer !== undefined) return;
    const wait = this.#reconnectMs;
    this.#reconnectMs = Math.min(RECONNECT_MAX_MS, wait * 2);
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      if (this.#watched && this.#sock === undefined) this.#open();
    }, wait);
    (this.#reconnectTimer as { unref?: () => void }).unref?.();
  }

  #open(): Socket {
    const ws = new this.#o.WebSocket(this.#url);
    ws.binaryType = 'arraybuffer';
    let settle: Socket['settle'];
    const ready = new Promise<void>((ok, no) => {
      settle = { ok, no };
    });
    // A socket opened for subscriptions alone has no post awaiting `ready`: its failure to open
    // must not be an unhandled rejection (which ends a Node process).
    ready.catch(() => undefined);
    const s: Socket = {
      ws,
      ready,
      pending: new Map(),
      nextId: 0,
      lastHeard: Date.now(),
      timer: undefined,
      readyTimer: undefined,
      pingTimer: undefined,
      pingSentAt: undefined,
      readyAt: undefined,
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
    const sendAuth = (relayName: string) => {
      if (s.dead) return;
      const time = this.#o.now();
      try {
        const sig = signRequest(
          this.#o.secretKey,
          'WS',
          '/v1/ws',
          time,
          new Uint8Array(0),
          relayName,
          this.#o.suite,
        );
        ws.send(JSON.stringify({ type: 'auth', device: this.#o.device, time, sig: toBase64url(sig) }));
      } catch {
        this.#fail(s, 'relay socket could not be authenticated');
      }
    };
    ws.onopen = () => {
      let name: string | Promise<string>;
      try {
        name = this.#o.relayName();
      } catch {
        name = Promise.reject(new Error('relay name unknown'));
      }
      if (typeof name === 'string') sendAuth(name);
      else name.then(sendAuth, () => this.#fail(s, 'relay name unknown (GET /v1/relay failed)'));
    };
    ws.onmessage = (ev: { data: unknown }) => {
      const data = ev.data;
      if (typeof data === 'string') {
        this.#onText(s, data, () => {
          clearTimeout(s.readyTimer);
          s.settle?.ok();
          s.settle = undefined;
          s.readyAt = Date.now();
          for (const [channel, l] of this.#subs) this.#sendSubscribe(s, channel, l);
          for (const l of this.#inbox) l.up();
          this.#keepAlive(s);
        });
      } else if (data instanceof ArrayBuffer) {
        const b = new Uint8Array(data);
        if (b[0] === 0x03) this.#onEntry(s, b);
        else this.#onAck(s, b);
      }
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
    if (f.type === 'pong') {
      s.pingSentAt = undefined;
      return;
    }
    if (f.type === 'inbox') {
      for (const l of this.#inbox) l.hint();
      return;
    }
    if (this.#onChannelFrame(f as ChannelFrame)) return;
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

  /** subscribed / checkpoint / unsubscribed, or an error about a channel: true when it was one. */
  #onChannelFrame(f: ChannelFrame): boolean {
    if (typeof f.channel !== 'string') return false;
    const l = this.#subs.get(f.channel);
    if (f.type === 'subscribed') {
      if (l !== undefined && typeof f.from === 'number') l.up(f.from);
      return true;
    }
    if (f.type === 'checkpoint') {
      if (l !== undefined && typeof f.size === 'number' && typeof f.checkpoint === 'string')
        l.checkpoint(f.size, f.checkpoint);
      return true;
    }
    if (f.type !== 'unsubscribed' && !(f.type === 'error' && f.id === undefined)) return false;
    if (l === undefined) return true;
    const code = typeof f.code === 'string' ? f.code : undefined;
    if (code === 'NOT_A_MEMBER' || code === 'CHANNEL_UNKNOWN') this.#subs.delete(f.channel);
    l.down(code);
    // Ended by the relay for another reason (a store fault, a refused frame): renewed later.
    if (this.#subs.get(f.channel) === l) {
      const t = setTimeout(() => {
        const s = this.#sock;
        if (this.#subs.get(f.channel as string) === l && s !== undefined && s.settle === undefined && !s.dead)
          this.#sendSubscribe(s, f.channel as string, l);
      }, RECONNECT_MAX_MS);
      (t as { unref?: () => void }).unref?.();
    }
    return true;
  }

  /** An entry frame: 0x03 ‖ channel (24 ASCII bytes) ‖ seq u64 ‖ entry. */
  #onEntry(s: Socket, b: Uint8Array): void {
    const e = decodeEntryFrame(b);
    if (e === undefined) {
      this.#fail(s, 'relay sent a malformed entry frame', false);
      return;
    }
    this.#subs.get(e.channel)?.entry(e.seq, e.entry);
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
    clearTimeout(s.pingTimer);
    s.settle?.no(new Error(why));
    s.settle = undefined;
    s.ws.onopen = s.ws.onmessage = s.ws.onerror = s.ws.onclose = null;
    s.ws.onerror = () => undefined; // `ws` emits an error for a socket closed while connecting
    try {
      // Nothing more is read from this socket: `ws`'s close() would wait up to 30 s for the
      // closing frame of a relay gone silent, holding the connection (and a CLI process that is
      // done: `watch --for`) that long.
      if (s.ws.terminate !== undefined) s.ws.terminate();
      else s.ws.close();
    } catch {
      // already closed
    }
    const err = reachable
      ? new ClientError('RELAY_UNREACHABLE', why, { retryable: true })
      : new ClientError('RELAY_ERROR', why, { retryable: true });
    for (const p of s.pending.values()) p.reject(err);
    s.pending.clear();
    for (const l of this.#subs.values()) l.down();
    for (const l of this.#inbox) l.down();
    if (!this.#watched) return;
    // The backoff starts again only after a socket that lasted: `ready` alone proves nothing (a
    // relay that authenticates and then drops every socket would be reconnected to 4 times a
    // second forever).
    if (s.readyAt !== undefined && Date.now() - s.readyAt >= STABLE_MS) this.#reconnectMs = RECONNECT_MIN_MS;
    if (this.#o.onLost === undefined) this.#scheduleReconnect();
    else {
      // After this failure is fully handled (the owner may close this transport).
      const lost = this.#o.onLost;
      setTimeout(lost, 0);
    }
  }

  /**
   * While channels are subscribed: a ping every keepAliveMs; no pong within timeoutMs drops the
   * socket (#fail: the listeners go down, HTTP polling takes over, a new socket resubscribes).
   */
  #keepAlive(s: Socket): void {
    if (s.pingTimer !== undefined || s.dead || !this.#watched) return;
    const every = this.#o.keepAliveMs ?? KEEPALIVE_MS;
    let lastPing = Date.now();
    const tick = () => {
      s.pingTimer = undefined;
      if (s.dead || this.#sock !== s) return;
      const now = Date.now();
      if (s.pingSentAt !== undefined && now - s.pingSentAt >= this.#o.timeoutMs) {
        this.#fail(s, 'relay socket went silent');
        return;
      }
      if (s.pingSentAt === undefined && now - lastPing >= every) {
        if (!this.#watched) return; // nothing to keep alive (a later subscribe restarts it)
        try {
          s.ws.send('{"type":"ping"}');
        } catch {
          this.#fail(s, 'relay socket failed');
          return;
        }
        s.pingSentAt = now;
        lastPing = now;
      }
      // Answered: the next ping. Unanswered: the deadline, looking again every `every` meanwhile.
      const next =
        s.pingSentAt === undefined
          ? lastPing + every
          : Math.min(s.pingSentAt + this.#o.timeoutMs, now + every);
      s.pingTimer = setTimeout(tick, Math.max(1, next - now));
      (s.pingTimer as { unref?: () => void }).unref?.();
    };
    s.pingTimer = setTimeout(tick, every);
    (s.pingTimer as { unref?: () => void }).unref?.();
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

/** Text frames about one channel (fields checked before use). */
interface ChannelFrame {
  readonly type?: unknown;
  readonly channel?: unknown;
  readonly from?: unknown;
  readonly size?: unknown;
  readonly checkpoint?: unknown;
  readonly code?: unknown;
  readonly id?: unknown;
}

const RECONNECT_MIN_MS = 250;
const RECONNECT_MAX_MS = 5_000;
/** A socket up for this long was a working one: after its loss the backoff starts again from 0.25 s. */
export const STABLE_MS = 10_000;

/** An entry frame (PROTOCOL.md §11), or undefined when malformed. The entry is a view of `b`. */
export function decodeEntryFrame(
  b: Uint8Array,
): { channel: string; seq: number; entry: Uint8Array } | undefined {
  if (b.length < 34 || b[0] !== 0x03) return undefined;
  let channel = '';
  for (let i = 1; i < 25; i++) channel += String.fromCharCode(b[i] as number);
  if (!/^c_[A-Za-z0-9_-]{22}$/.test(channel)) return undefined;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const hi = v.getUint32(25);
  if (hi >= 2 ** 21) return undefined;
  return { channel, seq: hi * 2 ** 32 + v.getUint32(29), entry: b.subarray(33) };
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
