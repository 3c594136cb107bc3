/** Binary `send` frames on the WebSocket: the same checks, errors and answer as the HTTP route. */
import { type ChannelId, type SignedEnvelope, signRequest, toBase64url } from '@backchannel/protocol';
import { decodeRelayReceipt, verifyRelayReceipt } from '@backchannel/protocol/attest';
import { afterEach, describe, expect, it } from 'vitest';
import type { HubConnection, HubSocket } from '../src/ws/hub.ts';
import { CLOSE } from '../src/ws/frames.ts';
import {
  type AppendBody,
  commit,
  envelope,
  makeDevice,
  makeParty,
  newChannel,
  readLog,
  suite,
  type TestDevice,
  type TestRelay,
  testRelay,
  verifyAppend,
} from './helpers.ts';

type Text = { type: string; id?: string | number; code?: string; seq?: number };

class FakeSocket implements HubSocket {
  readonly text: Text[] = [];
  readonly binary: Uint8Array[] = [];
  bufferedAmount = 0;
  closed: number | undefined;
  send(data: string | Uint8Array): void {
    if (typeof data === 'string') this.text.push(JSON.parse(data) as Text);
    else this.binary.push(data);
  }
  close(code: number): void {
    this.closed = code;
  }
}

/** Decodes a binary ack (layout in src/ws/frames.ts) into the JSON answer's shape. */
function decodeAck(b: Uint8Array): { id: number; answer: AppendBody } {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  expect(b[0]).toBe(0x02);
  const u64 = (at: number) => v.getUint32(at) * 2 ** 32 + v.getUint32(at + 4);
  const n = b[30] as number;
  const proof: string[] = [];
  for (let i = 0; i < n; i++) proof.push(toBase64url(b.subarray(31 + i * 32, 63 + i * 32)));
  let at = 31 + n * 32;
  const noteLen = v.getUint16(at);
  const checkpoint = new TextDecoder().decode(b.subarray(at + 2, at + 2 + noteLen));
  at += 2 + noteLen;
  const receiptLen = v.getUint16(at);
  expect(at + 2 + receiptLen).toBe(b.length);
  const seq = u64(6);
  return {
    id: v.getUint32(1),
    answer: {
      seq,
      leafIndex: seq,
      receivedAt: u64(14),
      inclusionProof: proof,
      checkpoint,
      size: u64(22),
      duplicate: b[5] === 1,
      ...(receiptLen === 0 ? {} : { receipt: toBase64url(b.subarray(at + 2, at + 2 + receiptLen)) }),
    } as AppendBody,
  };
}

function sendFrame(id: number, env: SignedEnvelope | Uint8Array): Uint8Array {
  const wire = env instanceof Uint8Array ? env : env.wire;
  const f = new Uint8Array(5 + wire.length);
  f[0] = 0x01;
  new DataView(f.buffer).setUint32(1, id);
  f.set(wire, 5);
  return f;
}

const tick = (ms = 5) => new Promise((r) => setTimeout(r, ms));
async function until(pred: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error('condition not reached');
    await tick();
  }
}

let r: TestRelay;
afterEach(() => r.close());

async function connect(dev: TestDevice, auth = true): Promise<{ sock: FakeSocket; conn: HubConnection }> {
  const sock = new FakeSocket();
  const conn = r.core.hub.attach(sock);
  if (auth) {
    const time = Date.now();
    conn.onMessage(
      JSON.stringify({
        type: 'auth',
        device: dev.device,
        time,
        sig: toBase64url(
          signRequest(dev.kp.secretKey, 'WS', '/v1/ws', time, new Uint8Array(0), r.core.signer.name, suite),
        ),
      }),
    );
    await until(() => sock.text.some((f) => f.type === 'ready'));
  }
  return { sock, conn };
}

const errorFor = (sock: FakeSocket, id: number) =>
  sock.text.find((f) => f.type === 'error' && f.id === id)?.code;

describe('WebSocket binary send', () => {
  it('appends pipelined binary sends and answers each with a binary ack that verifies', async () => {
    r = await testRelay();
    const A = makeParty('A');
    const a = makeDevice(A, 'a', 'admin');
    const a2 = makeDevice(A, 'a2', 'staff');
    await r.caller.publishParty(A, [a, a2]);
    const ch = newChannel();
    const { sock, conn } = await connect(a);
    conn.onMessage(sendFrame(0, commit(a, ch, 0, [a2])));
    await until(() => sock.binary.length === 1);
    const sent = Array.from({ length: 30 }, () => envelope(a, ch));
    sent.forEach((env, i) => {
      conn.onMessage(sendFrame(i + 1, env));
    });
    await until(() => sock.binary.length === 31);
    const acks = sock.binary.map(decodeAck).sort((x, y) => x.id - y.id);
    expect(acks.map((x) => x.id)).toEqual(Array.from({ length: 31 }, (_, i) => i));
    expect(acks.map((x) => x.answer.seq)).toEqual(Array.from({ length: 31 }, (_, i) => i));
    const log = await readLog(r.caller, ch, a);
    for (const { answer } of acks) {
      expect(answer.duplicate).toBe(false);
      expect(verifyAppend(r.core, answer, log[answer.seq] as Uint8Array)).toBe(true);
      const receipt = decodeRelayReceipt(answer.receipt as string);
      expect(receipt.ok && verifyRelayReceipt(receipt.value, r.core.signer.publicKey, suite)).toBe(true);
      expect(receipt.ok && receipt.value.body.seq).toBe(answer.seq);
    }
    // A retry is idempotent (same seq, duplicate), as over HTTP.
    conn.onMessage(sendFrame(99, sent[4] as SignedEnvelope));
    await until(() => sock.binary.length === 32);
    const retry = decodeAck(sock.binary[31] as Uint8Array);
    expect(retry).toMatchObject({ id: 99, answer: { seq: 5, duplicate: true } });
    expect(sock.text.filter((f) => f.type === 'error')).toEqual([]);
  });

  it('signs receipts per channel: receipts sharing a signature all name one channel', async () => {
    r = await testRelay();
    const A = makeParty('A');
    const a = makeDevice(A, 'a', 'admin');
    await r.caller.publishParty(A, [a]);
    const chs = [newChannel(), newChannel()];
    const { sock, conn } = await connect(a);
    chs.forEach((ch, i) => {
      conn.onMessage(sendFrame(i, commit(a, ch, 0)));
    });
    await until(() => sock.binary.length === 2);
    // Both channels' sends in one event-loop turn: one group commit holds both.
    for (let i = 0; i < 40; i++) conn.onMessage(sendFrame(10 + i, envelope(a, chs[i % 2] as ChannelId)));
    await until(() => sock.binary.length === 42);
    const bySig = new Map<string, Set<string>>();
    let batched = 0;
    for (const { answer } of sock.binary.map(decodeAck)) {
      const d = decodeRelayReceipt(answer.receipt as string);
      if (!d.ok) throw new Error(d.message);
      expect(verifyRelayReceipt(d.value, r.core.signer.publicKey, suite)).toBe(true);
      if (d.value.batch !== undefined) batched++;
      const key = toBase64url(d.value.sig);
      bySig.set(key, (bySig.get(key) ?? new Set()).add(d.value.body.channel));
    }
    expect(batched).toBeGreaterThan(0);
    for (const channels of bySig.values()) expect(channels.size).toBe(1);
  });

  it('answers the same typed errors as HTTP, by id, as text frames', async () => {
    r = await testRelay();
    const A = makeParty('A');
    const a = makeDevice(A, 'a', 'admin');
    const b = makeDevice(A, 'b', 'staff');
    await r.caller.publishParty(A, [a, b]);
    const ch = newChannel();
    expect((await r.caller.append(a, commit(a, ch, 0))).status).toBe(201);

    const anon = await connect(a, false);
    anon.conn.onMessage(sendFrame(1, envelope(a, ch)));
    await until(() => errorFor(anon.sock, 1) !== undefined);
    expect(errorFor(anon.sock, 1)).toBe('AUTH_MISSING');
    // Unauthenticated frames count as bad frames: past 20 the socket is closed.
    for (let i = 2; i <= 22; i++) anon.conn.onMessage(sendFrame(i, envelope(a, ch)));
    await until(() => anon.sock.closed !== undefined);
    expect(anon.sock.closed).toBe(CLOSE.TOO_MANY_ERRORS);

    const { sock, conn } = await connect(a);
    const forged = envelope(a, ch);
    const bad = forged.wire.slice();
    bad[bad.length - 1] = (bad[bad.length - 1] as number) ^ 1;
    conn.onMessage(sendFrame(2, bad));
    conn.onMessage(sendFrame(3, envelope(b, ch)));
    conn.onMessage(sendFrame(4, new Uint8Array([1, 2, 3])));
    conn.onMessage(sendFrame(5, Uint8Array.of(0xa0)));
    conn.onMessage(Uint8Array.of(0x01, 0, 0));
    conn.onMessage(Uint8Array.of(0x07, 0, 0, 0, 6, 1));
    await until(() => sock.text.filter((f) => f.type === 'error').length === 6);
    expect(errorFor(sock, 2)).toBe('SIG_INVALID');
    expect(errorFor(sock, 3)).toBe('SENDER_MISMATCH');
    expect(errorFor(sock, 4)).toMatch(/^DECODE_|ENVELOPE_INVALID/);
    expect(errorFor(sock, 5)).toMatch(/^DECODE_|ENVELOPE_INVALID/);
    expect(sock.text.filter((f) => f.code === 'FRAME_INVALID')).toHaveLength(2);

    const other = await connect(b);
    other.conn.onMessage(sendFrame(6, envelope(b, ch)));
    await until(() => errorFor(other.sock, 6) !== undefined);
    expect(errorFor(other.sock, 6)).toBe('NOT_A_MEMBER');
    expect(sock.binary).toEqual([]);
  });

  it('streams entries as binary frames to a binary subscription, catch-up and live, as text to the others', async () => {
    r = await testRelay();
    const A = makeParty('A');
    const a = makeDevice(A, 'a', 'admin');
    const a2 = makeDevice(A, 'a2', 'staff');
    await r.caller.publishParty(A, [a, a2]);
    const ch = newChannel();
    expect((await r.caller.append(a, commit(a, ch, 0, [a2]))).status).toBe(201);
    for (let i = 0; i < 3; i++) expect((await r.caller.append(a, envelope(a, ch))).status).toBe(201);
    const bin = await connect(a2);
    bin.conn.onMessage(JSON.stringify({ type: 'subscribe', channel: ch, from: 1, binary: true }));
    const txt = await connect(a2);
    txt.conn.onMessage(JSON.stringify({ type: 'subscribe', channel: ch, from: 1 }));
    await until(() => bin.sock.binary.length === 3);
    for (let i = 0; i < 2; i++) expect((await r.caller.append(a, envelope(a, ch))).status).toBe(201);
    await until(
      () => bin.sock.binary.length === 5 && txt.sock.text.filter((f) => f.type === 'entry').length === 5,
    );
    const log = await readLog(r.caller, ch, a);
    const frames = bin.sock.binary.map((b) => {
      expect(b[0]).toBe(0x03);
      const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
      return {
        channel: new TextDecoder().decode(b.subarray(1, 25)),
        seq: v.getUint32(25) * 2 ** 32 + v.getUint32(29),
        entry: b.subarray(33),
      };
    });
    expect(frames.map((f) => f.seq)).toEqual([1, 2, 3, 4, 5]);
    for (const f of frames) {
      expect(f.channel).toBe(ch);
      expect([...f.entry]).toEqual([...(log[f.seq] as Uint8Array)]);
    }
    const texts = txt.sock.text.filter((f) => f.type === 'entry') as Array<Text & { entry: string }>;
    expect(texts.map((f) => f.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(texts.map((f) => f.entry)).toEqual(frames.map((f) => toBase64url(f.entry)));
    expect(txt.sock.binary).toEqual([]);
  });

  it('refuses a binary frame above the frame cap', async () => {
    r = await testRelay('sqlite', { limits: { wsFrameBytes: 2_000 } });
    const A = makeParty('A');
    const a = makeDevice(A, 'a', 'admin');
    await r.caller.publishParty(A, [a]);
    const { sock, conn } = await connect(a);
    conn.onMessage(sendFrame(1, new Uint8Array(3_000)));
    await until(() => sock.text.some((f) => f.type === 'error'));
    expect(sock.text.find((f) => f.type === 'error')?.code).toBe('FRAME_TOO_LARGE');
  });
});
