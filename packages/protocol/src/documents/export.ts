/**
 * Export of an agreed revision: Markdown (all languages side by side in one file), Akoma Ntoso
 * (OASIS LegalDocML 3.0) XML per language, and a signature bundle (JSON) that verifies offline.
 *
 * The bundle carries the canonical revision body (whose hash every signature covers), the
 * sign-offs with their device certificates, and the parties' root keys. The verifier recomputes
 * the hash, re-renders every exported file from the body and compares it byte for byte, checks
 * each certificate against its party's root key and each signature against the revision hash,
 * and finally checks that every party named signed at the level the type requires.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { z } from 'zod';
import { constantTimeEqual, fromBase64url, toBase64url, toHex, utf8 } from '../bytes/index.ts';
import { decodeCanonical } from '../codec/cbor.ts';
import type { ProtocolErrorCode } from '../errors.ts';
import { DOCUMENT_TYPES, documentRevisionEvent } from '../events/documents.ts';
import {
  decodeDeviceCertificate,
  ROLES,
  type Role,
  verifyDeviceCertificate,
} from '../identity/certificate.ts';
import { nobleEd25519, type SignatureSuite } from '../identity/keys.ts';
import { type EventId, type PartyId, partyIdFromKey } from '../ids.ts';
import {
  checkRevisionBody,
  encodeRevisionBody,
  requiredSignoff,
  revisionBody,
  revisionHash,
  rolesFor,
} from './model.ts';
import { isoDate, type RenderInput, renderAkomaNtoso, renderMarkdown } from './render.ts';
import { verifySignoff } from './signoff.ts';
import type { DocumentState, RevisionRecord } from './state.ts';

export interface BundleSignature {
  readonly party: PartyId;
  readonly role: Role;
  readonly level: 'initial' | 'sign';
  readonly signedAt: number;
  /** base64url of the encoded device certificate and of the Ed25519 signature. */
  readonly certificate: string;
  readonly sig: string;
}

const b64 = z.string().regex(/^[A-Za-z0-9_-]*$/);
const partyId = z.string().regex(/^p_[A-Za-z0-9_-]{22}$/) as unknown as z.ZodType<PartyId>;

export const bundleSchema = z.strictObject({
  kind: z.literal('backchannel-document-bundle'),
  v: z.literal(1),
  document: z.strictObject({
    id: z.string().regex(/^e_[A-Za-z0-9_-]{22}$/),
    type: z.enum(DOCUMENT_TYPES),
    title: z.string().max(500),
    languages: z.array(z.string()).min(1).max(8),
    /** ISO date (YYYY-MM-DD) shown in the exported texts. */
    date: z.string().regex(/^\d{4}-\d{2}-\d{2}$/),
  }),
  revision: z.strictObject({ n: z.number().int().nonnegative(), hash: b64, body: b64 }),
  parties: z.array(z.strictObject({ party: partyId, rootPublicKey: b64 })).max(16),
  signatures: z
    .array(
      z.strictObject({
        party: partyId,
        role: z.enum(ROLES),
        level: z.enum(['initial', 'sign']),
        signedAt: z.number().int().nonnegative(),
        certificate: b64,
        sig: b64,
      }),
    )
    .max(64),
  files: z
    .array(
      z.strictObject({
        name: z.string().regex(/^[A-Za-z0-9._-]{1,200}$/),
        format: z.enum(['markdown', 'akn']),
        lang: z.string().optional(),
        sha256: z.string().regex(/^[0-9a-f]{64}$/),
      }),
    )
    .max(16),
});
export type DocumentBundle = z.infer<typeof bundleSchema>;

const revisionBodySchema = documentRevisionEvent.omit({
  v: true,
  id: true,
  at: true,
  track: true,
  kind: true,
});

export interface ExportedDocument {
  readonly bundle: DocumentBundle;
  /** File name → content (the bundle itself is not among them). */
  readonly files: Readonly<Record<string, string>>;
}

/**
 * Exports one revision (default: the head) with the initials and signatures given on it.
 * `rootKeys` gives each party's root public key, for offline certificate checks.
 */
export function exportDocument(
  doc: DocumentState,
  opts: {
    readonly rootKeys: Readonly<Record<string, Uint8Array>>;
    readonly base: string;
    readonly revision?: RevisionRecord;
  },
): ExportedDocument {
  const rev = opts.revision ?? (doc.revisions[doc.revisions.length - 1] as RevisionRecord);
  const sigs = doc.signoffs.filter((s) => s.level !== 'agree' && constantTimeEqual(s.revision, rev.hash));
  const signatures = sigs.map((s) => ({
    party: s.party,
    role: s.role,
    level: s.level as 'initial' | 'sign',
    signedAt: s.signedAt,
    certificate: toBase64url(s.cert),
    sig: toBase64url(s.sig),
  }));
  const last = Math.max(rev.at, ...sigs.map((s) => s.signedAt));
  const body = rev.body;
  const document = {
    id: body.doc,
    type: body.docType,
    title: body.title,
    languages: [...body.languages],
    date: isoDate(last),
  };
  const input: RenderInput = { document, signatures, body, hash: rev.hash };
  const files: Record<string, string> = { [`${opts.base}.md`]: renderMarkdown(input) };
  for (const lang of body.languages) files[`${opts.base}.${lang}.akn.xml`] = renderAkomaNtoso(input, lang);
  const bundle: DocumentBundle = {
    kind: 'backchannel-document-bundle',
    v: 1,
    document,
    revision: { n: body.n, hash: toBase64url(rev.hash), body: toBase64url(encodeRevisionBody(body)) },
    parties: body.parties.map((p) => {
      const k = opts.rootKeys[p];
      return { party: p, rootPublicKey: k === undefined ? '' : toBase64url(k) };
    }),
    signatures,
    files: Object.entries(files).map(([name, text]) => ({
      name,
      format: name.endsWith('.md') ? ('markdown' as const) : ('akn' as const),
      ...(name.endsWith('.akn.xml') ? { lang: name.slice(opts.base.length + 1, -'.akn.xml'.length) } : {}),
      sha256: toHex(sha256(utf8(text))),
    })),
  };
  return { bundle, files };
}

export type BundleCheck =
  | {
      readonly ok: true;
      readonly document: DocumentBundle['document'];
      readonly revision: { readonly n: number; readonly hash: string };
      readonly signers: ReadonlyArray<{
        party: PartyId;
        role: string;
        level: string;
        signedAt: number;
        device: string;
      }>;
      readonly agreed: boolean;
    }
  | { readonly ok: false; readonly code: ProtocolErrorCode; readonly reason: string };

export interface VerifyBundleOptions {
  /** Pinned party root keys: when given, the bundle's keys must match them. */
  readonly trustedRoots?: Readonly<Record<string, Uint8Array>>;
  /** Accept a bundle whose signatures are valid but do not (yet) make the document agreed. */
  readonly allowUnagreed?: boolean;
  readonly suite?: SignatureSuite;
}

const bad = (code: ProtocolErrorCode, reason: string): BundleCheck => ({ ok: false, code, reason });

/** Verifies a bundle and the files it lists, offline. A forged or altered item is a result, not a throw. */
export function verifyDocumentBundle(
  bundleJson: unknown,
  files: Readonly<Record<string, string>>,
  opts: VerifyBundleOptions = {},
): BundleCheck {
  const parsed = bundleSchema.safeParse(bundleJson);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return bad('BUNDLE_INVALID', `bundle.${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`);
  }
  const bundle = parsed.data;
  let bodyBytes: Uint8Array;
  let claimedHash: Uint8Array;
  try {
    bodyBytes = fromBase64url(bundle.revision.body, 'revision.body');
    claimedHash = fromBase64url(bundle.revision.hash, 'revision.hash');
  } catch {
    return bad('BUNDLE_INVALID', 'revision body or hash is not base64url');
  }
  const decoded = decodeCanonical(bodyBytes);
  if (!decoded.ok) return bad('BUNDLE_INVALID', `revision body: ${decoded.message}`);
  const bp = revisionBodySchema.safeParse(decoded.value);
  if (!bp.success) return bad('BUNDLE_INVALID', 'revision body does not match the revision schema');
  const body = revisionBody(bp.data);
  const checked = checkRevisionBody(body);
  if (!checked.ok) return bad(checked.code, checked.reason);
  const hash = revisionHash(body);
  if (!constantTimeEqual(hash, claimedHash))
    return bad('BUNDLE_INVALID', 'the revision hash does not match its body');
  const d = bundle.document;
  if (
    d.id !== body.doc ||
    d.type !== body.docType ||
    d.title !== body.title ||
    d.languages.join() !== body.languages.join() ||
    bundle.revision.n !== body.n
  )
    return bad('BUNDLE_INVALID', 'the document header does not match the signed revision');
  // Every listed file must be present and re-render byte for byte from the signed revision.
  const input: RenderInput = { document: d, signatures: bundle.signatures, body, hash };
  const want = new Set<string>(['markdown', ...body.languages.map((l) => `akn:${l}`)]);
  for (const f of bundle.files) {
    const text = files[f.name];
    if (text === undefined) return bad('BUNDLE_INVALID', `file ${f.name} is missing`);
    if (toHex(sha256(utf8(text))) !== f.sha256)
      return bad('DOC_TEXT_MISMATCH', `file ${f.name} was changed after export`);
    if (f.format === 'akn' && (f.lang === undefined || !body.languages.includes(f.lang)))
      return bad('BUNDLE_INVALID', `file ${f.name} names no language of the document`);
    const expected = f.format === 'markdown' ? renderMarkdown(input) : renderAkomaNtoso(input, f.lang ?? '');
    if (expected !== text)
      return bad('DOC_TEXT_MISMATCH', `file ${f.name} does not match the signed revision`);
    want.delete(f.format === 'markdown' ? 'markdown' : `akn:${f.lang}`);
  }
  if (want.size > 0) return bad('BUNDLE_INVALID', `the bundle lists no file for ${[...want].join(', ')}`);
  // Root keys: each names its party (party ids are hashes of root keys), and matches any pinned key.
  const roots = new Map<string, Uint8Array>();
  for (const p of bundle.parties) {
    let k: Uint8Array;
    try {
      k = fromBase64url(p.rootPublicKey, 'rootPublicKey');
    } catch {
      return bad('BUNDLE_INVALID', `root key of ${p.party} is not base64url`);
    }
    if (k.length !== 32 || partyIdFromKey(k) !== p.party)
      return bad('CERT_WRONG_PARTY', `the root key given for ${p.party} is not that party's key`);
    const pinned = opts.trustedRoots?.[p.party];
    if (pinned !== undefined && !constantTimeEqual(pinned, k))
      return bad('CERT_WRONG_PARTY', `the root key of ${p.party} differs from the pinned one`);
    roots.set(p.party, k);
  }
  if (
    !sameSet(
      bundle.parties.map((p) => p.party),
      body.parties,
    )
  )
    return bad(
      'BUNDLE_INVALID',
      'the bundle must give the root key of exactly the parties the document names',
    );
  const signers: Array<{ party: PartyId; role: string; level: string; signedAt: number; device: string }> =
    [];
  for (const [i, s] of bundle.signatures.entries()) {
    const root = roots.get(s.party);
    if (root === undefined)
      return bad('DOC_SIGNATURE_FORBIDDEN', `signature ${i}: ${s.party} is not a party to this document`);
    let cert: Uint8Array;
    let sig: Uint8Array;
    try {
      cert = fromBase64url(s.certificate, 'certificate');
      sig = fromBase64url(s.sig, 'sig');
    } catch {
      return bad('BUNDLE_INVALID', `signature ${i} is not base64url`);
    }
    const c = decodeDeviceCertificate(cert);
    if (!c.ok) return bad(c.code, `signature ${i}: ${c.message}`);
    const cc = verifyDeviceCertificate(c.value, {
      rootPublicKey: root,
      now: s.signedAt,
      ...(opts.suite === undefined ? {} : { suite: opts.suite }),
    });
    if (!cc.ok) return bad(cc.code, `signature ${i}: ${cc.reason}`);
    if (cc.role !== s.role)
      return bad('BUNDLE_INVALID', `signature ${i}: the certificate's role is ${cc.role}`);
    if (!rolesFor(body.docType, s.level).includes(cc.role))
      return bad('ROLE_FORBIDDEN', `signature ${i}: a ${cc.role} may not ${s.level} a ${body.docType}`);
    const v = verifySignoff(
      { doc: body.doc as EventId, revision: hash, level: s.level, signedAt: s.signedAt, cert, sig },
      opts.suite ?? nobleEd25519,
    );
    if (!v.ok) return bad(v.code, `signature ${i}: ${v.reason}`);
    signers.push({ party: s.party, role: cc.role, level: s.level, signedAt: s.signedAt, device: cc.device });
  }
  const need = requiredSignoff(body.docType);
  // A revision without a clause has no text to agree on (documentStatus says the same).
  const agreed =
    need !== undefined &&
    body.clauses.length > 0 &&
    body.parties.length > 0 &&
    body.parties.every((p) => signers.some((s) => s.party === p && s.level === need.level));
  if (!agreed && opts.allowUnagreed !== true)
    return bad(
      'DOC_NOT_AGREED',
      'not every party named has signed this revision at the level its type requires',
    );
  return { ok: true, document: d, revision: { n: body.n, hash: toHex(hash) }, signers, agreed };
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && [...a].sort().join() === [...b].sort().join();
}
