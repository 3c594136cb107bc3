/**
 * A user who exports a transcript or a document as evidence does not lose an earlier export by
 * accident: `export` and `doc export` refuse a file that exists (INVALID_ARGUMENT, exit 1, naming
 * it and `--force`), leave it as it was, and with `--force` replace it, readable by this user only.
 */
import { chmodSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RelayProcess, startRelayProcess } from '../src/cli/relay-process.node.ts';
import { cliRunner } from './cli-runner.ts';

const root = mkdtempSync(join(tmpdir(), 'bc-export-cli-'));
const { cli, ok, human } = cliRunner(root);

let relay: RelayProcess;
let ch: string;
beforeAll(async () => {
  relay = await startRelayProcess(join(root, 'relay'));
  await ok(
    'a',
    ['init', 'party', '--name', 'Ministry', '--device', 'desk', '--role', 'principal'],
    relay.url,
  );
  const b = await ok('b', ['init', 'party', '--name', 'Envoy', '--device', 'envoy'], relay.url);
  ch = String((await ok('a', ['outreach', String(b.party), '--note', 'Shall we talk?'])).channel);
  await ok('b', ['inbox']);
  await ok('b', ['accept', ch]);
}, 120_000);
afterAll(async () => {
  await relay?.stop();
});

/** The directory's entries but the ones named (no temporary file is left behind). */
const leftovers = (dir: string, ...expected: string[]) =>
  readdirSync(dir).filter((f) => !expected.includes(f));

describe('backchannel export', () => {
  it('refuses to overwrite an earlier export, and replaces it with --force', {
    timeout: 120_000,
  }, async () => {
    const dir = mkdtempSync(join(root, 'transcripts-'));
    const file = join(dir, 'transcript.json');
    writeFileSync(file, 'an earlier export, kept as evidence\n', { mode: 0o644 });

    const refused = await cli('a', ['export', ch, '--out', file]);
    expect(refused).toMatchObject({ code: 1, json: { error: { code: 'INVALID_ARGUMENT' } } });
    expect(refused.json.error?.message).toContain(file);
    expect(refused.json.error?.message).toContain('--force');
    expect(readFileSync(file, 'utf8')).toBe('an earlier export, kept as evidence\n');
    const said = await human('a', ['export', ch, '--out', file]);
    expect(said).toMatchObject({ code: 1, stdout: '' });
    expect(said.stderr).toMatch(/^error INVALID_ARGUMENT: .*transcript\.json exists already: pass --force/);

    const replaced = await ok('a', ['export', ch, '--out', file, '--force']);
    expect(replaced).toMatchObject({ channel: ch, out: file });
    expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({
      kind: 'backchannel-transcript',
      channel: ch,
    });
    // The replacement is a new file: this user's only, whatever the mode of the one it replaced.
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(leftovers(dir, 'transcript.json')).toEqual([]);

    // An empty name is said as such (it used to name a temporary file it could not link).
    expect(await cli('a', ['export', ch, '--out', ''])).toMatchObject({
      code: 1,
      json: {
        error: { code: 'INVALID_ARGUMENT', message: 'the file to write to is empty: name one (--out)' },
      },
    });

    const fresh = join(dir, 'second.json');
    await ok('a', ['export', ch, '--out', fresh]);
    expect(statSync(fresh).mode & 0o777).toBe(0o600);
    expect(leftovers(dir, 'transcript.json', 'second.json')).toEqual([]);
  });

  it('refuses a directory as --out, even with --force', async () => {
    const dir = mkdtempSync(join(root, 'a-dir-'));
    const r = await cli('a', ['export', ch, '--out', dir, '--force']);
    expect(r).toMatchObject({ code: 1, json: { error: { code: 'INVALID_ARGUMENT' } } });
    expect(r.json.error?.message).toContain('is a directory');
  });

  it('names a missing folder in --out, not a temporary file', async () => {
    const missing = join(root, 'no-such-folder');
    const r = await cli('a', ['export', ch, '--out', join(missing, 't.json')]);
    expect(r).toMatchObject({ code: 1, json: { error: { code: 'INVALID_ARGUMENT' } } });
    // Before: "cannot open …/no-such-folder/.t.json.<random>.tmp: no such file or directory".
    expect(r.json.error?.message).toBe(
      `the folder ${missing} does not exist: create it first, or choose another --out`,
    );
  });
});

describe('backchannel doc export', () => {
  it('refuses to overwrite the files of an earlier export, and replaces them with --force', {
    timeout: 120_000,
  }, async () => {
    const doc = String(
      (
        await ok('a', [
          'doc',
          'new',
          ch,
          '--type',
          'signed-text',
          '--title',
          'Joint statement',
          '--lang',
          'en',
          '--clause',
          'venue=Talks continue in Geneva.',
        ])
      ).doc,
    );
    const out = mkdtempSync(join(root, 'statement-'));
    const first = await ok('a', ['doc', 'export', ch, doc, '--out', out, '--draft']);
    const files = (first.files as string[]).map((f) => f.slice(out.length + 1)).sort();
    expect(files).toEqual([
      'joint-statement.bundle.json',
      'joint-statement.en.akn.xml',
      'joint-statement.md',
    ]);
    for (const f of files) expect(statSync(join(out, f)).mode & 0o777, f).toBe(0o600);

    // Only the Markdown is there from before: the export is refused as a whole, nothing written.
    const md = join(out, 'joint-statement.md');
    writeFileSync(md, 'an earlier text\n');
    for (const f of ['joint-statement.bundle.json', 'joint-statement.en.akn.xml'])
      writeFileSync(join(out, f), `earlier ${f}\n`);
    const refused = await cli('a', ['doc', 'export', ch, doc, '--out', out, '--draft']);
    expect(refused).toMatchObject({ code: 1, json: { error: { code: 'INVALID_ARGUMENT' } } });
    expect(refused.json.error?.message).toMatch(/exists already \(and 2 more\): pass --force/);
    expect(readFileSync(md, 'utf8')).toBe('an earlier text\n');
    expect(leftovers(out, ...files)).toEqual([]);

    chmodSync(md, 0o644);
    await ok('a', ['doc', 'export', ch, doc, '--out', out, '--draft', '--force']);
    expect(readFileSync(md, 'utf8')).toContain('Talks continue in Geneva.');
    expect(statSync(md).mode & 0o777).toBe(0o600);
    expect(leftovers(out, ...files)).toEqual([]);
    const v = await cli('x', ['doc', 'verify', join(out, 'joint-statement.bundle.json'), '--allow-unagreed']);
    expect(v).toMatchObject({ code: 0, json: { ok: true, agreed: false } });
  });
});

describe('backchannel attest and keys', () => {
  it('refuse to overwrite files that exist, and replace them with --force', {
    timeout: 120_000,
  }, async () => {
    const dir = mkdtempSync(join(root, 'proofs-'));
    const att = join(dir, 'outreach.json');
    const keys = join(dir, 'keys.json');
    writeFileSync(keys, 'keys handed to a verifier earlier\n');

    // --keys-out names a file that exists: nothing is written, the attestation included.
    const refused = await cli('a', ['attest', 'outreach', ch, '--out', att, '--keys-out', keys]);
    expect(refused).toMatchObject({ code: 1, json: { error: { code: 'INVALID_ARGUMENT' } } });
    expect(refused.json.error?.message).toContain(keys);
    expect(leftovers(dir, 'keys.json')).toEqual([]);
    expect(readFileSync(keys, 'utf8')).toBe('keys handed to a verifier earlier\n');

    await ok('a', ['attest', 'outreach', ch, '--out', att, '--keys-out', keys, '--force']);
    expect(JSON.parse(readFileSync(keys, 'utf8'))).toHaveProperty('parties');
    expect(readFileSync(att, 'utf8')).toContain(ch);
    const again = await cli('a', ['attest', 'outreach', ch, '--out', att]);
    expect(again).toMatchObject({ code: 1, json: { error: { code: 'INVALID_ARGUMENT' } } });

    const keysAgain = await cli('a', ['keys', ch, '--out', keys]);
    expect(keysAgain).toMatchObject({ code: 1, json: { error: { code: 'INVALID_ARGUMENT' } } });
    await ok('a', ['keys', ch, '--out', keys, '--force']);
    expect(leftovers(dir, 'keys.json', 'outreach.json')).toEqual([]);
  });
});
