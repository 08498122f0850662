/**
 * Panic threshold (Envoy's idea): when too few of a set's backends look healthy at once, it is
 * more likely that the observer is cut off (a partition between controller and agents, a stalled
 * controller) than that the servers died together. Draining the set on that evidence would turn a
 * monitoring failure into an outage, so the set keeps its last weights until enough look healthy.
 *
 * Draining backends are not counted: an operator who drains half a set for maintenance has not
 * lost sight of it.
 *
 * Only `up` counts as healthy. A suspect has missed a probe: still in rotation, but not evidence
 * that the observer sees it. This is what makes "all at once" visible at the first failure: when
 * every agent falls silent together, the first backend to reach down finds the others already
 * suspect (they missed the same probes), so the set panics before anything is taken out. A single
 * dead backend among answering ones still leaves at once.
 */
import type { HealthKind } from '../health/state-machine.js';

export interface PanicCheck {
  readonly panic: boolean;
  readonly healthy: number;
  readonly counted: number;
}

export function panicCheck(healths: readonly HealthKind[], thresholdRatio: number): PanicCheck {
  let healthy = 0;
  let counted = 0;
  for (const h of healths) {
    if (h === 'draining') continue;
    counted++;
    if (h === 'up') healthy++;
  }
  // An empty (or all-draining) set has nothing to protect; threshold 0 disables panic.
  const panic = thresholdRatio > 0 && counted > 0 && healthy / counted < thresholdRatio;
  return { panic, healthy, counted };
}
