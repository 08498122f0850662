/**
 * Self-protection of the controller endpoint against its own overload, as a pure rule.
 *
 * When the event loop is nearly always busy, answers queue in the socket (and the kernel drops them
 * once the buffer is full), every backend looks late at once, and probing at full rate only makes
 * it worse: the controller collapses (measured: 5,000 backends at 10 probes/s on one core kept
 * 1 report in 15). So the endpoint samples its event-loop utilisation (ELU) a few times a second
 * and caps the probe rate, additive-increase/multiplicative-decrease style: above `high` the cap
 * drops to a fraction of the current rate; below `low` it grows again and is lifted once it exceeds
 * what the schedule wants anyway. Slower probing makes detection slower for everyone, but every
 * backend keeps being heard, instead of none.
 *
 * ELU measures only our own busyness, so mass backend failure (answers missing, loop idle) never
 * slows probing down.
 */

export interface OverloadParams {
  /** ELU above which the probe rate is cut. */
  readonly high: number;
  /** ELU below which the cap is raised. */
  readonly low: number;
  /** Cut to this fraction of the current rate. */
  readonly decrease: number;
  /** Raise by this factor. */
  readonly increase: number;
  /** Never cap below this many probes per second. */
  readonly floorPerS: number;
}

// ELU counts time the loop is busy, also while the OS has preempted it: on a shared machine it
// reads high before our CPU is, so the thresholds sit near 1.
export const DEFAULT_OVERLOAD: OverloadParams = {
  high: 0.95,
  low: 0.85,
  decrease: 0.85,
  increase: 1.1,
  floorPerS: 100,
};

/**
 * The next probe cap (probes/s, Infinity = none) from the current one, the ELU of the last window,
 * the probes actually sent per second in it, and what the schedule wants (backends × 1000 / interval).
 */
export function nextProbeCap(
  cap: number,
  elu: number,
  sentPerS: number,
  wantedPerS: number,
  p: OverloadParams = DEFAULT_OVERLOAD,
): number {
  if (elu > p.high) return Math.max(p.floorPerS, Math.min(cap, sentPerS) * p.decrease);
  if (elu < p.low && cap !== Infinity) {
    const raised = cap * p.increase;
    return raised >= wantedPerS ? Infinity : raised;
  }
  return cap;
}
