/**
 * createApp(deps): the relay's HTTP API as a Hono app — routes only: no listen(), no
 * process.env. Errors leave as {error: {code, message}} with the code's one HTTP status.
 */
import { isProtocolError } from '@backchannel/protocol';
import { swaggerUI } from '@hono/swagger-ui';
import { OpenAPIHono } from '@hono/zod-openapi';
import { HTTPException } from 'hono/http-exception';
import { routePath } from 'hono/route';
import { fromProtocol, RelayError } from './errors.ts';
import type { AppDeps, RelayApp, RelayEnv } from './http/context.ts';
import { clientAddress, rateLimited } from './http/guards.ts';
import { cardRoutes } from './routes/cards.ts';
import { deviceRoutes } from './routes/devices.ts';
import { entryRoutes } from './routes/entries.ts';
import { envelopeRoutes } from './routes/envelopes.ts';
import { healthRoutes } from './routes/health.ts';
import { inboxRoutes } from './routes/inbox.ts';
import { keyPackageRoutes } from './routes/key-packages.ts';
import { relayRoutes } from './routes/relay.ts';
import { transcriptRoutes } from './routes/transcript.ts';

export type { AppDeps } from './http/context.ts';

function fromHttpException(e: HTTPException): RelayError {
  switch (e.status) {
    case 413:
      return new RelayError('BODY_TOO_LARGE', 'request body is too large');
    case 415:
      return new RelayError('UNSUPPORTED_MEDIA_TYPE', 'unsupported content type for this route');
    case 404:
      return new RelayError('NOT_FOUND', 'not found');
    case 405:
      return new RelayError('METHOD_NOT_ALLOWED', 'method not allowed');
    default:
      return e.status < 500
        ? new RelayError('BODY_MALFORMED', 'malformed request')
        : new RelayError('INTERNAL', 'internal error');
  }
}

export function createApp(deps: AppDeps): RelayApp {
  const app: RelayApp = new OpenAPIHono<RelayEnv>({
    defaultHook: (result) => {
      if (!result.success) {
        const issue = result.error.issues[0];
        const at = issue?.path.join('.') ?? '';
        throw new RelayError(
          'REQUEST_INVALID',
          `${result.target}${at === '' ? '' : `.${at}`}: ${issue?.message ?? 'invalid'}`,
        );
      }
    },
  });

  app.use('*', async (c, next) => {
    await next();
    deps.metrics.requests.inc({ method: c.req.method, route: routePath(c, -1), status: c.res.status });
  });

  app.use('/v1/*', async (c, next) => {
    const wait = deps.limiters.ip.take(clientAddress(deps, c), deps.now());
    if (wait > 0) {
      deps.metrics.rateLimited.inc({ scope: 'ip' });
      throw rateLimited(wait);
    }
    return next();
  });

  healthRoutes(app, deps);
  relayRoutes(app, deps);
  cardRoutes(app, deps);
  deviceRoutes(app, deps);
  keyPackageRoutes(app, deps);
  envelopeRoutes(app, deps);
  entryRoutes(app, deps);
  transcriptRoutes(app, deps);
  inboxRoutes(app, deps);

  app.openAPIRegistry.registerComponent('securitySchemes', 'signedRequest', {
    type: 'apiKey',
    in: 'header',
    name: 'x-bc-sig',
    description:
      "Signed request: x-bc-device (d_…), x-bc-time (ms), x-bc-sig = base64url(Ed25519(deviceKey, CBOR(['backchannel/v1 request', CBOR([METHOD, pathWithQuery, time, SHA-256(body), relayName])]))), relayName = GET /v1/relay `name`",
  });
  app.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: {
      title: 'Backchannel relay',
      version: '1',
      description:
        'Relay API: directory, channels (append, read, proofs), inboxes. WebSocket at /v1/ws (frames, including binary envelope sends: docs/PROTOCOL.md §11). Error codes: packages/server/ERRORS.md.',
    },
  });
  app.get('/docs', swaggerUI({ url: '/openapi.json' }));

  if (deps.staticFiles !== undefined) app.use('*', deps.staticFiles);

  // A path the relay serves, asked with another method: 405 and the methods it takes (Allow).
  const routes = app.routes
    .filter((r) => r.method !== 'ALL' && r.path !== '/*' && r.path !== '*')
    .map((r) => ({ method: r.method, re: routePattern(r.path) }));
  app.notFound((c) => {
    const allowed = [...new Set(routes.filter((r) => r.re.test(c.req.path)).map((r) => r.method))];
    if (allowed.length > 0) {
      deps.metrics.refused('METHOD_NOT_ALLOWED', 'http');
      c.header('allow', allowed.join(', '));
      return c.json(
        new RelayError(
          'METHOD_NOT_ALLOWED',
          `${c.req.method} is not taken here; use ${allowed.join(' or ')}`,
        ).toJSON(),
        405,
      );
    }
    deps.metrics.refused('NOT_FOUND', 'http');
    return c.json(new RelayError('NOT_FOUND', 'no such route').toJSON(), 404);
  });

  app.onError((err, c) => {
    let e: RelayError;
    if (err instanceof RelayError) e = err;
    else if (err instanceof HTTPException) e = fromHttpException(err);
    else if (isProtocolError(err)) e = fromProtocol(err.code, err.message, 'REQUEST_INVALID');
    else {
      deps.log.error({ err: { name: err.name, message: err.message }, route: c.req.path }, 'request failed');
      e = new RelayError('INTERNAL', 'internal error');
    }
    deps.metrics.refused(e.code, 'http');
    if (e.retryAfterMs !== undefined) c.header('retry-after', String(Math.ceil(e.retryAfterMs / 1000)));
    return c.json(e.toJSON(), e.status as 400);
  });

  return app;
}

/** A route path (`/v1/channels/:channel/entries`, OpenAPI's `{channel}` too) as a regular expression. */
function routePattern(path: string): RegExp {
  const parts = path
    .split('/')
    .map((seg) => (/^(:\w+|\{\w+\})$/.test(seg) ? '[^/]+' : seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  return new RegExp(`^${parts.join('/')}$`);
}
