/**
 * Pictures people read faster than lists: each party's activity over the last 7 days (gaps
 * longer than its heartbeat interval shaded as silence), and each track's status over time.
 * Plain SVG with a text alternative; no chart library.
 */
import type { ChannelState, EventRecord, TrackState } from '@backchannel/client/browser';
import type { ReactNode } from 'react';
import { isReadable } from '../model.ts';
import { when } from '../ui.tsx';

const WEEK = 7 * 24 * 3600 * 1000;
const W = 600;
const ROW = 22;
const LABEL = 150;

const STATUS_COLOR: Record<TrackState['status'], string> = {
  active: '#2e7d4f',
  revived: '#2e7d4f',
  suspended: '#c46a00',
  concluded: '#777',
};

export function LivenessChart(props: {
  state: ChannelState;
  timeline: readonly EventRecord[];
  nameOf: (p: string) => string;
  now: number;
}): ReactNode {
  const { state: s, now } = props;
  const from = now - WEEK;
  const x = (t: number) => LABEL + ((Math.max(t, from) - from) / WEEK) * (W - LABEL);
  const rows = s.parties.map((p) => {
    const times = props.timeline
      .filter((r) => isReadable(r) && r.party === p && r.receivedAt >= from)
      .map((r) => r.receivedAt);
    const interval = s.lastHeartbeat[p]?.intervalMs ?? 60_000;
    const gaps: [number, number][] = [];
    let prev = from;
    for (const t of [...times, now]) {
      if (t - prev > 2 * interval && prev > from) gaps.push([prev, t]);
      prev = t;
    }
    return { p, times, gaps };
  });
  const h = rows.length * ROW + 20;
  return (
    <figure className="chart">
      <svg viewBox={`0 0 ${W} ${h}`} width="100%" role="img" aria-labelledby="live-cap">
        <title>Activity of each party over the last 7 days</title>
        {rows.map((r, i) => (
          <g key={r.p} transform={`translate(0 ${i * ROW})`}>
            <text x={0} y={15} fontSize={12}>
              {props.nameOf(r.p)}
            </text>
            <line x1={LABEL} x2={W} y1={10} y2={10} stroke="#ccc" />
            {r.gaps.map(([a, b]) => (
              <rect key={a} x={x(a)} y={3} width={Math.max(1, x(b) - x(a))} height={14} fill="#f4c7c7" />
            ))}
            {r.times.map((t, k) => (
              // biome-ignore lint/suspicious/noArrayIndexKey: ticks never reorder; two events can share a millisecond
              <line key={`${t}:${k}`} x1={x(t)} x2={x(t)} y1={3} y2={17} stroke="#0b5cad" />
            ))}
          </g>
        ))}
        <text x={LABEL} y={h - 4} fontSize={11}>
          7 days ago
        </text>
        <text x={W} y={h - 4} fontSize={11} textAnchor="end">
          now
        </text>
      </svg>
      <figcaption id="live-cap">
        Activity of each party over the last 7 days (blue: events and heartbeats; red: silences). Last heard:{' '}
        {s.parties.map((p) => `${props.nameOf(p)} ${when(s.lastHeard[p])}`).join('; ')}.
      </figcaption>
    </figure>
  );
}

export function TrackChart(props: { state: ChannelState; now: number }): ReactNode {
  const tracks = Object.entries(props.state.tracks);
  if (tracks.length === 0) return null;
  const start = Math.min(...tracks.map(([, t]) => t.history[0]?.at ?? props.now));
  const span = Math.max(1, props.now - start);
  // Drawn for the narrow side column: a smaller canvas keeps the labels legible.
  const w = 320;
  const label = 90;
  const x = (t: number) => label + ((t - start) / span) * (w - label);
  const h = tracks.length * ROW + 4;
  return (
    <figure className="chart">
      <svg viewBox={`0 0 ${w} ${h}`} width="100%" role="img" aria-labelledby="track-cap">
        <title>Tracks over time</title>
        {tracks.map(([id, t], i) => (
          <g key={id} transform={`translate(0 ${i * ROW})`}>
            <text x={0} y={15} fontSize={12}>
              {t.name}
            </text>
            {t.history.map((hi, j) => {
              const end = t.history[j + 1]?.at ?? props.now;
              return (
                <rect
                  key={hi.seq}
                  x={x(hi.at)}
                  y={4}
                  width={Math.max(2, x(end) - x(hi.at))}
                  height={12}
                  fill={STATUS_COLOR[hi.status]}
                />
              );
            })}
          </g>
        ))}
      </svg>
      <figcaption id="track-cap">
        Tracks over time (green: active or revived; orange: suspended; grey: concluded).{' '}
        {tracks
          .map(
            ([, t]) =>
              `${t.name}: ${t.history.map((hi) => `${hi.status} ${when(hi.at)}${hi.reason === undefined ? '' : ` (${hi.reason})`}`).join(', ')}`,
          )
          .join('; ')}
      </figcaption>
    </figure>
  );
}
