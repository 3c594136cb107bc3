/**
 * Step 9 of the reference scenario through the SDK (the demo, real relay process) and the
 * `backchannel doc verify` command on what it exported.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parseClauseArg, verifyBundleFile } from '../src/cli/commands/doc-io.ts';
import { runDemo } from '../src/cli/demo.node.ts';

const run = promisify(execFile);
const BIN = join(import.meta.dirname, '..', 'bin', 'backchannel.mjs');

describe('the joint statement (reference scenario, step 9)', () => {
  it('is drafted in two languages, initialled, signed, exported, and verifies offline; one changed word fails', {
    timeout: 300_000,
  }, async () => {
    const out = mkdtempSync(join(tmpdir(), 'bc-doc-demo-'));
    const r = await runDemo({ json: true, outDir: out, port: 0 });
    expect(r.checks).toMatchObject({
      statementInitialled: true,
      statementSigned: true,
      statementVerifies: true,
      'attest_agreed-by-B': true,
      attest_receiptDelivered: true,
    });
    // The agreed text, attested for the public, verifies offline from the written files alone.
    const agreed = await run(process.execPath, [
      BIN,
      '--json',
      'verify',
      join(out, 'attestation-agreed-by-B.json'),
      '--keys',
      join(out, 'public-keys.json'),
    ]);
    expect(JSON.parse(agreed.stdout.trim().split('\n').at(-1) as string)).toMatchObject({
      valid: true,
      kind: 'agreed',
      claim: { revision: 4, docType: 'signed-text' },
    });
    const dir = join(out, 'joint-statement');
    const bundlePath = join(dir, 'joint-statement.bundle.json');
    const v = verifyBundleFile(bundlePath);
    expect(v.ok && v.agreed).toBe(true);
    expect(v.ok ? v.signers.map((s) => `${s.level}:${s.role}`) : v.reason).toEqual([
      'initial:principal',
      'initial:negotiator',
      'sign:principal',
      'sign:principal',
    ]);
    const ok = await run(process.execPath, [BIN, '--json', 'doc', 'verify', bundlePath]);
    expect(JSON.parse(ok.stdout.trim())).toMatchObject({ ok: true, agreed: true, revision: { n: 4 } });
    // One word changed in the French text: the command refuses it with exit code 4, as `verify`.
    const fr = join(dir, 'joint-statement.fr.akn.xml');
    writeFileSync(fr, readFileSync(fr, 'utf8').replace('Genève', 'Vienne'));
    const bad = await run(process.execPath, [BIN, '--json', 'doc', 'verify', bundlePath]).then(
      () => ({ code: 0, stdout: '' }),
      (e: { code: number; stdout: string }) => e,
    );
    expect(bad.code).toBe(4);
    expect(JSON.parse(bad.stdout.trim())).toMatchObject({ ok: false, code: 'DOC_TEXT_MISMATCH' });
    // Another kind of file is bad input (exit 1), saying what it is.
    const keysFile = join(dir, 'not-a-bundle.json');
    writeFileSync(keysFile, JSON.stringify({ type: 'backchannel/attestation', v: 1 }));
    const wrong = await run(process.execPath, [BIN, '--json', 'doc', 'verify', keysFile]).then(
      () => ({ code: 0, stdout: '' }),
      (e: { code: number; stdout: string }) => e,
    );
    expect(wrong.code).toBe(1);
    expect(JSON.parse(wrong.stdout.trim())).toMatchObject({
      error: {
        code: 'INVALID_ARGUMENT',
        message: `${keysFile} is an attestation: check it with \`backchannel verify\``,
      },
    });
    // What the demo writes is this user's only; a second run into the same folder is refused
    // before it starts, unless --force says to replace the files.
    for (const f of ['attestation-agreed-by-B.json', 'public-keys.json', 'transcript-A.json'])
      expect(statSync(join(out, f)).mode & 0o777, f).toBe(0o600);
    await expect(runDemo({ json: true, outDir: out, port: 0 })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: `${out} holds files already (an earlier demo's?): pass --force to replace them, or choose another --out`,
    });
  });

  it('parses a two-language clause argument, brackets included', () => {
    expect(
      parseClauseArg('talks=Talks in {{Geneva | Muscat}}. || Pourparlers à {{Genève | Mascate}}.', [
        'en',
        'fr',
      ]),
    ).toEqual({
      id: 'talks',
      text: { en: 'Talks in {{Geneva | Muscat}}.', fr: 'Pourparlers à {{Genève | Mascate}}.' },
    });
    expect(() => parseClauseArg('talks=only one', ['en', 'fr'])).toThrow(/one text per language/);
  });
});
