/**
 * Time-aware EWMA. Reports arrive at irregular intervals (probe cadence, lost datagrams, suspect
 * mode probing twice as fast), so the blend depends on the time between them, not on their count:
 * alpha = 1 - 2^(-dt / half_life). Two reports 100 ms apart move the average as much as one report
 * after 200 ms would.
 */
import type { Smoothed } from './types.js';

export function ewmaAlpha(dtMs: number, halfLifeMs: number): number {
  if (halfLifeMs <= 0) return 1;
  if (dtMs <= 0) return 0;
  return 1 - Math.pow(2, -dtMs / halfLifeMs);
}

/**
 * Folds one value observed at `at` into `prev`. Starts afresh when there is no previous value or
 * it is older than `resetAfterMs` (blending in a value from before a long silence would let stale
 * load linger). Values from the past (at <= prev.at) are ignored: each report is folded once.
 */
export function ewmaFold(
  prev: Smoothed | null,
  value: number,
  at: number,
  halfLifeMs: number,
  resetAfterMs: number,
): Smoothed {
  if (prev === null || at - prev.at > resetAfterMs) return { value, at };
  if (at <= prev.at) return prev;
  const a = ewmaAlpha(at - prev.at, halfLifeMs);
  return { value: prev.value + a * (value - prev.value), at };
}

/** The smoothed value if it was fed within `staleMs` of `now`, else null (no knowledge). */
export function current(s: Smoothed | null, now: number, staleMs: number): number | null {
  return s === null || now - s.at > staleMs ? null : s.value;
}
