/** Output and exit codes shared by every command. */
import { ClientError } from '../sdk/errors.ts';

export const EXIT = {
  ok: 0,
  usage: 1,
  refused: 2,
  unreachable: 3,
  security: 4,
  notInitialized: 5,
} as const;

export interface Out {
  readonly json: boolean;
  /** Human text (suppressed with --json). */
  say(text: string): void;
  /** The command's result: printed as JSON with --json, or through `human` otherwise. */
  result(value: unknown, human?: (v: never) => string): void;
}

export function makeOut(json: boolean): Out {
  return {
    json,
    say: (t) => {
      if (!json) process.stdout.write(`${t}\n`);
    },
    result: (v, human) => {
      if (json) process.stdout.write(`${JSON.stringify(v, jsonReplacer)}\n`);
      else if (human !== undefined) process.stdout.write(`${human(v as never)}\n`);
      else process.stdout.write(`${JSON.stringify(v, jsonReplacer, 2)}\n`);
    },
  };
}

function jsonReplacer(_k: string, v: unknown): unknown {
  if (v instanceof Uint8Array) return Buffer.from(v).toString('base64url');
  return v;
}

/** Maps an error to a clear message and a documented exit code; never a stack trace. */
export function reportError(e: unknown, json: boolean): number {
  let code = 'INTERNAL';
  let message = 'unexpected error';
  let exit: number = EXIT.refused;
  if (e instanceof ClientError) {
    code = e.code;
    message = e.message;
    exit =
      e.code === 'NOT_INITIALIZED'
        ? EXIT.notInitialized
        : e.code === 'RELAY_UNREACHABLE'
          ? EXIT.unreachable
          : e.code === 'FORK_DETECTED' || e.code === 'TRANSCRIPT_INVALID'
            ? EXIT.security
            : e.code === 'INVALID_ARGUMENT'
              ? EXIT.usage
              : EXIT.refused;
  } else if (e instanceof Error && typeof (e as { code?: unknown }).code === 'string') {
    code = (e as unknown as { code: string }).code;
    message = e.message;
  } else if (e instanceof Error) {
    message = e.message;
  }
  if (process.env.BACKCHANNEL_DEBUG === '1' && e instanceof Error) process.stderr.write(`${e.stack}\n`);
  if (json) process.stdout.write(`${JSON.stringify({ error: { code, message } })}\n`);
  else process.stderr.write(`error ${code}: ${message}\n`);
  return exit;
}

export function parseDuration(s: string): number {
  const m = /^(\d+)(ms|s|m|h|d)?$/.exec(s.trim());
  if (m === null) throw new ClientError('INVALID_ARGUMENT', `not a duration: ${s} (try 30s, 5m, 2h, 1d)`);
  const n = Number(m[1]);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] ?? 's'] as number;
  return n * unit;
}
