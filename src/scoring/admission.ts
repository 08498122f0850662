/**
 * Admission control figures. Weights only divide the offered load; when it exceeds what the pool
 * can carry, every backend collapses together (110 % of capacity -> ~40 % of calls succeed). So
 * the LB limits new calls per set to what the pool carries, and the excess gets 503 + Retry-After.
 *
 * Semantics:
 * - pool capacity (calls/s) = sum over the set's backends in rotation of
 *   capacity × derating factor × slow-start ramp: the rate the weights we push can place without
 *   sending any backend past what we believe it carries. A slow-starting backend counts with its
 *   ramp, or the established ones would get more than theirs.
 * - admission limit = pool capacity × admission_headroom_ratio (the margin absorbs the lag between
 *   a change and the next push, and the estimate's error). A set with no backend in rotation has a
 *   limit of 0: there is nowhere to send a call.
 * - A set in panic keeps its last limit (its inputs are what we distrust); null when it never had one.
 * - null when admission is disabled: the controller then sets no limit.
 */
import type { ScoringParams } from './params.js';

export function poolCapacity(effectiveCps: Iterable<number>): number {
  let sum = 0;
  for (const e of effectiveCps) sum += e;
  return sum;
}

export function admissionLimit(poolCapacityCps: number, p: ScoringParams): number | null {
  return p.admission_enabled ? poolCapacityCps * p.admission_headroom_ratio : null;
}
