import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../src/config.ts';
import { makeDevice, makeParty, type TestDevice, type TestRelay, testRelay } from './helpers.ts';

let r: TestRelay;
let dev: TestDevice;

beforeAll(async () => {
  r = await testRelay('sqlite', {
    rateLimits: { device: { perSecond: 1, burst: 3 }, ip: { perSecond: 10_000, burst: 10_000 } },
  });
  const P = makeParty('P');
  dev = makeDevice(P, 'd', 'admin');
  await r.caller.publishParty(P, [dev]);
});
afterAll(() => r.close());

describe('operations endpoints', () => {
  it('answers healthz, readyz, the relay identity and Prometheus metrics', async () => {
    expect((await r.caller.get('/healthz')).body).toEqual({ ok: true });
    expect((await r.caller.get('/readyz')).body).toEqual({ ready: true });
    const info = await r.caller.get('/v1/relay');
    expect(info.body).toMatchObject({ name: 'backchannel.local', vkey: r.core.signer.vkey, store: 'sqlite' });
    const res = await r.core.app.request('/metrics');
    const text = await res.text();
    expect(res.headers.get('content-type')).toMatch(/text\/plain/);
    for (const m of [
      'bc_http_requests_total',
      'bc_appends_total',
      'bc_append_batch_size',
      'bc_append_commit_seconds',
      'bc_ws_subscribers',
      'bc_ws_dropped_slow_total',
    ]) {
      expect(text).toContain(m);
    }
    expect(text).toMatch(/bc_http_requests_total\{method="GET",route="\/healthz",status="200"\} 1/);
  });

  it('counts refusals by their code', async () => {
    const count = async (code: string) => {
      const text = await (await r.core.app.request('/metrics')).text();
      const m = new RegExp(`^bc_refusals_total\\{code="${code}",via="http"\\} (\\d+)$`, 'm').exec(text);
      return Number(m?.[1] ?? 0);
    };
    const [notFound, invalid, notAllowed] = [
      await count('NOT_FOUND'),
      await count('REQUEST_INVALID'),
      await count('METHOD_NOT_ALLOWED'),
    ];
    expect((await r.caller.get('/v1/nowhere')).status).toBe(404);
    expect((await r.caller.get('/v1/cards/not-a-party-id')).status).toBe(400);
    expect((await r.core.app.request('/v1/relay', { method: 'DELETE' })).status).toBe(405);
    expect(await count('NOT_FOUND')).toBe(notFound + 1);
    expect(await count('REQUEST_INVALID')).toBe(invalid + 1);
    expect(await count('METHOD_NOT_ALLOWED')).toBe(notAllowed + 1);
  });

  it('serves the OpenAPI document with every route and Swagger UI', async () => {
    const doc = (await r.caller.get('/openapi.json')).body as {
      paths: Record<string, unknown>;
      openapi: string;
    };
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths).sort()).toEqual(
      [
        '/v1/cards',
        '/v1/cards/{party}',
        '/v1/channels/{channel}/checkpoint',
        '/v1/channels/{channel}/checkpoints/{size}',
        '/v1/channels/{channel}/cosignatures',
        '/v1/channels/{channel}/entries',
        '/v1/channels/{channel}/envelopes',
        '/v1/channels/{channel}/proof/consistency',
        '/v1/channels/{channel}/proof/inclusion',
        '/v1/devices',
        '/v1/devices/enrollment',
        '/v1/inbox',
        '/v1/key-packages',
        '/v1/key-packages/claim',
        '/v1/parties/{party}/devices',
        '/v1/relay',
        '/v1/revocations',
      ].sort(),
    );
    const ui = await r.core.app.request('/docs');
    expect(ui.status).toBe(200);
    expect(await ui.text()).toContain('swagger');
  });

  it('with a metrics token, /metrics answers its bearer only (401 AUTH_MISSING / AUTH_INVALID)', async () => {
    const token = 'metrics-token-0123456789';
    const guarded = await testRelay('sqlite', { metricsToken: token });
    try {
      const none = await guarded.core.app.request('/metrics');
      expect(none.status).toBe(401);
      expect(((await none.json()) as { error: { code: string } }).error.code).toBe('AUTH_MISSING');
      const sameLength = `${token.slice(0, -1)}${token.endsWith('x') ? 'y' : 'x'}`;
      for (const auth of [
        `Bearer ${sameLength}`,
        `Bearer ${token}x`,
        `Bearer ${token.slice(1)}`,
        token,
        'Basic abc',
      ]) {
        const res = await guarded.core.app.request('/metrics', { headers: { authorization: auth } });
        expect(res.status, auth).toBe(401);
        const code = ((await res.json()) as { error: { code: string } }).error.code;
        expect(code).toBe(auth.startsWith('Bearer ') ? 'AUTH_INVALID' : 'AUTH_MISSING');
      }
      const ok = await guarded.core.app.request('/metrics', {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(ok.status).toBe(200);
      expect(await ok.text()).toContain('bc_appends_total');
      // The other operations endpoints stay open: a load balancer's health checks carry no token.
      expect((await guarded.caller.get('/healthz')).body).toEqual({ ok: true });
    } finally {
      await guarded.close();
    }
    expect(() => resolveConfig({ metricsToken: 'short' })).toThrow(/16 characters/);
  });

  it('readyz turns 503 NOT_READY while draining, and appends are refused then', async () => {
    const other = await testRelay();
    await other.core.drain();
    const res = await other.caller.get('/readyz');
    expect(res.status).toBe(503);
    expect(res.body).toEqual({ error: { code: 'NOT_READY', message: expect.any(String) } });
    await other.close();
  });
});

describe('rate limits', () => {
  it('refuses a device over its bucket with 429, retryAfterMs and Retry-After', async () => {
    const answers = [];
    const now = Date.now();
    for (let i = 0; i < 5; i++)
      answers.push(await r.caller.call('GET', '/v1/inbox', { as: dev, time: now + i }));
    expect(answers.slice(0, 3).map((a) => a.status)).toEqual([200, 200, 200]);
    const limited = answers[3];
    expect(limited?.status).toBe(429);
    expect(limited?.body).toEqual({
      error: { code: 'RATE_LIMITED', message: expect.any(String), retryAfterMs: expect.any(Number) },
    });
    expect(Number(limited?.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
  });

  it('limits by client address before anything else', async () => {
    const tight = await testRelay('sqlite', { rateLimits: { ip: { perSecond: 1, burst: 2 } } });
    const codes = [];
    for (let i = 0; i < 3; i++) codes.push((await tight.caller.get('/v1/relay')).status);
    expect(codes).toEqual([200, 200, 429]);
    await tight.close();
  });
});
