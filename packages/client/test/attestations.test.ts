/**
 * Attestations created from a real scenario transcript (SDK devices, real MLS, an in-process
 * relay, two witnesses) and checked by the offline verifier — then forged, each forgery refused
 * with its specific reason.
 */
import {
  decodeEntry,
  encodeDeviceCertificate,
  encodeEntry,
  fromBase64url,
  keyPairFromSeed,
  toBase64url,
} from '@backchannel/protocol';
import {
  cosign,
  encodeVerifierKey,
  inclusionProof,
  leafHash,
  MemoryNodeStore,
  makeVerifierKey,
  parseNote,
  parseVerifierKey,
  treeRoot,
} from '@backchannel/protocol/transcript';
import {
  type Attestation,
  type AttestationVerdict,
  checkReceiptAgainstLog,
  createAttestation,
  planAgreed,
  RECEIPT_SKEW_MS,
  decodeRelayReceipt,
  verifyRelayReceipt,
  type ClaimKind,
  signAttestation,
  type UnsignedAttestation,
  type VerifyAttestationOptions,
  verifyAttestation,
} from '@backchannel/protocol/attest';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ed25519Node } from '../src/sdk/mls-crypto.node.ts';
import {
  type AttestRequest,
  attest,
  checkRelayReceipt,
  isFinal,
  relayReceiptOf,
  transcriptSnapshot,
} from '../src/sdk/proofs.ts';
import { buildScenario, type Scenario } from './scenario.ts';

let s: Scenario;
const docs = new Map<string, Attestation>();
let opts: VerifyAttestationOptions;

const requests = (sc: Scenario): Record<string, { by: 'a' | 'b'; req: AttestRequest }> => ({
  outreach: { by: 'b', req: { kind: 'outreach', which: 'first' } },
  liveness: { by: 'a', req: { kind: 'liveness', withinHours: 1 } },
  delivery: { by: 'b', req: { kind: 'delivery', event: sc.pointsId, receipt: 'read' } },
  disclosure: { by: 'a', req: { kind: 'disclosure', event: sc.messageId } },
  readouts: { by: 'a', req: { kind: 'readouts', round: 'round 1' } },
  early: { by: 'b', req: { kind: 'readouts', round: 'round 2' } },
  agreed: { by: 'b', req: { kind: 'agreed', doc: sc.docId.slice(0, 10) } },
});

beforeAll(async () => {
  s = await buildScenario();
  for (const [name, { by, req }] of Object.entries(requests(s))) {
    docs.set(name, await attest(by === 'a' ? s.a : s.b, s.channel, req));
  }
  docs.set('other-log', await attest(s.a, s.other, { kind: 'outreach' }));
  // Agreed-text forgeries built from the same transcript by a party that controls its device.
  const snap = await transcriptSnapshot(s.a, s.channel);
  const plan = planAgreed(snap, { doc: s.docId });
  const issuer = { certificate: s.a.identity.certificate, secretKey: s.a.identity.deviceSecretKey };
  const bParty = s.B.party;
  const signOf = (rev: 'agreed' | 'other') =>
    snap.records.find(
      (r) =>
        r.event?.kind === 'doc.sign' &&
        r.party === bParty &&
        (toBase64url(r.event.revision) === (plan.claim as { hash: string }).hash) === (rev === 'agreed'),
    )?.index as number;
  const swap = (xs: readonly number[]) => xs.map((i) => (i === signOf('agreed') ? signOf('other') : i));
  docs.set(
    'agreed-other-revision',
    createAttestation(
      snap,
      { ...plan, entries: swap(plan.entries), disclosures: swap(plan.disclosures) },
      issuer,
      s.a.now,
    ),
  );
  const without = (xs: readonly number[]) => xs.filter((i) => i !== signOf('agreed'));
  docs.set(
    'agreed-missing-signature',
    createAttestation(
      snap,
      { ...plan, entries: without(plan.entries), disclosures: without(plan.disclosures) },
      issuer,
      s.a.now,
    ),
  );
  opts = {
    parties: [s.A.root, s.B.root],
    relayKeys: [s.relayKey],
    witnesses: s.witnessKeys,
    now: Date.now() + 1000,
    suite: ed25519Node,
  };
}, 120_000);

afterAll(async () => {
  await s?.close();
});

const doc = (name: string): Attestation => {
  const d = docs.get(name);
  if (d === undefined) throw new Error(`no attestation ${name}`);
  return structuredClone(d);
};

/** A forger who controls a real device of a party re-signs its lie with that device's key. */
function resign(d: Attestation): Attestation {
  const bc = [s.a, s.b].find(
    (x) => toBase64url(encodeDeviceCertificate(x.identity.certificate)) === d.issuer,
  );
  if (bc === undefined) throw new Error('unknown issuer');
  const { signature: _s, ...unsigned } = d;
  return signAttestation(unsigned satisfies UnsignedAttestation, bc.identity.deviceSecretKey);
}

function verdict(d: unknown, o: Partial<VerifyAttestationOptions> = {}): AttestationVerdict {
  return verifyAttestation(JSON.parse(JSON.stringify(d)), { ...opts, ...o });
}

function expectRefused(v: AttestationVerdict, code: string): void {
  expect(v.valid ? 'valid' : v.code, v.valid ? v.statement : v.reason).toBe(code);
  if (!v.valid) expect(v.reason.length).toBeGreaterThan(10);
}

describe('attestations from the reference scenario', () => {
  it('liveness is refused where, in the issuer’s own view, the line was not open then', async () => {
    // The second channel's outreach was never accepted.
    await expect(attest(s.a, s.other, { kind: 'liveness', withinHours: 1 })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringMatching(
        /was proposed since .*: a liveness attestation would say the line was open$/,
      ),
    });
    // Ten days ago the scenario's channel did not exist.
    await expect(
      attest(s.a, s.channel, { kind: 'liveness', asOf: Date.now() - 10 * 86_400_000 }),
    ).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringContaining('was not yet open'),
    });
  });

  it.each(['outreach', 'liveness', 'delivery', 'disclosure', 'readouts', 'agreed'])(
    'a %s attestation verifies offline',
    (name) => {
      const v = verdict(doc(name));
      expect(v.valid, v.valid ? '' : `${v.code}: ${v.reason}`).toBe(true);
      if (!v.valid) return;
      expect(v.kind).toBe(name);
      expect(v.witnesses.map((w) => w.name).sort()).toEqual(['witness.a.example', 'witness.b.example']);
      expect(v.statement.length).toBeGreaterThan(20);
    },
  );

  it('states what each claim means, revealing only what it needs', () => {
    const out = verdict(doc('outreach'));
    expect(out.valid && out.claim).toMatchObject({
      kind: 'outreach',
      from: s.A.party,
      to: s.B.party,
      opening: true,
    });
    const del = doc('delivery');
    // No content of the points is in the delivery attestation: only the receipt is disclosed.
    expect(JSON.stringify(del)).not.toContain('enrichment');
    expect(del.disclosures.map((x) => (x.event as { kind: string }).kind)).toEqual(['receipt']);
    const dis = verdict(doc('disclosure'));
    expect(dis.valid && dis.statement).toContain('We accept point 2 in principle.');
    const live = doc('liveness');
    expect(live.disclosures.map((x) => (x.event as { kind: string }).kind)).toEqual([
      'heartbeat',
      'heartbeat',
    ]);
  });

  it('shows the word-level difference of two read-outs committed before either was revealed', () => {
    const v = verdict(doc('readouts'));
    expect(v.valid).toBe(true);
    if (!v.valid) return;
    expect(v.readouts?.diff).toContainEqual({ op: 'only-b', text: 'again next week in Oman.' });
    expect(v.readouts?.texts.map((t) => t.party).sort()).toEqual([s.A.party, s.B.party].sort());
  });

  it('states the agreed text both parties signed, recomputed from the disclosed revision', () => {
    const d = doc('agreed');
    expect(d.claim).toMatchObject({
      kind: 'agreed',
      doc: s.docId,
      docType: 'signed-text',
      revision: 2,
      parties: [s.A.party, s.B.party].sort(),
    });
    // The revision signed, one signature per party, the change that opened the channel and one
    // heartbeat per party after the signatures: no earlier revision, no comment.
    expect(d.disclosures.map((x) => (x.event as { kind: string }).kind).sort()).toEqual([
      'channel.accept',
      'doc.revision',
      'doc.sign',
      'doc.sign',
      'heartbeat',
      'heartbeat',
    ]);
    const v = verdict(d);
    expect(v.valid, v.valid ? '' : v.reason).toBe(true);
    if (!v.valid) return;
    expect(v.agreed?.clauses).toEqual([
      {
        id: 'resume',
        text: {
          en: 'The parties note the resumption of direct contact.',
          fr: 'Les parties prennent acte de la reprise du contact direct.',
        },
      },
      {
        id: 'talks',
        text: {
          en: 'Talks will continue in Geneva next month.',
          fr: 'Les pourparlers se poursuivront à Genève le mois prochain.',
        },
      },
    ]);
    expect(v.agreed?.signatures.map((x) => [x.party, x.role, x.level])).toEqual(
      [s.A.party, s.B.party].sort().map((p) => [p, 'principal', 'sign']),
    );
    expect(v.statement).toMatch(/each signed revision 2 of the signed text “Joint statement/);
    expect(v.facts.join('\n')).toContain('Talks will continue in Geneva next month.');
  });

  it('agreed text: a signature over another revision never counts', () => {
    const v = verdict(doc('agreed-other-revision'));
    expectRefused(v, 'DOC_NOT_AGREED');
    expect(!v.valid && v.reason).toContain(`party ${s.B.party} signed another revision, not revision 2`);
  });

  it("agreed text: a party's signature missing", () => {
    const v = verdict(doc('agreed-missing-signature'));
    expectRefused(v, 'DOC_NOT_AGREED');
    expect(!v.valid && v.reason).toContain(`party ${s.B.party} signed revision 2`);
  });

  it('agreed text: a claimed hash that is not the disclosed text’s (re-signed)', () => {
    const d = doc('agreed');
    const c = d.claim as { hash: string };
    c.hash = `${c.hash.slice(0, -1)}${c.hash.endsWith('A') ? 'Q' : 'A'}`;
    expectRefused(verdict(resign(d)), 'DOC_TEXT_MISMATCH');
  });

  it('refuses a read-out published before the other party had committed', () => {
    expectRefused(verdict(doc('early')), 'READOUT_EARLY');
  });

  it('an entry is final only once every required witness co-signed a checkpoint covering it', async () => {
    const ch = await s.a.channel(s.channel);
    expect(await isFinal(s.a, ch.id, 0, s.witnessKeys)).toEqual({ final: true, missing: [] });
    expect((await isFinal(s.a, ch.id, ch.record.checkpointSize, s.witnessKeys)).final).toBe(false);
  });
});

// ---- forgeries ----------------------------------------------------------------------------

const timeField: Record<string, string | undefined> = {
  outreach: 'at',
  liveness: 'asOf',
  delivery: 'acknowledgedAt',
  disclosure: 'at',
  readouts: undefined,
  agreed: 'agreedAt',
};
const partyEdit: Record<string, (c: Record<string, unknown>, sc: Scenario) => void> = {
  outreach: (c, sc) => {
    c.from = sc.B.party;
    c.to = sc.A.party;
  },
  liveness: (c, sc) => {
    c.parties = [sc.A.party, 'p_AAAAAAAAAAAAAAAAAAAAAA'];
  },
  delivery: (c, sc) => {
    // "A's event was acknowledged by B" — the other way round.
    c.from = sc.A.party;
    c.by = sc.B.party;
  },
  disclosure: (c, sc) => {
    c.from = sc.B.party;
  },
  readouts: (c, sc) => {
    c.parties = [sc.A.party, 'p_AAAAAAAAAAAAAAAAAAAAAA'];
  },
  agreed: (c, sc) => {
    // "B and a third party agreed" — the document's signatories are A and B.
    c.parties = [sc.B.party, 'p_AAAAAAAAAAAAAAAAAAAAAA'];
  },
};

describe.each(['outreach', 'liveness', 'delivery', 'disclosure', 'readouts', 'agreed'] as ClaimKind[])(
  'forged %s attestations are refused',
  (kind) => {
    it('changed time (re-signed by the lying party)', () => {
      const d = doc(kind);
      const f = timeField[kind];
      if (f === undefined) {
        // Read-outs make no time claim; moving a reveal before the other's commitment is the
        // time forgery, and the early round shows it refused.
        expectRefused(verdict(doc('early')), 'READOUT_EARLY');
        return;
      }
      const c = d.claim as unknown as Record<string, number>;
      c[f] = (c[f] as number) - (kind === 'liveness' ? 3 * 3_600_000 : 86_400_000);
      expectRefused(verdict(resign(d)), 'TIME_OUTSIDE_WINDOW');
    });

    it('changed party (re-signed)', () => {
      const d = doc(kind);
      partyEdit[kind]?.(d.claim as unknown as Record<string, unknown>, s);
      expectRefused(verdict(resign(d)), 'CLAIM_UNSUPPORTED');
    });

    it('changed claim without a new signature', () => {
      const d = doc(kind);
      (d.claim as unknown as Record<string, unknown>).channel = s.other;
      expectRefused(verdict(d), 'SIG_INVALID');
    });

    it('swapped proof', () => {
      const d = doc(kind);
      const donor = doc(kind === 'disclosure' ? 'delivery' : 'disclosure').entries[0]!;
      const e = d.entries.find((x) => x.index !== donor.index && x.proof.length > 0)!;
      e.proof = donor.proof;
      expectRefused(verdict(resign(d)), 'NOT_IN_LOG');
    });

    it('checkpoint from another log', () => {
      const d = doc(kind);
      d.checkpoint = doc('other-log').checkpoint;
      expectRefused(verdict(resign(d), { witnesses: [] }), 'NOT_IN_LOG');
    });

    it('missing witness cosignature', () => {
      const d = doc(kind);
      d.checkpoint = d.checkpoint
        .split('\n')
        .filter((l) => !l.startsWith('— witness.b.example '))
        .join('\n');
      expectRefused(verdict(resign(d)), 'WITNESS_MISSING');
    });

    it('edited text of a disclosed event', () => {
      const d = doc(kind);
      const x =
        kind === 'agreed'
          ? d.disclosures.find((y) => (y.event as { kind: string }).kind === 'doc.revision')!
          : d.disclosures[d.disclosures.length - 1]!;
      const ev = x.event as Record<string, unknown>;
      if (ev.kind === 'doc.revision') {
        // One word of the agreed text: "Geneva" becomes "Vienna".
        const talks = (ev.clauses as Array<{ id: string; text: Record<string, string[]> }>).find(
          (c) => c.id === 'talks',
        )!;
        talks.text.en = ['Talks will continue in Vienna next month.'];
      } else if (typeof ev.text === 'string') ev.text = `${ev.text} (and more)`;
      else if (typeof ev.note === 'string') ev.note = 'We were forced to reach out.';
      else if (typeof ev.intervalMs === 'number') ev.intervalMs += 1000;
      else if (ev.kind === 'receipt') ev.type = ev.type === 'read' ? 'delivered' : 'read';
      expectRefused(verdict(resign(d)), 'COMMITMENT_MISMATCH');
    });

    it('a party the verifier does not know', () => {
      expectRefused(verdict(doc(kind), { parties: [s.B.root] }), 'PARTY_UNTRUSTED');
    });

    it('a relay key the verifier does not trust', () => {
      const other = encodeVerifierKey(
        makeVerifierKey('relay.test', keyPairFromSeed(new Uint8Array(32).fill(9)).publicKey),
      );
      expectRefused(verdict(doc(kind), { relayKeys: [other] }), 'NOTE_UNVERIFIED');
    });
  },
);

describe('tampering, property-based', () => {
  it('flipping any byte of any signed field is refused', () => {
    const names = ['outreach', 'liveness', 'delivery', 'disclosure', 'readouts', 'agreed'];
    fc.assert(
      fc.property(
        fc.constantFrom(...names),
        fc.nat(),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        (name, which, at, xor) => {
          const d = doc(name);
          const fields: Array<[get: () => string, set: (v: string) => void]> = [
            [() => d.signature, (v) => (d.signature = v)],
            [() => d.issuer, (v) => (d.issuer = v)],
            ...d.entries.flatMap((e) => [
              [() => e.entry, (v: string) => (e.entry = v)] as [() => string, (v: string) => void],
              ...e.proof.map(
                (_p, i) =>
                  [() => e.proof[i] as string, (v: string) => (e.proof[i] = v)] as [
                    () => string,
                    (v: string) => void,
                  ],
              ),
            ]),
            ...d.disclosures.map(
              (x) => [() => x.salt, (v: string) => (x.salt = v)] as [() => string, (v: string) => void],
            ),
          ];
          const [get, set] = fields[which % fields.length]!;
          const bytes = fromBase64url(get());
          const i = at % bytes.length;
          bytes[i] = (bytes[i] as number) ^ xor;
          set(toBase64url(bytes));
          const v = verdict(d);
          return !v.valid;
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('backchannel verify (the CLI, offline)', () => {
  it('exits 0 on a valid attestation and 4 with the reason on a forged one, with only the file and public keys', {
    timeout: 60_000,
  }, async () => {
    const { execFile } = await import('node:child_process');
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { encodeAttestation } = await import('@backchannel/protocol/attest');
    const dir = mkdtempSync(join(tmpdir(), 'bc-verify-'));
    const keys = join(dir, 'keys.json');
    writeFileSync(
      keys,
      JSON.stringify({
        type: 'backchannel/public-keys',
        v: 1,
        parties: { [s.A.party]: toBase64url(s.A.root), [s.B.party]: toBase64url(s.B.root) },
        relayKeys: [s.relayKey],
        witnesses: s.witnessKeys,
      }),
    );
    const good = join(dir, 'delivery.json');
    writeFileSync(good, encodeAttestation(doc('delivery')));
    const forged = doc('delivery');
    (forged.claim as { acknowledgedAt: number }).acknowledgedAt -= 3_600_000;
    const bad = join(dir, 'forged.json');
    writeFileSync(bad, encodeAttestation(resign(forged)));
    const bin = join(import.meta.dirname, '..', 'bin', 'backchannel.mjs');
    const cli = (file: string) =>
      new Promise<{ code: number; out: string }>((resolve) => {
        execFile(
          process.execPath,
          [bin, '--json', 'verify', file, '--keys', keys],
          { env: { ...process.env } },
          (err, stdout) => {
            resolve({ code: err === null ? 0 : ((err as { code?: number }).code ?? -1), out: stdout });
          },
        );
      });
    const ok = await cli(good);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.out.trim().split('\n').at(-1) as string)).toMatchObject({
      valid: true,
      kind: 'delivery',
    });
    const no = await cli(bad);
    expect(no.code).toBe(4);
    expect(JSON.parse(no.out.trim().split('\n').at(-1) as string)).toMatchObject({
      valid: false,
      code: 'TIME_OUTSIDE_WINDOW',
    });
    // A keys file whose keys are filed under the wrong party ids, or are not keys, is refused
    // before anything is verified (exit 1, naming the file); so is a file that is not there.
    const run = (args: string[]) =>
      new Promise<{ code: number; out: string }>((resolve) => {
        execFile(process.execPath, [bin, '--json', 'verify', good, ...args], (err, stdout) => {
          resolve({ code: err === null ? 0 : ((err as { code?: number }).code ?? -1), out: stdout });
        });
      });
    const keysWith = (name: string, parties: Record<string, string>) => {
      const f = join(dir, name);
      writeFileSync(
        f,
        JSON.stringify({
          type: 'backchannel/public-keys',
          v: 1,
          parties,
          relayKeys: [s.relayKey],
          witnesses: [],
        }),
      );
      return f;
    };
    const refusedWith = async (args: string[], message: string) => {
      const r = await run(args);
      expect(r.code).toBe(1);
      expect(JSON.parse(r.out.trim().split('\n').at(-1) as string)).toMatchObject({
        error: { code: 'INVALID_ARGUMENT', message },
      });
    };
    const swapped = keysWith('swapped.json', {
      [s.A.party]: toBase64url(s.B.root),
      [s.B.party]: toBase64url(s.A.root),
    });
    await refusedWith(
      ['--keys', swapped],
      `${swapped}: the key filed under party ${s.A.party} is party ${s.B.party}'s`,
    );
    const short = keysWith('short.json', { [s.A.party]: 'AAAA' });
    await refusedWith(
      ['--keys', short],
      `${short}: the key of party ${s.A.party} is not a 32-byte Ed25519 key`,
    );
    await refusedWith(
      ['--party-key', 'notakey', '--relay-key', s.relayKey],
      '--party-key notakey is not a 32-byte Ed25519 key',
    );
    const missing = await run(['--keys', join(dir, 'no-such-keys.json')]);
    expect(missing.code).toBe(1);
    expect(missing.out).not.toContain('is not a JSON keys file');

    // At the terminal, what the attestation reveals is shown too: the outreach's cover note.
    const outreach = join(dir, 'outreach.json');
    const o = doc('outreach');
    writeFileSync(outreach, encodeAttestation(o));
    const note = (o.disclosures as Array<{ event?: { kind?: string; note?: string } }>)
      .map((d) => d.event)
      .find((e) => e?.kind === 'outreach')?.note;
    const human = await new Promise<string>((resolve) =>
      execFile(process.execPath, [bin, 'verify', outreach, '--keys', keys], (_err, stdout) =>
        resolve(stdout),
      ),
    );
    expect(human).toMatch(/^VALID outreach attestation\n/);
    expect(human).toContain(`: outreach, “${note ?? 'no note disclosed'}”`);
  });
});

describe('docs/examples (the files docs/ATTESTATIONS.md shows a journalist)', () => {
  it.each(['attestation-outreach.json', 'attestation-delivery.json', 'attestation-agreed.json'])(
    '%s verifies with docs/examples/public-keys.json',
    async (name) => {
      const { readFileSync } = await import('node:fs');
      const { join } = await import('node:path');
      const dir = join(import.meta.dirname, '..', '..', '..', 'docs', 'examples');
      const keys = JSON.parse(readFileSync(join(dir, 'public-keys.json'), 'utf8')) as {
        parties: Record<string, string>;
        relayKeys: string[];
        witnesses: string[];
      };
      const v = verifyAttestation(readFileSync(join(dir, name), 'utf8'), {
        parties: Object.values(keys.parties).map((k) => fromBase64url(k)),
        relayKeys: keys.relayKeys,
        witnesses: keys.witnesses,
        now: Date.now(),
      });
      expect(v.valid, v.valid ? '' : v.reason).toBe(true);
    },
  );
});

describe('the accountable mediator (relay receipts)', () => {
  it('the relay signs a receipt for every envelope it accepts, and the transcript shows it delivered', async () => {
    const r = await checkRelayReceipt(s.a, s.channel, s.messageId);
    expect(r.check.kind).toBe('delivered');
    const raw = await relayReceiptOf(s.a, s.channel, s.messageId);
    const rec = decodeRelayReceipt(raw as string);
    expect(rec.ok && rec.value.body).toMatchObject({ channel: s.channel, msgId: s.messageId });
    const relayPub = parseVerifierKey(s.relayKey);
    expect(rec.ok && relayPub.ok && verifyRelayReceipt(rec.value, relayPub.value.publicKey)).toBe(true);
  });

  it('a relay that drops an envelope it receipted is proven to have done so', async () => {
    const raw = (await relayReceiptOf(s.a, s.channel, s.messageId)) as string;
    const rec = decodeRelayReceipt(raw);
    if (!rec.ok) throw new Error('no receipt');
    const seq = rec.value.body.seq;
    // The relay rewrites its log: at the receipted position it puts another (genuine, signed)
    // entry instead of A's message, and signs the result with its own checkpoint key.
    const ch = await s.a.channel(s.channel);
    const entries = await s.a.store.entries(ch.id, 0, ch.record.checkpointSize);
    const substitute = entries[seq - 1]!.entry;
    const tree = new MemoryNodeStore();
    entries.forEach((e, i) => {
      tree.append(leafHash(i === seq ? substitute : e.entry));
    });
    const size = entries.length;
    const forgedCheckpoint = s.relay.signer.sign(ch.id, size, treeRoot(tree.state));
    const relayKey = parseVerifierKey(s.relayKey);
    if (!relayKey.ok) throw new Error('relay key');
    const check = checkReceiptAgainstLog({
      receipt: rec.value,
      relayKey: relayKey.value,
      checkpoint: forgedCheckpoint,
      entry: { bytes: substitute, proof: inclusionProof(seq, size, tree.read) },
    });
    expect(check.kind).toBe('dropped');
    // A receipt the relay did not sign proves nothing.
    const tampered = { ...rec.value, body: { ...rec.value.body, seq: seq + 1 } };
    expect(
      checkReceiptAgainstLog({ receipt: tampered, relayKey: relayKey.value, checkpoint: forgedCheckpoint })
        .kind,
    ).toBe('invalid');
  });
});

describe('the accountable mediator: delaying past the stated bound is provable', () => {
  const receiptOf = async () => {
    const rec = decodeRelayReceipt((await relayReceiptOf(s.a, s.channel, s.messageId)) as string);
    if (!rec.ok) throw new Error('no receipt');
    return rec.value;
  };
  const relayKeyOf = () => {
    const k = parseVerifierKey(s.relayKey);
    if (!k.ok) throw new Error('relay key');
    return k.value;
  };

  it('the channel states its bound, and a relay that logged within it is not accused', async () => {
    const ch = await s.a.channel(s.channel);
    expect(ch.view.state.deliveryBoundMs).toBe(s.boundMs);
    expect(ch.view.state.mediator).toBe('blind');
    expect((await checkRelayReceipt(s.a, s.channel, s.messageId)).check.kind).toBe('delivered');
    const withWitnesses = await checkRelayReceipt(s.a, s.channel, s.messageId, { witnesses: s.witnessKeys });
    expect(withWitnesses.check.kind).toBe('delivered');
    expect(withWitnesses.evidence).toBeUndefined();
  });

  it('a relay that logs a receipted envelope later than the bound is proven to have delayed it', async () => {
    const receipt = await receiptOf();
    const seq = receipt.body.seq;
    const ch = await s.a.channel(s.channel);
    const entries = await s.a.store.entries(ch.id, 0, ch.record.checkpointSize);
    // The relay holds A's envelope and logs it (at the receipted position) two bounds later.
    const d = decodeEntry(entries[seq]!.entry);
    if (!d.ok) throw new Error('entry');
    const held = encodeEntry({ ...d.value.entry, receivedAt: receipt.body.receivedAt + 2 * s.boundMs });
    const tree = new MemoryNodeStore();
    entries.forEach((e, i) => {
      tree.append(leafHash(i === seq ? held : e.entry));
    });
    const size = entries.length;
    const checkpoint = s.relay.signer.sign(ch.id, size, treeRoot(tree.state));
    const check = checkReceiptAgainstLog({
      receipt,
      relayKey: relayKeyOf(),
      checkpoint,
      entry: { bytes: held, proof: inclusionProof(seq, size, tree.read) },
      boundMs: ch.view.state.deliveryBoundMs as number,
    });
    expect(check).toMatchObject({ kind: 'delayed', seq, loggedAt: receipt.body.receivedAt + 2 * s.boundMs });
    expect(check.kind === 'delayed' && check.reason).toContain("past the channel's 60 s delivery bound");
    // A receipt the relay did not sign proves nothing, bound or not.
    const tampered = { ...receipt, body: { ...receipt.body, receivedAt: receipt.body.receivedAt - 1 } };
    expect(
      checkReceiptAgainstLog({
        receipt: tampered,
        relayKey: relayKeyOf(),
        checkpoint,
        entry: { bytes: held, proof: inclusionProof(seq, size, tree.read) },
        boundMs: s.boundMs,
      }).kind,
    ).toBe('invalid');
  });

  it('a relay that shows a witness, past the bound, a log still without the envelope is proven to delay it', async () => {
    const receipt = await receiptOf();
    const seq = receipt.body.seq;
    const ch = await s.a.channel(s.channel);
    const entries = await s.a.store.entries(ch.id, 0, seq);
    const tree = new MemoryNodeStore();
    for (const e of entries) tree.append(leafHash(e.entry));
    const note = s.relay.signer.sign(ch.id, seq, treeRoot(tree.state));
    const parsed = parseNote(note);
    if (!parsed.ok) throw new Error('note');
    const w = s.witnesses.A;
    const at = (t: number) =>
      note + cosign(parsed.value.text, { name: w.name, seed: fromBase64url(w.seed) }, Math.floor(t / 1000));
    const witnesses = [parseVerifierKey(s.witnessKeys[0]!)].map((k) => {
      if (!k.ok) throw new Error('witness key');
      return k.value;
    });
    const late = checkReceiptAgainstLog({
      receipt,
      relayKey: relayKeyOf(),
      checkpoint: at(receipt.body.receivedAt + s.boundMs + RECEIPT_SKEW_MS + 5_000),
      boundMs: s.boundMs,
      witnesses,
    });
    expect(late).toMatchObject({ kind: 'delayed', seq, witnessed: { name: w.name, size: seq } });
    // Seen by the witness within the bound (or within the clock skew past it): no accusation.
    expect(
      checkReceiptAgainstLog({
        receipt,
        relayKey: relayKeyOf(),
        checkpoint: at(receipt.body.receivedAt + s.boundMs + 5_000),
        boundMs: s.boundMs,
        witnesses,
      }).kind,
    ).toBe('not-yet-logged');
    expect(
      checkReceiptAgainstLog({
        receipt,
        relayKey: relayKeyOf(),
        checkpoint: at(receipt.body.receivedAt + 1_000),
        boundMs: s.boundMs,
        witnesses,
      }).kind,
    ).toBe('not-yet-logged');
  });
});

describe('attesting against the checkpoint the witnesses co-signed', () => {
  it('after the log moved on, an attestation at the co-signed size still satisfies the witnesses', async () => {
    const chB = await s.b.channel(s.channel);
    await chB.sync();
    await chB.send({ kind: 'message', text: 'Noted.' } as never);
    await s.b.outbox.flush();
    await s.a.syncAll();
    const latest = await attest(s.a, s.channel, { kind: 'disclosure', event: s.messageId });
    expectRefused(verdict(latest), 'WITNESS_MISSING');
    const cosigned = s.witnesses.A.channels[s.channel]?.size as number;
    expect(cosigned).toBeLessThan((await s.a.channel(s.channel)).record.checkpointSize);
    const atCosigned = await attest(
      s.a,
      s.channel,
      { kind: 'disclosure', event: s.messageId },
      { atSize: cosigned },
    );
    const v = verdict(atCosigned);
    expect(v.valid, v.valid ? '' : v.reason).toBe(true);
  });
});
