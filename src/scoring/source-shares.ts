/**
 * One set's source shares at one LB node, pure: the keys' rates and the operator's groups -> the
 * share law's claims (fair-share.ts) -> the entries the LB's per-source limiters read, and which of
 * them to write given what the LB holds.
 *
 * Which keys get an entry of their own: every group that sends, and the MAX_TRACKED_KEYS busiest
 * other sources; the rest share the "other" bucket (`*`), whose reserve is a floor like a guarantee.
 * At the LB every key without an entry charges ONE limiter, the bucket's, at `G::<SET>::*`: the
 * entry is the bucket's whole share (a limiter per key would give every new key a free call, and a
 * source forging addresses would pass the set's limit).
 *
 * The bucket is also where every newcomer lands, so its guaranteed share never exceeds what it asks
 * (at least the reserve) even when the pool has spare: a burst of new sources gets the spare through
 * the set's limiter, never past it (measured before: 1.3x to 1.9x the capacity admitted in the first
 * second of load on an idle pool).
 */
import { OTHER_KEY } from '../kamailio/source-table.js';
import { fairShares, shareEmissionUs, withinDeadband, type ShareClaim } from './fair-share.js';
import { demandOf, type KeyRates } from './source-rates.js';

/**
 * Entries of its own at most per set and node: each costs an RPC when it changes and a few htable
 * entries; past a few hundred sources the small ones are served as well by the other bucket.
 */
export const MAX_TRACKED_KEYS = 200;

/**
 * In a saturated pool a source's demand is its rate times this: a polite source's arrivals run over
 * its mean now and then, and a share cut at exactly the mean would refuse those calls whenever a
 * flood has taken the spare capacity. The margin only matters for sources under their fair share.
 */
export const DEMAND_MARGIN = 1.25;

/**
 * Tolerance of every per-source limiter (Gtau): a tenth of a second of its share may arrive at once
 * (the LB clamps it to 10 s). Calls within a share also charge the set's limiter even past its
 * tolerance, so this is how far the shares together may push the pool past its limit at once, and a
 * share just written starts with a fresh schedule: its whole tolerance passes at once. Measured
 * (fairness bench --quick, limit 0.92 of the pool): 1 s (with a limiter per newcomer) let the
 * busiest second reach 1.3x to 1.9x the pool, 250 ms 1.08x, and the backends' derating then cut the
 * limit to 0.56 of the pool; at 100 ms the busiest second was 1.02x to 1.06x and the limit stayed
 * near 0.9.
 */
export const SHARE_TOLERANCE_US = 100_000;

/** A share smaller by more than this fraction is written at once, whatever the deadband. */
export const SHRINK_TOLERANCE = 0.02;

/** The operator's group behind a key `g<N>`: weight and guaranteed calls/s at this node. */
export interface GroupPolicy {
  readonly name: string;
  readonly weight: number;
  readonly guaranteedCps: number;
}

export interface SharePolicy {
  /** Fraction of the limit kept for the other bucket. */
  readonly otherReserve: number;
  /** By key (`g1`, `g2`...). */
  readonly groups: ReadonlyMap<string, GroupPolicy>;
}

export interface SetShares {
  readonly limitCps: number;
  readonly saturated: boolean;
  /** Calls/s each tracked key is sure of, and `*` for the whole other bucket. */
  readonly shares: ReadonlyMap<string, number>;
  /** Active keys in the other bucket. */
  readonly otherKeys: number;
  /** Entries for the LB: key (`*` included) -> emission interval µs. */
  readonly entries: ReadonlyMap<string, number>;
  readonly toleranceUs: number;
  /** Tracked keys offering more than their share (the law limits them). */
  readonly limited: readonly string[];
}

/** The shares of one set with a limit of `limitCps` (> 0) at this node. */
export function planSetShares(
  limitCps: number,
  rates: ReadonlyMap<string, KeyRates>,
  policy: SharePolicy,
): SetShares {
  const active = [...rates].filter(([key]) => key !== OTHER_KEY);
  const grouped = active.filter(([key]) => policy.groups.has(key));
  const others = active
    .filter(([key]) => !policy.groups.has(key))
    .sort(([ka, a], [kb, b]) => demandOf(b) - demandOf(a) || (ka < kb ? -1 : 1));
  const tracked = [...grouped, ...others.slice(0, MAX_TRACKED_KEYS)];
  const untracked = others.slice(MAX_TRACKED_KEYS);

  const claimsAt = (margin: number): Map<string, ShareClaim> => {
    const claims = new Map<string, ShareClaim>();
    for (const [key, r] of tracked) {
      const g = policy.groups.get(key);
      claims.set(key, {
        demandCps: demandOf(r) * margin,
        weight: g?.weight ?? 1,
        floorCps: g?.guaranteedCps ?? 0,
      });
    }
    claims.set(OTHER_KEY, {
      demandCps: untracked.reduce((s, [, r]) => s + demandOf(r), 0) * margin,
      weight: 1,
      floorCps: policy.otherReserve * limitCps,
    });
    return claims;
  };
  // Saturated is judged on what the sources send: below the limit everybody gets what it sends and
  // a part of the spare. Only a saturated pool is shared out, with the margin for bursts.
  const asSent = fairShares(limitCps, claimsAt(1));
  const law = asSent.saturated ? fairShares(limitCps, claimsAt(DEMAND_MARGIN)) : asSent;
  const shares = new Map(law.shares);
  const otherLaw = shares.get(OTHER_KEY);
  if (!law.saturated && otherLaw !== undefined) {
    const otherAsks = untracked.reduce((sum, [, r]) => sum + demandOf(r), 0);
    shares.set(OTHER_KEY, Math.min(otherLaw, Math.max(policy.otherReserve * limitCps, otherAsks)));
  }
  const entries = new Map([...shares].map(([key, share]) => [key, shareEmissionUs(share)] as const));
  const limited = tracked
    .filter(([key, r]) => r.offered > (shares.get(key) ?? 0) && law.saturated)
    .map(([key]) => key)
    .sort();
  return {
    limitCps,
    saturated: law.saturated,
    shares,
    otherKeys: untracked.length,
    entries,
    toleranceUs: SHARE_TOLERANCE_US,
    limited,
  };
}

/** What one set's entries at the LB are. */
export interface HeldEntries {
  readonly shares: ReadonlyMap<string, number>;
  readonly toleranceUs: number | undefined;
}

export interface EntryWrites {
  /** Entry name suffix (the key, `*` included) and value, tolerance first. */
  readonly set: readonly { readonly key: string | null; readonly value: number }[];
  /** Keys whose entries go: no longer tracked (they fall back to `*`). */
  readonly remove: readonly string[];
  /** Fair share is off: the tolerance entry goes too. */
  readonly removeTolerance: boolean;
}

/**
 * What to write so that the LB holds `desired` (pure): a share that grew by more than `deadband`,
 * one that shrank by more than SHRINK_TOLERANCE, or one missing; all of them when `refresh` (the LB forgets entries not written for 120 s); the
 * tolerance (key null) when it differs. Keys the LB holds that are no longer desired are removed;
 * `desired` null (fair share off) removes every entry of the set, the tolerance too.
 */
export function entryWrites(
  desired: { readonly entries: ReadonlyMap<string, number>; readonly toleranceUs: number } | null,
  held: HeldEntries,
  deadband: number,
  refresh: boolean,
): EntryWrites {
  const set: { key: string | null; value: number }[] = [];
  if (desired !== null && (refresh || held.toleranceUs !== desired.toleranceUs)) {
    set.push({ key: null, value: desired.toleranceUs });
  }
  for (const [key, value] of desired?.entries ?? []) {
    const current = held.shares.get(key);
    // A share that shrank goes out at once: calls within a share are admitted even over the set's
    // limit, so a stale larger share would admit more than the pool carries (the limit was cut).
    const shrank = current !== undefined && value > current * (1 + SHRINK_TOLERANCE);
    if (refresh || current === undefined || shrank || !withinDeadband(current, value, deadband)) {
      set.push({ key, value });
    }
  }
  const remove = [...held.shares.keys()].filter((k) => !desired?.entries.has(k)).sort();
  return { set, remove, removeTolerance: desired === null && held.toleranceUs !== undefined };
}
