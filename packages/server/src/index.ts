// @backchannel/server — the relay: HTTP + WebSocket API over a durable, verifiable log.
export { createApp } from './app.ts';
export { type AppendInput, type AppendResult, Appender } from './channels/appender.ts';
export { CheckpointSigner } from './channels/checkpoints.ts';
export {
  ConfigError,
  configFromEnv,
  configSchema,
  parseConfigFile,
  type RelayConfig,
  type RelayConfigInput,
  resolveConfig,
} from './config.ts';
export { nodeEd25519 } from './ed25519.node.ts';
export {
  isRelayError,
  RELAY_ERROR_CODES,
  RELAY_ERROR_STATUS,
  RelayError,
  type RelayErrorCode,
} from './errors.ts';
export type { AppDeps, Log } from './http/context.ts';
export { createRelay, type RelayCore, type RelayCoreOptions } from './relay.ts';
export { type RunningRelay, type StartRelayOptions, startRelay } from './server.node.ts';
export { openSqliteStore, SqliteStore } from './store/sqlite/sqlite-store.ts';
export type { ReadTx, Store, WriteTx } from './store/store.ts';
