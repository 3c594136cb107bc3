/**
 * RelayClient's request signatures name the relay (PROTOCOL.md §11): the pinned relay's name, or
 * — while none is pinned — the name GET /v1/relay gives, fetched once before the first signed
 * request. A scripted fetch stands for the relay.
 */
import { spawnSync } from 'node:child_process';
import { createServer as httpServer, type Server } from 'node:http';
import { type AddressInfo, createServer as tcpServer } from 'node:net';
import { fromBase64url, keyPairFromSeed, REQUEST_HEADERS, verifyRequest } from '@backchannel/protocol';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { pathToFileURL } from 'node:url';
import { ClientError } from '../src/sdk/errors.ts';
import { RelayClient, signingClock } from '../src/sdk/relay-client.ts';

const kp = keyPairFromSeed(new Uint8Array(32).fill(5));
const auth = { device: 'd_x' as never, secretKey: kp.secretKey };
const EMPTY = new Uint8Array(0);

interface Seen {
  readonly url: string;
  readonly method: string;
  readonly headers: Record<string, string>;
}

/** A relay named `name` at each endpoint; `down` endpoints do not answer. */
function scripted(name: string, down: readonly string[] = []) {
  const seen: Seen[] = [];
  const fetch = async (url: string, init: RequestInit): Promise<Response> => {
    seen.push({
      url,
      method: init.method ?? 'GET',
      headers: { ...(init.headers as Record<string, string>) },
    });
    if (down.some((d) => url.startsWith(d))) throw new TypeError('fetch failed');
    if (url.endsWith('/v1/relay'))
      return new Response(JSON.stringify({ name, vkey: `${name}+00000000+AQ` }), { status: 200 });
    return new Response('{"items":[]}', { status: 200 });
  };
  return { seen, fetch };
}

const signedFor = (s: Seen, path: string, relay: string) =>
  verifyRequest(
    kp.publicKey,
    s.method,
    path,
    Number(s.headers[REQUEST_HEADERS.time]),
    EMPTY,
    relay,
    fromBase64url(s.headers[REQUEST_HEADERS.sig] as string),
  );

describe('RelayClient request signatures name the relay', () => {
  it('fetches the relay name once, before the first signed request, and signs for it', async () => {
    const r = scripted('relay.example');
    const rc = new RelayClient({ endpoints: ['https://relay.example'], auth, fetch: r.fetch });
    await rc.getInbox(0);
    await rc.getInbox(1);
    expect(r.seen.map((s) => s.url)).toEqual([
      'https://relay.example/v1/relay',
      'https://relay.example/v1/inbox?after=0',
      'https://relay.example/v1/inbox?after=1',
    ]);
    expect(r.seen[0]?.headers[REQUEST_HEADERS.sig]).toBeUndefined();
    const first = r.seen[1] as Seen;
    expect(signedFor(first, '/v1/inbox?after=0', 'relay.example')).toBe(true);
    expect(signedFor(first, '/v1/inbox?after=0', 'other.example')).toBe(false);
  });

  it('signs for the pinned name without asking, even when an endpoint claims another', async () => {
    const r = scripted('impostor.example');
    const rc = new RelayClient({
      endpoints: ['https://relay.example'],
      auth,
      fetch: r.fetch,
      relayName: () => 'relay.example',
    });
    await rc.getInbox(0);
    expect(r.seen.map((s) => s.url)).toEqual(['https://relay.example/v1/inbox?after=0']);
    expect(signedFor(r.seen[0] as Seen, '/v1/inbox?after=0', 'relay.example')).toBe(true);
    expect(await rc.relayName()).toBe('relay.example');
  });

  it('learns the name through failover, and signs for it at every endpoint of the relay', async () => {
    const r = scripted('relay.example', ['https://direct.example']);
    const rc = new RelayClient({
      endpoints: ['https://direct.example', 'https://mediator.example/fwd'],
      auth,
      fetch: r.fetch,
    });
    await rc.getInbox(0);
    const signed = r.seen.filter((s) => s.headers[REQUEST_HEADERS.sig] !== undefined);
    expect(signed.length).toBeGreaterThan(0);
    for (const s of signed) expect(signedFor(s, '/v1/inbox?after=0', 'relay.example')).toBe(true);
    expect(r.seen.filter((s) => s.url.endsWith('/v1/relay'))).toHaveLength(2); // direct failed, then forwarded
  });

  it('asks again after a failed fetch, and refuses a name the relay cannot have', async () => {
    let up = false;
    const r = scripted('relay.example');
    const rc = new RelayClient({
      endpoints: ['https://relay.example'],
      auth,
      fetch: (url, init) => (up ? r.fetch(url, init) : Promise.reject(new TypeError('down'))),
    });
    await expect(rc.getInbox(0)).rejects.toMatchObject({ code: 'RELAY_UNREACHABLE' });
    up = true;
    await rc.getInbox(0);
    expect(signedFor(r.seen.at(-1) as Seen, '/v1/inbox?after=0', 'relay.example')).toBe(true);

    const bad = new RelayClient({
      endpoints: ['https://relay.example'],
      auth,
      fetch: scripted('has space').fetch,
    });
    await expect(bad.getInbox(0)).rejects.toMatchObject({ code: 'RELAY_ERROR' });
  });
});

describe('signing times', () => {
  it('never repeat: a failover retry within the same millisecond is signed anew, not replayed', async () => {
    const r = scripted('relay.example', ['https://direct.example']);
    const rc = new RelayClient({
      endpoints: ['https://direct.example', 'https://mediator.example'],
      auth,
      fetch: r.fetch,
      now: () => 1_000,
      relayName: () => 'relay.example',
    });
    await rc.getInbox(0);
    await rc.getInbox(0);
    const inbox = r.seen.filter((s) => s.url.endsWith('/v1/inbox?after=0'));
    expect(inbox.length).toBeGreaterThanOrEqual(3);
    const times = inbox.map((s) => Number(s.headers[REQUEST_HEADERS.time]));
    expect(new Set(inbox.map((s) => s.headers[REQUEST_HEADERS.sig])).size).toBe(inbox.length);
    for (let i = 1; i < times.length; i++) expect(times[i]).toBeGreaterThan(times[i - 1] as number);
    expect(times[0]).toBe(1_000);
  });

  it('follow the clock, never going back and never repeating (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 1e13 }), { minLength: 1, maxLength: 50 }),
        (readings) => {
          let i = 0;
          const clock = signingClock(() => readings[i] as number);
          let prev = -1;
          for (i = 0; i < readings.length; i++) {
            const t = clock();
            expect(t).toBeGreaterThan(prev);
            expect(t).toBeGreaterThanOrEqual(readings[i] as number);
            // It runs ahead of the clock only by the readings it had to step over.
            expect(t).toBeLessThanOrEqual(Math.max(...readings.slice(0, i + 1)) + i);
            prev = t;
          }
        },
      ),
    );
  });
});

/**
 * Relays that fail in ways a request must not wait out forever, as real sockets on 127.0.0.1:
 * each request ends within its timeout with a retryable RELAY_UNREACHABLE (the CLI's exit 3),
 * and the next endpoint is tried.
 */
describe('a relay that fails mid-request', () => {
  const servers: Array<{ close(): void }> = [];
  afterEach(() => {
    for (const s of servers.splice(0)) s.close();
  });
  const listen = async (s: Server | ReturnType<typeof tcpServer>): Promise<string> => {
    servers.push(s);
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
  };
  const inbox = '{"items":[]}';
  /** A relay answering every request well. */
  const healthy = () =>
    listen(
      httpServer((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(inbox);
      }),
    );
  /** Headers and the start of the body, then nothing (a stalled relay or proxy). */
  const stallsMidBody = () =>
    listen(
      httpServer((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(inbox.length) });
        res.write(inbox.slice(0, 5));
      }),
    );
  /** Headers and the start of the body, then the connection is cut. */
  const dropsMidBody = () =>
    listen(
      httpServer((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(inbox.length) });
        res.write(inbox.slice(0, 5), () => setTimeout(() => res.socket?.destroy(), 20));
      }),
    );
  /** Accepts the connection and never answers. */
  const silent = () => listen(tcpServer(() => undefined));
  /** Accepts the connection and drops it at once (a forwarder whose backend is down). */
  const acceptAndDrop = () => listen(tcpServer((c) => c.destroy()));
  /** Something that is not the relay answers (a proxy's or captive portal's page, status 200). */
  const notTheRelay = () =>
    listen(
      httpServer((_req, res) => {
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end('<html><body>Please sign in to the hotel network</body></html>');
      }),
    );

  const client = (endpoints: string[]) => new RelayClient({ endpoints, timeoutMs: 300 });
  /** The request's outcome: the answer, or the error (its class, code and retryability). */
  const outcome = (p: Promise<unknown>) =>
    p.then(
      (v) => ({ ok: v }),
      (e: unknown) => ({
        error: e instanceof ClientError ? 'ClientError' : String((e as Error).name),
        code: (e as { code?: unknown }).code,
        retryable: (e as { retryable?: unknown }).retryable,
      }),
    );

  for (const [name, make] of [
    ['stalls mid-body', stallsMidBody],
    ['drops the connection mid-body', dropsMidBody],
    ['never answers', silent],
    ['accepts and drops the connection', acceptAndDrop],
    ['answers with a page that is not JSON', notTheRelay],
  ] as const) {
    it(`${name}: RELAY_UNREACHABLE (retryable) within the timeout, and the next endpoint answers`, async () => {
      const bad = await make();
      // Alone: a typed, retryable error, not a TimeoutError nor a TypeError from fetch.
      expect(await outcome(client([bad]).getInbox(0))).toEqual({
        error: 'ClientError',
        code: 'RELAY_UNREACHABLE',
        retryable: true,
      });
      // With another endpoint: failed over to it.
      const good = await healthy();
      const rc = client([bad, good]);
      expect(await outcome(rc.getInbox(0))).toEqual({ ok: [] });
      expect(rc.endpoint).toBe(good);
    });
  }
});

describe('a request left waiting with nothing to wake it', () => {
  it('still ends with RELAY_UNREACHABLE at its timeout, in a process with nothing else to do', () => {
    // Node's fetch, on a connection accepted and dropped at once, can wait for an answer with no
    // socket open; AbortSignal.timeout's timer does not hold the event loop, so a CLI process
    // ended there (exit 13, nothing said). Here a fetch that only its signal can end stands for it.
    const src = pathToFileURL(new URL('../src/sdk/relay-client.ts', import.meta.url).pathname).href;
    const script = `
      const { RelayClient } = await import(${JSON.stringify(src)});
      const fetch = (_url, init) =>
        new Promise((_resolve, reject) => init.signal.addEventListener('abort', () => reject(init.signal.reason)));
      const rc = new RelayClient({ endpoints: ['http://relay.invalid'], fetch, timeoutMs: 200 });
      try { await rc.getInbox(0); console.log('answered'); } catch (e) { console.log(e.code); }
    `;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect({ status: r.status, stdout: r.stdout.trim() }).toEqual({ status: 0, stdout: 'RELAY_UNREACHABLE' });
  });
});
