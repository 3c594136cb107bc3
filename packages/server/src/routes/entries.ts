/**
 * GET /v1/channels/{channel}/entries?from=&limit= — a page of the transcript and its checkpoint.
 * A page holds at most MAX_PAGE entries and limits.pageBytes of them (as base64url text), but
 * always one entry when there is one; `next` says where the next page starts.
 */
import type { ChannelId } from '@backchannel/protocol';
import { toB64u } from '../bytes.node.ts';
import { createRoute, z } from '@hono/zod-openapi';
import { visibility } from '../channels/access.ts';
import { body } from '../http/body.ts';
import type { AppDeps, RelayApp } from '../http/context.ts';
import { authenticated } from '../http/guards.ts';
import { authHeaders, base64url, channelIdSchema, errors, security, uintString } from '../http/schemas.ts';

export const MAX_PAGE = 1000;

const entries = (deps: AppDeps) =>
  createRoute({
    method: 'get',
    path: '/v1/channels/{channel}/entries',
    tags: ['channels'],
    summary: 'Read transcript entries from a seq (members; former members up to their removal)',
    security,
    middleware: [body(deps, 0), authenticated(deps)] as const,
    request: {
      params: z.object({ channel: channelIdSchema }),
      query: z.object({
        from: uintString.optional().openapi({ description: 'first seq (default 0)' }),
        limit: uintString.optional().openapi({ description: `at most ${MAX_PAGE} (default ${MAX_PAGE})` }),
      }),
      headers: authHeaders,
    },
    responses: {
      200: {
        description: 'Entries (canonical LogEntry bytes) in seq order, and the latest checkpoint',
        content: {
          'application/json': {
            schema: z.object({
              entries: z.array(z.object({ seq: z.number().int(), entry: base64url(4_000_000) })),
              checkpoint: z.string(),
              size: z.number().int(),
              next: z.number().int().openapi({
                description: 'the seq the next page starts at (= from when this page is empty)',
              }),
            }),
          },
        },
      },
      400: errors[400],
      401: errors[401],
      403: errors[403],
    },
  });

export function entryRoutes(app: RelayApp, deps: AppDeps): void {
  app.openapi(entries(deps), async (c) => {
    const channel = c.req.valid('param').channel as ChannelId;
    const q = c.req.valid('query');
    const from = q.from ?? 0;
    const limit = Math.min(q.limit ?? MAX_PAGE, MAX_PAGE);
    const device = c.var.device.device;
    const page = await deps.store.read(async (tx) => {
      const v = await visibility(tx, channel, device);
      const until = v.until ?? v.checkpoint.size;
      const rows = await tx.getEntries(channel, from, limit, until, deps.config.limits.pageBytes);
      return { rows, checkpoint: v.checkpoint };
    });
    return c.json(
      {
        entries: page.rows.map((r) => ({ seq: r.seq, entry: toB64u(r.entry) })),
        checkpoint: page.checkpoint.note,
        size: page.checkpoint.size,
        next: page.rows.length === 0 ? from : (page.rows[page.rows.length - 1] as { seq: number }).seq + 1,
      },
      200,
    );
  });
}
