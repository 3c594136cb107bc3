/** Operations: /healthz (the process answers), /readyz (it takes traffic), /metrics (Prometheus). */
import { RelayError } from '../errors.ts';
import type { AppDeps, RelayApp } from '../http/context.ts';

export function healthRoutes(app: RelayApp, deps: AppDeps): void {
  app.get('/healthz', (c) => c.json({ ok: true }));
  app.get('/readyz', (c) => {
    if (deps.ready !== undefined && !deps.ready())
      throw new RelayError('NOT_READY', 'the relay is not ready');
    return c.json({ ready: true });
  });
  app.get('/metrics', async (c) => {
    const text = await deps.metrics.registry.metrics();
    return c.text(text, 200, { 'content-type': deps.metrics.registry.contentType });
  });
}
