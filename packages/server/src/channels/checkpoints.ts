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
  /** Every step's statement, oldest first (the last is `rotation`): a device several keys behind follows them. */
  readonly rotations: readonly string[];
  readonly #seed: Uint8Array;
  readonly #keyId: Uint8Array;
  readonly #suite: SignatureSuite;

  constructor(
    name: string,
    seed: Uint8Array,
    publicKey: Uint8Array,
    suite: SignatureSuite,
    previousSeeds: readonly Uint8Array[] = [],
  ) {
    this.name = name;
    this.publicKey = publicKey;
    this.verifier = makeVerifierKey(name, publicKey);
    this.vkey = encodeVerifierKey(this.verifier);
    // One statement per step, oldest first: each key hands over to the next, the last to this one.
    const chain = [...previousSeeds, seed];
    const vkeyOf = (s: Uint8Array) => encodeVerifierKey(makeVerifierKey(name, keyPairFromSeed(s).publicKey));
    const rotations: string[] = [];
    for (let i = 0; i + 1 < chain.length; i++) {
      const [from, to] = [chain[i] as Uint8Array, chain[i + 1] as Uint8Array];
      if (chain.some((s, j) => j !== i && constantTimeEqual(s, from)))
        throw new Error('a previous checkpoint key appears twice, or is the current one: nothing to rotate');
      rotations.push(signKeyRotation(name, from, to, vkeyOf(from), vkeyOf(to)));
    }
    this.rotations = rotations;
    this.rotation = rotations.at(-1);
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
