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
 *
 * A suspect on passive evidence alone (retransmitted calls, no probe missed) counts as healthy: the
 * observer still sees it answer. Pool-wide retransmissions (an overload) can make many backends
 * suspect at once; counting them unhealthy would panic the set and hold the weights, and a backend
 * that really died would then stay in rotation.
 *
 * Backends the controller has no way to probe (no agent address and no SSH section: an LB-listed
 * destination without `sw_agent` whose agent has not said hello) are not counted either, neither as down nor as healthy: their
 * health is a placeholder, not an observation, so it cannot say whether the observer is cut off.
 * Counting them as down would hold a set where they are the majority in panic for ever.
 */
import type { BackendSample } from './types.js';

/** What the check reads of a backend. `probed` absent means probed (see BackendSample). */
export type PanicMember = Pick<BackendSample, 'health' | 'probed' | 'evidenceOnly'>;

export interface PanicCheck {
  readonly panic: boolean;
  readonly healthy: number;
  readonly counted: number;
}

export function panicCheck(members: readonly PanicMember[], thresholdRatio: number): PanicCheck {
  let healthy = 0;
  let counted = 0;
  for (const m of members) {
    if (m.probed === false || m.health === 'draining') continue;
    counted++;
    if (m.health === 'up' || (m.health === 'suspect' && m.evidenceOnly === true)) healthy++;
  }
  // An empty (or all-draining) set has nothing to protect; threshold 0 disables panic.
  const panic = thresholdRatio > 0 && counted > 0 && healthy / counted < thresholdRatio;
  return { panic, healthy, counted };
}
