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
  /**
   * The last rate two readings gave, and the time of the later one. It outlives a counter reset
   * (one reading left) and a read skipped or failed: the node's demand is held, not dropped to 0.
   */
  readonly last: { readonly cps: number; readonly at: number } | null;
}

export const EMPTY_DEMAND: DemandState = { readings: [], last: null };

/** A new reading in (a counter that went down is a restarted node: its history is dropped). */
export function recordReading(s: DemandState, r: DemandReading, p: DemandParams): DemandState {
  const newest = s.readings[s.readings.length - 1];
  if (newest && r.at <= newest.at) return s;
  if (newest && r.offered < newest.offered) return { readings: [r], last: s.last };
  const readings = [...s.readings.filter((x) => r.at - x.at <= p.windowMs), r];
  const first = readings[0]!;
  if (first === r) return { readings, last: s.last };
  return { readings, last: { cps: ((r.offered - first.offered) * 1000) / (r.at - first.at), at: r.at } };
}

/** What is known of a node's demand now. */
export interface DemandNow {
  /** Calls/s offered over the window; null: not known now (no rate yet, or the last is stale). */
  readonly cps: number | null;
  /** A rate was known at some time: a node whose demand went stale was seen (and is gone now). */
  readonly seen: boolean;
}

/**
 * The node's demand: the last rate its readings gave, while that is at most `staleMs` old (the node
 * could not be read since: past that its demand is no longer known).
 */
export function demandRate(s: DemandState, now: number, p: DemandParams): DemandNow {
  const last = s.last;
  return { cps: last && now - last.at <= p.staleMs ? last.cps : null, seen: last !== null };
}
