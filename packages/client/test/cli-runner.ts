/**
 * Runs the real `backchannel` binary as a separate process per device, each with its own
 * encrypted home under `root`, and reads its `--json` answer (the last line of stdout).
 */
import { execFile } from 'node:child_process';
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

export function cliRunner(root: string): {
  cli: (home: string, args: string[], relay?: string) => Promise<CliResult>;
  ok: (home: string, args: string[], relay?: string) => Promise<CliResult['json']>;
} {
  const cli = async (home: string, args: string[], relay?: string): Promise<CliResult> => {
    const env = {
      ...process.env,
      BACKCHANNEL_HOME: join(root, home),
      BACKCHANNEL_PASSPHRASE: `passphrase of ${home}`,
      BACKCHANNEL_KDF_N: '1024',
    };
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
  return { cli, ok };
}
