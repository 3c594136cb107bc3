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
