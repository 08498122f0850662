/**
 * Fair shares of one set's admission limit between sources, pure (issue 14; docs/fairness.md).
 *
 * The LB keeps one GCRA per source key at the share's emission interval: a call within its key's
 * share is admitted (and charges the set's limiter), one over it is admitted only if the set's
 * limiter has room (work-conserving: spare capacity goes to whoever asks). So a share is a floor,
 * not a ceiling, and the law only has to say how much each key is sure of:
 *
 * - Saturated (what the keys ask, with their guarantees, exceeds the limit): weighted max-min
 *   fairness (water-filling). Each key gets max(floor, min(demand, level × weight)) with the one
 *   level at which the shares fill the limit: a key asking less than its fair share gets all it
 *   asks, the others split the rest in proportion to their weights, and the sum is <= the limit.
 * - Not saturated: every key gets what it asks and the spare is spread by weight, so nobody is
 *   limited below what it offers and a sudden flood from one key still meets a bounded share.
 *
 * Floors: a group's guaranteed rate, and the reserve of the "other" bucket (key `*`: sources
 * without an entry of their own, newcomers included). When the floors alone exceed the limit they
 * are scaled down together, so the sum stays within the limit whatever the config says.
 */

/** One key's standing in the law. */
export interface ShareClaim {
  /** Calls/s it asks (measured offered rate, with a margin); >= 0. */
  readonly demandCps: number;
  /** Share of the pool relative to other keys when saturated; > 0. */
  readonly weight: number;
  /** Calls/s it gets whenever it asks (group guarantee, or the other bucket's reserve); >= 0. */
  readonly floorCps: number;
}

export interface FairShares {
  /** Whether the keys ask more than the limit. */
  readonly saturated: boolean;
  /** Calls/s each key is sure of, by key; the sum is <= the limit. */
  readonly shares: ReadonlyMap<string, number>;
  /** The water level (calls/s per unit of weight) when saturated; null when not. */
  readonly level: number | null;
}

const BISECTION_STEPS = 100;

function check(limitCps: number, claims: ReadonlyMap<string, ShareClaim>): void {
  if (!(Number.isFinite(limitCps) && limitCps > 0))
    throw new RangeError(`limit must be > 0 calls/s, got ${limitCps}`);
  for (const [key, c] of claims) {
    if (!(c.demandCps >= 0 && Number.isFinite(c.demandCps)))
      throw new RangeError(`${key}: bad demand ${c.demandCps}`);
    if (!(c.weight > 0 && Number.isFinite(c.weight))) throw new RangeError(`${key}: bad weight ${c.weight}`);
    if (!(c.floorCps >= 0 && Number.isFinite(c.floorCps)))
      throw new RangeError(`${key}: bad floor ${c.floorCps}`);
  }
}

/** The shares of `limitCps` between the keys of `claims` (see the module comment). */
export function fairShares(limitCps: number, claims: ReadonlyMap<string, ShareClaim>): FairShares {
  check(limitCps, claims);
  if (claims.size === 0) return { saturated: false, shares: new Map(), level: null };
  const floorSum = [...claims.values()].reduce((s, c) => s + c.floorCps, 0);
  // Floors beyond the limit are scaled down together (and a hair more, so float error never tips the sum over).
  const floorScale = floorSum > limitCps ? (limitCps / floorSum) * (1 - 1e-9) : 1;
  const floor = (c: ShareClaim) => c.floorCps * floorScale;
  const asked = [...claims.values()].reduce((s, c) => s + Math.max(floor(c), c.demandCps), 0);
  const totalWeight = [...claims.values()].reduce((s, c) => s + c.weight, 0);

  if (asked <= limitCps) {
    const spare = limitCps - asked;
    const shares = new Map(
      [...claims].map(
        ([k, c]) => [k, Math.max(floor(c), c.demandCps) + (spare * c.weight) / totalWeight] as const,
      ),
    );
    return { saturated: false, shares, level: null };
  }

  const at = (level: number) =>
    [...claims.values()].reduce((s, c) => s + Math.max(floor(c), Math.min(c.demandCps, level * c.weight)), 0);
  // The sum is non-decreasing in the level: bisect for the highest level whose sum fits.
  let lo = 0;
  let hi = Math.max(...[...claims.values()].map((c) => c.demandCps / c.weight));
  for (let i = 0; i < BISECTION_STEPS && hi - lo > 1e-12 * Math.max(1, hi); i++) {
    const mid = (lo + hi) / 2;
    if (at(mid) <= limitCps) lo = mid;
    else hi = mid;
  }
  const shares = new Map(
    [...claims].map(([k, c]) => [k, Math.max(floor(c), Math.min(c.demandCps, lo * c.weight))] as const),
  );
  return { saturated: true, shares, level: lo };
}

/**
 * A share as the LB's per-key GCRA reads it: emission interval in µs (1e6 / share), rounded up
 * (never promise more than the share), at most 1e8 (one call per 100 s, the script's 32-bit bound).
 */
export const MAX_SHARE_EMISSION_US = 100_000_000;

export function shareEmissionUs(shareCps: number): number {
  if (!(shareCps > 0)) return MAX_SHARE_EMISSION_US;
  return Math.min(MAX_SHARE_EMISSION_US, Math.max(1, Math.ceil(1e6 / shareCps)));
}

/** Whether a share written as `currentUs` is still good for `desiredUs` within `deadband` (a fraction). */
export function withinDeadband(currentUs: number, desiredUs: number, deadband: number): boolean {
  if (currentUs <= 0) return false;
  return Math.abs(desiredUs - currentUs) / currentUs <= deadband;
}
