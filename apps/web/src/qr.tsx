/**
 * A QR code as inline SVG (one path of dark modules), built with uqr — no canvas, no image
 * data URL, no innerHTML: React renders the elements, so nothing in the payload becomes markup.
 */
import type { ReactNode } from 'react';
import { encode } from 'uqr';

/** What our party's QR code carries: the party id and its fingerprint (digits only). */
export function contactQrText(party: string, fingerprint: string): string {
  return `backchannel:${party}?fp=${fingerprint.replaceAll(' ', '')}`;
}

/** The dark modules as one SVG path, one unit square each. */
function modulesPath(data: readonly (readonly boolean[])[]): string {
  const parts: string[] = [];
  data.forEach((row, y) => {
    row.forEach((dark, x) => {
      if (dark) parts.push(`M${x} ${y}h1v1h-1z`);
    });
  });
  return parts.join('');
}

export function QrCode(props: { text: string; label: string; size?: number }): ReactNode {
  // ECC level M survives a phone camera's glare and a little screen dirt; border 4 is the quiet zone.
  const qr = encode(props.text, { ecc: 'M', border: 4 });
  const px = props.size ?? 192;
  return (
    <svg
      className="qr"
      role="img"
      aria-label={props.label}
      width={px}
      height={px}
      viewBox={`0 0 ${qr.size} ${qr.size}`}
      shapeRendering="crispEdges"
      data-qr-text={props.text}
    >
      <rect width={qr.size} height={qr.size} fill="#fff" />
      <path d={modulesPath(qr.data)} fill="#000" />
    </svg>
  );
}
