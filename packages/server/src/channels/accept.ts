/**
 * Accepting an envelope, whichever way it arrives (HTTP POST or a WebSocket `send` frame):
 * decode (typed errors), channel, sender = the authenticated device — or, for an unsigned post,
 * a registered valid sender whose envelope signature authenticates it (PROTOCOL.md §11) —,
 * the envelope signature, then the group-commit queue (idempotency, membership, epoch). The
 * envelope's bytes count against the relay's in-flight cap (limits.inFlightBytes) meanwhile.
 */
import { type ChannelId, decodeEnvelope, labelledMessage } from '@backchannel/protocol';
import { toB64u } from '../bytes.node.ts';
import type { DeviceDirectory } from '../directory/devices.ts';
import { deviceStatus } from '../directory/devices.ts';
import { sha256 } from '../ed25519.node.ts';
import { fromProtocol, RelayError } from '../errors.ts';
import type { DeviceRecord } from '../store/store.ts';
import type { Verifier } from '../verify-pool.node.ts';
import type { Appender } from './appender.ts';

export interface AcceptDeps {
  readonly directory: DeviceDirectory;
  readonly verifier: Verifier;
  readonly appender: Appender;
  readonly now: () => number;
  /** Takes a token from the device's bucket or throws RATE_LIMITED. */
  readonly limitDevice: (device: string, now: number) => void;
}

/** What an accepted append answers, before it is framed (JSON for HTTP and text frames, or binary). */
export interface AppendOutcome {
  readonly seq: number;
  readonly receivedAt: number;
  readonly inclusionProof: readonly Uint8Array[];
  readonly checkpoint: string;
  readonly size: number;
  readonly duplicate: boolean;
  /** The relay's signed receipt, CBOR({body, [batch,] sig}). */
  readonly receipt: Uint8Array;
}

/** The JSON answer to an accepted append (HTTP body, WebSocket `ack` text frame). */
export interface AppendAnswer {
  readonly seq: number;
  readonly leafIndex: number;
  readonly receivedAt: number;
  readonly inclusionProof: string[];
  readonly checkpoint: string;
  readonly size: number;
  readonly duplicate: boolean;
  /** The relay's signed receipt {channel, msgId, envelope hash, seq, time} (base64url CBOR). */
  readonly receipt: string;
}

export function appendAnswerJson(o: AppendOutcome): AppendAnswer {
  return {
    seq: o.seq,
    leafIndex: o.seq,
    receivedAt: o.receivedAt,
    inclusionProof: o.inclusionProof.map(toB64u),
    checkpoint: o.checkpoint,
    size: o.size,
    duplicate: o.duplicate,
    receipt: toB64u(o.receipt),
  };
}

export async function acceptEnvelope(
  deps: AcceptDeps,
  wire: Uint8Array,
  opts: { readonly signedBy: DeviceRecord | undefined; readonly channel?: ChannelId },
): Promise<AppendOutcome> {
  // The bytes count against limits.inFlightBytes from here until the append is answered.
  deps.appender.reserve(wire.length);
  try {
    return await acceptReserved(deps, wire, opts);
  } finally {
    deps.appender.release(wire.length);
  }
}

async function acceptReserved(
  deps: AcceptDeps,
  wire: Uint8Array,
  opts: { readonly signedBy: DeviceRecord | undefined; readonly channel?: ChannelId },
): Promise<AppendOutcome> {
  // Revocations heard of from here on refuse this append when its batch is built (appender).
  const revocationMark = deps.directory.mark();
  const d = decodeEnvelope(wire);
  if (!d.ok) throw fromProtocol(d.code, d.message, 'ENVELOPE_INVALID');
  const env = d.value;
  if (opts.channel !== undefined && env.body.channel !== opts.channel) {
    throw new RelayError('CHANNEL_MISMATCH', 'the envelope is for another channel than the path names');
  }
  let device: DeviceRecord;
  if (opts.signedBy !== undefined) {
    if (env.body.sender !== opts.signedBy.device) {
      throw new RelayError('SENDER_MISMATCH', 'the envelope sender is not the authenticated device');
    }
    // The record the request or socket was authenticated with may predate a revocation this
    // process heard of since (a revocation is for good: any one remembered refuses it).
    if (deps.directory.revokedSince(opts.signedBy.device, 0)) {
      throw new RelayError('CERT_REVOKED', 'the envelope sender may not post now');
    }
    device = opts.signedBy;
  } else {
    const now = deps.now();
    const rec = await deps.directory.get(env.body.sender, now);
    if (rec === undefined) throw new RelayError('DEVICE_UNKNOWN', 'the envelope sender is not registered');
    const status = deviceStatus(rec, now);
    if (status !== undefined) throw new RelayError(status, 'the envelope sender may not post now');
    device = rec;
  }
  // = protocol's verifyEnvelope (same labelled message and key), on the verify pool
  if (!(await deps.verifier.verify(env.sig, labelledMessage('envelope', env.bodyBytes), device.publicKey))) {
    throw new RelayError('SIG_INVALID', 'envelope signature does not verify under the sender device key');
  }
  // Unsigned: charged to the sender only now, so forged posts naming it cannot spend its budget.
  if (opts.signedBy === undefined) deps.limitDevice(device.device, deps.now());
  return await deps.appender.submit({ env, sender: device, envelopeHash: sha256(wire), revocationMark });
}
