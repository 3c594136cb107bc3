/**
 * Per-connection backpressure. Live entries go out only while the socket's send buffer is under
 * the high-water mark; above it the subscription pauses and later catches up from the store
 * (entries are durable, so nothing is lost). A subscriber that stays behind too long ('behind'),
 * or whose buffer grows past the hard cap ('full'), is dropped. Writers never wait for a subscriber.
 */
export interface BackpressurePolicy {
  readonly highWaterBytes: number;
  readonly maxBufferedBytes: number;
  readonly dropAfterMs: number;
}

export type Pressure = 'ok' | 'pause' | 'behind' | 'full';

export function pressure(
  buffered: number,
  behindSince: number | undefined,
  now: number,
  p: BackpressurePolicy,
): Pressure {
  if (buffered > p.maxBufferedBytes) return 'full';
  if (behindSince !== undefined && now - behindSince > p.dropAfterMs) return 'behind';
  if (buffered > p.highWaterBytes) return 'pause';
  return 'ok';
}

/** A paused subscription resumes once the buffer has drained to half the high-water mark. */
export function canResume(buffered: number, p: BackpressurePolicy): boolean {
  return buffered <= p.highWaterBytes / 2;
}

export const RESUME_POLL_MS = 25;
