/** Rates from cumulative counters read at two instants. */

export interface CounterReading {
  /** Monotonic clock, milliseconds (performance.now()), so wall-clock steps cannot fake a rate. */
  readonly atMs: number;
  readonly value: number;
}

/**
 * Events per second between two readings; null when no time passed or the counter went back
 * (Kamailio restarted and its statistics began again from zero), where the honest answer is
 * "unknown for this interval", not a negative or a huge rate.
 */
export function ratePerSecond(prev: CounterReading, cur: CounterReading): number | null {
  const dt = cur.atMs - prev.atMs;
  const dv = cur.value - prev.value;
  if (dt <= 0 || dv < 0) return null;
  return (dv * 1000) / dt;
}
