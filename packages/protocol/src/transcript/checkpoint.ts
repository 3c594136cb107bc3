/**
 * C2SP tlog-checkpoint (https://c2sp.org/tlog-checkpoint): the signed-note text
 *   <origin>\n<decimal tree size>\n<base64 root hash>\n[<extension line>\n]*
 */
import { base64 } from '@scure/base';
import { type Decoded, fail, ProtocolError } from '../errors.ts';
import { hasControlCharacters } from './note.ts';

export interface Checkpoint {
  readonly origin: string;
  readonly size: number;
  readonly root: Uint8Array;
  readonly extensions: readonly string[];
}

export function encodeCheckpoint(c: Checkpoint): string {
  if (c.origin.length === 0 || hasControlCharacters(c.origin, false)) {
    throw new ProtocolError('CHECKPOINT_INVALID', 'origin must be a non-empty single line', 'origin');
  }
  if (!Number.isSafeInteger(c.size) || c.size < 0)
    throw new ProtocolError('CHECKPOINT_INVALID', 'bad size', 'size');
  if (c.root.length !== 32) throw new ProtocolError('CHECKPOINT_INVALID', 'root must be 32 bytes', 'root');
  return `${c.origin}\n${c.size}\n${base64.encode(c.root)}\n${c.extensions.map((e) => `${e}\n`).join('')}`;
}

export function parseCheckpoint(text: string): Decoded<Checkpoint> {
  if (!text.endsWith('\n')) return fail('CHECKPOINT_INVALID', 'checkpoint', 'must end in a newline');
  const lines = text.slice(0, -1).split('\n');
  if (lines.length < 3) return fail('CHECKPOINT_INVALID', 'checkpoint', 'needs origin, size and root lines');
  const [origin, sizeLine, rootLine, ...extensions] = lines as [string, string, string, ...string[]];
  if (origin.length === 0) return fail('CHECKPOINT_INVALID', 'checkpoint.origin', 'empty origin');
  // As encodeCheckpoint refuses them: a checkpoint read on its own (not inside a note) may hold any text.
  if (hasControlCharacters(origin, false) || extensions.some((e) => hasControlCharacters(e, false)))
    return fail('CHECKPOINT_INVALID', 'checkpoint', 'control characters');
  // Decimal, no sign, no leading zeros (except "0" itself).
  if (!/^(0|[1-9][0-9]{0,15})$/.test(sizeLine))
    return fail('CHECKPOINT_INVALID', 'checkpoint.size', 'bad tree size');
  const size = Number(sizeLine);
  if (!Number.isSafeInteger(size))
    return fail('CHECKPOINT_INVALID', 'checkpoint.size', 'tree size too large');
  let root: Uint8Array;
  try {
    root = base64.decode(rootLine);
  } catch {
    return fail('CHECKPOINT_INVALID', 'checkpoint.root', 'root is not base64');
  }
  if (root.length !== 32 || base64.encode(root) !== rootLine) {
    return fail('CHECKPOINT_INVALID', 'checkpoint.root', 'root must be 32 bytes in canonical base64');
  }
  if (extensions.some((e) => e.length === 0))
    return fail('CHECKPOINT_INVALID', 'checkpoint.extensions', 'empty line');
  return { ok: true, value: { origin, size, root, extensions } };
}
