/**
 * Step 6 (and 10) of the reference scenario: each party's witness co-signs the relay's
 * checkpoint; both sides commit to their read-outs before either reveals; then the public
 * attestations — "A reached out to us", "the channel remains open", points delivered, one
 * disclosed event, the two read-outs — are made, verified offline, and (with --out) written
 * beside each party's witness state and the public keys a journalist needs. After step 9, the
 * witnesses co-sign again and B attests the joint statement's agreed text (demoAgreedText).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { documentStatus, type EventId, fromBase64url, toBase64url } from '@backchannel/protocol';
import { type Attestation, encodeAttestation, verifyAttestation } from '@backchannel/protocol/attest';
import { parseVerifierKey } from '@backchannel/protocol/transcript';
import type { Backchannel } from '../sdk/client.ts';
import { ed25519Node } from '../sdk/mls-crypto.node.ts';
import { writeOutFile } from './out-file.node.ts';
import {
  type AttestRequest,
  attest,
  checkRelayReceipt,
  commitReadout,
  publicKeysOf,
  revealReadout,
} from '../sdk/proofs.ts';
import {
  newWitnessState,
  relaySource,
  type WitnessState,
  witnessRound,
  witnessVerifierKey,
} from '../sdk/witness.ts';

/** Syncs until every device has verified the relay's whole log (automatic receipts included). */
async function settle(devices: readonly Backchannel[], channel: string): Promise<void> {
  for (let round = 0; round < 6; round++) {
    for (const d of devices) await d.syncAll();
    const relaySize = Number(
      (await (devices[0] as Backchannel).relay.getCheckpoint(channel)).checkpoint.split('\n')[1],
    );
    let all = true;
    for (const d of devices) if ((await d.channel(channel)).record.checkpointSize !== relaySize) all = false;
    if (all) return;
  }
}

export interface DemoProofs {
  readonly files: Record<string, Attestation>;
  readonly witnesses: Record<string, WitnessState>;
  readonly keys: { parties: Record<string, string>; relayKeys: string[]; witnesses: string[] };
  readonly verified: Record<string, boolean>;
}

/** Who takes part in the proofs steps: A's and B's devices, and every device still online. */
interface ProofsStep {
  readonly say: (s: string) => void;
  readonly channel: string;
  readonly a: Backchannel;
  readonly b: Backchannel;
  readonly online: readonly Backchannel[];
}

/** Each party's witness (its state in `states`, under A and B) co-signs the channel's checkpoint. */
async function witnessRounds(
  s: ProofsStep,
  states: Record<string, WitnessState>,
  which: string,
): Promise<void> {
  const key = parseVerifierKey(s.a.relayKey as string);
  if (!key.ok) throw new Error('the pinned relay key is invalid');
  for (const [name, bc] of [
    ['A', s.a],
    ['B', s.b],
  ] as const) {
    const state = states[name];
    if (state === undefined) throw new Error(`no witness state for party ${name}`);
    const r = await witnessRound({
      source: relaySource(bc.relay),
      state,
      relayKey: key.value,
      channels: [s.channel],
      now: Date.now(),
    });
    states[name] = r.state;
    s.say(
      `  party ${name}'s ${which}: ${r.events.map((e) => `${e.kind}${'size' in e ? ` at size ${e.size}` : ''}`).join(', ')}`,
    );
  }
}

export async function demoProofs(input: ProofsStep & { readonly pointsId: EventId }): Promise<DemoProofs> {
  const { say, channel, a, b } = input;
  say('  read-outs of the round: both sides commit (a salted hash) before either publishes');
  const round = 'Round of 14 May';
  await commitReadout(a, channel, round, 'The talks were frank and useful. Both sides agreed to meet again.');
  await b.syncAll();
  await commitReadout(
    b,
    channel,
    round,
    'The talks were frank. Both sides agreed to meet again next week in Muscat.',
  );
  await a.syncAll();
  await revealReadout(a, channel, round);
  await revealReadout(b, channel, round);
  await settle(input.online, channel);

  const relayKey = a.relayKey as string;
  const witnesses: Record<string, WitnessState> = {
    A: newWitnessState('witness.a.example', new Uint8Array(randomBytes(32)), relayKey),
    B: newWitnessState('witness.b.example', new Uint8Array(randomBytes(32)), relayKey),
  };
  await witnessRounds(input, witnesses, 'witness');
  const witnessKeys = Object.values(witnesses).map(witnessVerifierKey);
  const parties = (await a.channel(channel)).view.state.parties;
  const pk = publicKeysOf(a, parties);
  const made: Array<[string, Backchannel, AttestRequest]> = [
    ['outreach-by-B', b, { kind: 'outreach', which: 'latest' }],
    ['liveness-by-A', a, { kind: 'liveness', withinHours: 1 }],
    ['delivery-by-B', b, { kind: 'delivery', event: input.pointsId, receipt: 'read' }],
    ['disclosure-by-B', b, { kind: 'disclosure', event: input.pointsId }],
    ['readouts-by-A', a, { kind: 'readouts', round }],
  ];
  const files: Record<string, Attestation> = {};
  const verified: Record<string, boolean> = {};
  for (const [name, bc, req] of made) {
    const doc = await attest(bc, channel, req);
    files[name] = doc;
    const v = verifyAttestation(encodeAttestation(doc), {
      parties: Object.values(pk.parties),
      relayKeys: [pk.relayKey],
      witnesses: witnessKeys,
      now: Date.now(),
      suite: ed25519Node,
    });
    verified[name] = v.valid;
    say(`  ${name}: ${v.valid ? `VALID — ${v.statement}` : `INVALID (${v.code}): ${v.reason}`}`);
  }
  // A forged claim fails: B's attestation with the outreach moved a day earlier, re-signed.
  const forged = structuredClone(files['outreach-by-B'] as Attestation);
  (forged.claim as { at: number }).at -= 86_400_000;
  const { signAttestation } = await import('@backchannel/protocol/attest');
  const { signature: _s, ...unsigned } = forged;
  const f = verifyAttestation(signAttestation(unsigned, b.identity.deviceSecretKey, ed25519Node), {
    parties: Object.values(pk.parties),
    relayKeys: [pk.relayKey],
    witnesses: witnessKeys,
    now: Date.now(),
    suite: ed25519Node,
  });
  verified.forgeryRefused = !f.valid;
  // The accountable mediator: B's receipt for its points, against the log and the channel's bound.
  const rc = await checkRelayReceipt(b, channel, input.pointsId, { witnesses: witnessKeys });
  const bound = (await b.channel(channel)).view.state.deliveryBoundMs;
  say(
    `  relay receipt for B's points: ${rc.check.kind}${bound === undefined ? '' : ` (the channel's delivery bound: ${bound / 1000} s)`}`,
  );
  verified.receiptDelivered = rc.check.kind === 'delivered';
  say(`  a forged outreach date: ${f.valid ? 'ACCEPTED (bug!)' : `refused (${f.code}): ${f.reason}`}`);
  return {
    files,
    witnesses,
    keys: {
      parties: Object.fromEntries(Object.entries(pk.parties).map(([p, k]) => [p, toBase64url(k)])),
      relayKeys: [pk.relayKey],
      witnesses: witnessKeys,
    },
    verified,
  };
}

/**
 * After step 9: both sides send a heartbeat (its lifecycle view covers the signatures), each
 * party's witness co-signs the grown log (consistent with what it co-signed at step 6), then party B attests "A and B both signed this revision of the joint statement; its
 * text is this", and the attestation is verified offline like the others.
 */
export async function demoAgreedText(
  input: ProofsStep & { readonly proofs: DemoProofs },
): Promise<Record<string, boolean>> {
  const { say, channel, b, proofs } = input;
  await settle(input.online, channel);
  // Each side's next heartbeat states its view of the lifecycle after the signatures: what shows
  // a reader the channel was open (not suspended) when each was logged.
  say('  both sides send a heartbeat after the signatures (each states the channel was open)');
  for (const d of [input.a, b]) {
    await (await d.channel(channel)).send({ kind: 'heartbeat', intervalMs: 60_000 });
    await d.outbox.flush();
  }
  await settle(input.online, channel);
  await witnessRounds(input, proofs.witnesses, 'witness, again');
  const ch = await b.channel(channel);
  const agreed = Object.values(ch.view.state.documents).find((d) => documentStatus(d).agreed);
  if (agreed === undefined) throw new Error('no agreed document after step 9');
  const doc = await attest(b, channel, { kind: 'agreed', doc: agreed.id });
  proofs.files['agreed-by-B'] = doc;
  const v = verifyAttestation(encodeAttestation(doc), {
    parties: Object.values(proofs.keys.parties).map((k) => fromBase64url(k)),
    relayKeys: proofs.keys.relayKeys,
    witnesses: proofs.keys.witnesses,
    now: Date.now(),
    suite: ed25519Node,
  });
  say(`  agreed-by-B: ${v.valid ? `VALID — ${v.statement}` : `INVALID (${v.code}): ${v.reason}`}`);
  return { 'agreed-by-B': v.valid };
}

export function writeDemoProofs(dir: string, p: DemoProofs): void {
  mkdirSync(dir, { recursive: true });
  // The run replaces what it wrote before (the demo checked --force before it started).
  for (const [name, doc] of Object.entries(p.files))
    writeOutFile(join(dir, `attestation-${name}.json`), encodeAttestation(doc), true);
  for (const [name, state] of Object.entries(p.witnesses)) {
    // The witness's secret key stays out of the export: only its public key and what it co-signed.
    const { seed: _seed, ...pub } = state;
    writeOutFile(
      join(dir, `witness-${name}.json`),
      `${JSON.stringify({ ...pub, vkey: witnessVerifierKey(state) }, null, 2)}\n`,
      true,
    );
  }
  writeOutFile(
    join(dir, 'public-keys.json'),
    `${JSON.stringify({ type: 'backchannel/public-keys', v: 1, ...p.keys }, null, 2)}\n`,
    true,
  );
}
