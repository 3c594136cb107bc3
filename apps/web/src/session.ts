/**
 * The app's one connection to the SDK: unlock/lock, the live loop (WebSocket hints with
 * reconnection, plus a slow poll), the outbox count, offline state, drafts and settings kept
 * in the encrypted store. React reads it through useSyncExternalStore (see use-session.ts).
 */
import {
  type Backchannel,
  ClientError,
  decodeContactCard,
  DEFAULT_PBKDF2,
  Documents,
  fingerprint,
  IndexedDbLocalStore,
  openBrowserDevice,
  type Pbkdf2Params,
  type RecoveredParty,
  type RefusedSend,
  signRequest,
  toBase64url,
} from '@backchannel/client/browser';

export const DB_NAME = 'backchannel-device';
const POLL_MS = 5_000;
const dec = new TextDecoder();
const enc = new TextEncoder();

export type Phase = 'loading' | 'new' | 'locked' | 'unlocked';

export interface PartyInfo {
  readonly name: string;
  readonly fingerprint: string;
}

export interface Settings {
  /** Duty device: send a heartbeat on every open channel at this interval (0 = off). */
  readonly heartbeatMs: number;
  /** Lock after this long without user input. */
  readonly lockAfterMs: number;
}
const DEFAULT_SETTINGS: Settings = { heartbeatMs: 0, lockAfterMs: 15 * 60_000 };

function kdfFromPage(): Pbkdf2Params {
  // Test runs may lower the PBKDF2 cost with ?kdf=N (the stored parameters win afterwards).
  const n = Number(new URLSearchParams(globalThis.location?.search ?? '').get('kdf'));
  return Number.isSafeInteger(n) && n >= 1000 ? { ...DEFAULT_PBKDF2, iterations: n } : DEFAULT_PBKDF2;
}

export class Session {
  phase: Phase = 'loading';
  online = true;
  outboxPending = 0;
  /** Unsent events per channel (sealed in the device store until the relay acknowledges them). */
  pendingByChannel: ReadonlyMap<string, number> = new Map();
  lastError: string | undefined;
  /** What the relay refused for good after the composer showed it as sent, until dismissed. */
  refused: readonly RefusedSend[] = [];
  /** This device's certificate was revoked by its party: it can no longer send or read. */
  revoked = false;
  settings: Settings = DEFAULT_SETTINGS;
  #bc: Backchannel | undefined;
  #version = 0;
  readonly #listeners = new Set<() => void>();
  #queue: Promise<unknown> = Promise.resolve();
  #ws: WebSocket | undefined;
  #wsBackoff = 500;
  #timers: ReturnType<typeof setTimeout>[] = [];
  #refreshQueued = false;
  #lastInput = Date.now();
  #lastBeat = 0;
  readonly #parties = new Map<string, PartyInfo | 'pending'>();
  #releaseTabLock: (() => void) | undefined;

  get bc(): Backchannel {
    if (this.#bc === undefined) throw new ClientError('STORE_LOCKED', 'the device is locked');
    return this.#bc;
  }

  get version(): number {
    return this.#version;
  }

  subscribe = (fn: () => void): (() => void) => {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  };

  getSnapshot = (): number => this.#version;

  changed(): void {
    this.#version++;
    for (const fn of this.#listeners) fn();
  }

  async start(): Promise<void> {
    this.phase = (await IndexedDbLocalStore.exists(DB_NAME)) ? 'locked' : 'new';
    this.changed();
    for (const ev of ['keydown', 'pointerdown'] as const) {
      addEventListener(ev, () => {
        this.#lastInput = Date.now();
      });
    }
    addEventListener('online', () => this.kick());
    addEventListener('offline', () => {
      this.online = false;
      this.changed();
    });
  }

  /** Serializes SDK work: one device, one MLS state per channel, one inbox cursor. */
  run<T>(op: (bc: Backchannel) => Promise<T>): Promise<T> {
    const next = this.#queue.then(
      () => op(this.bc),
      () => op(this.bc),
    );
    this.#queue = next.catch(() => undefined);
    return next;
  }

  /**
   * One tab per device: two tabs on the same store would each advance their own copy of the MLS
   * ratchets and corrupt them. A Web Lock held while unlocked keeps a second tab out.
   */
  async #takeTabLock(): Promise<void> {
    const locks = globalThis.navigator?.locks;
    if (this.#releaseTabLock !== undefined || locks === undefined) return;
    await new Promise<void>((resolve, reject) => {
      void locks.request(`${DB_NAME}:open`, { ifAvailable: true }, (lock) => {
        if (lock === null) {
          reject(
            new Error(
              'Backchannel is already unlocked in another tab of this browser: use that tab, or lock it first.',
            ),
          );
          return undefined;
        }
        resolve();
        return new Promise<void>((release) => {
          this.#releaseTabLock = release;
        });
      });
    });
  }

  #dropTabLock(): void {
    this.#releaseTabLock?.();
    this.#releaseTabLock = undefined;
  }

  async #openDevice(passphrase: string): Promise<Backchannel> {
    await this.#takeTabLock();
    try {
      return await this.#openDeviceUnlocked(passphrase);
    } catch (e) {
      this.#dropTabLock();
      throw e;
    }
  }

  async #openDeviceUnlocked(passphrase: string): Promise<Backchannel> {
    return openBrowserDevice({ name: DB_NAME, passphrase, kdf: kdfFromPage(), relays: [location.origin] });
  }

  /** First run, all or nothing: a store `setUp` fails on is destroyed, so the form can be sent again. */
  async #setUp(passphrase: string, setUp: (bc: Backchannel) => Promise<unknown>): Promise<void> {
    const bc = await this.#openDevice(passphrase);
    try {
      await setUp(bc);
    } catch (e) {
      bc.close();
      await IndexedDbLocalStore.destroy(DB_NAME);
      this.#dropTabLock();
      throw e;
    }
    await this.#unlocked(bc);
  }

  createParty(passphrase: string, partyName: string, deviceName: string): Promise<void> {
    return this.#setUp(passphrase, (bc) =>
      bc.createParty({ partyName, deviceName, relays: [location.origin] }),
    );
  }

  /** Sets this browser up as the admin device of a party restored from its recovery kit. */
  recover(passphrase: string, recovered: RecoveredParty, deviceName: string): Promise<void> {
    // This relay (the app's origin) serves the party now, whatever the kit lists.
    return this.#setUp(passphrase, (bc) =>
      bc.recoverParty({ recovered, deviceName, relays: [location.origin] }),
    );
  }

  enroll(passphrase: string, identity: Parameters<Backchannel['enroll']>[0]): Promise<void> {
    return this.#setUp(passphrase, (bc) => bc.enroll(identity));
  }

  async unlock(passphrase: string): Promise<void> {
    await this.#unlocked(await this.#openDevice(passphrase));
  }

  async #unlocked(bc: Backchannel): Promise<void> {
    this.#bc = bc;
    const s = await bc.store.get('web:settings');
    if (s !== undefined) this.settings = { ...DEFAULT_SETTINGS, ...(JSON.parse(dec.decode(s)) as Settings) };
    this.phase = 'unlocked';
    this.#lastInput = Date.now();
    this.changed();
    this.#connect();
    this.#tick();
    this.kick();
  }

  lock(): void {
    for (const t of this.#timers) clearTimeout(t);
    this.#timers = [];
    this.#ws?.close();
    this.#ws = undefined;
    const bc = this.#bc;
    this.#bc = undefined;
    this.phase = 'locked';
    this.changed();
    // Let queued work finish before the store closes and another tab may open it.
    void this.#queue.then(() => {
      bc?.close();
      this.#dropTabLock();
    });
  }

  async forget(): Promise<void> {
    this.lock();
    await this.#queue;
    await IndexedDbLocalStore.destroy(DB_NAME);
    this.phase = 'new';
    this.changed();
  }

  /** Schedules one refresh (coalesced). */
  kick(): void {
    if (this.#refreshQueued || this.phase !== 'unlocked') return;
    this.#refreshQueued = true;
    void this.run(async (bc) => {
      this.#refreshQueued = false;
      await this.#refresh(bc);
    }).catch(() => undefined);
  }

  async #refresh(bc: Backchannel): Promise<void> {
    try {
      const before = await bc.channelIds();
      await bc.syncAll();
      this.online = true;
      this.lastError = undefined;
      this.revoked = false;
      const after = await bc.channelIds();
      if (after.length !== before.length) this.#subscribeAll(bc);
    } catch (e) {
      if (e instanceof ClientError && (e.code === 'RELAY_UNREACHABLE' || e.retryable)) this.online = false;
      else if (e instanceof ClientError && (e.cause_code ?? e.code) === 'CERT_REVOKED') this.revoked = true;
      else this.lastError = e instanceof Error ? e.message : String(e);
    }
    await this.#countOutbox(bc);
    this.changed();
  }

  async #countOutbox(bc: Backchannel): Promise<void> {
    const items = await bc.store.outboxList();
    const by = new Map<string, number>();
    for (const it of items) by.set(it.channel, (by.get(it.channel) ?? 0) + 1);
    this.outboxPending = items.length;
    this.pendingByChannel = by;
    this.refused = await bc.refusedSends();
    if (this.refused.some((r) => r.code === 'CERT_REVOKED')) this.revoked = true;
  }

  /** The user has seen a refused send. */
  async dismissRefused(r: RefusedSend): Promise<void> {
    await this.run(async (bc) => {
      await bc.dismissRefusedSend(r.channel, r.msgId);
      this.refused = await bc.refusedSends();
    });
    this.changed();
  }

  /** Runs a user action, then delivers the outbox; the outbox keeps what cannot be sent yet. */
  async act<T>(op: (bc: Backchannel) => Promise<T>): Promise<T> {
    const r = await this.run(op);
    await this.run(async (bc) => {
      try {
        await bc.outbox.flush();
      } catch {
        this.online = false;
      }
      await this.#countOutbox(bc);
    });
    this.changed();
    this.kick();
    return r;
  }

  #tick(): void {
    const t = setTimeout(() => {
      if (this.phase !== 'unlocked') return;
      if (Date.now() - this.#lastInput > this.settings.lockAfterMs) {
        this.lock();
        return;
      }
      this.#beat();
      this.kick();
      this.#tick();
    }, POLL_MS);
    this.#timers.push(t);
  }

  #beat(): void {
    const every = this.settings.heartbeatMs;
    if (every <= 0 || Date.now() - this.#lastBeat < every) return;
    this.#lastBeat = Date.now();
    void this.act(async (bc) => {
      for (const id of await bc.channelIds()) {
        const ch = await bc.channel(id);
        if (!ch.record.removed && ch.view.state.lifecycle === 'open')
          await ch.send({ kind: 'heartbeat', intervalMs: every });
      }
    }).catch(() => undefined);
  }

  async saveSettings(s: Settings): Promise<void> {
    this.settings = s;
    await this.run((bc) => bc.store.put([['web:settings', enc.encode(JSON.stringify(s))]]));
    this.changed();
  }

  /** The negotiated documents of one channel, read from its folded state (no network). */
  documentsOf(channel: string): Promise<Documents> {
    return this.run(async (bc) => new Documents(bc, await bc.channel(channel)));
  }

  /**
   * A document action on one channel, synced first so an edit builds on the current head (when
   * the relay cannot be reached it builds on what this device has; the outbox keeps the send).
   */
  document<T>(channel: string, op: (d: Documents) => Promise<T>): Promise<T> {
    return this.act(async (bc) => {
      const ch = await bc.channel(channel);
      try {
        await ch.sync();
      } catch (e) {
        if (!(e instanceof ClientError && (e.code === 'RELAY_UNREACHABLE' || e.retryable))) throw e;
      }
      return op(new Documents(bc, ch));
    });
  }

  // Drafts live in the encrypted store, never in localStorage.
  async loadDraft(key: string): Promise<string> {
    const b = await this.bc.store.get(`web:draft:${key}`);
    return b === undefined ? '' : dec.decode(b);
  }

  async saveDraft(key: string, text: string): Promise<void> {
    if (this.#bc === undefined) return;
    await this.#bc.store.put([[`web:draft:${key}`, text === '' ? undefined : enc.encode(text)]]);
  }

  /** A party's display name and fingerprint from its signed contact card (cached). */
  party(id: string): PartyInfo | undefined {
    const hit = this.#parties.get(id);
    if (hit !== undefined) return hit === 'pending' ? undefined : hit;
    if (this.#bc === undefined) return undefined;
    this.#parties.set(id, 'pending');
    void this.#bc.relay
      .getCard(id)
      .then((bytes) => {
        const c = decodeContactCard(bytes);
        if (c.ok && c.value.body.party === id) {
          this.#parties.set(id, {
            name: c.value.body.displayName,
            fingerprint: fingerprint(c.value.body.rootPublicKey),
          });
          this.changed();
        } else this.#parties.delete(id);
      })
      .catch(() => this.#parties.delete(id));
    return undefined;
  }

  // ---- live updates: the WebSocket carries hints; sync does the verified work ----

  #connect(): void {
    if (this.phase !== 'unlocked' || this.#bc === undefined) return;
    const bc = this.#bc;
    const url = `${location.origin.replace(/^http/, 'ws')}/v1/ws`;
    let ws: WebSocket;
    try {
      ws = new WebSocket(url);
    } catch {
      this.#reconnect();
      return;
    }
    this.#ws = ws;
    ws.onopen = () => {
      // Signed for the relay's name (the pinned one, else fetched once): PROTOCOL.md §11.
      void bc.relay.relayName().then(
        (relayName) => {
          if (this.#ws !== ws || ws.readyState !== WebSocket.OPEN) return;
          const time = Date.now();
          const id = bc.identity;
          const sig = signRequest(id.deviceSecretKey, 'WS', '/v1/ws', time, new Uint8Array(0), relayName);
          ws.send(JSON.stringify({ type: 'auth', device: id.device, time, sig: toBase64url(sig) }));
        },
        () => ws.close(),
      );
    };
    ws.onmessage = (m) => {
      const f = JSON.parse(String(m.data)) as { type: string };
      if (f.type === 'ready') {
        this.#wsBackoff = 500;
        this.online = true;
        this.changed();
        this.#subscribeAll(bc);
      } else if (f.type === 'entry' || f.type === 'inbox' || f.type === 'checkpoint') this.kick();
    };
    ws.onclose = () => {
      if (this.#ws === ws) {
        this.#ws = undefined;
        this.#reconnect();
      }
    };
  }

  #reconnect(): void {
    if (this.phase !== 'unlocked') return;
    const wait = this.#wsBackoff;
    this.#wsBackoff = Math.min(30_000, this.#wsBackoff * 2);
    this.#timers.push(setTimeout(() => this.#connect(), wait));
  }

  #subscribeAll(bc: Backchannel): void {
    const ws = this.#ws;
    if (ws === undefined || ws.readyState !== WebSocket.OPEN) return;
    void this.run(async () => {
      for (const id of await bc.channelIds()) {
        const ch = await bc.channel(id);
        ws.send(JSON.stringify({ type: 'subscribe', channel: id, from: ch.record.nextSeq }));
      }
    }).catch(() => undefined);
  }
}
