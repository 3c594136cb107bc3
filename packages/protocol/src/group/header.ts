/** Reading an MLS message's public header without any group secret (for relays and pre-checks). */
import { decodeMlsMessage, type MLSMessage } from 'ts-mls';
import { isBytes } from '../bytes/index.ts';
import { type Decoded, fail } from '../errors.ts';

export interface MlsHeader {
  readonly wireformat: MLSMessage['wireformat'];
  readonly groupId: Uint8Array | undefined;
  readonly epoch: number | undefined;
  readonly contentType: string | undefined;
  readonly authenticatedData: Uint8Array | undefined;
}

export const MAX_MLS_MESSAGE_BYTES = 2 * 1024 * 1024;

export function decodeMls(bytes: unknown): Decoded<MLSMessage> {
  if (!isBytes(bytes)) return fail('DECODE_MALFORMED', 'mls', 'expected bytes');
  if (bytes.length > MAX_MLS_MESSAGE_BYTES) return fail('DECODE_TOO_LARGE', 'mls', 'MLS message too large');
  try {
    const r = decodeMlsMessage(bytes, 0);
    if (r === undefined || r[1] !== bytes.length)
      return fail('DECODE_MALFORMED', 'mls', 'not a complete MLS message');
    return { ok: true, value: r[0] };
  } catch {
    return fail('DECODE_MALFORMED', 'mls', 'not an MLS message');
  }
}

export function peekMlsHeader(bytes: unknown): Decoded<MlsHeader> {
  const d = decodeMls(bytes);
  if (!d.ok) return d;
  const m = d.value;
  if (m.wireformat === 'mls_private_message') {
    const p = m.privateMessage;
    return {
      ok: true,
      value: {
        wireformat: m.wireformat,
        groupId: p.groupId,
        epoch: Number(p.epoch),
        contentType: p.contentType,
        authenticatedData: p.authenticatedData,
      },
    };
  }
  if (m.wireformat === 'mls_public_message') {
    const c = m.publicMessage.content;
    return {
      ok: true,
      value: {
        wireformat: m.wireformat,
        groupId: c.groupId,
        epoch: Number(c.epoch),
        contentType: c.contentType,
        authenticatedData: c.authenticatedData,
      },
    };
  }
  return {
    ok: true,
    value: {
      wireformat: m.wireformat,
      groupId: undefined,
      epoch: undefined,
      contentType: undefined,
      authenticatedData: undefined,
    },
  };
}
