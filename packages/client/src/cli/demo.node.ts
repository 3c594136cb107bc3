/**
 * `backchannel demo`: the reference scenario of DESIGN.md, steps 1–9 (step 9 in demo-documents.node.ts), against a local relay
 * this command starts. Every party and device is a real SDK instance with its own encrypted
 * store; the relay is a real process (crashed with kill -9 in step 7).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type ChannelId,
  decodeEntry,
  type PartyId,
  type Role,
  toBase64url,
  type TrackId,
  trackIdFrom,
} from '@backchannel/protocol';
import type { Channel, DraftEvent } from '../sdk/channel.ts';
import { Backchannel } from '../sdk/client.ts';
import { ClientError } from '../sdk/errors.ts';
import { createMlsFactory } from '../sdk/mls-factory.ts';
import { ed25519Node, nodeMlsCrypto, sha256Node } from '../sdk/mls-crypto.node.ts';
import { SqliteLocalStore } from '../sdk/sqlite.node.ts';
import { renderStatus, statusOf } from './commands/watch.ts';
import { demoAgreedText, demoProofs, writeDemoProofs } from './demo-proofs.node.ts';
import { jointStatementStep } from './demo-documents.node.ts';
import { writeOutFile } from './out-file.node.ts';
import { startRelayProcess } from './relay-process.node.ts';

export interface DemoOptions {
  readonly json: boolean;
  readonly outDir?: string | undefined;
  /** Replace the files of an earlier run in outDir (else a folder holding files is refused). */
  readonly force?: boolean;
  readonly port?: number;
  readonly out?: unknown;
}

export interface DemoResult {
  readonly channel: ChannelId;
  readonly parties: { A: PartyId; B: PartyId };
  readonly checks: Record<string, boolean>;
}

const random = (n: number) => new Uint8Array(randomBytes(n));

async function device(root: string, name: string, relay: string): Promise<Backchannel> {
  const store = SqliteLocalStore.open({
    path: join(root, name, 'device.db'),
    passphrase: `demo passphrase of ${name}`,
    kdf: { N: 1 << 12, r: 8, p: 1 },
  });
  return Backchannel.open({
    store,
    mls: (identity, certs) => createMlsFactory({ identity, certs, crypto: nodeMlsCrypto, now: Date.now }),
    relays: [relay],
    random,
    signatures: ed25519Node,
    sha256: sha256Node,
    // Exercise post-compromise security: each device refreshes its MLS leaf every 4 messages.
    updateEveryMessages: 4,
  });
}

export async function runDemo(opts: DemoOptions): Promise<DemoResult> {
  const say = (s: string) => {
    if (!opts.json) process.stdout.write(`${s}\n`);
  };
  // Said before anything starts: files already in --out (an earlier run's, or anyone's) are
  // replaced only with --force.
  if (opts.outDir !== undefined && opts.force !== true) {
    const held = existsSync(opts.outDir) ? readdirSync(opts.outDir).length : 0;
    if (held > 0)
      throw new ClientError(
        'INVALID_ARGUMENT',
        `${opts.outDir} holds files already (an earlier demo's?): pass --force to replace them, or choose another --out`,
      );
  }
  const root = mkdtempSync(join(tmpdir(), 'backchannel-demo-'));
  const relay = await startRelayProcess(join(root, 'relay-data'), opts.port).catch((e: unknown) => {
    rmSync(root, { recursive: true, force: true });
    throw e;
  });
  const checks: Record<string, boolean> = {};
  const devices: Backchannel[] = [];
  try {
    say(
      `Relay (operated by mediator M) running at ${relay.url}, data in ${relay.dataDir} (deleted when the demo ends; --out keeps what it exports)\n`,
    );

    say('Step 1 — two parties with certified devices');
    const aAdmin = await device(root, 'A-admin', relay.url);
    const bEnvoy = await device(root, 'B-envoy', relay.url);
    devices.push(aAdmin, bEnvoy);
    const A = await aAdmin.createParty({
      partyName: 'Foreign Ministry (A)',
      deviceName: 'A admin desk',
      role: 'admin',
      relays: [relay.url],
    });
    const B = await bEnvoy.createParty({
      partyName: "Special Envoy's Office (B)",
      deviceName: 'envoy phone',
      role: 'principal',
      relays: [relay.url],
    });
    const enroll = async (admin: Backchannel, name: string, role: Role) => {
      const identity = await admin.addDevice(name, role);
      const bc = await device(root, name, relay.url);
      devices.push(bc);
      await bc.enroll(identity);
      return bc;
    };
    const minister = await enroll(aAdmin, 'A-minister', 'principal');
    const staff1 = await enroll(aAdmin, 'A-staff-1', 'staff');
    const staff2 = await enroll(aAdmin, 'A-staff-2', 'staff');
    const bNeg = await enroll(bEnvoy, 'B-negotiator', 'negotiator');
    say(`  A = ${A.party}  fingerprint ${aAdmin.fingerprint()}`);
    say(`  B = ${B.party}  fingerprint ${bEnvoy.fingerprint()}`);
    say('  A: admin desk, minister (principal), two staff; B: envoy (principal), negotiator\n');

    say('Step 2 — last year: A and B open a channel and a track "nuclear"; after a strike B suspends both');
    // The relay (operated by mediator M) relays blind, and must log every envelope within a minute.
    const chA = await minister.outreach(B.party, 'Opening a line between our offices.', {
      mediator: 'blind',
      deliveryBoundMs: 60_000,
    });
    const cid = chA.id;
    const all = [aAdmin, minister, staff1, staff2, bEnvoy, bNeg];
    for (const d of all) await d.syncAll();
    const chB = await bEnvoy.channel(cid);
    await send(bEnvoy, chB, { kind: 'channel.accept' });
    const nuclear: TrackId = trackIdFrom(random(16));
    await send(minister, chA, { kind: 'track.open', trackId: nuclear, name: 'nuclear' });
    await syncAll(all);
    await send(bEnvoy, chB, {
      kind: 'track.suspend',
      trackId: nuclear,
      reason: 'Suspended after the military strike of 14 March.',
    });
    await send(bEnvoy, chB, {
      kind: 'channel.suspend',
      reason: 'No contact while the strike is investigated.',
    });
    await syncAll(all);
    say(
      `  channel ${cid}: ${chA.view.state.lifecycle}; track nuclear: ${chA.view.state.tracks[nuclear]?.status}\n`,
    );
    checks.suspendedAfterStrike = chA.view.state.lifecycle === 'suspended';

    say('Step 3 — months later, during unrest, A reaches out; B accepts; the track is revived');
    await send(
      minister,
      chA,
      {
        kind: 'outreach',
        from: A.party,
        to: B.party,
        note: 'In light of the unrest we propose to resume contact.',
      },
      [B.party],
    );
    await syncAll(all);
    await send(bEnvoy, chB, { kind: 'channel.accept', reason: 'We accept to resume.' });
    await syncAll(all);
    await send(bNeg, await bNeg.channel(cid), {
      kind: 'track.revive',
      trackId: nuclear,
      reason: 'Resumed at A’s request.',
    });
    await syncAll(all);
    say(`  channel: ${chA.view.state.lifecycle}; track nuclear: ${chA.view.state.tracks[nuclear]?.status}\n`);
    checks.reopened =
      chA.view.state.lifecycle === 'open' && chA.view.state.tracks[nuclear]?.status === 'revived';

    say(
      'Step 4 — B conveys points; A acknowledges receipt (A-staff-2 is offline all along; the relay crashes mid-way)',
    );
    const online = [aAdmin, minister, staff1, bEnvoy, bNeg];
    const pointsId = await send(bEnvoy, chB, {
      kind: 'points',
      title: 'Conditions for a de-escalation',
      items: [
        'Halt enrichment above 5%',
        'Inspectors return within 30 days',
        'Prisoner exchange list by Friday',
      ],
      track: nuclear,
    });
    await syncAll(online);
    say('  relay killed with SIGKILL while B sends more…');
    const queued = await (await bNeg.channel(cid)).send({
      kind: 'message',
      text: 'Details of point 3 follow.',
      track: nuclear,
    } as DraftEvent);
    await relay.crash();
    const offline = await bNeg.outbox.flush().catch((e: unknown) => e);
    say(
      `  B-negotiator's message is kept in its outbox while the relay is down (${await bNeg.outbox.pending()} pending)`,
    );
    await relay.restart();
    say('  relay restarted; outbox delivered');
    await bNeg.outbox.flush();
    await syncAll(online);
    const rB = chB.view.state.receipts.get(pointsId);
    say(
      `  points ${pointsId}: delivered to A at ${rB?.delivered[A.party] === undefined ? 'not yet' : new Date(rB.delivered[A.party] as number).toISOString()}`,
    );
    await (await minister.channel(cid)).send({ kind: 'receipt', type: 'read', of: [pointsId] } as DraftEvent);
    await minister.outbox.flush();
    await syncAll(online);
    checks.pointsDelivered = chB.view.state.receipts.get(pointsId)?.delivered[A.party] !== undefined;
    checks.pointsRead = chB.view.state.receipts.get(pointsId)?.read[A.party] !== undefined;
    checks.outboxSurvivedCrash = offline instanceof ClientError || (await bNeg.outbox.pending()) === 0;
    checks.queuedMessageOnce =
      chA.view.timeline.filter((r) => 'event' in r && r.event.id === queued).length === 1;
    say('');

    say('Step 5 — duty devices send heartbeats; every member sees the line is alive');
    await send(staff1, await staff1.channel(cid), { kind: 'heartbeat', intervalMs: 60_000 });
    await send(bNeg, await bNeg.channel(cid), { kind: 'heartbeat', intervalMs: 60_000 });
    await syncAll(online);
    const st = statusOf(chA, Date.now());
    say(st.parties.map((p) => `  ${p.party}: ${p.liveness}`).join('\n'));
    checks.bothOpen = st.parties.every((p) => p.liveness === 'open');
    say('');

    say(
      'Step 6 — witnesses co-sign, read-outs are committed then revealed, and public attestations are made',
    );
    const proofs = await demoProofs({ say, channel: cid, a: minister, b: bEnvoy, online, pointsId });
    for (const [k, v] of Object.entries(proofs.verified)) checks[`attest_${k}`] = v;
    say('');

    say('Step 7 — A-staff-2 comes back online after a day and catches up');
    await staff2.syncAll();
    const ch2 = await staff2.channel(cid);
    const seen = ch2.view.timeline.filter((r) => 'event' in r && r.event.id === pointsId).length;
    say(
      `  A-staff-2 has ${ch2.record.nextSeq} entries, sees the points ${seen} time(s), verified checkpoint at ${ch2.record.checkpointSize}`,
    );
    checks.offlineCaughtUp = seen === 1 && ch2.record.checkpointSize === ch2.record.nextSeq;
    say('');

    say("Step 8 — A-staff-1 leaves the delegation: A's admin revokes the device");
    await aAdmin.syncAll();
    await aAdmin.revokeDevice(staff1.identity.device, 'Left the delegation');
    await send(minister, await minister.channel(cid), {
      kind: 'message',
      text: 'New instructions (not for former staff).',
      track: nuclear,
    });
    await syncAll([aAdmin, minister, staff2, bEnvoy, bNeg]);
    const refusal = await staff1.syncAll().then(
      () => undefined,
      (e: unknown) => (e instanceof ClientError ? (e.cause_code ?? e.code) : 'error'),
    );
    say(`  the relay refuses the revoked device: ${refusal ?? 'no refusal'}`);
    const s1 = await staff1.channel(cid);
    const s1Reads = s1.view.timeline.some(
      (r) => 'event' in r && r.event.kind === 'message' && r.event.text.startsWith('New instructions'),
    );
    let s1Posts = true;
    try {
      await s1.send({ kind: 'message', text: 'still here?' } as DraftEvent);
      const f = await staff1.outbox.flush();
      s1Posts = f.sent > 0;
    } catch {
      s1Posts = false;
    }
    say(`  removed device reads new messages: ${s1Reads}; can post: ${s1Posts}`);
    checks.removedCannotRead = !s1Reads;
    checks.removedCannotPost = !s1Posts;
    say('');

    say('Step 9 — A and B draft a joint statement in English and French, initial it, then sign it');
    Object.assign(
      checks,
      await jointStatementStep({
        say,
        channel: cid,
        aPrincipal: minister,
        bNegotiator: bNeg,
        bPrincipal: bEnvoy,
        outDir: opts.outDir,
      }),
    );
    say('  the witnesses co-sign again, and B attests the agreed text for the public');
    const agreedText = await demoAgreedText({
      say,
      channel: cid,
      a: minister,
      b: bEnvoy,
      online: [aAdmin, minister, staff2, bEnvoy, bNeg],
      proofs,
    });
    for (const [k, v] of Object.entries(agreedText)) checks[`attest_${k}`] = v;
    say('');

    await syncAll([aAdmin, minister, staff2, bEnvoy, bNeg]);
    const commits = (await minister.store.entries(cid, 0, 100_000)).filter((e) => {
      const d = decodeEntry(e.entry);
      return d.ok && d.value.envelope.body.kind === 'commit';
    }).length;
    say(
      `MLS commits on record: ${commits} (the outreach, the removal, and leaf refreshes for post-compromise security)`,
    );
    checks.leafRefreshed = commits >= 3;
    say('Final status, as A-minister sees it:');
    say(
      renderStatus(
        statusOf(await minister.channel(cid), Date.now(), (p) => minister.partyName(p)),
        Date.now(),
      ),
    );
    if (opts.outDir !== undefined) {
      mkdirSync(opts.outDir, { recursive: true });
      for (const [name, bc] of [
        ['A', minister],
        ['B', bEnvoy],
      ] as const) {
        const ch = await bc.channel(cid);
        const entries = await bc.store.entries(cid, 0, 1_000_000);
        writeOutFile(
          join(opts.outDir, `transcript-${name}.json`),
          JSON.stringify(
            {
              kind: 'backchannel-transcript',
              v: 1,
              channel: cid,
              party: bc.identity.party,
              checkpoint: ch.record.checkpoint ?? null,
              entries: entries.map((e) => ({ seq: e.seq, entry: toBase64url(e.entry) })),
            },
            null,
            1,
          ),
          true,
        );
      }
      writeDemoProofs(opts.outDir, proofs);
      say(`\nTranscripts, attestations, witness states and public keys written to ${opts.outDir}`);
    }
    const result: DemoResult = { channel: cid, parties: { A: A.party, B: B.party }, checks };
    if (opts.json) process.stdout.write(`${JSON.stringify(result)}\n`);
    else
      say(
        `\nChecks: ${Object.entries(checks)
          .map(([k, v]) => `${k}=${v ? 'ok' : 'FAILED'}`)
          .join(' ')}`,
      );
    return result;
  } finally {
    for (const d of devices) d.close();
    await relay.stop();
    // The relay's data and the device stores (their passphrases are in this file): not kept.
    rmSync(root, { recursive: true, force: true });
  }
}

async function send(bc: Backchannel, ch: Channel, draft: Record<string, unknown>, to?: PartyId[]) {
  await ch.sync();
  const id = await ch.send(draft as DraftEvent, to === undefined ? {} : { to });
  await bc.outbox.flush();
  return id;
}

async function syncAll(devices: readonly Backchannel[]) {
  for (const d of devices) await d.syncAll();
}
