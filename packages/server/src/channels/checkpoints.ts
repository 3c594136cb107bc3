/**
 * The relay's checkpoints: C2SP tlog-checkpoint text (origin `<relay name>/<channel>`, size,
 * root) signed as a C2SP signed note with the relay's Ed25519 key (alg 0x01, Go-compatible).
 * Signing goes through the injected suite so the relay signs with node:crypto.
 */
import {
  type ChannelId,
  concatBytes,
  constantTimeEqual,
  keyPairFromSeed,
  type SignatureSuite,
  utf8,
} from '@backchannel/protocol';
import type { RelayReceiptBody } from '@backchannel/protocol/attest';
import {
  ALG_ED25519,
  encodeCheckpoint,
  encodeVerifierKey,
  keyId,
  makeVerifierKey,
  type NoteVerifierKey,
  signatureLine,
  signKeyRotation,
} from '@backchannel/protocol/transcript';
import { signReceipts } from './receipt-codec.ts';

export class CheckpointSigner {
  readonly name: string;
  readonly publicKey: Uint8Array;
  readonly verifier: NoteVerifierKey;
  /** Go/C2SP verifier key string clients pin: "<name>+<hex key id>+<base64(0x01 || key)>". */
  readonly vkey: string;
  /**
   * The rotation statement from the retiring key to this one (signed by both), when the relay
   * was started with its previous key: devices and witnesses that pinned that key move to this.
   */
  readonly rotation: string | undefined;
  readonly #seed: Uint8Array;
  readonly #keyId: Uint8Array;
  readonly #suite: SignatureSuite;

  constructor(
    name: string,
    seed: Uint8Array,
    publicKey: Uint8Array,
    suite: SignatureSuite,
    previousSeed?: Uint8Array,
  ) {
    this.name = name;
    this.publicKey = publicKey;
    this.verifier = makeVerifierKey(name, publicKey);
    this.vkey = encodeVerifierKey(this.verifier);
    if (previousSeed !== undefined && constantTimeEqual(previousSeed, seed))
      throw new Error('the previous checkpoint key is the current one: nothing to rotate');
    this.rotation =
      previousSeed === undefined
        ? undefined
        : signKeyRotation(
            name,
            previousSeed,
            seed,
            encodeVerifierKey(makeVerifierKey(name, keyPairFromSeed(previousSeed).publicKey)),
            this.vkey,
          );
    this.#seed = seed;
    this.#keyId = keyId(name, ALG_ED25519, publicKey);
    this.#suite = suite;
  }

  origin(channel: ChannelId): string {
    return `${this.name}/${channel}`;
  }

  /**
   * Relay receipts for the envelopes a batch accepted, signed with the checkpoint key — one
   * signature for the batch (PROTOCOL.md, relay receipts). Each is CBOR({body, [batch,] sig}).
   */
  receipts(bodies: readonly RelayReceiptBody[]): Uint8Array[] {
    return signReceipts(bodies, this.#seed, this.#suite);
  }

  /** The signed note of the checkpoint (size, root) of a channel. */
  sign(channel: ChannelId, size: number, root: Uint8Array): string {
    const text = encodeCheckpoint({ origin: this.origin(channel), size, root, extensions: [] });
    const sig = this.#suite.sign(utf8(text), this.#seed);
    return `${text}\n${signatureLine(this.name, concatBytes(this.#keyId, sig))}`;
  }
}

/** The tree size a checkpoint note states (second line). */
export function checkpointSize(note: string): number {
  const a = note.indexOf('\n');
  const b = note.indexOf('\n', a + 1);
  return Number(note.slice(a + 1, b));
}
