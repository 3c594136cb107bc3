/**
 * Fuzz targets of the relay: WebSocket client frames, JSON bodies, cosignature lines, the
 * fan-out wire form between nodes, and whole HTTP requests through the real Hono app
 * (app.request(), in-process, on a temporary SQLite store). The HTTP property: never a 5xx,
 * and every error is {"error": {"code", "message"}} with a documented code and the one status
 * that code maps to, never a stack trace. Shared by fuzz.test.ts and scripts/fuzz.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  decodeCanonical,
  encodeCanonical,
  ProtocolError,
  requestHeaders,
  signWithLabel,
  toBase64url,
  utf8,
} from '@backchannel/protocol';
import fc from 'fast-check';
import {
  cborInputs,
  mutatedCbor,
  mutatedJson,
  mutatedText,
  textInputs,
} from '../../../protocol/test/fuzz/mutate.ts';
import { defineTarget, FuzzBug, type FuzzTarget } from '../../../protocol/test/fuzz/targets.ts';
import { type BadContext, setupBadContext } from '../bad-inputs.ts';
import {
  Caller,
  cardOf,
  envelope,
  registration,
  revocationOf,
  seedOf,
  suite,
  type TestDevice,
} from '../helpers.ts';
import { resolveConfig } from '../../src/config.ts';
import { RELAY_ERROR_STATUS, RelayError } from '../../src/errors.ts';
import { decodeFanout, encodeFanout, FanoutDecodeError } from '../../src/fanout/fanout-codec.ts';
import type { FanoutMessage } from '../../src/fanout/fanout.ts';
import { parseJsonSafe } from '../../src/http/body.ts';
import { createRelay } from '../../src/relay.ts';
import { parseCosignatureLine } from '../../src/routes/transcript.ts';
import { openSqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { parseBinaryFrame, parseClientFrame } from '../../src/ws/frames.ts';

/** A relay error must carry a documented code (packages/server/ERRORS.md ↔ RELAY_ERROR_STATUS). */
function relayTyped<R>(what: string, f: () => R): R | undefined {
  try {
    return f();
  } catch (e) {
    if (e instanceof RelayError && Object.hasOwn(RELAY_ERROR_STATUS, e.code)) return undefined;
    throw new FuzzBug(
      `${what} threw ${e instanceof Error ? `${e.name}: ${e.message}` : typeof e}`.slice(0, 300),
    );
  }
}

/** Whether a parsed JSON value has an own "__proto__" key at any depth (iterative: values may be deep). */
function hasProtoKey(root: unknown): boolean {
  const stack = [root];
  while (stack.length > 0) {
    const v = stack.pop();
    if (v === null || typeof v !== 'object') continue;
    if (Object.hasOwn(v, '__proto__')) return true;
    stack.push(...(Array.isArray(v) ? v : Object.values(v)));
  }
  return false;
}

const CHANNEL = 'c_AAAAAAAAAAAAAAAAAAAAAA';
const frameSeeds = [
  { type: 'auth', device: 'd_AAAAAAAAAAAAAAAAAAAAAA', time: 1_800_000_000_000, sig: 'A'.repeat(86) },
  { type: 'subscribe', channel: CHANNEL, from: 3 },
  { type: 'unsubscribe', channel: CHANNEL },
  { type: 'send', id: 7, envelope: 'oWRib2R5QA' },
  { type: 'ping' },
];
const FRAME_MAX = 4096;

const fanoutSeed: FanoutMessage = {
  channels: [
    {
      channel: CHANNEL as never,
      entries: [
        { seq: 1, entry: new Uint8Array(40).fill(1), removed: ['d_AAAAAAAAAAAAAAAAAAAAAA' as never] },
      ],
      checkpoint: { size: 2, note: 'relay/c\n2\nROOT=\n\n— relay sig\n' },
    },
  ],
  inbox: [
    {
      party: 'p_AAAAAAAAAAAAAAAAAAAAAA' as never,
      cursor: 5,
      channel: CHANNEL as never,
      seq: 1,
      entry: new Uint8Array(8),
    },
  ],
  revoked: ['d_BBBBBBBBBBBBBBBBBBBBBB' as never],
};

const checkpointSeed =
  'relay.test/c_AAAAAAAAAAAAAAAAAAAAAA\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n— relay.test AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n';
const cosigSeed = `— witness.a ${toBase64url(new Uint8Array(76)).replace(/-/g, '+').replace(/_/g, '/')}=\n`;

/** Targets that need no relay. */
export const serverCodecTargets: readonly FuzzTarget[] = [
  defineTarget({
    name: 'ws-frame',
    weight: 3,
    input: fc.oneof(mutatedJson(frameSeeds), fc.string({ maxLength: 5000 })),
    check: (text) => {
      const frame = relayTyped('parseClientFrame', () => parseClientFrame(text, FRAME_MAX));
      if (frame !== undefined && !['auth', 'subscribe', 'unsubscribe', 'send', 'ping'].includes(frame.type))
        throw new FuzzBug(`parseClientFrame let through a frame of type ${String(frame.type)}`);
    },
  }),
  defineTarget({
    name: 'ws-binary-frame',
    weight: 1,
    input: fc.oneof(
      fc.uint8Array({ maxLength: 64 }),
      fc
        .tuple(fc.nat({ max: 0xffffffff }), fc.uint8Array({ maxLength: 3000 }))
        .map(([id, rest]) =>
          Uint8Array.of(1, id >>> 24, (id >>> 16) & 0xff, (id >>> 8) & 0xff, id & 0xff, ...rest),
        ),
    ),
    check: (bytes) => {
      const f = relayTyped('parseBinaryFrame', () => parseBinaryFrame(bytes, 2048));
      if (f === undefined) return;
      // a send frame's parts are exactly the frame after its 5-byte header, and never above the cap
      if (bytes.length > 2048 || f.envelope.length !== bytes.length - 5 || bytes[0] !== 1)
        throw new FuzzBug('parseBinaryFrame accepted a frame it should refuse');
      if (f.envelope.some((x, i) => x !== bytes[i + 5]))
        throw new FuzzBug('parseBinaryFrame changed the envelope');
    },
  }),
  defineTarget({
    name: 'json-body',
    weight: 2,
    input: mutatedJson([{ party: 'p_AAAAAAAAAAAAAAAAAAAAAA' }, { envelope: 'AAAA' }, ...frameSeeds]),
    check: (text) => {
      const v = relayTyped('parseJsonSafe', () => parseJsonSafe(text));
      // what parses has no __proto__ key anywhere, so spreading it cannot change a prototype
      if (v !== undefined && hasProtoKey(v)) throw new FuzzBug('parseJsonSafe let a __proto__ key through');
    },
  }),
  defineTarget({
    name: 'cosignature-line',
    weight: 1,
    input: fc.tuple(textInputs([checkpointSeed]), textInputs([cosigSeed])),
    check: ([note, line]) => {
      relayTyped('parseCosignatureLine', () => parseCosignatureLine(note, line));
    },
  }),
  defineTarget({
    name: 'fanout',
    weight: 1,
    input: cborInputs(encodeFanout('node-a', fanoutSeed, 1 << 20)),
    check: (b) => {
      try {
        const m = decodeFanout(b);
        const again = encodeFanout(m.origin, m.message, 1 << 20);
        if (again.length !== 1 || toBase64url(again[0] as Uint8Array) !== toBase64url(b))
          throw new FuzzBug('fanout: decoded message does not re-encode to the input');
      } catch (e) {
        if (e instanceof FanoutDecodeError || e instanceof FuzzBug) {
          if (e instanceof FuzzBug) throw e;
          return;
        }
        throw new FuzzBug(`decodeFanout threw ${e instanceof Error ? `${e.name}: ${e.message}` : typeof e}`);
      }
    },
  }),
];

/* ------------------------------------------------------------------ HTTP */

interface HttpCase {
  readonly method: string;
  readonly path: string;
  /** Body bytes (undefined: none). */
  readonly body: Uint8Array | undefined;
  readonly contentType: string | undefined;
  /** Who signs the request headers (after mutation, so the signature check passes). */
  readonly signer: 'a' | 'b' | 'outsider' | 'none' | 'garbled';
  readonly extraHeaders: Readonly<Record<string, string>>;
}

const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS'];
const CONTENT_TYPES = [
  'application/json',
  'application/json; charset=utf-8',
  'application/cbor',
  'application/octet-stream',
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/vnd.x+json',
  '',
];

function httpInput(
  ctx: BadContext,
  seeds: { path: string; json?: unknown; method: string }[],
): fc.Arbitrary<HttpCase> {
  const wires = [
    envelope(ctx.a, ctx.channel, { epoch: 2 }),
    envelope(ctx.a, ctx.channel, { kind: 'commit', epoch: 2, members: { add: [], remove: [] } }),
  ];
  const bodies = seeds.flatMap((s) => (s.json === undefined ? [] : [s.json]));
  const paths = seeds.map((s) => s.path);
  // envelope bodies mutated in structure and re-signed by a, so the relay's channel rules are reached
  const resigned = mutatedCbor(wires.map((w) => w.bodyBytes)).map((body) => {
    const ok = decodeCanonical(body).ok;
    const sig = ok ? signWithLabel(ctx.a.kp.secretKey, 'envelope', body, suite) : new Uint8Array(64);
    return utf8(JSON.stringify({ envelope: toBase64url(encodeCanonical({ body, sig })) }));
  });
  const body: fc.Arbitrary<Uint8Array | undefined> = fc.oneof(
    { arbitrary: fc.constant(undefined), weight: 1 },
    { arbitrary: mutatedJson(bodies).map(utf8), weight: 4 },
    { arbitrary: resigned, weight: 3 },
    {
      arbitrary: cborInputs(wires.map((w) => w.wire)).map((w) =>
        utf8(JSON.stringify({ envelope: toBase64url(w) })),
      ),
      weight: 2,
    },
    { arbitrary: cborInputs(wires.map((w) => w.wire)), weight: 1 },
    { arbitrary: fc.uint8Array({ maxLength: 64 }), weight: 1 },
  );
  return fc.record({
    method: fc.oneof(
      { arbitrary: fc.constantFrom('GET', 'POST', 'PUT'), weight: 4 },
      { arbitrary: fc.constantFrom(...METHODS), weight: 1 },
    ),
    path: fc.oneof(
      { arbitrary: fc.constantFrom(...paths), weight: 3 },
      { arbitrary: mutatedText(paths), weight: 2 },
    ),
    body,
    contentType: fc.oneof(
      { arbitrary: fc.constant('application/json'), weight: 4 },
      { arbitrary: fc.constantFrom(...CONTENT_TYPES), weight: 1 },
      { arbitrary: fc.constant(undefined), weight: 1 },
    ),
    signer: fc.constantFrom('a', 'a', 'b', 'outsider', 'none', 'garbled'),
    extraHeaders: fc.oneof(
      { arbitrary: fc.constant({}), weight: 6 },
      {
        arbitrary: fc.constantFrom(
          { 'content-length': '99999999999' },
          { 'content-length': '-1' },
          { 'content-length': 'x' },
          { 'x-bc-time': '1e400' },
          { 'x-bc-time': '-5' },
          { 'x-bc-device': 'd_AAAAAAAAAAAAAAAAAAAAAA' },
          { 'x-bc-sig': '!!' },
        ),
        weight: 1,
      },
    ),
  });
}

/** The relay's answer must be a typed one: no 5xx, errors in the documented JSON form. */
async function checkAnswer(
  method: string,
  res: Response,
  lastInternal: () => string | undefined,
): Promise<void> {
  const text = await res.text();
  if (res.status >= 500)
    throw new FuzzBug(`HTTP ${res.status}: ${text.slice(0, 200)} (logged: ${lastInternal() ?? 'nothing'})`);
  if (method === 'HEAD') return; // HEAD answers carry no body
  if (/\bat [^\n]*\.(ts|js):\d+/.test(text) || text.includes('"stack"'))
    throw new FuzzBug(`a response carries a stack trace: ${text.slice(0, 200)}`);
  if (res.status < 400) return;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new FuzzBug(`HTTP ${res.status} with a body that is not JSON: ${text.slice(0, 120)}`);
  }
  const err = (body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  const code = err?.code;
  if (
    typeof code !== 'string' ||
    typeof err?.message !== 'string' ||
    !Object.hasOwn(RELAY_ERROR_STATUS, code)
  )
    throw new FuzzBug(`HTTP ${res.status} without a documented error code: ${text.slice(0, 200)}`);
  const want = RELAY_ERROR_STATUS[code as keyof typeof RELAY_ERROR_STATUS];
  if (want !== res.status) throw new FuzzBug(`${code} answered with HTTP ${res.status}, documented ${want}`);
}

export interface ServerTargets {
  readonly targets: readonly FuzzTarget[];
  close(): Promise<void>;
}

/** Opens a relay on a temporary SQLite store, seeds it (two parties, a channel), returns all targets. */
export async function openServerTargets(): Promise<ServerTargets> {
  const dir = mkdtempSync(join(tmpdir(), 'bc-fuzz-'));
  let internal: string | undefined;
  const core = createRelay({
    // high limits: the fuzzer is one client sending many requests
    config: resolveConfig({
      dataDir: dir,
      rateLimits: {
        device: { perSecond: 1e6, burst: 1e6 },
        ip: { perSecond: 1e6, burst: 1e6 },
        unsigned: { perSecond: 1e6, burst: 1e6 },
        keyPackageClaims: { perSecond: 1e6, burst: 1e6 },
        writes: { perSecond: 1e6, burst: 1e6 },
      },
    }),
    store: openSqliteStore({ path: join(dir, 'relay.db') }),
    seed: seedOf(`relay ${dir}`),
    log: {
      debug() {},
      info() {},
      warn() {},
      error(obj: object, msg?: string) {
        internal = `${msg ?? ''} ${JSON.stringify(obj).slice(0, 300)}`;
      },
    },
  });
  const caller = new Caller(async (path, init) => core.app.request(path, init));
  const relayName = await caller.relayName();
  const ctx = await setupBadContext(caller);
  const devs: Record<string, TestDevice> = { a: ctx.a, b: ctx.b, outsider: ctx.outsider };
  const ch = ctx.channel;
  const seeds = [
    {
      method: 'POST',
      path: `/v1/channels/${ch}/envelopes`,
      json: { envelope: toBase64url(envelope(ctx.a, ch, { epoch: 2 }).wire) },
    },
    { method: 'GET', path: `/v1/channels/${ch}/entries?from=0&limit=5` },
    { method: 'GET', path: `/v1/channels/${ch}/checkpoint` },
    { method: 'GET', path: `/v1/channels/${ch}/checkpoints/2` },
    { method: 'GET', path: `/v1/channels/${ch}/proof/inclusion?index=1&size=3` },
    { method: 'GET', path: `/v1/channels/${ch}/proof/consistency?from=1&to=3` },
    { method: 'POST', path: `/v1/channels/${ch}/cosignatures`, json: { size: 3, cosignature: cosigSeed } },
    { method: 'GET', path: '/v1/inbox?after=0' },
    { method: 'GET', path: '/v1/relay' },
    { method: 'PUT', path: '/v1/cards', json: { card: toBase64url(cardOf(ctx.a.party)) } },
    { method: 'GET', path: `/v1/cards/${ctx.b.party.party}` },
    { method: 'POST', path: '/v1/devices', json: registration(ctx.a) },
    { method: 'POST', path: '/v1/revocations', json: { revocation: toBase64url(revocationOf(ctx.revoked)) } },
    { method: 'GET', path: `/v1/parties/${ctx.a.party.party}/devices` },
    { method: 'POST', path: '/v1/key-packages', json: { keyPackages: [toBase64url(new Uint8Array(50))] } },
    { method: 'POST', path: '/v1/key-packages/claim', json: { party: ctx.b.party.party } },
  ];
  const http = defineTarget({
    name: 'http',
    weight: 4,
    input: httpInput(ctx, seeds),
    check: async (c: HttpCase) => {
      const headers: Record<string, string> = {};
      if (c.contentType !== undefined && c.body !== undefined) headers['content-type'] = c.contentType;
      const dev = devs[c.signer];
      const bytes = c.body ?? new Uint8Array(0);
      if (dev !== undefined) {
        try {
          Object.assign(
            headers,
            requestHeaders(
              dev.device,
              dev.kp.secretKey,
              c.method,
              c.path,
              Date.now(),
              bytes,
              relayName,
              suite,
            ),
          );
        } catch (e) {
          // a path with a lone surrogate cannot be signed: the client refuses it, no relay sees it
          if (e instanceof ProtocolError && e.code === 'DECODE_MALFORMED') return;
          throw e;
        }
      }
      if (c.signer === 'garbled')
        Object.assign(headers, {
          'x-bc-device': ctx.a.device,
          'x-bc-time': String(Date.now()),
          'x-bc-sig': 'AAAA',
        });
      Object.assign(headers, c.extraHeaders);
      internal = undefined;
      let res: Response;
      try {
        const init: RequestInit = { method: c.method, headers };
        if (c.body !== undefined && c.method !== 'GET' && c.method !== 'HEAD')
          init.body = c.body as Uint8Array<ArrayBuffer>;
        // paths that are not URLs at all are refused by the client before any relay sees them
        if (!c.path.startsWith('/')) return;
        res = await core.app.request(c.path, init);
      } catch (e) {
        if (e instanceof TypeError && /URL|header|Header|ByteString/i.test(e.message)) return; // refused by fetch, not the relay
        throw new FuzzBug(`app.request threw ${e instanceof Error ? `${e.name}: ${e.message}` : typeof e}`);
      }
      await checkAnswer(c.method, res, () => internal);
    },
  });
  return {
    targets: [...serverCodecTargets, http],
    async close() {
      await core.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
