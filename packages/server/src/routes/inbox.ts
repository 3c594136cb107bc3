/** GET /v1/inbox?after=&limit= — the authenticated device's party inbox (Welcome and outreach entries). */
import { toB64u } from '../bytes.node.ts';
import { createRoute, z } from '@hono/zod-openapi';
import { body } from '../http/body.ts';
import type { AppDeps, RelayApp } from '../http/context.ts';
import { authenticated } from '../http/guards.ts';
import { authHeaders, base64url, channelIdSchema, errors, security, uintString } from '../http/schemas.ts';

const MAX_ITEMS = 500;

const inbox = (deps: AppDeps) =>
  createRoute({
    method: 'get',
    path: '/v1/inbox',
    tags: ['inbox'],
    summary:
      "Entries addressed to this device's party (body.to), after a cursor; none of a channel logged after this device's removal from it",
    security,
    middleware: [body(deps, 0), authenticated(deps)] as const,
    request: {
      query: z.object({
        after: uintString.optional().openapi({ description: 'last cursor seen (default 0)' }),
        limit: uintString.optional().openapi({ description: `at most ${MAX_ITEMS}` }),
      }),
      headers: authHeaders,
    },
    responses: {
      200: {
        description: 'Inbox items, oldest first',
        content: {
          'application/json': {
            schema: z.object({
              items: z.array(
                z.object({
                  cursor: z.number().int(),
                  channel: channelIdSchema,
                  seq: z.number().int(),
                  entry: base64url(4_000_000),
                }),
              ),
            }),
          },
        },
      },
      400: errors[400],
      401: errors[401],
    },
  });

export function inboxRoutes(app: RelayApp, deps: AppDeps): void {
  app.openapi(inbox(deps), async (c) => {
    const q = c.req.valid('query');
    const { party, device } = c.var.device;
    const items = await deps.store.read((tx) =>
      tx.getInbox(party, q.after ?? 0, Math.min(q.limit ?? MAX_ITEMS, MAX_ITEMS), device),
    );
    return c.json(
      {
        items: items.map((i) => ({
          cursor: i.cursor,
          channel: i.channel,
          seq: i.seq,
          entry: toB64u(i.entry),
        })),
      },
      200,
    );
  });
}
