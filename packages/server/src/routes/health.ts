/** Operations: /healthz (the process answers), /readyz (it takes traffic), /metrics (Prometheus). */
import { constantTimeEqual, utf8 } from '@backchannel/protocol';
import { RelayError } from '../errors.ts';
import type { AppDeps, RelayApp } from '../http/context.ts';

export function healthRoutes(app: RelayApp, deps: AppDeps): void {
  app.get('/healthz', (c) => c.json({ ok: true }));
  app.get('/readyz', (c) => {
    if (deps.ready !== undefined && !deps.ready())
      throw new RelayError('NOT_READY', 'the relay is not ready');
    return c.json({ ready: true });
  });
  const token = deps.config.metricsToken === undefined ? undefined : utf8(deps.config.metricsToken);
  app.get('/metrics', async (c) => {
    if (token !== undefined) {
      const given = /^Bearer (.+)$/.exec(c.req.header('authorization') ?? '')?.[1];
      if (given === undefined)
        throw new RelayError('AUTH_MISSING', 'this relay serves /metrics with its bearer token only');
      const bytes = utf8(given);
      if (bytes.length !== token.length || !constantTimeEqual(bytes, token))
        throw new RelayError('AUTH_INVALID', "the metrics token is not this relay's");
    }
    const text = await deps.metrics.registry.metrics();
    return c.text(text, 200, { 'content-type': deps.metrics.registry.contentType });
  });
}
