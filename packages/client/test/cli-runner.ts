/**
 * Runs the real `backchannel` binary as a separate process per device, each with its own
 * encrypted home under `root`, and reads its `--json` answer (the last line of stdout).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const BIN = join(import.meta.dirname, '..', 'bin', 'backchannel.mjs');

export interface CliResult {
  code: number;
  json: Record<string, unknown> & { error?: { code: string; message: string } };
  stdout: string;
  stderr: string;
}

function lastJson(stdout: string): CliResult['json'] {
  const last = stdout.trim().split('\n').at(-1) ?? '';
  try {
    return last === '' ? {} : JSON.parse(last);
  } catch {
    return {};
  }
}

/** A long-running command (watch): its stdout lines as they come. */
export interface RunningCli {
  readonly child: ChildProcess;
  readonly lines: string[];
  /** Resolves with the first line (parsed as JSON) that `match` accepts; rejects if the process exits first. */
  waitFor(what: string, match: (json: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
  /** SIGTERM, then the exit. */
  stop(): Promise<void>;
}

export function cliRunner(root: string): {
  cli: (home: string, args: string[], relay?: string) => Promise<CliResult>;
  ok: (home: string, args: string[], relay?: string) => Promise<CliResult['json']>;
  start: (home: string, args: string[], relay?: string) => RunningCli;
  /** Without --json: what a person at the terminal sees (stdout, stderr and the exit code). */
  human: (
    home: string,
    args: string[],
    env?: Record<string, string>,
  ) => Promise<{ code: number; stdout: string; stderr: string }>;
} {
  const envOf = (home: string) => ({
    ...process.env,
    BACKCHANNEL_HOME: join(root, home),
    BACKCHANNEL_PASSPHRASE: `passphrase of ${home}`,
    BACKCHANNEL_KDF_N: '1024',
  });
  const cli = async (home: string, args: string[], relay?: string): Promise<CliResult> => {
    const env = envOf(home);
    const full = ['--json', ...(relay === undefined ? [] : ['--relay', relay]), ...args];
    try {
      const { stdout, stderr } = await run(process.execPath, [BIN, ...full], { env, timeout: 60_000 });
      return { code: 0, json: lastJson(stdout), stdout, stderr };
    } catch (e) {
      const err = e as { code?: number; stdout?: string; stderr?: string };
      return {
        code: typeof err.code === 'number' ? err.code : -1,
        json: lastJson(err.stdout ?? ''),
        stdout: err.stdout ?? '',
        stderr: err.stderr ?? '',
      };
    }
  };
  const ok = async (home: string, args: string[], relay?: string): Promise<CliResult['json']> => {
    const r = await cli(home, args, relay);
    if (r.code !== 0)
      throw new Error(`${home}: backchannel ${args.join(' ')} → exit ${r.code}: ${r.stdout} ${r.stderr}`);
    return r.json;
  };
  const start = (home: string, args: string[], relay?: string): RunningCli => {
    const full = ['--json', ...(relay === undefined ? [] : ['--relay', relay]), ...args];
    const child = spawn(process.execPath, [BIN, ...full], {
      env: envOf(home),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines: string[] = [];
    const waiters = new Set<() => void>();
    let stderr = '';
    let buf = '';
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (d: string) => {
      buf += d;
      const parts = buf.split('\n');
      buf = parts.pop() ?? '';
      lines.push(...parts.filter((l) => l !== ''));
      for (const w of [...waiters]) w();
    });
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (d: string) => {
      stderr += d;
    });
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.once('exit', () => {
      for (const w of [...waiters]) w();
    });
    const parse = (l: string): Record<string, unknown> | undefined => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        return undefined;
      }
    };
    return {
      child,
      lines,
      waitFor: (what, match) =>
        new Promise((resolve, reject) => {
          const look = () => {
            for (const l of lines) {
              const j = parse(l);
              if (j !== undefined && match(j)) {
                waiters.delete(look);
                resolve(j);
                return;
              }
            }
            if (child.exitCode !== null || child.signalCode !== null) {
              waiters.delete(look);
              reject(
                new Error(
                  `${home}: exited (${child.exitCode}) before ${what}: ${lines.join('\n')} ${stderr}`,
                ),
              );
            }
          };
          waiters.add(look);
          look();
        }),
      stop: async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
        await exited;
      },
    };
  };
  const human = async (home: string, args: string[], env: Record<string, string> = {}) => {
    try {
      const r = await run(process.execPath, [BIN, ...args], {
        env: { ...envOf(home), ...env },
        timeout: 60_000,
      });
      return { code: 0, stdout: r.stdout, stderr: r.stderr };
    } catch (e) {
      const err = e as { code?: number; stdout?: string; stderr?: string };
      return { code: err.code ?? -1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
    }
  };
  return { cli, ok, start, human };
}
