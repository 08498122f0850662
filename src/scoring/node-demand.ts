/**
 * One LB node's recent demand, from its admission counters (pure). The LB counts every new call it
 * admits (`sipweigh_admitted`) and every one it refuses with 503 (`sipweigh_admission_503`, once per
 * INVITE, not per retransmission); their sum is what the node was offered. The rate is the growth
 * of that sum across the readings of the last `windowMs`: short enough that a failover shows within
 * a few seconds, long enough that Poisson jitter of one second does not move the split.
 */

export interface DemandParams {
  /** Readings older than this leave the rate. */
  readonly windowMs: number;
  /** A rate older than this (the node unread since) is no longer known: null. */
  readonly staleMs: number;
}

export interface DemandReading {
  /** Monotonic ms. */
  readonly at: number;
  /** admitted + refused, as the node counts them (restarts from 0 with the node). */
  readonly offered: number;
}

export interface DemandState {
  /** Readings inside the window, oldest first. */
  readonly readings: readonly DemandReading[];
}

export const EMPTY_DEMAND: DemandState = { readings: [] };

/** A new reading in (a counter that went down is a restarted node: its history is dropped). */
export function recordReading(s: DemandState, r: DemandReading, p: DemandParams): DemandState {
  const last = s.readings[s.readings.length - 1];
  if (last && (r.offered < last.offered || r.at <= last.at)) {
    return { readings: r.offered < last.offered ? [r] : s.readings };
  }
  const kept = s.readings.filter((x) => r.at - x.at <= p.windowMs);
  return { readings: [...kept, r] };
}

/**
 * Calls/s offered over the window; null while fewer than two readings span it, or when the last
 * reading is older than `staleMs` (the node could not be read: its demand is not known).
 */
export function demandRate(s: DemandState, now: number, p: DemandParams): number | null {
  const first = s.readings[0];
  const last = s.readings[s.readings.length - 1];
  if (!first || !last || last === first || now - last.at > p.staleMs) return null;
  return ((last.offered - first.offered) * 1000) / (last.at - first.at);
}
