/**
 * README.md's walkthrough of the reference scenario, run as written: every `npx backchannel` line
 * of its shell block, in order, each terminal with the environment its `export` line sets, in one
 * working directory (the homes and files are relative paths). Only what a reader fills in is
 * filled in: B's party id, the channel id, the invite code and the relay's port; the relay is
 * started by the test, the heartbeat daemon sends one beat and `watch` stops after a second.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RelayProcess, startRelayProcess } from '../src/cli/relay-process.node.ts';

const BIN = join(import.meta.dirname, '..', 'bin', 'backchannel.mjs');
const README = readFileSync(join(import.meta.dirname, '../../../README.md'), 'utf8');

/** The shell block under "The reference scenario in five minutes", continuation lines joined. */
function walkthrough(): string[] {
  const section = README.slice(README.indexOf('## The reference scenario'));
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
  return block.replace(/\\\n\s*/g, '').split('\n');
}

/** Splits a shell line into words ('…' and "…" quoting; a trailing comment dropped). */
function words(line: string): string[] {
  const out: string[] = [];
  let cur: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (c === "'" || c === '"') {
      const end = line.indexOf(c, i + 1);
      cur = (cur ?? '') + line.slice(i + 1, end);
      i = end;
    } else if (c === ' ') {
      if (cur !== undefined) out.push(cur);
      cur = undefined;
    } else if (c === '#' && cur === undefined) break;
    else cur = (cur ?? '') + c;
  }
  if (cur !== undefined) out.push(cur);
  return out;
}

const cwd = mkdtempSync(join(tmpdir(), 'bc-readme-'));
let relay: RelayProcess;
beforeAll(async () => {
  relay = await startRelayProcess(join(cwd, 'relay-data'));
}, 60_000);
afterAll(async () => {
  await relay?.stop();
});

describe('README.md', () => {
  it('the reference scenario by hand works as written, command after command', {
    timeout: 600_000,
  }, async () => {
    const envOf = new Map<string, Record<string, string>>();
    let terminal = '';
    const filled: Record<string, string> = {};
    const ran: string[] = [];
    for (const line of walkthrough()) {
      const t = /^# (terminal \d|anyone)/.exec(line);
      if (t !== null) {
        if (t[1] !== 'anyone') terminal = t[1] as string;
        continue;
      }
      const w = words(line);
      if (w[0] === 'export') {
        const env = envOf.get(terminal) ?? {};
        for (const kv of w.slice(1)) env[kv.slice(0, kv.indexOf('='))] = kv.slice(kv.indexOf('=') + 1);
        envOf.set(terminal, env);
        continue;
      }
      if (w[0] !== 'npx' || w[1] !== 'backchannel') continue;
      let args = w.slice(2).filter((a) => a !== '&');
      if (args[0] === 'relay') {
        expect(args).toEqual(['relay', '--port', '8787', '--data', './relay-data']);
        continue; // started by the test, on a free port
      }
      args = args
        .filter((a) => a !== '--daemon')
        .map((a) =>
          a
            .replace('http://127.0.0.1:8787', relay.url)
            .replace('p_B…', filled.partyB ?? 'p_B…')
            .replace('c_…', filled.channel ?? 'c_…')
            .replace('XXXX-XXXX-XXXX-XXXX', filled.code ?? 'XXXX-XXXX-XXXX-XXXX'),
        );
      if (args[0] === 'watch') args.push('--for', '1s');
      const env = {
        ...process.env,
        ...envOf.get(terminal),
        BACKCHANNEL_KDF_N: '1024',
        // The one-time code `init device` asks for, as the person at the terminal types it.
        ...(filled.code === undefined ? {} : { BACKCHANNEL_INVITE_CODE: filled.code }),
      };
      let stdout = '';
      try {
        stdout = (await promisify(execFile)(process.execPath, [BIN, '--json', ...args], { cwd, env })).stdout;
      } catch (e) {
        const err = e as { code?: number; stdout?: string; stderr?: string };
        throw new Error(
          `README line failed (${terminal}): ${line.trim()}\n  after: ${ran.join(' | ')}\n  exit ${err.code}: ${err.stdout} ${err.stderr}`,
        );
      }
      ran.push(args.slice(0, 2).join(' '));
      const json = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>;
      if (args[0] === 'device' && args[1] === 'add') filled.code = String(json.code);
      if (args[0] === 'init' && args[1] === 'party' && terminal === 'terminal 3')
        filled.partyB = String(json.party);
      if (args[0] === 'outreach') filled.channel = String(json.channel);
      if (args[0] === 'log') {
        // The staff laptop reads B's points.
        const points = (json as unknown as Array<{ event?: { kind?: string; items?: string[] } }>).find(
          (r) => r.event?.kind === 'points',
        );
        expect(points?.event?.items).toEqual([
          'Halt enrichment above 5%',
          'Inspectors return within 30 days',
        ]);
        // "a delivery receipt goes back automatically": B sees A's delivered receipt of its points
        // (A's admin has not synced since they came: this `log` sent it).
        const bLog = await promisify(execFile)(
          process.execPath,
          [BIN, '--json', 'log', filled.channel as string],
          {
            cwd,
            env: { ...process.env, ...envOf.get('terminal 3'), BACKCHANNEL_KDF_N: '1024' },
          },
        );
        const bRecords = JSON.parse(bLog.stdout.trim().split('\n').at(-1) ?? '[]') as Array<{
          party?: string;
          event?: { kind?: string; type?: string; of?: string[]; id?: string };
        }>;
        const pointsId = (points as { event?: { id?: string } }).event?.id;
        expect(pointsId).toBeDefined();
        expect(
          bRecords.some(
            (r) =>
              r.party !== filled.partyB &&
              r.event?.kind === 'receipt' &&
              r.event.type === 'delivered' &&
              r.event.of?.includes(pointsId as string) === true,
          ),
        ).toBe(true);
      }
      if (args[0] === 'verify') expect(json).toMatchObject({ valid: true, kind: 'outreach' });
    }
    expect(ran).toContain('doc new');
  });
});
