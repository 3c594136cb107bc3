/**
 * A write batch the database fails (here: a trigger in the test's own schema that raises on one
 * msgId, or ends its own connection on another) is answered, not left hanging: every append in
 * it gets a typed, retryable RelayError, nothing acknowledged before it is lost, and the relay
 * goes on taking appends. Against the real PostgreSQL (skipped when it is not up, unless
 * BACKCHANNEL_REQUIRE_SERVICES=1).
 */
import { type ChannelId, decodeEntry, eventIdFrom, type SignedEnvelope } from '@backchannel/protocol';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresStore } from '../src/store/postgres/pg-store.ts';
import {
  type Answer,
  type AppendBody,
  commit,
  envelope,
  makeDevice,
  makeParty,
  newChannel,
  type TestDevice,
  type TestRelay,
  testRelay,
} from './helpers.ts';
import { PG_URL, servicesUp } from './services.ts';

const pgUp = await servicesUp('failed-batch.test.ts', ['postgres']);

/** Every append must be answered well within this (a hang fails the test, not the run). */
const ANSWER_MS = 10_000;

function answered<T>(p: Promise<T>): Promise<T> {
  return Promise.race([
    p,
    new Promise<T>((_, reject) =>
      setTimeout(() => reject(new Error(`no answer within ${ANSWER_MS} ms`)), ANSWER_MS).unref(),
    ),
  ]);
}

function msgIdOf(e: Uint8Array): string {
  const d = decodeEntry(e);
  if (!d.ok) throw new Error(d.message);
  return d.value.envelope.body.msgId;
}

describe.skipIf(!pgUp)('postgres: a failed write batch', () => {
  let r: TestRelay;
  let admin: TestDevice;
  let sql: postgres.Sql;
  /** The msgId the trigger refuses. */
  const poison = eventIdFrom(new Uint8Array(16).fill(7));
  /** The msgId whose insert ends the transaction's connection. */
  const kill = eventIdFrom(new Uint8Array(16).fill(9));

  beforeAll(async () => {
    // One connection, so a lost one is the one the next batch uses.
    r = await testRelay('postgres', { verifyThreads: 0 }, { pgPoolSize: 1 });
    const store = r.core.store;
    if (!(store instanceof PostgresStore)) throw new Error('not a PostgreSQL relay');
    const schema = store.schema;
    sql = postgres(PG_URL, { max: 1, onnotice: () => {} });
    await sql.unsafe(`
      CREATE FUNCTION "${schema}".fail_on_msg_id() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.msg_id = '${poison}' THEN RAISE EXCEPTION 'poisoned entry'; END IF;
        IF NEW.msg_id = '${kill}' THEN PERFORM pg_terminate_backend(pg_backend_pid()); END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER fail_on_msg_id BEFORE INSERT ON "${schema}".entries
        FOR EACH ROW EXECUTE FUNCTION "${schema}".fail_on_msg_id();`);
    const A = makeParty('A');
    admin = makeDevice(A, 'a-admin', 'admin');
    await r.caller.publishParty(A, [admin]);
  });

  afterAll(async () => {
    await sql?.end({ timeout: 1 });
    await r?.close();
  });

  async function openChannel(): Promise<ChannelId> {
    const ch = newChannel();
    const res = await r.caller.append(admin, commit(admin, ch, 0));
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return ch;
  }

  async function log(ch: ChannelId): Promise<string[]> {
    const rows = await r.core.store.read((tx) => tx.getEntries(ch, 0, 100_000));
    return rows.map((row) => msgIdOf(row.entry));
  }

  /** A statement the database refuses fails the batch: INTERNAL (500), retry. */
  function expectRefusedRetryable(a: Answer<AppendBody>): void {
    expect(a.status, JSON.stringify(a.body)).toBe(500);
    expect(a.body.error?.code).toBe('INTERNAL');
  }

  it('answers every append of the batch with a typed error, loses nothing, and takes later appends', async () => {
    const ch = await openChannel();
    const before = envelope(admin, ch);
    expect((await r.caller.append(admin, before)).status).toBe(201);

    // A burst around the poisoned envelope: its batch fails as a whole.
    const envs: SignedEnvelope[] = [
      ...Array.from({ length: 5 }, () => envelope(admin, ch)),
      envelope(admin, ch, { msgId: poison }),
      ...Array.from({ length: 5 }, () => envelope(admin, ch)),
    ];
    const answers = await answered(Promise.all(envs.map((e) => r.caller.append(admin, e))));
    expectRefusedRetryable(answers[5] as Answer<AppendBody>);
    const ok = answers.filter((a) => a.status === 201);
    for (const a of answers) if (a.status !== 201) expectRefusedRetryable(a);

    // Acknowledged appends are in the log at their seq; refused ones are not.
    const logged = await log(ch);
    expect(logged[1]).toBe(before.body.msgId);
    envs.forEach((e, i) => {
      const a = answers[i] as Answer<AppendBody>;
      if (a.status === 201) expect(logged[a.body.seq]).toBe(e.body.msgId);
      else expect(logged).not.toContain(e.body.msgId);
    });
    expect(logged.length).toBe(2 + ok.length);

    // The relay goes on: the refused ones (but the poisoned) go through on retry, and new ones too.
    for (const [i, e] of envs.entries()) {
      if ((answers[i] as Answer<AppendBody>).status === 201 || i === 5) continue;
      expect((await answered(r.caller.append(admin, e))).status).toBe(201);
    }
    const after = await answered(
      Promise.all(Array.from({ length: 4 }, () => r.caller.append(admin, envelope(admin, ch)))),
    );
    expect(after.map((a) => a.status)).toEqual([201, 201, 201, 201]);
    expect((await log(ch)).length).toBe(2 + envs.length - 1 + 4);
    expect(r.core.appender.queued).toBe(0);
  });

  it('a batch failing in its first append still ends its transaction (the next one is not blocked)', async () => {
    const ch = await openChannel();
    const one = await answered(r.caller.append(admin, envelope(admin, ch, { msgId: poison })));
    expectRefusedRetryable(one);
    const next = await answered(r.caller.append(admin, envelope(admin, ch)));
    expect(next.status, JSON.stringify(next.body)).toBe(201);
    expect(next.body.seq).toBe(1);
  });

  it('a batch whose connection is lost is answered STORE_UNAVAILABLE, and the next append goes through at once', async () => {
    const ch = await openChannel();
    const envs = [envelope(admin, ch), envelope(admin, ch, { msgId: kill }), envelope(admin, ch)];
    const answers = await answered(Promise.all(envs.map((e) => r.caller.append(admin, e))));
    expect((answers[1] as Answer<AppendBody>).status).toBe(503);
    for (const a of answers) {
      if (a.status === 201) continue;
      expect(a.status).toBe(503);
      expect(a.body.error?.code).toBe('STORE_UNAVAILABLE');
      expect(a.headers.get('retry-after')).not.toBeNull();
    }
    // The store's only connection was lost: the next append reopens it, first time.
    const next = await answered(r.caller.append(admin, envelope(admin, ch)));
    expect(next.status, JSON.stringify(next.body)).toBe(201);
    const logged = await log(ch);
    envs.forEach((e, i) => {
      const a = answers[i] as Answer<AppendBody>;
      if (a.status === 201) expect(logged[a.body.seq]).toBe(e.body.msgId);
      else expect(logged).not.toContain(e.body.msgId);
    });
  });
});
