/**
 * Effective capacities -> Kamailio integer rweights (algorithm 11 normalises rweight / sum, so only
 * ratios matter). The largest backend gets `weight_max`, the others their share of it, never less
 * than `weight_min` (a live backend keeps a trickle of calls, so its signals keep telling us about it).
 *
 * Then hysteresis and a bounded step against what was pushed last: a target within
 * max(1, weight × weight_deadband_ratio) of the current weight does not move it (no push for noise),
 * and no live weight moves by more than `max_weight_step` in one cycle. Both maps are monotonic:
 * a lower target never gives a higher weight.
 */
import type { ScoringParams } from './params.js';
import type { LiveWeight } from './types.js';

export function liveWeight(n: number): LiveWeight {
  if (!Number.isInteger(n) || n < 1 || n > 100) throw new RangeError(`not a live rweight 1..100: ${n}`);
  return n as LiveWeight;
}

/**
 * Target weight per backend in rotation, from its effective capacity (calls/s), or - when a split
 * is given (delay-split.ts: calls/s per backend, near the knee) - from that split instead. Algorithm
 * 11 sends each backend rweight / sum of the calls, so weights in the ratio of the split are the split.
 */
export function targetWeights(
  effective: ReadonlyMap<string, number>,
  p: ScoringParams,
  split?: ReadonlyMap<string, number> | null,
): Map<string, number> {
  // A split that misses a backend in rotation is not one: proportional then.
  const use = split != null && [...effective.keys()].every((id) => split.has(id));
  const basis = new Map([...effective].map(([id, e]) => [id, use ? (split?.get(id) ?? e) : e]));
  let largest = 0;
  for (const v of basis.values()) if (v > largest) largest = v;
  const out = new Map<string, number>();
  for (const [id, v] of basis) {
    const share = largest > 0 ? v / largest : 1;
    out.set(id, Math.min(p.weight_max, Math.max(p.weight_min, Math.round(p.weight_max * share))));
  }
  return out;
}

/**
 * Next weight of a backend in rotation. `previous` is its last pushed weight (0 if it was out),
 * or undefined when the set has no previous output: then there is nothing to step from.
 */
export function stepWeight(previous: number | undefined, target: number, p: ScoringParams): LiveWeight {
  const clamp = (w: number) => Math.min(p.weight_max, Math.max(p.weight_min, Math.round(w)));
  if (previous === undefined) return liveWeight(clamp(target));
  const deadband = Math.max(1, previous * p.weight_deadband_ratio);
  if (Math.abs(target - previous) < deadband) return liveWeight(clamp(previous));
  const step = Math.max(-p.max_weight_step, Math.min(p.max_weight_step, target - previous));
  return liveWeight(clamp(previous + step));
}
