/**
 * Slow start: a backend that enters rotation next to others that already carry the set's traffic
 * gets a linearly growing share of its capacity over `slow_start_ms`, from
 * `slow_start_initial_ratio`. A cold server (empty caches, new DB connections, a kernel that just
 * dropped its queue) is not handed its full share of a busy set in one push.
 *
 * There is no ramp when no established peer exists (the set's first backends, a controller that
 * just started): the set's whole traffic must go somewhere, and ramping everyone together changes
 * no ratio but would cut the admission limit for nothing.
 */
import type { ScoringParams } from './params.js';

/** Fraction of its capacity a backend in slow start since `since` gets at `now` (1 once the ramp is over). */
export function rampRatio(since: number, now: number, p: ScoringParams): number {
  if (p.slow_start_ms <= 0) return 1;
  const t = (now - since) / p.slow_start_ms;
  if (t >= 1) return 1;
  const r0 = p.slow_start_initial_ratio;
  return r0 + (1 - r0) * Math.max(0, t);
}
