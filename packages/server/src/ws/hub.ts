/**
 * The WebSocket hub: authenticated connections, channel subscriptions and party inbox pushes.
 * A subscription streams entries from `from`: first from the store (catch-up), then live from
 * the fan-out. nextSeq moves only forward, one by one, so there is no gap and no duplicate:
 * a live entry ahead of nextSeq sends the subscription back to the store; one behind is skipped.
 * Access is re-checked while a connection lives, not only at subscribe time: each catch-up page
 * re-reads the device and its membership in the same read transaction as the entries, and every
 * frame in or out checks the device record the connection holds (certificate window, revocation),
 * a record never older than `revalidateMs` — a stale one is re-read before the frame goes on.
 * Independent of the WebSocket library (ws/server.node.ts adapts `ws`).
 */
import type { ChannelId, DeviceId, PartyId } from '@backchannel/protocol';
import type { AppendOutcome } from '../channels/accept.ts';
import { notAMember, visibility } from '../channels/access.ts';
import { fromB64u } from '../bytes.node.ts';
import { deviceStatus } from '../directory/devices.ts';
import { RelayError, type RelayErrorCode } from '../errors.ts';
import type { FanoutMessage, PublishedChannel, PublishedInboxItem } from '../fanout/fanout.ts';
import type { Authenticator } from '../http/auth.ts';
import type { Log } from '../http/context.ts';
import type { RelayMetrics } from '../metrics.ts';
import type { DeviceRecord, Store } from '../store/store.ts';
import { type BackpressurePolicy, canResume, pressure, RESUME_POLL_MS } from './backpressure.ts';
import {
  binaryAck,
  binaryEntry,
  CLOSE,
  type ClientFrame,
  frames,
  parseBinaryFrame,
  parseClientFrame,
} from './frames.ts';

export interface HubSocket {
  /** A text frame (string) or a binary frame (bytes). */
  send(data: string | Uint8Array): void;
  readonly bufferedAmount: number;
  close(code: number, reason: string): void;
}

/** Appends an envelope sent over the socket, as its authenticated device. */
export type HubAppend = (device: DeviceRecord, wire: Uint8Array) => Promise<AppendOutcome>;

/** Token buckets: each takes one token and answers 0, or the milliseconds until one is available. */
export interface HubLimits {
  device(device: DeviceId, now: number): number;
  address(address: string, now: number): number;
}

const NO_LIMITS: HubLimits = { device: () => 0, address: () => 0 };
/** Rate-limited frames in a row before the socket is closed. */
const MAX_REFUSED_IN_A_ROW = 200;

export interface HubOptions extends BackpressurePolicy {
  readonly maxFrameChars: number;
  readonly authTimeoutMs: number;
  readonly maxSubscriptions: number;
  /** The longest a connection acts on its device record (revocation, certificate) before re-reading it. */
  readonly revalidateMs: number;
  /** Authenticated sockets one device may hold at once. */
  readonly maxConnectionsPerDevice: number;
  readonly pageSize?: number;
  /** A catch-up page's bytes at most (limits.pageBytes), as a page of GET …/entries. */
  readonly pageBytes?: number;
}

interface Connection {
  readonly socket: HubSocket;
  device: DeviceRecord | undefined;
  /** When `device` was read from the store (the hub's clock). */
  checkedAt: number;
  /** A re-read of the device record in flight: later frames wait for it, in order. */
  refreshing: Promise<boolean> | undefined;
  authing: boolean;
  /**
   * Control frames (auth, subscribe, unsubscribe) run one at a time, in the order the client sent
   * them: the tail of that chain, and how many are queued on it. Sends wait for it while it is
   * busy (an envelope sent right after `auth` waits for the auth, not refused).
   */
  control: Promise<void>;
  controlQueued: number;
  closed: boolean;
  errors: number;
  /** The client's address (its token bucket before it authenticates). */
  readonly peer: string;
  /** Frames refused for rate in a row. */
  limited: number;
  /** Bytes of envelopes taken from this socket and not yet answered (the hub's own queue). */
  queued: number;
  readonly subs: Map<ChannelId, Subscription>;
  authTimer: ReturnType<typeof setTimeout> | undefined;
  resumeTimer: ReturnType<typeof setTimeout> | undefined;
}

interface Subscription {
  readonly conn: Connection;
  readonly channel: ChannelId;
  nextSeq: number;
  /** Exclusive end for a former member (its removal commit + 1). */
  until: number | undefined;
  mode: 'catchup' | 'live' | 'paused';
  running: boolean;
  behindSince: number | undefined;
  active: boolean;
  /** Entries as binary frames (frames.ts) instead of JSON text. */
  readonly binary: boolean;
}

export interface HubConnection {
  /** A text frame (string) or a binary frame (bytes). */
  onMessage(data: string | Uint8Array): void;
  onClose(): void;
}

const EMPTY = new Uint8Array(0);

interface FrameCache {
  readonly text: string[];
  readonly binary: Uint8Array[];
}

/** The frame of a published batch's i-th entry in one form, built once per batch. */
function entryFrame(
  binary: boolean,
  ch: PublishedChannel,
  i: number,
  cache: FrameCache,
): string | Uint8Array {
  const e = ch.entries[i] as PublishedChannel['entries'][number];
  if (binary) {
    const hit = cache.binary[i];
    if (hit !== undefined) return hit;
    const f = binaryEntry(ch.channel, e.seq, e.entry);
    cache.binary[i] = f;
    return f;
  }
  const hit = cache.text[i];
  if (hit !== undefined) return hit;
  const f = frames.entry(ch.channel, e.seq, e.entry);
  cache.text[i] = f;
  return f;
}

export class Hub {
  readonly #store: Store;
  readonly #auth: Authenticator;
  readonly #now: () => number;
  readonly #metrics: RelayMetrics;
  readonly #log: Log;
  readonly #o: HubOptions;
  readonly #page: number;
  readonly #conns = new Set<Connection>();
  readonly #byChannel = new Map<ChannelId, Set<Subscription>>();
  readonly #byParty = new Map<PartyId, Set<Connection>>();
  readonly #byDevice = new Map<DeviceId, Set<Connection>>();
  /** Committed log size per subscribed channel, as last published. */
  readonly #sizes = new Map<ChannelId, number>();
  readonly #append: HubAppend | undefined;
  readonly #limits: HubLimits;
  readonly #pageBytes: number;

  constructor(deps: {
    store: Store;
    append?: HubAppend;
    limits?: HubLimits;
    auth: Authenticator;
    now: () => number;
    metrics: RelayMetrics;
    log: Log;
    options: HubOptions;
  }) {
    this.#store = deps.store;
    this.#auth = deps.auth;
    this.#now = deps.now;
    this.#metrics = deps.metrics;
    this.#log = deps.log;
    this.#o = deps.options;
    this.#append = deps.append;
    this.#limits = deps.limits ?? NO_LIMITS;
    this.#page = deps.options.pageSize ?? 500;
    // No more than a page of GET …/entries, nor much beyond what the socket takes before the
    // catch-up pauses (a resume reads again from where it stopped).
    this.#pageBytes = Math.min(
      deps.options.pageBytes ?? Number.POSITIVE_INFINITY,
      deps.options.highWaterBytes,
    );
  }

  get connections(): number {
    return this.#conns.size;
  }

  attach(socket: HubSocket, peer = 'unknown'): HubConnection {
    const conn: Connection = {
      socket,
      peer,
      limited: 0,
      queued: 0,
      device: undefined,
      checkedAt: 0,
      refreshing: undefined,
      authing: false,
      control: Promise.resolve(),
      controlQueued: 0,
      closed: false,
      errors: 0,
      subs: new Map(),
      authTimer: undefined,
      resumeTimer: undefined,
    };
    conn.authTimer = setTimeout(() => {
      if (conn.device === undefined) this.#close(conn, CLOSE.AUTH_TIMEOUT, 'authenticate first');
    }, this.#o.authTimeoutMs);
    this.#conns.add(conn);
    this.#metrics.wsConnections.set(this.#conns.size);
    return {
      onMessage: (text) => {
        void this.#onMessage(conn, text);
      },
      onClose: () => this.#forget(conn),
    };
  }

  /** Delivers a committed batch to live subscribers and inbox pushes to connected parties. */
  publish(m: FanoutMessage): void {
    for (const ch of m.channels) {
      const subs = this.#byChannel.get(ch.channel);
      if (subs === undefined) continue;
      this.#sizes.set(ch.channel, ch.checkpoint.size);
      // Each entry's frame is built once per batch and form (text, binary), whatever the subscribers.
      const cache: FrameCache = { text: [], binary: [] };
      for (const sub of subs) if (sub.mode === 'live') this.#deliver(sub, ch, cache);
    }
    for (const item of m.inbox) {
      const conns = this.#byParty.get(item.party);
      if (conns !== undefined) void this.#pushInbox(item, [...conns]);
    }
  }

  /**
   * Pushes an inbox item to its party's sockets, but to a device removed from the item's channel
   * before it (GET /v1/inbox leaves it out for that device too). A push is a hint: the inbox itself
   * is durable, so a busy socket skips it, and so does every socket while the store cannot say.
   */
  async #pushInbox(item: PublishedInboxItem, conns: Connection[]): Promise<void> {
    let former: Set<DeviceId>;
    try {
      former = await this.#store.read(async (tx) => {
        const out = new Set<DeviceId>();
        for (const c of conns) {
          const d = c.device?.device;
          if (d === undefined) continue;
          const removedSeq = (await tx.getMember(item.channel, d))?.removedSeq;
          if (removedSeq !== undefined && item.seq > removedSeq) out.add(d);
        }
        return out;
      });
    } catch (e) {
      this.#log.warn({ err: { message: (e as Error).message } }, 'ws inbox push skipped');
      return;
    }
    const frame = frames.inbox(item);
    for (const c of conns) {
      if (c.device === undefined || former.has(c.device.device)) continue;
      if (c.socket.bufferedAmount > this.#o.highWaterBytes) continue;
      const check = this.#checkDevice(c);
      if (check === 'ok') this.#send(c, frame);
      else if (check === 'stale') {
        void this.#refreshDevice(c).then((ok) => {
          if (ok) this.#send(c, frame);
        });
      }
    }
  }

  /**
   * Re-reads the store for every live subscription (fan-out messages may have been lost):
   * each one that is behind catches up; one that is not goes straight back to live.
   */
  resync(): void {
    for (const subs of this.#byChannel.values()) {
      for (const sub of subs) if (sub.mode === 'live') void this.#catchUp(sub);
    }
  }

  /** Closes the connections of a revoked device. */
  closeDevice(device: DeviceId): void {
    for (const c of [...(this.#byDevice.get(device) ?? [])]) this.#expel(c, 'CERT_REVOKED');
  }

  closeAll(code: number = CLOSE.GOING_AWAY, reason = 'relay shutting down'): void {
    for (const c of [...this.#conns]) this.#close(c, code, reason);
  }

  // --- frames

  async #onMessage(conn: Connection, data: string | Uint8Array): Promise<void> {
    if (conn.closed) return;
    if (typeof data !== 'string') {
      await this.#onBinary(conn, data);
      return;
    }
    let frame: ClientFrame;
    try {
      frame = parseClientFrame(data, this.#o.maxFrameChars);
    } catch (e) {
      if (this.#takeToken(conn, undefined)) this.#refuse(conn, e);
      return;
    }
    if (!this.#takeToken(conn, frame.type === 'send' ? frame.id : undefined)) return;
    if (frame.type === 'ping') {
      this.#send(conn, frames.pong());
      return;
    }
    if (frame.type !== 'send') {
      await this.#queueControl(conn, frame);
      return;
    }
    try {
      if (conn.controlQueued > 0) await conn.control;
      if (conn.device === undefined) throw new RelayError('AUTH_MISSING', 'authenticate first');
      if (!(await this.#deviceStillValid(conn))) return;
      await this.#send_(conn, conn.device, frame);
    } catch (e) {
      this.#refuse(conn, e, undefined, frame.id);
    }
  }

  /** Runs a control frame after the ones sent before it on this socket (see Connection.control). */
  #queueControl(conn: Connection, frame: Exclude<ClientFrame, { type: 'send' | 'ping' }>): Promise<void> {
    conn.controlQueued++;
    const run = conn.control.then(async () => {
      try {
        if (conn.closed) return;
        if (frame.type === 'auth') {
          await this.#authenticate(conn, frame);
          return;
        }
        if (conn.device === undefined) throw new RelayError('AUTH_MISSING', 'authenticate first');
        if (!(await this.#deviceStillValid(conn))) return;
        if (frame.type === 'unsubscribe') {
          this.#unsubscribe(conn, frame.channel, undefined);
          return;
        }
        const sub = await this.#subscribe(conn, conn.device, frame.channel, frame.from, frame.binary);
        // Its catch-up runs on its own: a long one holds back no later frame of this socket.
        if (sub !== undefined) this.#catchUp(sub).catch((e: unknown) => this.#refuse(conn, e, frame.channel));
      } catch (e) {
        this.#refuse(conn, e, 'channel' in frame ? frame.channel : undefined);
      } finally {
        conn.controlQueued--;
      }
    });
    conn.control = run;
    return run;
  }

  /** A binary `send` (frames.ts): the envelope's raw bytes in, a binary ack out. */
  async #onBinary(conn: Connection, data: Uint8Array): Promise<void> {
    let id: number | undefined;
    if (!this.#takeToken(conn, data.length >= 5 ? readId(data) : undefined)) return;
    try {
      if (conn.controlQueued > 0) await conn.control;
      // Before parsing: an unauthenticated socket gets nothing copied or decoded (only its id read).
      if (conn.device === undefined) {
        if (data.length >= 5) id = readId(data);
        throw new RelayError('AUTH_MISSING', 'authenticate first');
      }
      if (!(await this.#deviceStillValid(conn))) return;
      const f = parseBinaryFrame(data, this.#o.maxFrameChars);
      id = f.id;
      if (this.#append === undefined)
        throw new RelayError('FRAME_INVALID', 'this relay takes envelopes over HTTP only');
      if (!this.#enqueue(conn, f.envelope.length)) return;
      try {
        const answer = await this.#append(conn.device, f.envelope);
        this.#send(conn, binaryAck(f.id, answer));
      } finally {
        conn.queued -= f.envelope.length;
      }
    } catch (e) {
      this.#refuse(conn, e, undefined, id);
    }
  }

  async #send_(
    conn: Connection,
    device: DeviceRecord,
    f: Extract<ClientFrame, { type: 'send' }>,
  ): Promise<void> {
    try {
      if (this.#append === undefined)
        throw new RelayError('FRAME_INVALID', 'this relay takes envelopes over HTTP only');
      const wire = fromB64u(f.envelope);
      if (wire === undefined) throw new RelayError('DECODE_MALFORMED', 'envelope is not valid base64url');
      if (!this.#enqueue(conn, wire.length)) return;
      try {
        const answer = await this.#append(device, wire);
        this.#send(conn, frames.ack(f.id, answer));
      } finally {
        conn.queued -= wire.length;
      }
    } catch (e) {
      this.#refuse(conn, e, undefined, f.id);
    }
  }

  /** Counts an envelope into the socket's queue; false (the socket closed) when that passes the cap. */
  #enqueue(conn: Connection, bytes: number): boolean {
    conn.queued += bytes;
    if (this.#buffered(conn) <= this.#o.maxBufferedBytes) return true;
    conn.queued -= bytes;
    this.#drop(conn, 'full');
    return false;
  }

  #refuse(conn: Connection, e: unknown, channel?: ChannelId, id?: string | number): void {
    let err: RelayError;
    if (e instanceof RelayError) err = e;
    else {
      this.#log.error({ err: { message: (e as Error).message } }, 'ws frame failed');
      err = new RelayError('INTERNAL', 'internal error');
    }
    this.#metrics.refused(err.code, 'ws');
    this.#send(conn, frames.error(err.code, err.message, channel, id));
    if ((err.code.startsWith('FRAME_') || err.code === 'AUTH_MISSING') && ++conn.errors > 20) {
      this.#close(conn, CLOSE.TOO_MANY_ERRORS, 'too many bad frames');
    }
  }

  async #authenticate(conn: Connection, f: Extract<ClientFrame, { type: 'auth' }>): Promise<void> {
    if (conn.device !== undefined || conn.authing)
      throw new RelayError('FRAME_INVALID', 'already authenticated');
    conn.authing = true;
    let device: DeviceRecord;
    try {
      device = await this.#auth.verify(
        { device: f.device, time: String(f.time), sig: f.sig },
        'WS',
        '/v1/ws',
        EMPTY,
        this.#now(),
      );
    } catch (e) {
      conn.authing = false;
      this.#refuse(conn, e);
      if (e instanceof RelayError && e.code === 'STORE_UNAVAILABLE')
        this.#close(conn, CLOSE.TRY_AGAIN_LATER, 'STORE_UNAVAILABLE');
      else this.#close(conn, CLOSE.AUTH_FAILED, 'authentication failed');
      return;
    }
    conn.authing = false;
    if (conn.closed) return;
    // Counted and registered in one synchronous step: two auths in flight cannot both take the last slot.
    const held = this.#byDevice.get(device.device)?.size ?? 0;
    if (held >= this.#o.maxConnectionsPerDevice) {
      this.#metrics.refused('TOO_MANY_CONNECTIONS', 'ws');
      this.#send(
        conn,
        frames.error(
          'TOO_MANY_CONNECTIONS',
          `this device holds ${held} sockets, the most this relay allows; close one first`,
        ),
      );
      this.#close(conn, CLOSE.TOO_MANY_CONNECTIONS, 'TOO_MANY_CONNECTIONS');
      return;
    }
    conn.device = device;
    conn.checkedAt = this.#now();
    clearTimeout(conn.authTimer);
    addTo(this.#byParty, device.party, conn);
    addTo(this.#byDevice, device.device, conn);
    this.#send(conn, frames.ready(device.device));
  }

  async #subscribe(
    conn: Connection,
    device: DeviceRecord,
    channel: ChannelId,
    from: number,
    binary: boolean,
  ): Promise<Subscription | undefined> {
    if (!conn.subs.has(channel) && conn.subs.size >= this.#o.maxSubscriptions) {
      throw new RelayError(
        'FRAME_INVALID',
        `at most ${this.#o.maxSubscriptions} subscriptions per connection`,
      );
    }
    let until: number | undefined;
    try {
      until = (await this.#store.read((tx) => visibility(tx, channel, device.device))).until;
    } catch (e) {
      if (e instanceof RelayError) throw e;
      throw notAMember();
    }
    if (conn.closed) return undefined;
    this.#unsubscribe(conn, channel, undefined, false);
    const sub: Subscription = {
      conn,
      channel,
      nextSeq: from,
      until,
      mode: 'catchup',
      running: false,
      behindSince: undefined,
      active: true,
      binary,
    };
    conn.subs.set(channel, sub);
    addTo(this.#byChannel, channel, sub);
    this.#metrics.wsSubscribers.inc();
    this.#send(conn, frames.subscribed(channel, from));
    return sub;
  }

  #unsubscribe(
    conn: Connection,
    channel: ChannelId,
    code: RelayError['code'] | undefined,
    notify = true,
  ): void {
    const sub = conn.subs.get(channel);
    if (sub === undefined) {
      // Not subscribed (or never a member): the same answer, so it tells nothing.
      if (notify) this.#send(conn, frames.unsubscribed(channel, code));
      return;
    }
    sub.active = false;
    conn.subs.delete(channel);
    const set = this.#byChannel.get(channel);
    set?.delete(sub);
    if (set !== undefined && set.size === 0) {
      this.#byChannel.delete(channel);
      this.#sizes.delete(channel);
    }
    this.#metrics.wsSubscribers.dec();
    if (notify) this.#send(conn, frames.unsubscribed(channel, code));
  }

  // --- delivery

  /** Streams stored entries from nextSeq until the subscription has caught up with the log, then goes live. */
  async #catchUp(sub: Subscription): Promise<void> {
    if (sub.running || !sub.active) return;
    sub.running = true;
    sub.mode = 'catchup';
    try {
      for (;;) {
        if (!sub.active) return;
        const p = pressure(this.#buffered(sub.conn), sub.behindSince, this.#now(), this.#o);
        if (p === 'full' || p === 'behind') {
          this.#drop(sub.conn, p);
          return;
        }
        if (p === 'pause') {
          this.#pause(sub);
          return;
        }
        const from = sub.nextSeq;
        const device = sub.conn.device;
        if (device === undefined) return;
        // Who may read is re-read with every page, in the page's own transaction: a device removed
        // (or revoked) since it subscribed gets nothing past its removal.
        const readAt = this.#now();
        const page = await this.#store.read(async (tx) => {
          const rec = await tx.getDevice(device.device);
          let seen: Awaited<ReturnType<typeof visibility>>;
          try {
            seen = await visibility(tx, sub.channel, device.device);
          } catch (e) {
            if (e instanceof RelayError) return { rec, member: false as const };
            throw e;
          }
          return {
            rec,
            member: true as const,
            until: seen.until,
            rows: await tx.getEntries(sub.channel, from, this.#page, seen.until, this.#pageBytes),
            checkpoint: seen.checkpoint,
          };
        });
        if (!sub.active || sub.nextSeq !== from) return;
        if (!this.#deviceRead(sub.conn, page.rec, readAt)) return;
        if (!page.member) {
          this.#unsubscribe(sub.conn, sub.channel, 'NOT_A_MEMBER');
          return;
        }
        sub.until = page.until;
        let full = false;
        for (const r of page.rows) {
          if (r.seq !== sub.nextSeq) break;
          // Per entry, not per page: a page of large entries must not land in the buffer at once.
          if (this.#buffered(sub.conn) > this.#o.highWaterBytes) {
            full = true;
            break;
          }
          this.#send(
            sub.conn,
            sub.binary ? binaryEntry(sub.channel, r.seq, r.entry) : frames.entry(sub.channel, r.seq, r.entry),
          );
          sub.nextSeq++;
        }
        if (sub.conn.closed) return;
        if (full && (sub.until === undefined || sub.nextSeq < sub.until)) {
          this.#pause(sub);
          return;
        }
        if (sub.until !== undefined && sub.nextSeq >= sub.until) {
          this.#unsubscribe(sub.conn, sub.channel, 'NOT_A_MEMBER');
          return;
        }
        if (page.rows.length < this.#page) {
          const size = this.#sizes.get(sub.channel) ?? page.checkpoint.size;
          // Live only from a page that saw every batch published so far: one published while the
          // page was read (a removal among them) was not delivered to this subscription.
          if (sub.nextSeq >= size && page.checkpoint.size >= size) {
            sub.mode = 'live';
            sub.behindSince = undefined;
            const cp = page.checkpoint;
            if (cp.size === sub.nextSeq && cp.size === size) {
              this.#send(sub.conn, frames.checkpoint(sub.channel, cp.size, cp.note));
            }
            return;
          }
        }
      }
    } catch (e) {
      this.#log.error({ err: { message: (e as Error).message }, channel: sub.channel }, 'ws catch-up failed');
      // STORE_UNAVAILABLE tells the client to resubscribe later; anything else is a relay fault.
      // Only this subscription: one made since (unsubscribed, subscribed again) goes on.
      if (sub.active && sub.conn.subs.get(sub.channel) === sub)
        this.#unsubscribe(sub.conn, sub.channel, e instanceof RelayError ? e.code : 'INTERNAL');
    } finally {
      sub.running = false;
    }
  }

  #deliver(sub: Subscription, ch: PublishedChannel, cache: FrameCache): void {
    const conn = sub.conn;
    const check = this.#checkDevice(conn);
    if (check === 'gone') return;
    if (check === 'stale') {
      // The store has these entries: catch-up re-reads the device and membership, then reads them.
      void this.#catchUp(sub);
      return;
    }
    // A batch that came without (all of) its entries (too large for the fan-out): read them,
    // and who may read them, from the store.
    const last = ch.entries[ch.entries.length - 1];
    if (last === undefined || last.seq + 1 !== ch.checkpoint.size) {
      void this.#catchUp(sub);
      return;
    }
    for (const [i, e] of ch.entries.entries()) {
      // Every entry is looked at, those it already has (or asked to start after) too: a removal
      // ends the subscription wherever the subscriber said it was.
      if (e.seq < sub.nextSeq) {
        if (conn.device !== undefined && e.removed.includes(conn.device.device)) {
          this.#unsubscribe(conn, sub.channel, 'NOT_A_MEMBER');
          return;
        }
        continue;
      }
      if (e.seq > sub.nextSeq) {
        void this.#catchUp(sub);
        return;
      }
      if (sub.until !== undefined && e.seq >= sub.until) {
        this.#unsubscribe(conn, sub.channel, 'NOT_A_MEMBER');
        return;
      }
      const p = pressure(this.#buffered(conn), undefined, 0, this.#o);
      if (p === 'full' || p === 'behind') {
        this.#drop(conn, p);
        return;
      }
      if (p === 'pause') {
        this.#pause(sub);
        return;
      }
      this.#send(conn, entryFrame(sub.binary, ch, i, cache));
      sub.nextSeq++;
      if (conn.device !== undefined && e.removed.includes(conn.device.device)) {
        this.#unsubscribe(conn, sub.channel, 'NOT_A_MEMBER');
        return;
      }
    }
    if (sub.nextSeq === ch.checkpoint.size) {
      this.#send(conn, frames.checkpoint(ch.channel, ch.checkpoint.size, ch.checkpoint.note));
    }
  }

  // --- device revalidation

  /**
   * The connection's device as last read: 'ok' to act on it, 'stale' when the record is older than
   * revalidateMs (re-read it first), 'gone' when it may not act (the connection is then closed).
   * No store read: this runs for every frame.
   */
  #checkDevice(conn: Connection): 'ok' | 'stale' | 'gone' {
    const device = conn.device;
    if (conn.closed || device === undefined) return 'gone';
    const now = this.#now();
    const status = deviceStatus(device, now);
    if (status !== undefined) {
      this.#expel(conn, status);
      return 'gone';
    }
    return conn.refreshing !== undefined || now - conn.checkedAt > this.#o.revalidateMs ? 'stale' : 'ok';
  }

  /** True when the connection's device may act; re-reads its record first when stale. */
  async #deviceStillValid(conn: Connection): Promise<boolean> {
    const check = this.#checkDevice(conn);
    if (check === 'ok') return true;
    if (check === 'gone') return false;
    return this.#refreshDevice(conn);
  }

  /** Re-reads the device record (one read per connection at a time); false when it may no longer act. */
  #refreshDevice(conn: Connection): Promise<boolean> {
    const device = conn.device;
    if (device === undefined) return Promise.resolve(false);
    conn.refreshing ??= (async () => {
      const readAt = this.#now();
      try {
        const rec = await this.#store.read((tx) => tx.getDevice(device.device));
        return this.#deviceRead(conn, rec, readAt);
      } catch (e) {
        // The store is down: keep the last answer (what was valid stays valid until it is not).
        this.#log.warn({ err: { message: (e as Error).message } }, 'ws device re-check failed');
        return !conn.closed;
      } finally {
        conn.refreshing = undefined;
      }
    })();
    return conn.refreshing;
  }

  /** Takes a freshly read device record; closes the connection when the device may no longer act. */
  #deviceRead(conn: Connection, rec: DeviceRecord | undefined, readAt: number): boolean {
    if (conn.closed) return false;
    if (rec === undefined) {
      this.#expel(conn, 'DEVICE_UNKNOWN');
      return false;
    }
    const status = deviceStatus(rec, this.#now());
    if (status !== undefined) {
      this.#expel(conn, status);
      return false;
    }
    conn.device = rec;
    conn.checkedAt = Math.max(conn.checkedAt, readAt);
    return true;
  }

  /** A device that may no longer act: a typed error frame, then the socket closes (4403). */
  #expel(
    conn: Connection,
    code: Extract<RelayErrorCode, 'CERT_REVOKED' | 'CERT_EXPIRED' | 'CERT_NOT_YET_VALID' | 'DEVICE_UNKNOWN'>,
  ): void {
    if (conn.closed) return;
    const why = {
      CERT_REVOKED: 'this device was revoked by its party',
      CERT_EXPIRED: "this device's certificate has expired",
      CERT_NOT_YET_VALID: "this device's certificate is not valid yet",
      DEVICE_UNKNOWN: 'this device is no longer registered',
    }[code];
    this.#metrics.refused(code, 'ws');
    this.#send(conn, frames.error(code, why));
    this.#close(conn, CLOSE.REVOKED, code);
  }

  #pause(sub: Subscription): void {
    sub.mode = 'paused';
    sub.behindSince ??= this.#now();
    const conn = sub.conn;
    if (conn.resumeTimer !== undefined || conn.closed) return;
    const poll = () => {
      conn.resumeTimer = undefined;
      if (conn.closed) return;
      const paused = [...conn.subs.values()].filter((s) => s.mode === 'paused');
      if (paused.length === 0) return;
      const now = this.#now();
      const oldest = Math.min(...paused.map((s) => s.behindSince ?? now));
      const buffered = this.#buffered(conn);
      const p = pressure(buffered, oldest, now, this.#o);
      if (p === 'full' || p === 'behind') {
        this.#drop(conn, p);
        return;
      }
      if (canResume(buffered, this.#o)) {
        for (const s of paused) void this.#catchUp(s);
        return;
      }
      conn.resumeTimer = setTimeout(poll, RESUME_POLL_MS);
    };
    conn.resumeTimer = setTimeout(poll, RESUME_POLL_MS);
  }

  /** Bytes held for this socket: what `ws` and the kernel have not sent, plus answers still being made. */
  #buffered(conn: Connection): number {
    return conn.socket.bufferedAmount + conn.queued;
  }

  /** Closes a socket that cannot keep up; the reason starts with its code (SEND_BUFFER_FULL or SLOW_CONSUMER). */
  #drop(conn: Connection, why: 'full' | 'behind'): void {
    if (conn.closed) return;
    this.#metrics.wsDropped.inc();
    this.#log.warn({ device: conn.device?.device, why }, 'dropping a slow WebSocket client');
    this.#close(
      conn,
      CLOSE.SLOW_CONSUMER,
      why === 'full'
        ? `SEND_BUFFER_FULL: over ${this.#o.maxBufferedBytes} bytes unread; reconnect and resume`
        : 'SLOW_CONSUMER: behind too long; reconnect and resume from your last seq',
    );
  }

  /** Every frame out goes through here: past the cap (maxBufferedBytes) the socket is closed. */
  #send(conn: Connection, data: string | Uint8Array): void {
    if (conn.closed) return;
    try {
      conn.socket.send(data);
    } catch {
      this.#forget(conn);
      return;
    }
    if (this.#buffered(conn) > this.#o.maxBufferedBytes) this.#drop(conn, 'full');
  }

  /**
   * Every frame in takes a token: the device's bucket (the one HTTP requests use) once
   * authenticated, the address's before. False, with a RATE_LIMITED error frame, when it is empty.
   */
  #takeToken(conn: Connection, id: string | number | undefined): boolean {
    const now = this.#now();
    const wait =
      conn.device === undefined
        ? this.#limits.address(conn.peer, now)
        : this.#limits.device(conn.device.device, now);
    if (wait <= 0) {
      conn.limited = 0;
      return true;
    }
    this.#metrics.refused('RATE_LIMITED', 'ws');
    this.#send(conn, frames.error('RATE_LIMITED', 'too many frames; slow down', undefined, id, wait));
    // A client that ignores the answers: closed rather than answered forever.
    if (++conn.limited > MAX_REFUSED_IN_A_ROW) {
      this.#close(conn, CLOSE.TOO_MANY_ERRORS, 'RATE_LIMITED: too many frames refused in a row');
    }
    return false;
  }

  #close(conn: Connection, code: number, reason: string): void {
    if (conn.closed) return;
    try {
      conn.socket.close(code, reason);
    } catch {
      // already closed
    }
    this.#forget(conn);
  }

  #forget(conn: Connection): void {
    if (conn.closed) return;
    conn.closed = true;
    clearTimeout(conn.authTimer);
    clearTimeout(conn.resumeTimer);
    for (const channel of [...conn.subs.keys()]) this.#unsubscribe(conn, channel, undefined, false);
    if (conn.device !== undefined) {
      removeFrom(this.#byParty, conn.device.party, conn);
      removeFrom(this.#byDevice, conn.device.device, conn);
    }
    this.#conns.delete(conn);
    this.#metrics.wsConnections.set(this.#conns.size);
  }
}

function readId(data: Uint8Array): number {
  return new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(1);
}

function addTo<K, V>(m: Map<K, Set<V>>, k: K, v: V): void {
  let s = m.get(k);
  if (s === undefined) {
    s = new Set();
    m.set(k, s);
  }
  s.add(v);
}

function removeFrom<K, V>(m: Map<K, Set<V>>, k: K, v: V): void {
  const s = m.get(k);
  if (s === undefined) return;
  s.delete(v);
  if (s.size === 0) m.delete(k);
}
