/** In-process fan-out: one relay node, listeners called synchronously in publish order. */
import type { Fanout, FanoutMessage } from './fanout.ts';

export class LocalFanout implements Fanout {
  readonly #listeners = new Set<(m: FanoutMessage) => void>();

  publish(m: FanoutMessage): void {
    for (const l of this.#listeners) l(m);
  }

  subscribe(listener: (m: FanoutMessage) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  async close(): Promise<void> {
    this.#listeners.clear();
  }
}
