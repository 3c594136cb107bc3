/** GET /v1/relay — who this relay is: its name and the checkpoint verifier key clients pin. */
import { toB64u } from '../bytes.node.ts';
import { createRoute, z } from '@hono/zod-openapi';
import type { AppDeps, RelayApp } from '../http/context.ts';

const info = createRoute({
  method: 'get',
  path: '/v1/relay',
  tags: ['relay'],
  summary: 'Relay name and checkpoint verifier key (public)',
  responses: {
    200: {
      description: 'Relay identity',
      content: {
        'application/json': {
          schema: z.object({
            name: z.string(),
            vkey: z.string().openapi({ description: 'C2SP/Go note verifier key "<name>+<keyid>+<base64>"' }),
            publicKey: z.string().openapi({ description: 'Ed25519 public key, base64url' }),
            origin: z
              .string()
              .openapi({ description: 'checkpoint origins are this prefix + the channel id' }),
            store: z.string(),
            rotations: z.array(z.string()).optional().openapi({
              description:
                'every step of a chain of key rotations, oldest first (the last is `rotation`): a device several keys behind follows them',
            }),
            rotation: z.string().optional().openapi({
              description:
                'during a key rotation: a C2SP signed note "backchannel/v1 relay key rotation / from <old vkey> / to <vkey>", signed by both keys; a device or witness that pinned the old key moves to the new one',
            }),
          }),
        },
      },
    },
  },
});

export function relayRoutes(app: RelayApp, deps: AppDeps): void {
  app.openapi(info, (c) =>
    c.json(
      {
        name: deps.signer.name,
        vkey: deps.signer.vkey,
        publicKey: toB64u(deps.signer.publicKey),
        origin: `${deps.signer.name}/`,
        store: deps.store.kind,
        ...(deps.signer.rotation === undefined
          ? {}
          : { rotation: deps.signer.rotation, rotations: [...deps.signer.rotations] }),
      },
      200,
    ),
  );
}
