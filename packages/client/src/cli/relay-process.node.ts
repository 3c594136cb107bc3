/** Starts and stops a relay as a child process (demo and end-to-end tests). */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ClientError } from '../sdk/errors.ts';

/** `--import` argument for tsx, resolved from this package (works from any working directory). */
export function tsxImport(): string {
  return import.meta.resolve('tsx');
}

export function relayEntry(): string {
  const override = process.env.BACKCHANNEL_RELAY_ENTRY;
  if (override !== undefined && override !== '') return override;
  // The relay package's entry (src/index.ts) sits next to its process entry point.
  return join(dirname(fileURLToPath(import.meta.resolve('@backchannel/server'))), 'main.node.ts');
}

/** The relay's backup and restore entry (`relay-backup`, `relay-restore`), next to its main entry. */
export function backupEntry(): string {
  return join(dirname(fileURLToPath(import.meta.resolve('@backchannel/server'))), 'backup-main.node.ts');
}

export interface RelayProcess {
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  child: ChildProcess;
  /** kill -9 (a crash), then wait for the exit. */
  crash(): Promise<void>;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/**
 * Refuses a port something already listens on: the relay started there would exit, and whatever
 * answers on the port (another relay) would be taken for it. Other failures to listen (no
 * permission, an unknown host) are left for the relay to report.
 */
export async function ensureFree(
  port: number,
  host = '127.0.0.1',
  hint = 'choose another with --port, or leave it out for a free one',
): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const s = createServer();
    s.once('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EADDRINUSE')
        reject(
          new ClientError(
            'INVALID_ARGUMENT',
            `port ${port} is already in use (is another relay running?); ${hint}`,
          ),
        );
      else resolve();
    });
    s.listen(port, host, () => s.close(() => resolve()));
  });
}

/**
 * A relay that exited before it was ready, as a typed error with the relay's own reason (what it
 * printed last on stderr). The relay exits 2 when its configuration is at fault (a data folder
 * another relay holds, a bad setting or key file): that is INVALID_ARGUMENT, fixed on the command
 * line like a port in use; anything else is RELAY_ERROR.
 */
export function relayStartFailure(code: number | null, signal: string | null, stderr: string): ClientError {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  const said =
    lines.findLast((l) => l.startsWith(FAILED))?.slice(FAILED.length) ??
    (code === 2 ? lines.at(-1) : lines.find((l) => /^[A-Za-z]*Error\b.*:/.test(l)));
  const how = code !== null ? `exited with code ${code}` : `was stopped by ${signal ?? 'a signal'}`;
  return new ClientError(
    code === 2 ? 'INVALID_ARGUMENT' : 'RELAY_ERROR',
    `the relay did not start: ${said ?? `it ${how}`}`,
  );
}

/** How the relay's process entry begins the one line it prints when it cannot start. */
const FAILED = 'relay failed to start: ';

const exited = (child: ChildProcess) => child.exitCode !== null || child.signalCode !== null;

async function waitReady(
  url: string,
  child: ChildProcess,
  stderr: () => string,
  timeoutMs = 20_000,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (exited(child)) throw relayStartFailure(child.exitCode, child.signalCode, stderr());
    try {
      // Bounded: something else on the port that accepts and never answers (the relay, unable to
      // listen, has exited) must not hold this loop past its deadline.
      const r = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(1_000) });
      if (r.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new ClientError(
    'RELAY_ERROR',
    `the relay did not start: not ready after ${timeoutMs / 1000} s${stderr().trim() === '' ? '' : ` (${stderr().trim().split('\n').at(-1)})`}`,
  );
}

export async function startRelayProcess(
  dataDir: string,
  port?: number,
  env: Record<string, string> = {},
): Promise<RelayProcess> {
  const p = port === undefined || port === 0 ? await freePort() : port;
  if (p === port) await ensureFree(p);
  const url = `http://127.0.0.1:${p}`;
  let tail = '';
  const launch = () => {
    const child = spawn(process.execPath, ['--import', tsxImport(), relayEntry()], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: {
        ...process.env,
        PORT: String(p),
        HOST: '127.0.0.1',
        BACKCHANNEL_DATA: dataDir,
        LOG_LEVEL: 'warn',
        ...env,
      },
    });
    tail = '';
    child.stderr?.on('data', (d: Buffer) => {
      tail = (tail + d.toString()).slice(-2_000);
    });
    return child;
  };
  const rp: RelayProcess = {
    url,
    port: p,
    dataDir,
    child: launch(),
    async crash() {
      if (exited(rp.child)) return;
      const gone = new Promise((r) => rp.child.once('exit', r));
      rp.child.kill('SIGKILL');
      await gone;
    },
    async restart() {
      rp.child = launch();
      await waitReady(url, rp.child, () => tail);
    },
    async stop() {
      if (exited(rp.child)) return;
      const gone = new Promise((r) => rp.child.once('exit', r));
      rp.child.kill('SIGTERM');
      await gone;
    },
  };
  try {
    await waitReady(url, rp.child, () => tail);
  } catch (e) {
    // Not left running (nor holding this process) when it did not become ready in time.
    if (!exited(rp.child)) rp.child.kill('SIGKILL');
    throw e;
  }
  return rp;
}
