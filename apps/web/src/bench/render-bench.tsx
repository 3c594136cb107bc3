/**
 * Budget page (built only by bench/web.ts, never shipped): folds a 1,000-event channel with the
 * SDK's reducer and renders the app's Timeline component, then reports timings on
 * `window.__bench`. Events are synthetic (no MLS, no store): this measures the first render of
 * the screen, not the sync that fills it.
 */
import {
  type ChannelEvent,
  channelIdFrom,
  type DeviceId,
  type EventRecord,
  eventIdFrom,
  foldRecords,
  type PartyId,
  trackIdFrom,
} from '@backchannel/client/browser';
import { useEffect } from 'react';
import { createRoot } from 'react-dom/client';
import { Timeline } from '../screens/timeline.tsx';
import '../styles.css';

declare global {
  interface Window {
    __bench?: { foldMs: number; renderMs: number; sinceNavigationMs: number; events: number; items: number };
  }
}

const N = Number(new URLSearchParams(location.search).get('n') ?? '1000');
const rnd = (n: number) => crypto.getRandomValues(new Uint8Array(n));
const A = 'p_AAAAAAAAAAAAAAAAAAAAAA' as PartyId;
const B = 'p_BBBBBBBBBBBBBBBBBBBBBB' as PartyId;
const dev = { [A]: 'd_AAAAAAAAAAAAAAAAAAAAAA', [B]: 'd_BBBBBBBBBBBBBBBBBBBBBB' } as Record<PartyId, DeviceId>;
const channel = channelIdFrom(rnd(16));
const track = trackIdFrom(rnd(16));
const t0 = performance.now();

function build(): EventRecord[] {
  const out: EventRecord[] = [];
  const start = Date.now() - N * 60_000;
  const push = (party: PartyId, e: Record<string, unknown>) => {
    const seq = out.length;
    const event = { v: 1, id: eventIdFrom(rnd(16)), at: start + seq * 60_000, ...e } as ChannelEvent;
    out.push({
      seq,
      receivedAt: event.at,
      sender: dev[party] as DeviceId,
      party,
      role: 'negotiator',
      status: 'ok',
      event,
      salt: rnd(16),
    });
    return event.id;
  };
  push(A, { kind: 'outreach', from: A, to: B, note: 'We are ready to talk.' });
  push(B, { kind: 'channel.accept' });
  push(B, { kind: 'track.open', trackId: track, name: 'nuclear' });
  let pending: { party: PartyId; id: string }[] = [];
  while (out.length < N) {
    const i = out.length;
    const from = i % 2 === 0 ? A : B;
    if (i % 5 === 4 && pending.length > 0) {
      const other = pending[0]?.party === A ? B : A;
      push(other, { kind: 'receipt', type: 'delivered', of: pending.map((p) => p.id) });
      pending = [];
      continue;
    }
    const id =
      i % 10 === 3
        ? push(from, { kind: 'points', title: `Points ${i}`, items: ['First point', 'Second point'], track })
        : push(from, { kind: 'message', text: `Message ${i}: ${'lorem ipsum '.repeat(8)}` });
    if (pending.length === 0 || pending[0]?.party === from) pending.push({ party: from, id });
  }
  return out;
}

const records = build();
const view = foldRecords(channel, records);
const tFold = performance.now();

function Done(): null {
  useEffect(() => {
    // Two frames: the first callback runs before the browser paints the committed DOM.
    requestAnimationFrame(() =>
      requestAnimationFrame(() => {
        const now = performance.now();
        window.__bench = {
          foldMs: tFold - t0,
          renderMs: now - tFold,
          sinceNavigationMs: now,
          events: view.view.timeline.length,
          items: document.querySelectorAll('li.event').length,
        };
      }),
    );
  }, []);
  return null;
}

const root = document.getElementById('root');
if (root === null) throw new Error('no #root');
const names: Record<string, string> = { [A]: 'Foreign Ministry', [B]: "Special Envoy's Office" };
createRoot(root).render(
  <main className="channel">
    <Timeline
      timeline={view.view.timeline}
      state={view.view.state}
      me={A}
      nameOf={(p) => names[p] ?? p}
      track=""
    />
    <Done />
  </main>,
);
