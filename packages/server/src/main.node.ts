/**
 * The relay process (`npm start`, `backchannel relay`): the only entry point with side effects.
 * Configuration: JSON file (BACKCHANNEL_CONFIG or --config) < environment < flags
 * (--port, --host, --data, --name, --log-level, --web, --store, --fanout, --checkpoint-key).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pino from 'pino';
import {
  ConfigError,
  configFromEnv,
  parseConfigFile,
  type RelayConfigInput,
  relayNameWarning,
  resolveConfig,
} from './config.ts';
import { ed25519Backend } from './ed25519.node.ts';
import { RelayError } from './errors.ts';
import { startRelay } from './server.node.ts';

function flags(argv: readonly string[]): { file: string | undefined; layer: RelayConfigInput } {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      data: { type: 'string' },
      name: { type: 'string' },
      config: { type: 'string' },
      'log-level': { type: 'string' },
      web: { type: 'string' },
      store: { type: 'string' },
      fanout: { type: 'string' },
      'checkpoint-key': { type: 'string' },
      'previous-checkpoint-key': { type: 'string', multiple: true },
    },
    strict: true,
  });
  const layer: Record<string, unknown> = {};
  if (values.port !== undefined) layer.port = Number(values.port);
  if (values.host !== undefined) layer.host = values.host;
  if (values.data !== undefined) layer.dataDir = values.data;
  if (values.name !== undefined) layer.relayName = values.name;
  if (values['log-level'] !== undefined) layer.logLevel = values['log-level'];
  if (values.web !== undefined) layer.webDist = values.web;
  if (values.store !== undefined) layer.store = values.store;
  if (values.fanout !== undefined) layer.fanout = values.fanout;
  if (values['checkpoint-key'] !== undefined) layer.checkpointKeyFile = values['checkpoint-key'];
  const previous = values['previous-checkpoint-key'];
  if (previous !== undefined)
    layer.previousCheckpointKeyFile = previous.length === 1 ? previous[0] : previous;
  return { file: values.config, layer: layer as RelayConfigInput };
}

async function main(): Promise<void> {
  const cli = flags(process.argv.slice(2));
  const file = cli.file ?? process.env.BACKCHANNEL_CONFIG;
  const fileLayer = file === undefined ? undefined : parseConfigFile(readFileSync(file, 'utf8'), file);
  const defaultWeb = resolve(dirname(fileURLToPath(import.meta.url)), '../../../apps/web/dist');
  const webLayer: RelayConfigInput | undefined = existsSync(join(defaultWeb, 'index.html'))
    ? { webDist: defaultWeb }
    : undefined;
  const config = resolveConfig(webLayer, fileLayer, configFromEnv(process.env), cli.layer);
  const log = pino({ level: config.logLevel, base: { service: 'backchannel-relay' } });
  const relay = await startRelay({ config, log });
  log.info(
    {
      url: relay.url,
      dataDir: resolve(config.dataDir),
      // The kind only: a store URL may carry a password.
      store: relay.core.store.kind,
      fanout: config.fanout === 'local' ? 'local' : 'nats',
      relay: relay.core.signer.vkey,
      web: config.webDist ?? null,
      ed25519: ed25519Backend,
    },
    config.webDist === undefined
      ? `relay listening on ${relay.url}`
      : `relay listening on ${relay.url}; open ${relay.url}/ in a browser for the web app`,
  );
  if (relay.core.signer.rotation !== undefined)
    log.info(
      { relay: relay.core.signer.vkey },
      'checkpoint key rotation: /v1/relay serves the statement signed by the previous and the new key; devices and witnesses that pinned the previous key move to the new one when they next meet a checkpoint',
    );
  const nameWarning = relayNameWarning(config);
  if (nameWarning !== undefined) log.warn({ relayName: config.relayName }, nameWarning);
  let stopping = false;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      if (stopping) process.exit(1);
      stopping = true;
      log.info({ signal: sig }, 'shutting down: finishing in-flight batches');
      relay.close().then(
        () => {
          log.info({}, 'relay stopped');
          process.exit(0);
        },
        (e: unknown) => {
          log.error({ err: { message: (e as Error).message } }, 'shutdown failed');
          process.exit(1);
        },
      );
    });
  }
}

/** What to tell the operator when the port is taken, instead of Node's bare `listen EADDRINUSE`. */
function startFailure(e: unknown): string {
  if (e instanceof ConfigError || e instanceof RelayError) return e.message;
  const err = e as NodeJS.ErrnoException & { address?: string; port?: number };
  if (err.code === 'EADDRINUSE') {
    return (
      `relay failed to start: ${err.address ?? 'the address'}:${err.port ?? '?'} is already in use ` +
      '(is another relay running?); choose another port with PORT=… or --port'
    );
  }
  if (err.code === 'EACCES') {
    return `relay failed to start: no permission to listen on port ${err.port ?? '?'}; use a port above 1023`;
  }
  return `relay failed to start: ${err.message}`;
}

main().catch((e: unknown) => {
  const message = startFailure(e);
  process.stderr.write(`${message}\n`);
  process.exit(e instanceof ConfigError ? 2 : 1);
});
