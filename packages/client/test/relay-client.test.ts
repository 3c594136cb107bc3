/**
 * RelayClient's request signatures name the relay (PROTOCOL.md §11): the pinned relay's name, or
 * — while none is pinned — the name GET /v1/relay gives, fetched once before the first signed
 * request. A scripted fetch stands for the relay.
 */
import { fromBase64url, keyPairFromSeed, REQUEST_HEADERS, verifyRequest } from '@backchannel/protocol';
import { describe, expect, it } from 'vitest';
import { RelayClient } from '../src/sdk/relay-client.ts';

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
