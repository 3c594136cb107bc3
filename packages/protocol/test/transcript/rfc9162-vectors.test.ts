import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { verifyConsistency, verifyInclusion } from '../../src/transcript/merkle.ts';

const root = join(import.meta.dirname, '../vectors/rfc9162');
const b64 = (s: string) => new Uint8Array(Buffer.from(s, 'base64'));

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.json') ? [p] : [];
  });
}

interface InclusionVector {
  leafIdx: number;
  treeSize: number;
  root: string;
  leafHash: string;
  proof: string[] | null;
  desc: string;
  wantErr: boolean;
}
interface ConsistencyVector {
  size1: number;
  size2: number;
  root1: string;
  root2: string;
  proof: string[] | null;
  desc: string;
  wantErr: boolean;
}

const load = <T>(p: string): [string, T] => [
  p.slice(root.length + 1),
  JSON.parse(readFileSync(p, 'utf8')) as T,
];
const inclusion = files(join(root, 'inclusion')).map((p) => load<InclusionVector>(p));
const consistency = files(join(root, 'consistency')).map((p) => load<ConsistencyVector>(p));

describe('RFC 9162 published vectors (transparency-dev/merkle)', () => {
  it('has the vectors', () => {
    expect(inclusion.length).toBeGreaterThan(50);
    expect(consistency.length).toBeGreaterThan(50);
    expect(inclusion.filter(([, v]) => !v.wantErr).length).toBeGreaterThan(3);
  });

  it.each(inclusion)('inclusion %s', (_name, v) => {
    const ok = verifyInclusion(b64(v.leafHash), v.leafIdx, v.treeSize, (v.proof ?? []).map(b64), b64(v.root));
    expect(ok).toBe(!v.wantErr);
  });

  it.each(consistency)('consistency %s', (_name, v) => {
    const ok = verifyConsistency(v.size1, v.size2, (v.proof ?? []).map(b64), b64(v.root1), b64(v.root2));
    expect(ok).toBe(!v.wantErr);
  });
});
