/**
 * `backchannel relay --store postgres://… --fanout nats://…` through the real CLI binary: a node
 * comes up on PostgreSQL; a second node with another checkpoint key refuses to join; with the
 * first node's key file it joins and serves the same log; restarted with a new key and
 * `--previous-checkpoint-key`, a node serves the rotation statement and the old key is refused.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { commit, envelope, makeDevice, makeParty, newChannel } from '../helpers.ts';
import { Caller } from '../helpers.ts';
import { freePort } from '../process.ts';
import { dropSchema, NATS_URL, PG_URL, servicesUp, uniqueName } from '../services.ts';

const BIN = new URL('../../../client/bin/backchannel.mjs', import.meta.url).pathname;
const up = await servicesUp('cluster/cli-relay.test.ts', ['postgres', 'nats']);

interface CliRelay {
  readonly url: string;
  readonly child: ChildProcess;
  stderr: string;
  readonly exited: Promise<number | null>;
}

function cliRelay(
  dataDir: string,
  port: number,
  store: string,
  fanout: string,
  extra: string[] = [],
): CliRelay {
  const child = spawn(
    process.execPath,
    [BIN, 'relay', '--port', String(port), '--data', dataDir, '--store', store, '--fanout', fanout, ...extra],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LOG_LEVEL: 'error' } },
  );
  const r: CliRelay = {
    url: `http://127.0.0.1:${port}`,
    child,
    stderr: '',
    exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))),
  };
  child.stderr?.on('data', (d: Buffer) => {
    r.stderr += d.toString();
  });
  return r;
}

async function ready(r: CliRelay): Promise<boolean> {
  const until = Date.now() + 30_000;
  let exited = false;
  void r.exited.then(() => {
    exited = true;
  });
  while (Date.now() < until && !exited) {
    try {
      if ((await fetch(`${r.url}/readyz`)).ok) return true;
    } catch {
      // not listening yet
    }
    await new Promise((res) => setTimeout(res, 100));
  }
  return false;
}

async function stop(r: CliRelay): Promise<void> {
  if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGTERM');
  await r.exited;
}

describe.skipIf(!up)('backchannel relay --store postgres:// --fanout nats://', () => {
  const schema = uniqueName('bc_cli');
  const dirs = [mkdtempSync(join(tmpdir(), 'bc-cli-n1-')), mkdtempSync(join(tmpdir(), 'bc-cli-n2-'))];
  const store = `${PG_URL}?schema=${schema}`;
  const fanout = `${NATS_URL}?subject=bctest.${schema}`;
  const running: CliRelay[] = [];

  afterAll(async () => {
    for (const r of running) await stop(r);
    await dropSchema(schema);
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('runs a node per data dir on one database; a node with another checkpoint key refuses to join; a rotation moves the cluster to the new key', async () => {
    const [d1, d2] = dirs as [string, string];
    const n1 = cliRelay(d1, await freePort(), store, fanout);
    running.push(n1);
    expect(await ready(n1), n1.stderr).toBe(true);
    const c1 = new Caller((path, init) => fetch(`${n1.url}${path}`, init));
    const info = await c1.get('/v1/relay');
    expect(info.body.store).toBe('postgres');

    // Its own freshly made key: refused, with the reason and without the database URL (the CLI
    // reports a relay that cannot start as a typed error: bad configuration, exit 1).
    const wrong = cliRelay(d2, await freePort(), store, fanout);
    expect(await wrong.exited).toBe(1);
    expect(wrong.stderr).toMatch(/^error INVALID_ARGUMENT: the relay did not start: .*checkpoint key/m);
    expect(wrong.stderr).not.toContain(PG_URL);

    // With the cluster's key it joins and serves what node 1 wrote.
    copyFileSync(join(d1, 'checkpoint-key'), join(d2, 'checkpoint-key'));
    const n2 = cliRelay(d2, await freePort(), store, fanout);
    running.push(n2);
    expect(await ready(n2), n2.stderr).toBe(true);
    const c2 = new Caller((path, init) => fetch(`${n2.url}${path}`, init));
    expect((await c2.get('/v1/relay')).body.vkey).toBe(info.body.vkey);
    const P = makeParty('P');
    const d = makeDevice(P, 'd', 'admin');
    await c1.publishParty(P, [d]);
    const ch = newChannel();
    expect((await c1.append(d, commit(d, ch, 0))).status).toBe(201);
    expect((await c2.append(d, envelope(d, ch))).body.seq).toBe(1);
    expect((await c1.get(`/v1/channels/${ch}/entries?from=0`, d)).body.size).toBe(2);

    // A key rotation, every node at once: the nodes stop; node 1 comes back with a new key and
    // the old one as its previous key, serves the rotation statement and moves the cluster's
    // record; node 2 on the old key alone is then refused.
    await stop(n1);
    await stop(n2);
    const oldKey = join(d1, 'checkpoint-key.old');
    copyFileSync(join(d1, 'checkpoint-key'), oldKey);
    rmSync(join(d1, 'checkpoint-key'));
    const r1 = cliRelay(d1, await freePort(), store, fanout, ['--previous-checkpoint-key', oldKey]);
    running.push(r1);
    expect(await ready(r1), r1.stderr).toBe(true);
    const rotated = (await new Caller((path, init) => fetch(`${r1.url}${path}`, init)).get('/v1/relay')).body;
    expect(rotated.vkey).not.toBe(info.body.vkey);
    expect(String(rotated.rotation)).toContain(
      `from ${String(info.body.vkey)}\nto ${String(rotated.vkey)}\n`,
    );
    const stale = cliRelay(d2, await freePort(), store, fanout);
    expect(await stale.exited).toBe(1);
    expect(stale.stderr).toMatch(/^error INVALID_ARGUMENT: the relay did not start: .*checkpoint key/m);
  }, 120_000);
});
