/** Places kept in the navigation for work that lands with other issues. */
import type { ReactNode } from 'react';

export function DocumentsScreen(): ReactNode {
  return (
    <main>
      <h1>Documents</h1>
      <p>
        Negotiated texts — non-papers, agreed minutes, initialled and signed texts with bracketed alternatives
        and parallel languages — will appear here with the negotiation documents feature.
      </p>
    </main>
  );
}

export function VerifyScreen(): ReactNode {
  return (
    <main>
      <h1>Verify an attestation</h1>
      <p>
        The public verifier checks a Backchannel attestation (for example “the channel remains open as of T”)
        entirely in this page, offline. It arrives with the attestations feature; nothing is verified here
        yet.
      </p>
    </main>
  );
}
