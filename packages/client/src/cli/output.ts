/** Output and exit codes shared by every command. */
import { readFileSync } from 'node:fs';
import { ClientError } from '../sdk/errors.ts';
import { inline, jsonSafe, terminalSafe } from './text.ts';

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
      if (!json) process.stdout.write(`${terminalSafe(t)}\n`);
    },
    result: (v, human) => {
      if (json) process.stdout.write(`${jsonSafe(JSON.stringify(v, jsonReplacer))}\n`);
      else if (human !== undefined) process.stdout.write(`${terminalSafe(human(v as never))}\n`);
      else process.stdout.write(`${jsonSafe(JSON.stringify(v, jsonReplacer, 2))}\n`);
    },
  };
}

function jsonReplacer(_k: string, v: unknown): unknown {
  if (v instanceof Uint8Array) return Buffer.from(v).toString('base64url');
  return v;
}

/** What the relay's refusal codes mean for the person at the terminal (packages/server/ERRORS.md). */
const RELAY_HINTS: Readonly<Record<string, string>> = {
  CERT_REVOKED:
    'this device can no longer read or post; ask your party admin for a new invite (`backchannel device add`) and enroll it in a new home',
  CERT_EXPIRED: 'ask your party admin to issue this device a new certificate',
  DEVICE_UNKNOWN: 'the relay does not know this device: is it the relay your party uses (--relay)?',
  PARTY_UNKNOWN:
    'check the party id: the other party reads it with `backchannel card show`, and must use the same relay',
  NOT_A_MEMBER: 'this device is not a member of the channel (or the channel does not exist on this relay)',
  AUTH_EXPIRED: "this computer's clock is more than 5 minutes off the relay's: fix the clock",
};

/** A failed command's report: a stable code, a one-line message, the documented exit code. */
export interface ErrorReport {
  readonly code: string;
  readonly message: string;
  /** RELAY_REFUSED / EVENT_REJECTED: the relay's or the channel rules' own code. */
  readonly cause?: string;
  readonly exit: number;
}

export function describeError(e: unknown): ErrorReport {
  if (e instanceof ClientError) {
    const exit =
      e.code === 'NOT_INITIALIZED'
        ? EXIT.notInitialized
        : e.code === 'RELAY_UNREACHABLE'
          ? EXIT.unreachable
          : e.code === 'FORK_DETECTED' || e.code === 'TRANSCRIPT_INVALID'
            ? EXIT.security
            : e.code === 'INVALID_ARGUMENT'
              ? EXIT.usage
              : EXIT.refused;
    const hint =
      e.code === 'RELAY_REFUSED'
        ? RELAY_HINTS[e.cause_code ?? '']
        : e.code === 'RELAY_UNREACHABLE' && !e.message.includes('outbox')
          ? 'is the relay running, and is its URL right (--relay, or the ones your party registered)?'
          : undefined;
    return {
      code: e.code,
      message: oneLine(hint === undefined ? e.message : `${e.message}; ${hint}`),
      ...(e.cause_code === undefined ? {} : { cause: e.cause_code }),
      exit,
    };
  }
  if (e instanceof Error && e.name === 'ProtocolError') {
    const code = (e as Error & { code: string }).code;
    // An id typed on the command line that is not one: bad input, like any other argument.
    return { code, message: oneLine(e.message), exit: code === 'ID_INVALID' ? EXIT.usage : EXIT.refused };
  }
  if (e instanceof Error && e.name === 'ZodError') {
    const issue = (e as Error & { issues?: Array<{ path?: unknown[]; message?: string }> }).issues?.[0];
    const field = issue?.path?.join('.') ?? '';
    return {
      code: 'INVALID_ARGUMENT',
      message: oneLine(`${field === '' ? 'invalid input' : `invalid ${field}`}: ${issue?.message ?? ''}`),
      exit: EXIT.usage,
    };
  }
  const sys = e as { code?: unknown; syscall?: unknown; path?: unknown };
  if (e instanceof Error && typeof sys.code === 'string' && typeof sys.path === 'string') {
    // A file named on the command line (or the device directory) that cannot be read or written.
    const why = FILE_ERRORS[sys.code] ?? sys.code;
    return {
      code: 'INVALID_ARGUMENT',
      message: `cannot ${String(sys.syscall ?? 'open')} ${sys.path}: ${why}`,
      exit: EXIT.usage,
    };
  }
  if (e instanceof Error && typeof sys.code === 'string' && sys.code in FILE_ERRORS) {
    // The same, from a call that names no path (a read of an open descriptor: EISDIR).
    return {
      code: 'INVALID_ARGUMENT',
      message: `cannot ${String(sys.syscall ?? 'read')} a file given: ${FILE_ERRORS[sys.code]}`,
      exit: EXIT.usage,
    };
  }
  if (e instanceof Error && typeof sys.code === 'string') {
    return { code: sys.code, message: oneLine(e.message), exit: EXIT.refused };
  }
  return {
    code: 'INTERNAL',
    message: `unexpected error${e instanceof Error ? `: ${oneLine(e.message)}` : ''} (BACKCHANNEL_DEBUG=1 prints the details)`,
    exit: EXIT.refused,
  };
}

const FILE_ERRORS: Readonly<Record<string, string>> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EISDIR: 'it is a directory',
  ENOTDIR: 'a parent is not a directory',
  ENOSPC: 'no space left on the device',
  EROFS: 'read-only file system',
  EEXIST: 'it exists already',
};

function oneLine(s: string): string {
  return s.split('\n')[0]?.trim() ?? '';
}

/** Prints an error as `error CODE: message` (or one JSON line with --json); returns the exit code. Never a stack trace. */
export function reportError(e: unknown, json: boolean): number {
  const r = describeError(e);
  if (process.env.BACKCHANNEL_DEBUG === '1' && e instanceof Error) process.stderr.write(`${e.stack}\n`);
  const error = { code: r.code, message: r.message, ...(r.cause === undefined ? {} : { cause: r.cause }) };
  if (json) process.stdout.write(`${jsonSafe(JSON.stringify({ error }))}\n`);
  else process.stderr.write(`error ${inline(r.code)}: ${inline(r.message)}\n`);
  return r.exit;
}

/**
 * A text file named on the command line. A read that fails names the file (Node leaves the path
 * out of some errors, a directory's EISDIR among them), so the error says which file and why.
 */
export function readTextFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    const err = e as { path?: unknown; syscall?: unknown };
    if (e instanceof Error && err.path === undefined) Object.assign(e, { path, syscall: 'read' });
    throw e;
  }
}

/**
 * A duration as written on the command line: a whole number and its unit (ms, s, m, h, d). A bare
 * number is refused (is `--ack-within 2` two hours or two seconds?), but for 0.
 */
export function parseDuration(s: string): number {
  const m = /^(\d+)(ms|s|m|h|d)?$/.exec(s.trim());
  if (m === null) throw new ClientError('INVALID_ARGUMENT', `not a duration: ${s} (try 30s, 5m, 2h, 1d)`);
  const n = Number(m[1]);
  if (m[2] === undefined && n !== 0) {
    throw new ClientError('INVALID_ARGUMENT', `${s} has no unit: write ${n}s, ${n}m, ${n}h or ${n}d`);
  }
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] ?? 's'] as number;
  return n * unit;
}

/** The help text every command ends with: `Example:` and the command lines, indented. */
export function examples(...lines: string[]): string {
  return `\n${lines.length > 1 ? 'Examples' : 'Example'}:\n${lines.map((l) => `  ${l}`).join('\n')}`;
}
