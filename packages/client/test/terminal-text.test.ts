/**
 * What the other side writes reaches a terminal: message text, titles, notes, device and party
 * names. The CLI must neither let it drive the terminal (escape sequences, direction overrides)
 * nor let it print a line that passes for one of its own, and it names parties by the names their
 * signed cards claim only while no two parties claim the same one.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RelayProcess, startRelayProcess } from '../src/cli/relay-process.node.ts';
import { inline, jsonSafe, namedParty, partyLabels, quoteBlock, terminalSafe } from '../src/cli/text.ts';
import { cliRunner } from './cli-runner.ts';

/** What must never reach a terminal raw: controls (but tab and newline), format characters but ZWJ, line/paragraph separators. */
const UNSAFE = /(?![\t\n\u200d])[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;

describe('terminalSafe and quoteBlock', () => {
  it('leave ordinary text, tabs and newlines as they are', () => {
    const s = 'Halt enrichment above 5 %\tnow\nLes parties saluent les pourparlers. 停火 — مرحبا';
    expect(terminalSafe(s)).toBe(s);
  });

  it('show escape sequences, C1 controls and direction overrides as visible code points', () => {
    expect(terminalSafe('a\u001b[2Jb')).toBe('a\\u{001b}[2Jb');
    expect(terminalSafe('x\u009by')).toBe('x\\u{009b}y');
    expect(terminalSafe('invoice\u202egnp.exe')).toBe('invoice\\u{202e}gnp.exe');
    expect(terminalSafe('carriage\rreturn')).toBe('carriage\\u{000d}return');
    expect(terminalSafe('one\r\ntwo')).toBe('one\ntwo');
    // Marks, invisible characters and the separators some terminals take for a line break.
    for (const c of [
      '\u061c',
      '\u200e',
      '\u200f',
      '\u200b',
      '\u2060',
      '\ufeff',
      '\u00ad',
      '\u2028',
      '\u2029',
      '\u0085',
    ])
      expect(terminalSafe(`a${c}b`)).toBe(`a\\u{${c.codePointAt(0)?.toString(16).padStart(4, '0')}}b`);
    // Emoji sequences keep their zero-width joiner.
    expect(terminalSafe('👩\u200d💻')).toBe('👩\u200d💻');
  });

  it('inline keeps a field on one line, with the break visible', () => {
    expect(inline('pause\n  party p_FAKE: open')).toBe('pause ⏎   party p_FAKE: open');
  });

  it('jsonSafe escapes what JSON.stringify leaves raw, and stays valid JSON (property)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 100 }), (s) => {
        const out = jsonSafe(JSON.stringify({ s }));
        expect(UNSAFE.test(out)).toBe(false);
        expect(JSON.parse(out)).toEqual({ s });
        // Pretty-printed JSON keeps its layout: its newlines are not inside strings.
        const pretty = jsonSafe(`${JSON.stringify({ s, n: [1, 2] }, null, 2)}\n`);
        expect(pretty.endsWith('}\n')).toBe(true);
        expect(pretty.split('\n').length).toBe(8);
        expect(JSON.parse(pretty)).toEqual({ s, n: [1, 2] });
      }),
      { numRuns: 2_000 },
    );
  });

  it('never let an unsafe character through, and lose no other character (property)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (s) => {
        const out = terminalSafe(s);
        expect(UNSAFE.test(out)).toBe(false);
        // Undoing the escapes gives the input back: nothing is dropped or reordered.
        if (!s.includes('\\') && !s.includes('\r\n')) {
          const undone = out.replace(/\\u\{([0-9a-f]{4,6})\}/g, (_m, h: string) =>
            String.fromCodePoint(Number.parseInt(h, 16)),
          );
          expect(undone).toBe(s);
        }
      }),
      { numRuns: 2_000 },
    );
  });

  it('indent every continuation line of a multi-line field (property)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (s) => {
        const lines = quoteBlock(s, '    ').split('\n');
        for (const l of lines.slice(1)) expect(l.startsWith('    ┆ ')).toBe(true);
        expect(lines.length).toBe(s.replace(/\r\n/g, '\n').split('\n').length);
      }),
      { numRuns: 2_000 },
    );
  });
});

describe('partyLabels', () => {
  it('names parties by their cards, quoted, and falls back to the id without a card', () => {
    const names: Record<string, string> = { p_A: 'Foreign Ministry', p_B: 'Special Envoy' };
    const l = partyLabels(['p_A', 'p_B', 'p_C'], (p) => names[p]);
    expect(l.get('p_A')).toBe('“Foreign Ministry”');
    expect(l.get('p_B')).toBe('“Special Envoy”');
    expect(l.get('p_C')).toBe('p_C');
  });

  it('falls back to ids for every party claiming a name another party claims (case and width folded)', () => {
    const names: Record<string, string> = {
      p_A: 'Foreign Ministry',
      p_B: 'ＦＯＲＥＩＧＮ ministry',
      p_C: 'Mediator',
    };
    const l = partyLabels(['p_A', 'p_B', 'p_C'], (p) => names[p]);
    expect(l.get('p_A')).toBe('p_A');
    expect(l.get('p_B')).toBe('p_B');
    expect(l.get('p_C')).toBe('“Mediator”');
  });

  it('makes a name terminal-safe and keeps it on one line', () => {
    const l = partyLabels(['p_A'], () => 'Evil\u001b[31m\nco');
    expect(l.get('p_A')).toBe('“Evil\\u{001b}[31m ⏎ co”');
  });

  it('counts names that read the same as a clash: invisible characters, spacing, accents', () => {
    for (const twin of [
      'Foreign Ministry\u200b',
      'Foreign  Ministry ',
      'Foreign Ministry\u0301',
      'FOREIGN MINISTRY',
    ]) {
      const names: Record<string, string> = { p_A: 'Foreign Ministry', p_B: twin };
      const l = partyLabels(['p_A', 'p_B'], (p) => names[p]);
      expect([l.get('p_A'), l.get('p_B')], JSON.stringify(twin)).toEqual(['p_A', 'p_B']);
    }
  });

  it('log and watch print a name with the start of its id, which a look-alike cannot copy', () => {
    const id = 'p_5gS3bkY7NsQ3LpUnjJ5nQw';
    const l = partyLabels([id, 'p_B'], (p) => (p === id ? 'Special Envoy' : undefined));
    expect(namedParty(l, id)).toBe('“Special Envoy” p_5gS3bkY7…');
    expect(namedParty(l, 'p_B')).toBe('p_B');
  });
});

describe('hostile text through the real CLI', () => {
  const root = mkdtempSync(join(tmpdir(), 'bc-terminal-'));
  const runner = cliRunner(root);
  const { ok } = runner;
  let relay: RelayProcess;
  let ch = '';
  let aParty = '';
  let bParty = '';

  /** Without --json: what a person at the terminal sees (the command must succeed). */
  async function human(home: string, args: string[]): Promise<string> {
    const r = await runner.human(home, args);
    if (r.code !== 0) throw new Error(`backchannel ${args.join(' ')} → exit ${r.code}: ${r.stderr}`);
    return r.stdout;
  }

  beforeAll(async () => {
    relay = await startRelayProcess(join(root, 'relay'));
    aParty = String(
      (await ok('a', ['init', 'party', '--name', 'Foreign Ministry', '--device', 'desk'], relay.url)).party,
    );
    bParty = String(
      (
        await ok(
          'b',
          ['init', 'party', '--name', 'Special Envoy', '--device', 'phone\u001b[8m', '--role', 'principal'],
          relay.url,
        )
      ).party,
    );
    ch = String((await ok('a', ['outreach', bParty, '--note', 'Opening a line.'])).channel);
    await ok('b', ['inbox']);
    await ok('b', ['accept', ch]);
  }, 120_000);
  afterAll(async () => {
    await relay?.stop();
  });

  it('prints no escape sequence and no forged line, and names the parties by their cards', async () => {
    const forged = `#99 2026-01-01T00:00:00.000Z ${bParty}/principal channel.close`;
    await ok('b', ['send', ch, `fine\u001b[2J\u001b]52;c;ZXZpbA==\u0007\n${forged}\ninvoice\u202egnp.exe`]);
    const log = await human('a', ['log', ch]);
    expect(UNSAFE.test(log)).toBe(false);
    expect(log).toContain('\\u{001b}[2J');
    expect(log).toContain('\\u{202e}gnp.exe');
    // The forged line is there, but marked as a continuation of the message that carried it.
    const lines = log.split('\n');
    expect(lines).not.toContain(forged);
    expect(lines.some((l) => l.startsWith('       ┆ ') && l.endsWith(forged))).toBe(true);
    const short = (p: string) => `${p.slice(0, 10)}…`;
    expect(log).toContain(`“Special Envoy” ${short(bParty)}/principal message: fine`);
    expect(log).toContain(
      `OUTREACH from “Foreign Ministry” ${short(aParty)} to “Special Envoy” ${short(bParty)}`,
    );

    // One-line fields stay on their line: a track name cannot add a line to the status.
    await ok('b', ['track', 'open', ch, 'trade\n  transcript: 99 entries, verified checkpoint at 99']);
    const forgedStatus = await human('a', ['status', ch]);
    expect(forgedStatus.split('\n').filter((l) => l.startsWith('  transcript: '))).toHaveLength(1);
    expect(forgedStatus).toContain(
      'track "trade ⏎   transcript: 99 entries, verified checkpoint at 99": active',
    );

    const status = await human('a', ['status', ch]);
    expect(UNSAFE.test(status.replace(/\n/g, ''))).toBe(false);
    expect(status).toContain(`party “Foreign Ministry” (${aParty}): open`);
    expect(status).toContain(`party “Special Envoy” (${bParty}): open`);
    expect(status).toContain('phone\\u{001b}[8m (principal');
  }, 120_000);

  it('card show keeps the name on its line: it cannot print a fingerprint line of its own', async () => {
    const d = await ok(
      'd',
      ['init', 'party', '--name', 'Dee\nfingerprint 00000 00000 00000 00000 00000 00000', '--device', 'x'],
      relay.url,
    );
    const card = await human('a', ['card', 'show', String(d.party)]);
    expect(card.split('\n').filter((l) => l.startsWith('fingerprint '))).toHaveLength(1);
    expect(card).toContain('Dee ⏎ fingerprint 00000');
  }, 120_000);

  it('shows ids, not names, once another party claims a party’s name', async () => {
    const c = await ok('c', ['init', 'party', '--name', 'foreign ministry', '--device', 'laptop'], relay.url);
    const second = String(
      (await ok('c', ['outreach', String(aParty), '--note', 'Hello from the real one'])).channel,
    );
    const inbox = await human('a', ['inbox']);
    expect(inbox).toContain(
      `${second}  proposed  ← outreach from ${String(c.party)}: “Hello from the real one”`,
    );
    // On the channel where both claim the name, neither is shown by it; elsewhere names stay.
    const both = await human('a', ['status', second]);
    expect(both).toContain(`party ${aParty}: `);
    expect(both).toContain(`party ${String(c.party)}: `);
    const status = await human('a', ['status', ch]);
    expect(status).toContain(`party “Foreign Ministry” (${aParty})`);
    expect(status).toContain(`party “Special Envoy” (${bParty})`);
  }, 120_000);
});
