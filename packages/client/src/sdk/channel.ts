/**
 * One channel on this device: its MLS group, its verified copy of the relay's transcript,
 * the decrypted events and the channel state folded from them.
 *
 * Sync verifies every entry before use: sequence continuity, the sender's device signature
 * and certificate, the MLS decryption and the salted commitment the sender signed, and the
 * relay's checkpoint against the device's own Merkle root of the same entries.
 */
import {
  type ChannelEvent,
  type ChannelId,
  type ChannelState,
  constantTimeEqual,
  fold,
  type DecodedEntry,
  type DeviceId,
  decodeEntry,
  type EnvelopeBody,
  envelopeSignedMessage,
  type EventId,
  EVENT_ID_RUN_LENGTH,
  eventIdInRun,
  MAX_EVENT_BYTES,
  openSealedEvent,
  parseEvent,
  sealEvent,
  type PartyId,
  type SignatureSuite,
  type SignedEnvelope,
  signEnvelope,
  utf8,
  verifyEnvelope,
} from '@backchannel/protocol';
import {
  type ChannelRecord,
  decodeChannelRecord,
  decodeOwedDisclosure,
  decodePendingCommit,
  type EventRecord,
  encodeChannelRecord,
  encodeEventRecords,
  encodeOwedDisclosure,
  encodePendingCommit,
  keys,
  type OwedDisclosure,
  type PendingCommit,
  pendingCommitEpoch,
} from './channel-record.ts';
import type { EngineContext, SignatureCheck } from './context.ts';
import { ClientError } from './errors.ts';
import type { MlsGroup } from './mls.ts';
import type { EntriesAnswer } from './relay-client.ts';
import type { OutboxItem } from './storage.ts';
import { type ChannelView, foldRecords, type ViewState } from './view.ts';
import { appendLeaf, checkCheckpoint, signedByUnknownRelayKey } from './verify-log.ts';
import { disclosedRecords, joinDisclosures, loadRecords, storedEntry } from './join.ts';

export type DraftEvent = ChannelEvent extends infer E
  ? E extends ChannelEvent
    ? Omit<E, 'v' | 'id' | 'at'>
    : never
  : never;

export interface SyncProgress {
  readonly channel: ChannelId;
  readonly seq: number;
  readonly size: number;
}

/**
 * How long a commit posted without an answer may still reach the relay (several request
 * deadlines): after that, a sync that did not meet it means the relay never took it.
 */
const PENDING_SETTLE_MS = 60_000;

export class Channel {
  readonly id: ChannelId;
  readonly #ctx: EngineContext;
  #group: MlsGroup | undefined;
  #rec: ChannelRecord;
  #view: ViewState;
  #queue: Promise<unknown> = Promise.resolve();
  /**
   * Set when a write of state this channel already holds in memory failed (a page folded into
   * the MLS group and the channel record, a verified checkpoint): the next write would persist
   * that state without what it rests on (the page's entries and records). Every later operation
   * is refused until the device is opened again, from what the store holds.
   */
  #failed: ClientError | undefined;
  /** Pending commits of this device the page being applied adopted (#ownCommit). */
  #adopted: Array<{ seq: number; add: readonly DeviceId[]; welcome: OutboxItem | undefined }> = [];
  /** This device's pending commits (PendingCommit): store key → epoch. */
  readonly #pending: Map<
    string,
    { readonly epoch: number; readonly since: number; readonly postedAt: number }
  >;
  /** The join.context adopted commits of this device still owe (OwedDisclosure): store key → it. */
  readonly #owed: Map<string, OwedDisclosure>;
  /** The run of this channel's next msgIds (eventIdInRun) and how many ids it has left. */
  #idRun: { readonly run: Uint8Array; left: number } | undefined;

  private constructor(
    ctx: EngineContext,
    rec: ChannelRecord,
    group: MlsGroup | undefined,
    view: ViewState,
    pending: ReadonlyArray<readonly [string, number]> = [],
    owed: ReadonlyMap<string, OwedDisclosure> = new Map(),
  ) {
    this.id = rec.channel;
    this.#ctx = ctx;
    this.#rec = rec;
    this.#group = group;
    this.#view = view;
    // Found on disk: made before this process, however long ago (since 0).
    this.#pending = new Map(
      pending.map(([k, postedAt]) => [k, { epoch: pendingCommitEpoch(k), since: 0, postedAt }]),
    );
    this.#owed = new Map(owed);
  }

  /**
   * The id of this device's next envelope in this channel: ids made one after another share a
   * random run (the relay's index takes them side by side), the rest is random.
   */
  #nextMsgId(): EventId {
    if (this.#idRun === undefined || this.#idRun.left === 0)
      this.#idRun = { run: this.#ctx.random(4), left: EVENT_ID_RUN_LENGTH };
    this.#idRun.left--;
    return eventIdInRun(this.#idRun.run, this.#ctx.random(12));
  }

  static async load(ctx: EngineContext, id: ChannelId): Promise<Channel> {
    const recBytes = await ctx.store.get(keys.channel(id));
    if (recBytes === undefined) throw new ClientError('CHANNEL_UNKNOWN', `this device has no channel ${id}`);
    let rec = decodeChannelRecord(recBytes);
    // A record written before it kept the last entry's time: taken from the last stored entry.
    if (rec.lastAt === 0 && rec.nextSeq > 0) {
      const last = await storedEntry(ctx, id, rec.nextSeq - 1);
      if (last !== undefined) rec = { ...rec, lastAt: last.entry.receivedAt };
    }
    const mlsBytes = await ctx.store.get(keys.mls(id));
    const group = mlsBytes === undefined ? undefined : await ctx.mls.restore(mlsBytes);
    const records = await loadRecords(ctx, id);
    for (const m of group?.members() ?? []) ctx.certs.check(m.certificate, ctx.now());
    const pending: Array<[string, number]> = [];
    for (const key of await ctx.store.keys(keys.pendingCommitPrefix(id))) {
      const bytes = await ctx.store.get(key);
      pending.push([key, bytes === undefined ? 0 : decodePendingCommit(bytes).postedAt]);
    }
    const owed = new Map<string, OwedDisclosure>();
    for (const key of await ctx.store.keys(keys.owedDisclosurePrefix(id))) {
      const bytes = await ctx.store.get(key);
      const o = bytes === undefined ? undefined : decodeOwedDisclosure(bytes);
      if (o !== undefined) owed.set(key, o);
    }
    return new Channel(ctx, rec, group, foldRecords(id, records, rec.joinedEpoch), pending, owed);
  }

  /** Registers a channel this device just created or joined, with its first MLS state. */
  static async adopt(
    ctx: EngineContext,
    id: ChannelId,
    group: MlsGroup,
    joinedEpoch: number,
  ): Promise<Channel> {
    for (const m of group.members()) ctx.certs.check(m.certificate, ctx.now());
    const rec: ChannelRecord = {
      channel: id,
      joinedEpoch,
      nextSeq: 0,
      lastAt: 0,
      frontier: [],
      checkpoint: undefined,
      checkpointSize: 0,
      removed: false,
      lastUpdateAt: ctx.now(),
      sentSinceUpdate: 0,
      staleSenderEpoch: -1,
      lostAtEpoch: -1,
    };
    await ctx.store.put([
      [keys.channel(id), encodeChannelRecord(rec)],
      [keys.mls(id), group.exportState()],
    ]);
    return new Channel(ctx, rec, group, foldRecords(id, [], joinedEpoch));
  }

  get view(): ChannelView {
    return this.#view.view;
  }

  get record(): ChannelRecord {
    return this.#rec;
  }

  /** Why this device can no longer read or post here and what to do (CHANNEL_STATE_LOST), if so. */
  get stateLost(): string | undefined {
    const epoch = this.#rec.lostAtEpoch;
    return epoch < 0 ? undefined : stateLost(this.id, epoch, this.#ctx.identity.device);
  }

  get group(): MlsGroup | undefined {
    return this.#group;
  }

  /** Serializes every operation on this channel (MLS state must have one owner). */
  #run<T>(op: () => Promise<T>): Promise<T> {
    const guarded = () => {
      if (this.#failed !== undefined) throw this.#failed;
      return op();
    };
    const next = this.#queue.then(guarded, guarded);
    this.#queue = next.catch(() => undefined);
    return next;
  }

  /** Encrypts, signs and queues an event; returns its id. The outbox delivers it. */
  /** Encrypts, signs and queues an event; returns its id. The outbox delivers it. */
  async send(draft: DraftEvent, opts: { to?: PartyId[] } = {}): Promise<EventId> {
    return (await this.sendMany([draft], opts))[0] as EventId;
  }

  /**
   * Encrypts, signs and queues several events with ONE durable write (the client's group
   * commit): the MLS state, our own plaintexts and the outbox items are written together,
   * before anything leaves the device, so a crash can neither reuse a ratchet key nor lose an
   * acknowledged send.
   */
  /** `opts.also`: records written in the same transaction (a marker that this send was made). */
  async sendMany(
    drafts: readonly DraftEvent[],
    opts: { to?: PartyId[]; also?: ReadonlyArray<[string, Uint8Array | undefined]> } = {},
  ): Promise<EventId[]> {
    // The log shows this device sent in this epoch what its store does not know (a restored
    // store): a new leaf first, so that nothing is encrypted with a ratchet step already used.
    // Checked again in the queue, just before encrypting (a page applied meanwhile may set it).
    const stale = () => this.#group !== undefined && this.#rec.staleSenderEpoch >= this.#group.epoch;
    let made: { outbox: OutboxItem[]; written: Promise<unknown> } | undefined;
    for (let round = 0; made === undefined; round++) {
      if (round > 2)
        throw new ClientError('STORE_FAILED', `channel ${this.id}: its leaf could not be refreshed`);
      if (stale()) await this.selfUpdate();
      made = await this.#run(() =>
        stale()
          ? Promise.resolve(undefined)
          : this.#encryptAndQueue(drafts, opts.to === undefined ? {} : { to: opts.to }, opts.also),
      );
    }
    const { outbox, written } = made;
    // Nothing leaves the device before its MLS state and outbox item are durable.
    await written;
    this.#ctx.queued?.(outbox);
    return outbox.map((o) => o.id as EventId);
  }

  /**
   * sendMany's work inside the channel's queue. The channel is free again once the write is made,
   * before it commits: the next operation (the next messages to encrypt) goes on while this one
   * reaches the disk. The store runs writes in the order they were made, so what that operation
   * writes comes after this.
   */
  /** `also`: records written in the same transaction (#discloseOwed deletes what it settles). */
  async #encryptAndQueue(
    drafts: readonly DraftEvent[],
    opts: { to?: PartyId[] },
    also: ReadonlyArray<[string, Uint8Array | undefined]> = [],
  ): Promise<{ outbox: OutboxItem[]; written: Promise<unknown> }> {
    const group = this.#requireGroup();
    const me = this.#ctx.identity;
    const records: [string, Uint8Array | undefined][] = [...also];
    const outbox: OutboxItem[] = [];
    let state = this.#view.view.state;
    const synced = this.#view.view;
    for (const draft of drafts) {
      const id = this.#nextMsgId();
      const now = this.#ctx.now();
      const event = { ...withView(draft, synced), v: 1, id, at: now } as ChannelEvent;
      // What every receiver checks (the event schema, one event's size): an event it would
      // refuse as unreadable is refused here, with the reason, instead of being sent.
      const valid = parseEvent(event);
      if (!valid.ok)
        throw new ClientError(
          'INVALID_ARGUMENT',
          `this ${draft.kind} is not valid (${valid.at}): ${valid.message}`,
        );
      // The channel rules are checked before anything is encrypted or sent: the user gets the
      // reason now, not a silently refused event in the transcript later.
      const pre = fold(state, {
        event,
        sender: { device: me.device, party: me.party, role: me.certificate.body.role },
        seq: this.#rec.nextSeq,
        receivedAt: now,
      });
      if (!pre.ok) {
        throw new ClientError('EVENT_REJECTED', explainRefusal(this.id, state, pre.code, pre.reason, me), {
          causeCode: pre.code,
        });
      }
      state = pre.state;
      const salt = this.#ctx.random(16);
      const { plaintext: sealed, commitment } = sealEvent(event, salt, this.#ctx.sha256);
      if (sealed.length > MAX_EVENT_BYTES)
        throw new ClientError(
          'INVALID_ARGUMENT',
          `this ${draft.kind} is larger than one event may be (${MAX_EVENT_BYTES} bytes)`,
        );
      const mls = await group.encrypt(sealed, senderBinding(me.device, id));
      const env = this.#sign({
        kind: 'application',
        msgId: id,
        epoch: group.epoch,
        mls,
        commitment,
        ...(opts.to === undefined ? {} : { to: opts.to }),
      });
      records.push([keys.own(this.id, id), sealed]);
      outbox.push({ id, channel: this.id, createdAt: now, wire: env.wire });
    }
    this.#rec = { ...this.#rec, sentSinceUpdate: this.#rec.sentSinceUpdate + drafts.length };
    records.push(
      [keys.mls(this.id), group.exportState()],
      [keys.channel(this.id), encodeChannelRecord(this.#rec)],
    );
    return { outbox, written: this.#ctx.store.put(records, outbox) };
  }

  /** Builds a signed envelope from this device. */
  #sign(fields: Omit<EnvelopeBody, 'v' | 'channel' | 'sender' | 'sentAt'>): SignedEnvelope {
    return signEnvelope(
      {
        v: 1,
        channel: this.id,
        sender: this.#ctx.identity.device,
        sentAt: this.#ctx.now(),
        ...fields,
      } as EnvelopeBody,
      this.#ctx.identity.deviceSecretKey,
      this.#ctx.suite,
    );
  }

  /**
   * Runs a commit (add/remove/update): posts it directly (commits must be ordered by the
   * relay before anyone builds on them) and keeps the new MLS state only once accepted; an
   * Add's Welcome is queued in the outbox (the caller flushes it).
   */
  commit(
    make: (g: MlsGroup) => Promise<{ commit: Uint8Array; welcome?: Uint8Array }>,
    members: { add: DeviceId[]; remove: DeviceId[] },
    welcomeTo: PartyId[] = [],
  ): Promise<{ seq: number }> {
    return this.#run(async () => {
      const group = this.#requireGroup();
      const before = group.exportState();
      const epoch = group.epoch;
      let seq: number;
      let welcome: PendingCommit['welcome'];
      try {
        const made = await make(group);
        const msgId = this.#nextMsgId();
        const env = this.#sign({ kind: 'commit', msgId, epoch, mls: made.commit, members });
        if (made.welcome !== undefined) {
          const id = this.#nextMsgId();
          const w = this.#sign({
            kind: 'welcome',
            msgId: id,
            epoch: group.epoch,
            mls: made.welcome,
            to: welcomeTo,
          });
          welcome = { id, wire: w.wire };
        }
        // On disk before it leaves: were the relay to accept the commit and its answer never to
        // come (a timeout, a refusal from the endpoint failed over to, this process killed), the
        // sync that meets it in the log adopts it. Kept until the group moves past its epoch
        // (#dropStalePending), whatever the answer: a refusal need not mean it is not in the log.
        const pending = keys.pendingCommit(this.id, epoch, msgId);
        await this.#ctx.store.put([
          [
            pending,
            encodePendingCommit({
              msgId,
              epoch,
              state: group.exportState(),
              welcome,
              postedAt: this.#ctx.now(),
            }),
          ],
        ]);
        this.#pending.set(pending, { epoch, since: this.#ctx.now(), postedAt: this.#ctx.now() });
        seq = (await this.#ctx.relay.postEnvelope(this.id, env.wire)).seq;
      } catch (e) {
        // Nothing of it is current: the group stays at the epoch the log has.
        this.#group = await this.#ctx.mls.restore(before);
        throw e;
      }
      // The Welcome goes through the outbox, written with the new MLS state: a device added by
      // an accepted commit gets its Welcome even if this process stops right after. The commits
      // still pending were for the epoch this one took: none of them can be in the log.
      const outbox = welcome === undefined ? [] : [this.#welcomeItem(welcome)];
      // What the devices it adds are owed (join.context, #discloseOwed), recorded with the new
      // state: sent by discloseOwed() or the next sync, even if this process stops first. Not for
      // the opening commit: a channel with no history has nothing to disclose.
      const owed: OwedDisclosure | undefined =
        members.add.length > 0 && epoch > 0 ? { seq, add: members.add } : undefined;
      const owedKey = keys.owedDisclosure(this.id, seq);
      await this.#ctx.store.put(
        [
          [keys.mls(this.id), group.exportState()],
          ...this.#dropStalePending(),
          ...(owed === undefined ? [] : [[owedKey, encodeOwedDisclosure(owed)] as [string, Uint8Array]]),
        ],
        outbox,
      );
      if (owed !== undefined) this.#owed.set(owedKey, owed);
      if (outbox.length > 0) this.#ctx.queued?.(outbox);
      return { seq };
    });
  }

  /**
   * Whether this device should refresh its MLS leaf: every `maxAgeMs` or `maxMessages`, and
   * after a sync that did not meet a commit of its own posted without an answer a while ago
   * (PENDING_SETTLE_MS): the relay never took it, and its stored state (epoch secrets) goes once
   * the refresh moves the group on; were it in the log after all, the refresh is refused as
   * stale and the next sync adopts it.
   */
  updateDue(maxAgeMs = 7 * 24 * 3600 * 1000, maxMessages = 1000): boolean {
    const group = this.#group;
    if (this.#rec.removed || group === undefined || this.#rec.lostAtEpoch >= 0) return false;
    const now = this.#ctx.now();
    for (const { epoch, since } of this.#pending.values())
      if (epoch === group.epoch && now - since >= PENDING_SETTLE_MS) return true;
    // Disclosures owed (#discloseOwed) wait for a new leaf when the sender ratchet may be used.
    if (this.#owed.size > 0 && this.#rec.staleSenderEpoch >= group.epoch) return true;
    return now - this.#rec.lastUpdateAt >= maxAgeMs || this.#rec.sentSinceUpdate >= maxMessages;
  }

  /**
   * Whether `e`, from a sync, shows that this channel never opened at the relay: this device
   * created it, its opening commit was refused or never reached the relay, and the relay has no
   * such channel for it. 'settling' while an answer to that commit, posted in this process less
   * than PENDING_SETTLE_MS ago, may still be on its way.
   */
  neverOpened(e: unknown): 'no' | 'settling' | 'yes' {
    if (!(e instanceof ClientError) || e.cause_code !== 'NOT_A_MEMBER') return 'no';
    const group = this.#group;
    if (this.#rec.nextSeq !== 0 || this.#rec.joinedEpoch !== 0 || group === undefined || group.epoch !== 0)
      return 'no';
    const now = this.#ctx.now();
    // Posted in an earlier process too: its answer may still be on its way (a process killed
    // right after posting, and a sync at once).
    for (const { epoch, postedAt } of this.#pending.values())
      if (epoch === 0 && now - postedAt < PENDING_SETTLE_MS) return 'settling';
    return 'yes';
  }

  /** Post-compromise security: a commit that replaces this device's leaf keys. */
  async selfUpdate(): Promise<void> {
    await this.commit((g) => g.selfUpdate(), { add: [], remove: [] });
    await this.#run(async () => {
      this.#rec = { ...this.#rec, lastUpdateAt: this.#ctx.now(), sentSinceUpdate: 0 };
      await this.#ctx.store.put([[keys.channel(this.id), encodeChannelRecord(this.#rec)]]);
    });
  }

  #requireGroup(): MlsGroup {
    if (this.#rec.removed || this.#group === undefined) {
      throw new ClientError('CHANNEL_NOT_JOINED', `this device is no longer a member of channel ${this.id}`);
    }
    const lost = this.stateLost;
    if (lost !== undefined) throw new ClientError('CHANNEL_STATE_LOST', lost);
    return this.#group;
  }

  /**
   * Deletes for the pending commits the group has moved past (adopted, or another commit took
   * their epoch; all of them once this device is out of the group): their states hold epoch
   * secrets, kept no longer than the group keeps its own.
   */
  #dropStalePending(): Array<[string, undefined]> {
    const group = this.#rec.removed ? undefined : this.#group;
    const out: Array<[string, undefined]> = [];
    for (const [key, { epoch }] of this.#pending) {
      if (group !== undefined && epoch >= group.epoch) continue;
      out.push([key, undefined]);
      this.#pending.delete(key);
    }
    return out;
  }

  #welcomeItem(w: NonNullable<PendingCommit['welcome']>): OutboxItem {
    return { id: w.id, channel: this.id, createdAt: this.#ctx.now(), wire: w.wire };
  }

  /**
   * A commit of this device at the group's epoch: the store already moved past it unless it was
   * posted without an answer (or this process stopped before writing it), in which case the
   * pending record holds the state it leads to. Otherwise the store is older than the commit.
   */
  async #ownCommit(seq: number, body: EnvelopeBody): Promise<'COMMIT_APPLIED' | 'OWN_COMMIT_LOST'> {
    const key = keys.pendingCommit(this.id, body.epoch, body.msgId);
    const bytes = this.#pending.has(key) ? await this.#ctx.store.get(key) : undefined;
    const pending = bytes === undefined ? undefined : decodePendingCommit(bytes);
    if (pending === undefined || pending.msgId !== body.msgId || pending.epoch !== body.epoch)
      return 'OWN_COMMIT_LOST';
    this.#group = await this.#ctx.mls.restore(pending.state);
    // The opening commit (epoch 0) of an outreach that never went out: the channel is this
    // device's alone; the other party is not welcomed to a channel with no outreach.
    if (pending.epoch > 0)
      this.#adopted.push({
        seq,
        add: body.kind === 'commit' ? (body.members?.add ?? []) : [],
        welcome: pending.welcome === undefined ? undefined : this.#welcomeItem(pending.welcome),
      });
    return 'COMMIT_APPLIED';
  }

  /**
   * What the adder of devices discloses to them (join.ts), for an adopted commit of this device
   * that added some: its caller never got to send it (Backchannel #addMissing, #reseat). From the
   * timeline before the commit, one join.context per party added; the record of what is owed is
   * deleted in the write that queues it. Inside the channel's queue.
   */
  async #discloseOwed(): Promise<void> {
    if (this.#owed.size === 0) return;
    const group = this.#group;
    // Not a member any more: nothing can be sent, and nothing is owed.
    if (group === undefined || this.#rec.removed || this.stateLost !== undefined) {
      await this.#settleOwed([...this.#owed.keys()]);
      return;
    }
    // A sender ratchet that may have been used: the leaf is refreshed first (syncAll does, from
    // outside the queue), and the next sync sends what is owed.
    if (this.#rec.staleSenderEpoch >= group.epoch) return;
    // The added devices' certificates are in the group (the commit carried their key packages).
    const members = new Map(group.members().map((m) => [m.device, m.certificate.body.party]));
    for (const [key, { seq, add }] of [...this.#owed].sort(([x], [y]) => (x < y ? -1 : 1))) {
      const byParty = new Map<PartyId, DeviceId[]>();
      for (const d of add) {
        const party = members.get(d) ?? this.#ctx.certs.certificate(d)?.body.party;
        if (party !== undefined) byParty.set(party, [...(byParty.get(party) ?? []), d]);
      }
      const view = this.#view.view;
      const before = { ...view, timeline: view.timeline.filter((r) => r.seq < seq) };
      const drafts: DraftEvent[] = [];
      for (const [party, devices] of byParty)
        for (const disclosures of joinDisclosures(before, party, devices.length))
          drafts.push({ kind: 'join.context', devices, disclosures } as DraftEvent);
      if (drafts.length === 0) {
        await this.#settleOwed([key]);
        continue;
      }
      try {
        const { outbox, written } = await this.#encryptAndQueue(drafts, {}, [[key, undefined]]);
        await written;
        this.#owed.delete(key);
        this.#ctx.queued?.(outbox);
      } catch (e) {
        // The page is applied and written: the sync goes on. The channel's rules may refuse the
        // disclosure now (a channel closed since); the devices then read what they can.
        if (!(e instanceof ClientError) || e.code === 'STORE_FAILED') throw e;
        await this.#settleOwed([key]);
      }
    }
  }

  /** Sends the join.context this device's commits owe the devices they added (OwedDisclosure). */
  discloseOwed(): Promise<void> {
    return this.#run(() => this.#discloseOwed());
  }

  /** Forgets owed disclosures that will not be sent (OwedDisclosure). */
  async #settleOwed(owed: readonly string[]): Promise<void> {
    await this.#ctx.store.put(owed.map((k) => [k, undefined] as [string, undefined]));
    for (const k of owed) this.#owed.delete(k);
  }

  /**
   * Fetches, verifies, decrypts and folds everything new. Returns the new event records.
   * Pipelined: the next page is requested, decoded and handed to the signature verifier while
   * this one is applied (the relay and a verify worker work on the other core).
   */
  sync(onProgress?: (p: SyncProgress) => void): Promise<EventRecord[]> {
    return this.#run(async () => {
      const out: EventRecord[] = [];
      let next = this.#fetchPage(this.#rec.nextSeq);
      for (;;) {
        const { page, prepared } = await next;
        const size = checkpointSizeOf(page.checkpoint);
        if (prepared === undefined) {
          await this.#verifyCheckpoint(page.checkpoint);
          break;
        }
        const end = prepared.from + prepared.entries.length;
        if (end < size) next = this.#fetchPage(end);
        out.push(...(await this.#apply(prepared)));
        onProgress?.({ channel: this.id, seq: this.#rec.nextSeq, size });
        if (this.#rec.nextSeq >= size) {
          await this.#verifyCheckpoint(page.checkpoint);
          break;
        }
      }
      // Owed by a commit adopted in an earlier process that stopped before it could send them.
      await this.#discloseOwed();
      return out;
    });
  }

  /** One page from the relay, decoded and its signatures being verified as soon as it arrives. */
  #fetchPage(from: number): Promise<{ page: EntriesAnswer; prepared?: PreparedPage }> {
    const p = this.#ctx.relay.getEntries(this.id, from, PAGE).then((page) => ({
      page,
      ...(page.entries.length === 0 ? {} : { prepared: this.#prepare(page.entries, from) }),
    }));
    // Awaited by the next turn of sync; a failure while this page is applied must not go unhandled.
    p.catch(() => undefined);
    return p;
  }

  /**
   * Folds entries pushed over the WebSocket with the checks of sync (continuity, decoding,
   * device signature and certificate, MLS, commitment; the Merkle frontier). Entries already
   * folded are skipped (no duplicate). `checkpoint`, when the relay sent one right after these
   * entries, is checked as sync checks a page's: at the size this device reaches, against its
   * own root, and stored in the same write (a fork is written as evidence, then thrown).
   * `rest` holds what follows a gap or a break in the sequence, and `behind` says the checkpoint
   * covers entries that did not arrive: either way the caller fetches the range (sync) and hands
   * the rest again. With `verify: false` the checkpoint only tells whether entries are missing
   * (the caller checks a later one, at its own size, soon after).
   */
  ingestPushed(
    entries: ReadonlyArray<{ seq: number; entry: Uint8Array }>,
    checkpoint?: string,
    opts: { verify?: boolean } = {},
  ): Promise<PushedResult> {
    return this.#run(async () => {
      const next = this.#rec.nextSeq;
      let i = 0;
      while (i < entries.length && (entries[i] as { seq: number }).seq < next) i++;
      let j = i;
      while (j < entries.length && (entries[j] as { seq: number }).seq === next + (j - i)) j++;
      const rest = entries.slice(j);
      const note = rest.length === 0 ? checkpoint : undefined;
      const verify = note !== undefined && opts.verify !== false;
      let records: EventRecord[] = [];
      if (j > i) {
        const page = this.#prepare(j - i === entries.length ? entries : entries.slice(i, j), next);
        records = await this.#apply(page, verify ? note : undefined);
      } else if (verify && note !== undefined) await this.#pushedCheckpoint(note);
      const behind = note !== undefined && checkpointSizeOf(note) > this.#rec.nextSeq;
      return { records, rest, behind };
    });
  }

  /**
   * A pushed checkpoint with no entries before it: verified when at this device's size; one
   * ahead is checked (signature, origin, no shrinking) and left pending; an older one is skipped
   * (a later one was verified). A fork throws, with its evidence kept.
   */
  async #pushedCheckpoint(note: string): Promise<void> {
    if (checkpointSizeOf(note) >= this.#rec.nextSeq) await this.#verifyCheckpoint(note);
  }

  /**
   * A checkpoint signed in the relay's name by a key this device does not trust: the relay may
   * have rotated its key; the device asks for the rotation statement before it judges the note
   * (and before anything of a page is applied: the question may fail, retryably).
   */
  async #learnRelayKeyOf(note: string | undefined): Promise<void> {
    if (note !== undefined && signedByUnknownRelayKey(note, this.#ctx))
      await this.#ctx.learnRelayRotation?.();
  }

  async #verifyCheckpoint(note: string): Promise<void> {
    await this.#learnRelayKeyOf(note);
    const r = checkCheckpoint(this.id, note, this.#rec, this.#ctx);
    if (r.kind === 'fork') {
      await this.#ctx.store.put([this.#forkRecord(r.evidence)]);
      throw new ClientError('FORK_DETECTED', r.reason);
    }
    if (r.kind === 'verified') {
      // Kept once on disk: a record holding it must not reach the store first by a later write
      // (a page's, committed without an fsync).
      const rec = { ...this.#rec, checkpoint: note, checkpointSize: r.size };
      await this.#ctx.store.put([[keys.channel(this.id), encodeChannelRecord(rec)]]);
      this.#rec = rec;
    }
  }

  #forkRecord(evidence: string): [string, Uint8Array] {
    return [`fork:${this.id}:${this.#ctx.now()}`, utf8(evidence)];
  }

  /** Checks a page's continuity and decodes it; starts verifying its signatures. */
  #prepare(entries: ReadonlyArray<{ seq: number; entry: Uint8Array }>, from: number): PreparedPage {
    const decoded: DecodedEntry[] = [];
    let expected = from;
    for (const { seq, entry } of entries) {
      if (seq !== expected) {
        throw new ClientError(
          'TRANSCRIPT_INVALID',
          `relay skipped or repeated entries (expected ${expected}, got ${seq})`,
        );
      }
      const d = decodeEntry(entry);
      if (!d.ok || d.value.entry.seq !== seq || d.value.entry.channel !== this.id) {
        throw new ClientError('TRANSCRIPT_INVALID', `entry ${seq} is malformed or misplaced`);
      }
      decoded.push(d.value);
      expected++;
    }
    return { from, entries, decoded, signatures: this.#verifySignatures(decoded) };
  }

  /**
   * Hands the page's envelope signatures to the batch verifier, each against the certificate
   * this device already holds for its sender. An entry whose sender is not known yet (or whose
   * certificate changes before the entry is applied) is verified one by one in #understand.
   */
  #verifySignatures(decoded: readonly DecodedEntry[]): Promise<PageSignatures | undefined> | undefined {
    const verifier = this.#ctx.verifier;
    if (verifier === undefined) return undefined;
    const checks: SignatureCheck[] = [];
    const index = new Map<number, number>();
    for (const { entry, envelope } of decoded) {
      const cert = this.#ctx.certs.certificate(envelope.body.sender);
      if (cert === undefined) continue;
      index.set(entry.seq, checks.length);
      checks.push({
        signature: envelope.sig,
        message: envelopeSignedMessage(envelope),
        publicKey: cert.body.devicePublicKey,
      });
    }
    // Should the batch verifier fail (a worker died, it was closed), every signature of the page
    // is checked one by one when it is applied; the failure is absorbed here, at once, since the
    // page may wait while an earlier one is applied.
    return verifier.verifyAll(checks).then(
      (ok) => ({ checks, index, ok }),
      () => undefined,
    );
  }

  /**
   * Applies a page in one write. With `note` (a checkpoint pushed right after the page), the
   * checkpoint is checked against the page's end state and, when it verifies, stored in the same
   * write; a forked one is written as evidence with the page, then thrown (as sync does).
   */
  async #apply(page: PreparedPage, note?: string): Promise<EventRecord[]> {
    if (page.from !== this.#rec.nextSeq) throw new Error('pages must be applied in order');
    await this.#learnRelayKeyOf(note);
    this.#adopted = [];
    const records: EventRecord[] = [];
    const writes: [string, Uint8Array | undefined][] = [];
    let frontier = this.#rec.frontier;
    let removed = this.#rec.removed;
    for (const { seq, entry } of page.entries)
      frontier = appendLeaf(frontier, seq, this.#ctx.leafHash(entry));
    // Before anything changes: the relay's times never go back along the log.
    let lastAt = this.#rec.lastAt;
    for (const { entry } of page.decoded) {
      if (entry.receivedAt < lastAt)
        throw new ClientError(
          'TRANSCRIPT_INVALID',
          `the relay dated entry ${entry.seq} of channel ${this.id} (${new Date(entry.receivedAt).toISOString()}) before the entry it logged ahead of it (${new Date(lastAt).toISOString()})`,
        );
      lastAt = entry.receivedAt;
    }
    const signatures = await page.signatures;
    await this.#learnRevocations(page);
    await this.#learnSenders(page);
    const me = this.#ctx.identity.device;
    const own = page.decoded.flatMap((d, i) =>
      d.envelope.body.sender === me ? [{ d, bytes: (page.entries[i] as { entry: Uint8Array }).entry }] : [],
    );
    if (own.length > 0 && this.#ctx.receipts !== undefined)
      writes.push(...(await this.#ctx.receipts.logged(this.#ctx.store, this.id, own)));
    let { staleSenderEpoch, lostAtEpoch } = this.#rec;
    let committed = false;
    for (const d of page.decoded) {
      const rec = await this.#understand(d, signatures);
      if (rec.status === 'handshake' && rec.code === 'REMOVED_SELF') removed = true;
      if (rec.status === 'handshake' && (rec.code === 'COMMIT_APPLIED' || rec.code === 'REMOVED_SELF'))
        committed = true;
      if (rec.status === 'unreadable' && rec.code === 'OWN_MESSAGE_LOST')
        staleSenderEpoch = Math.max(staleSenderEpoch, d.envelope.body.epoch);
      if (rec.status === 'handshake' && rec.code === 'OWN_COMMIT_LOST' && lostAtEpoch < 0)
        lostAtEpoch = d.envelope.body.epoch;
      records.push(rec);
    }
    if (committed) writes.push(...this.#dropStalePending());
    const adopted = this.#adopted;
    this.#adopted = [];
    const welcome = adopted.flatMap((a) => (a.welcome === undefined ? [] : [a.welcome]));
    const owed = adopted.flatMap(({ seq, add }) =>
      add.length === 0 ? [] : [[keys.owedDisclosure(this.id, seq), { seq, add }] as const],
    );
    for (const [key, o] of owed) writes.push([key, encodeOwedDisclosure(o)]);
    // One value per page (keyed by its first seq): one seal and one row instead of one per entry.
    writes.push([keys.event(this.id, page.from), encodeEventRecords(records)]);
    const disclosed = await this.#disclosed(page, records);
    for (const r of disclosed) writes.push([keys.disclosed(this.id, r.seq), encodeEventRecords([r])]);
    let rec: ChannelRecord = {
      ...this.#rec,
      frontier,
      nextSeq: page.from + page.entries.length,
      lastAt,
      removed,
      staleSenderEpoch,
      lostAtEpoch,
    };
    const check = note === undefined ? undefined : checkCheckpoint(this.id, note, rec, this.#ctx);
    if (check?.kind === 'verified' && note !== undefined)
      rec = { ...rec, checkpoint: note, checkpointSize: check.size };
    // As sync: the page is kept (the MLS state has moved on), a forked checkpoint with its evidence.
    if (check?.kind === 'fork') writes.push(this.#forkRecord(check.evidence));
    this.#rec = rec;
    writes.push([keys.channel(this.id), encodeChannelRecord(this.#rec)]);
    if (this.#group !== undefined) writes.push([keys.mls(this.id), this.#group.exportState()]);
    // The entries, their records and the channel record that counts them: one transaction. All
    // of it is what the relay serves again ('process' durability), unless it holds a checkpoint
    // this device saw or fork evidence (on disk: they are what later pages are checked against).
    try {
      await this.#ctx.store.put(
        writes,
        welcome,
        { channel: this.id, entries: page.entries },
        check === undefined || check.kind === 'pending' ? 'process' : 'disk',
      );
    } catch (e) {
      // The group and the record have moved past entries that are not stored.
      this.#failed = new ClientError(
        'STORE_FAILED',
        `channel ${this.id}: its state could not be written (${(e as Error).message}); open the device again`,
      );
      throw this.#failed;
    }
    if (welcome.length > 0) this.#ctx.queued?.(welcome);
    for (const [key, o] of owed) this.#owed.set(key, o);
    // Events disclosed to this device take the place of entries it could not read: fold again.
    this.#view =
      disclosed.length === 0
        ? this.#view.fold(records)
        : foldRecords(this.id, await loadRecords(this.#ctx, this.id), this.#rec.joinedEpoch);
    if (check?.kind === 'fork') throw new ClientError('FORK_DETECTED', check.reason);
    await this.#discloseOwed();
    return records;
  }

  /**
   * A commit of the page that removes another party's devices is valid only if that party's root
   * revoked them (devicePolicy): the party's revocations are read before the page is applied, so
   * that the group does not refuse the commit for want of them. Fails (retryable, nothing applied)
   * while the directory cannot be read.
   */
  async #learnRevocations(page: PreparedPage): Promise<void> {
    if (this.#group === undefined) return;
    const certs = this.#ctx.certs;
    // From the certificates, not the group as it stands before the page: a device the page adds
    // and then removes is named too.
    const partyOf = (device: DeviceId) => certs.certificate(device)?.body.party;
    const parties = new Set<PartyId>();
    for (const d of page.decoded) {
      const body = d.envelope.body;
      if (body.kind !== 'commit' || body.members === undefined) continue;
      const committer = partyOf(body.sender);
      for (const device of body.members.remove) {
        const party = partyOf(device);
        if (party !== undefined && party !== committer && !certs.hasRevocation(party, device))
          parties.add(party);
      }
    }
    const now = this.#ctx.now();
    for (const party of parties) await certs.refreshParty(party, now);
  }

  /**
   * The certificates of the page's senders this device does not hold yet, read before anything
   * of the page is applied. A directory that cannot be read now fails the page (retryable,
   * nothing applied) where the entry would otherwise be stored unreadable (SENDER_UNKNOWN) for
   * good; a directory that refuses leaves the sender unknown.
   */
  async #learnSenders(page: PreparedPage): Promise<void> {
    const certs = this.#ctx.certs;
    if (page.decoded.every((d) => certs.certificate(d.envelope.body.sender) !== undefined)) return;
    const now = this.#ctx.now();
    for (const party of this.#parties()) {
      try {
        await certs.refreshParty(party, now);
      } catch (e) {
        if (e instanceof ClientError && e.retryable) throw e;
      }
    }
  }

  /** The parties whose devices may post here: the channel's, or before it has any, every known one. */
  #parties(): readonly PartyId[] {
    const parties = this.#view.view.state.parties;
    return parties.length > 0 ? parties : this.#ctx.certs.parties();
  }

  /** What the page's join.context events for this device disclose (join.ts). */
  async #disclosed(page: PreparedPage, records: readonly EventRecord[]): Promise<EventRecord[]> {
    const out: EventRecord[] = [];
    const entryAt = async (seq: number) =>
      seq >= page.from && seq < page.from + page.decoded.length
        ? page.decoded[seq - page.from]
        : storedEntry(this.#ctx, this.id, seq);
    for (const r of records) {
      if (r.status !== 'ok' || r.event.kind !== 'join.context') continue;
      if (!r.event.devices.includes(this.#ctx.identity.device)) continue;
      // Another party's device discloses only to the devices its own commit added (the
      // re-seating, client.ts #reseat): any other member of that party could pick what to show.
      if (r.party !== this.#ctx.identity.party && (await this.#adderOf(r.seq, page)) !== r.sender) continue;
      out.push(...(await disclosedRecords(this.#ctx, this.id, this.#rec.joinedEpoch, r, entryAt)));
    }
    return out;
  }

  /** The device whose commit, last before `seq`, added this device to the group. */
  async #adderOf(seq: number, page: PreparedPage): Promise<DeviceId | undefined> {
    const me = this.#ctx.identity.device;
    const adds = (d: DecodedEntry | undefined) => {
      const b = d?.envelope.body;
      return b?.kind === 'commit' && b.members?.add.includes(me) === true ? b.sender : undefined;
    };
    for (let s = Math.min(seq, page.from + page.decoded.length) - 1; s >= page.from; s--) {
      const by = adds(page.decoded[s - page.from]);
      if (by !== undefined) return by;
    }
    // Before the page: this device's copy of the log, read backwards in chunks.
    const CHUNK = 256;
    for (let end = Math.min(seq, page.from); end > 0; end -= CHUNK) {
      const from = Math.max(0, end - CHUNK);
      const stored = await this.#ctx.store.entries(this.id, from, end - from);
      for (let i = stored.length - 1; i >= 0; i--) {
        const d = decodeEntry((stored[i] as { entry: Uint8Array }).entry);
        const by = adds(d.ok ? d.value : undefined);
        if (by !== undefined) return by;
      }
    }
    return undefined;
  }

  /** Verifies one entry and turns it into an event record (never throws on a bad entry). */
  async #understand(d: DecodedEntry, signatures: PageSignatures | undefined): Promise<EventRecord> {
    const { entry, envelope } = d;
    const base = { seq: entry.seq, receivedAt: entry.receivedAt, sender: envelope.body.sender };
    const now = this.#ctx.now();
    // Read from the directory before the page was applied, if it could be (#learnSenders).
    const cert = this.#ctx.certs.certificate(envelope.body.sender);
    if (cert === undefined) return { ...base, status: 'unreadable', code: 'SENDER_UNKNOWN' };
    if (!signatureValid(signatures, d, cert.body.devicePublicKey, this.#ctx.suite))
      return { ...base, status: 'unreadable', code: 'SIG_INVALID' };
    const body = envelope.body;
    if (body.kind === 'welcome' || body.kind === 'proposal')
      return { ...base, status: 'handshake', code: body.kind };
    const group = this.#group;
    if (body.kind === 'commit') {
      if (group === undefined || this.#rec.removed || body.epoch < group.epoch) {
        // This device's own commit, applied when the relay took it: what it changed, for the log.
        if (group !== undefined && !this.#rec.removed && body.sender === this.#ctx.identity.device)
          return { ...base, status: 'handshake', code: 'OWN_COMMIT', ...membersOf(body) };
        return { ...base, status: 'handshake', code: 'COMMIT_SEEN' };
      }
      if (body.sender === this.#ctx.identity.device && body.epoch === group.epoch) {
        const code = await this.#ownCommit(entry.seq, body);
        return { ...base, status: 'handshake', code, ...(code === 'COMMIT_APPLIED' ? membersOf(body) : {}) };
      }
      try {
        const p = await group.process(body.mls);
        if (p.kind !== 'commit') return { ...base, status: 'handshake', code: 'NOT_A_COMMIT' };
        if (!sameSet(p.added, body.members?.add ?? []) || !sameSet(p.removed, body.members?.remove ?? [])) {
          return { ...base, status: 'handshake', code: 'MEMBERS_MISDECLARED' };
        }
        if (p.removedSelf) return { ...base, status: 'handshake', code: 'REMOVED_SELF' };
        return { ...base, status: 'handshake', code: 'COMMIT_APPLIED', ...membersOf(body) };
      } catch (e) {
        return { ...base, status: 'handshake', code: errorCode(e) };
      }
    }
    // application
    let sealed: Uint8Array | undefined;
    if (body.sender === this.#ctx.identity.device) {
      sealed = await this.#ctx.store.get(keys.own(this.id, body.msgId));
      if (sealed === undefined) return { ...base, status: 'unreadable', code: 'OWN_MESSAGE_LOST' };
    } else {
      if (group === undefined || this.#rec.removed)
        return { ...base, status: 'unreadable', code: 'NOT_A_MEMBER' };
      // Its id is kept: later events that refer to it are told from invalid ones (view.ts).
      if (body.epoch < this.#rec.joinedEpoch)
        return { ...base, status: 'unreadable', code: 'BEFORE_JOIN', id: body.msgId };
      try {
        const p = await group.process(body.mls);
        if (p.kind !== 'application') return { ...base, status: 'unreadable', code: 'NOT_APPLICATION' };
        // The MLS author bound (device, message id) into its authenticated data: an envelope that
        // re-wraps someone else's ciphertext is refused.
        if (!constantTimeEqual(p.authenticatedData, senderBinding(body.sender, body.msgId))) {
          return { ...base, status: 'unreadable', code: 'SENDER_MISMATCH' };
        }
        sealed = p.plaintext;
      } catch (e) {
        return { ...base, status: 'unreadable', code: errorCode(e) };
      }
    }
    const opened = openSealedEvent(sealed, body.commitment ?? new Uint8Array(0), this.#ctx.sha256);
    if (!opened.ok) return { ...base, status: 'unreadable', code: opened.code };
    if (opened.value.event.id !== body.msgId)
      return { ...base, status: 'unreadable', code: 'EVENT_ID_MISMATCH' };
    const stillValid = this.#ctx.certs.check(cert, Math.min(now, entry.receivedAt));
    return {
      ...base,
      party: cert.body.party,
      role: cert.body.role,
      status: stillValid === undefined ? 'ok' : 'rejected',
      ...(stillValid === undefined ? {} : { code: 'CERT_INVALID' }),
      event: opened.value.event,
      salt: opened.value.salt,
    };
  }
}

/** Why a device whose store is older than its own commit can no longer use a channel, and what to do. */
export function stateLost(channel: string, epoch: number, device: string): string {
  return `this device's copy of channel ${channel} is older than its own commit there (epoch ${epoch}): its store was restored from an older copy, and MLS gives a device no way to process its own commit again, so it can no longer read or post on this channel. Replace this device: enroll a new one (\`backchannel device add\` on the admin device, or \`backchannel init recover\` from the recovery kit if this is the admin device) and revoke this one (\`backchannel device revoke ${device} --reason "store restored from an older copy"\`); the party's devices in the channel, or the other party's, then swap it for the new one`;
}

/** A refusal in words a negotiator can act on. */
export function explainRefusal(
  channel: string,
  state: ChannelState,
  code: string,
  reason: string,
  me?: { readonly party: PartyId; readonly certificate: { readonly body: { readonly role: string } } },
): string {
  const last = state.lifecycleHistory.at(-1);
  const since = last === undefined ? '' : ` since ${new Date(last.at).toISOString()}`;
  switch (code) {
    case 'CHANNEL_NOT_OPEN':
      if (state.lifecycle === 'suspended') {
        return `channel ${channel} is suspended${since}${last?.reason === undefined ? '' : ` (${last.reason})`}; reopen it with \`backchannel channel reopen ${channel}\`, or propose to with \`backchannel outreach ${channel} --note …\``;
      }
      if (state.lifecycle === 'proposed')
        return me !== undefined && state.initiator === me.party
          ? `channel ${channel} is waiting for the other party to accept this party's outreach`
          : `channel ${channel} is waiting for the outreach to be accepted: \`backchannel accept ${channel}\``;
      return `channel ${channel} is ${state.lifecycle}: ${reason}`;
    case 'CHANNEL_CLOSED':
      return `channel ${channel} has been closed${since}; nothing more can be sent on it`;
    case 'ROLE_FORBIDDEN':
      // An admin device certifies and revokes; what its role may not do, another device must.
      return me?.certificate.body.role === 'admin'
        ? `${reason} (an admin device manages the party's devices: do this from a principal or negotiator device, or enroll one with \`backchannel device add --role principal\`)`
        : `${reason} (ask a principal or your admin)`;
    default:
      return `${code}: ${reason}`;
  }
}

const PAGE = 1000;

/** What ingestPushed folded, and whether the caller must fetch a range (see there). */
export interface PushedResult {
  readonly records: EventRecord[];
  readonly rest: ReadonlyArray<{ seq: number; entry: Uint8Array }>;
  readonly behind: boolean;
}

interface PreparedPage {
  readonly from: number;
  readonly entries: ReadonlyArray<{ seq: number; entry: Uint8Array }>;
  readonly decoded: readonly DecodedEntry[];
  /** The batch verifier's answers for the page, when there is one and it answered. */
  readonly signatures: Promise<PageSignatures | undefined> | undefined;
}

interface PageSignatures {
  readonly checks: readonly SignatureCheck[];
  /** seq → index in checks */
  readonly index: ReadonlyMap<number, number>;
  readonly ok: Uint8Array;
}

/** The envelope's device signature: the batch answer when it was checked against this very key. */
function signatureValid(
  signatures: PageSignatures | undefined,
  d: DecodedEntry,
  publicKey: Uint8Array,
  suite: SignatureSuite,
): boolean {
  const i = signatures?.index.get(d.entry.seq);
  if (signatures !== undefined && i !== undefined) {
    const check = signatures.checks[i];
    if (check !== undefined && constantTimeEqual(check.publicKey, publicKey)) return signatures.ok[i] === 1;
  }
  return verifyEnvelope(d.envelope, publicKey, suite);
}

export function senderBinding(device: DeviceId, msgId: string): Uint8Array {
  return utf8(`${device} ${msgId}`);
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && [...a].sort().join() === [...b].sort().join();
}

function errorCode(e: unknown): string {
  const c = (e as { code?: unknown }).code;
  return typeof c === 'string' ? c : 'MLS_DECRYPT_FAILED';
}

function checkpointSizeOf(note: string): number {
  const line = note.split('\n')[1];
  const n = Number(line);
  return Number.isSafeInteger(n) ? n : 0;
}

/**
 * A heartbeat states this device's view of the lifecycle: the last entry it folded and the last
 * lifecycle change up to there (what an agreed-text attestation needs to show the channel was open
 * when a document was signed). Other drafts, and a heartbeat that states its own view, pass as is.
 */
function withView(draft: DraftEvent, synced: ChannelView): DraftEvent {
  if (draft.kind !== 'heartbeat' || draft.view !== undefined || synced.size === 0) return draft;
  // The state and its size come from one fold: the view is of exactly the entries folded.
  const lifecycle = synced.state.lifecycleHistory.at(-1)?.seq;
  return lifecycle === undefined ? draft : { ...draft, view: { seen: synced.size - 1, lifecycle } };
}

/**
 * The devices an applied commit added and removed, as its envelope declares them (the caller has
 * checked the declaration against the MLS commit, or made the commit itself): for the timeline.
 */
function membersOf(body: EnvelopeBody): {
  devicesAdded?: readonly DeviceId[];
  devicesRemoved?: readonly DeviceId[];
} {
  const add = body.members?.add ?? [];
  const remove = body.members?.remove ?? [];
  return {
    ...(add.length > 0 ? { devicesAdded: add } : {}),
    ...(remove.length > 0 ? { devicesRemoved: remove } : {}),
  };
}
