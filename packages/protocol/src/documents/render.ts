/**
 * Rendering of one revision: Markdown (every language version in one file) and Akoma Ntoso
 * (OASIS LegalDocML 3.0) XML per language. Deterministic: the bundle verifier re-renders the
 * signed revision and compares byte for byte.
 */
import { toHex } from '../bytes/index.ts';
import { DOCUMENT_TYPE_NAMES, type RevisionBody, renderSegments } from './model.ts';

export const AKN_NAMESPACE = 'http://docs.oasis-open.org/legaldocml/ns/akn/3.0';

const escapeMd = (s: string) => s.replace(/([\\`*_[\]<>#|])/g, '\\$1');
const escapeXml = (s: string) =>
  s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
export const isoDate = (ms: number) => new Date(ms).toISOString().slice(0, 10);
const isoTime = (ms: number) => new Date(ms).toISOString();

export interface RenderInput {
  readonly document: { readonly date: string };
  readonly signatures: ReadonlyArray<{
    readonly party: string;
    readonly role: string;
    readonly level: 'initial' | 'sign';
    readonly signedAt: number;
  }>;
  readonly body: RevisionBody;
  readonly hash: Uint8Array;
}

export function renderMarkdown(r: RenderInput): string {
  const b = r.body;
  const lines = [
    `# ${escapeMd(b.title)}`,
    '',
    `**${DOCUMENT_TYPE_NAMES[b.docType]}** · document \`${b.doc}\` · revision ${b.n} · ${r.document.date}`,
    '',
    `Revision hash (SHA-256): \`${toHex(r.hash)}\``,
    '',
    b.languages.length > 1
      ? `Done in ${b.languages.join(', ')}; each language version is equally authentic.`
      : `Language: ${b.languages[0] ?? ''}.`,
  ];
  for (const lang of b.languages) {
    lines.push('', `## [${lang}]`, '');
    b.clauses.forEach((c, i) => {
      lines.push(`${i + 1}. ${escapeMd(renderSegments(c.text[lang] ?? []))}`);
    });
  }
  lines.push('', '## Signatures', '');
  if (r.signatures.length === 0) lines.push('(none)');
  for (const s of r.signatures)
    lines.push(
      `- ${s.party}: ${s.level === 'sign' ? 'signed' : 'initialled'} by its ${s.role}, ${isoTime(s.signedAt)}`,
    );
  return `${lines.join('\n')}\n`;
}

export function renderAkomaNtoso(r: RenderInput, lang: string): string {
  const b = r.body;
  const date = r.document.date;
  const work = `/akn/un/doc/${b.docType}/${date}/${b.doc}`;
  const expr = `${work}/${lang}@${b.n}`;
  const authors = b.parties.map((p) => `          <FRBRauthor href="#${p}"/>`);
  const out = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<akomaNtoso xmlns="${AKN_NAMESPACE}">`,
    `  <doc name="${b.docType}">`,
    '    <meta>',
    '      <identification source="#backchannel">',
    '        <FRBRWork>',
    `          <FRBRthis value="${work}/!main"/>`,
    `          <FRBRuri value="${work}"/>`,
    `          <FRBRdate date="${date}" name="agreed"/>`,
    ...(authors.length > 0 ? authors : ['          <FRBRauthor href="#backchannel"/>']),
    '          <FRBRcountry value="un"/>',
    '        </FRBRWork>',
    '        <FRBRExpression>',
    `          <FRBRthis value="${expr}/!main"/>`,
    `          <FRBRuri value="${expr}"/>`,
    `          <FRBRdate date="${date}" name="revision"/>`,
    ...(authors.length > 0 ? authors : ['          <FRBRauthor href="#backchannel"/>']),
    '          <FRBRauthoritative value="true"/>',
    `          <FRBRlanguage language="${escapeXml(lang)}"/>`,
    '        </FRBRExpression>',
    '        <FRBRManifestation>',
    `          <FRBRthis value="${expr}/main.xml"/>`,
    `          <FRBRuri value="${expr}.akn"/>`,
    `          <FRBRdate date="${date}" name="export"/>`,
    '          <FRBRauthor href="#backchannel"/>',
    '        </FRBRManifestation>',
    '      </identification>',
    '      <references source="#backchannel">',
    '        <TLCOrganization eId="backchannel" href="/ontology/organization/backchannel" showAs="Backchannel"/>',
    ...b.parties.map(
      (p) => `        <TLCOrganization eId="${p}" href="/ontology/organization/${p}" showAs="${p}"/>`,
    ),
    ...[...new Set(r.signatures.map((s) => s.role))].map(
      (role) => `        <TLCRole eId="${role}" href="/ontology/role/${role}" showAs="${role}"/>`,
    ),
    '      </references>',
    '      <proprietary source="#backchannel">',
    `        <bc:revision xmlns:bc="urn:backchannel:v1" n="${b.n}" hash="${toHex(r.hash)}" type="${b.docType}" languages="${escapeXml(b.languages.join(' '))}"/>`,
    '      </proprietary>',
    '    </meta>',
    '    <preface>',
    `      <longTitle><p>${escapeXml(b.title)}</p></longTitle>`,
    '    </preface>',
    '    <mainBody>',
    ...b.clauses.map(
      (c, i) =>
        `      <paragraph eId="para_${c.id}"><num>${i + 1}.</num><content><p>${escapeXml(renderSegments(c.text[lang] ?? []))}</p></content></paragraph>`,
    ),
    '    </mainBody>',
    '    <conclusions>',
    ...r.signatures.map(
      (s) =>
        `      <blockContainer class="${s.level === 'sign' ? 'signature' : 'initials'}"><p><signature><organization refersTo="#${s.party}">${s.party}</organization> <role refersTo="#${s.role}">${s.role}</role> <date date="${isoDate(s.signedAt)}">${isoTime(s.signedAt)}</date></signature></p></blockContainer>`,
    ),
    '    </conclusions>',
    '  </doc>',
    '</akomaNtoso>',
  ];
  return `${out.join('\n')}\n`;
}
