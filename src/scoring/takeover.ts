/**
 * Taking over from the LB, pure: the scorer state a controller starts from when the LB already
 * carries weights (the previous run's, held fail-static, or the operator's), so that its first
 * pushes continue from them instead of jumping to full capacity and stepping back down.
 *
 * A fresh scorer believes every backend has its whole configured capacity (factor 1) and has no
 * previous output, so its first push is the capacity ratio: a backend the previous run had derated
 * to half jumps to full weight at every controller restart, gets overloaded, and is cut again a few
 * seconds later. Seeded from the list, each backend in the LB's rotation gets the factor that
 * reproduces the listed ratios (weight over capacity, relative to the set's largest, within
 * [factor_floor, 1]) and is in rotation without slow start, and the set's last output is the listed
 * weights on the scorer's scale (the largest at weight_max: the LB holds them as slots of 100,
 * RWEIGHT_SLOTS, and the bounded step, in weight points, would bend the ratios on the way
 * from one scale to the other): the first targets land on them (within rounding), the deadband holds them,
 * and from there the derating law moves each factor as it would have in steady state. A backend out
 * of the LB's rotation (down, drained, or taken out by the LB's own probing while no controller ran)
 * starts out of rotation: it enters through confirmation and slow start like any returning backend.
 * A set with no listed backend in rotation is left to the usual fresh start.
 */
import { RWEIGHT_SLOTS } from '../kamailio/dispatcher-list.js';
import { FRESH_MEMORY } from './scorer.js';
import type { ScoringParams } from './params.js';
import type { BackendMemory, ScorerState, SetMemory } from './types.js';

export interface TakeoverSeed {
  readonly id: string;
  readonly set: number;
  /** Configured capacity, calls/s (> 0). */
  readonly capacity: number;
  /** Its weight at the LB: rweight while the LB picks it, 0 otherwise (effectiveWeight). */
  readonly listedWeight: number;
}

export function takeoverState(seeds: readonly TakeoverSeed[], now: number, p: ScoringParams): ScorerState {
  const backends = new Map<string, BackendMemory>();
  const sets = new Map<number, SetMemory>();
  const bySet = new Map<number, TakeoverSeed[]>();
  for (const s of seeds) bySet.set(s.set, [...(bySet.get(s.set) ?? []), s]);
  for (const [set, members] of bySet) {
    const live = members.filter((m) => m.listedWeight > 0 && m.capacity > 0);
    if (live.length === 0) continue;
    const perCapacity = (m: TakeoverSeed) => m.listedWeight / m.capacity;
    const top = Math.max(...live.map(perCapacity));
    // From a Kamailio node's slots (a list summing to 100: src/push/rweight-slots.ts), each within one
    // of its share: the lowest level every backend's share is consistent with (none above factor 1)
    // is the largest of (slots - 1) / capacity, and a backend whose slots + 1 reach it may be at
    // factor 1 and is read so. Equal backends come back as 34/33/33 (30 of them as 4s and 3s), and
    // reading that as derating would cut the pool, and the admission limit, by up to a quarter at
    // every restart; a 25/50/100 pool's largest derated to 0.9 (15/30/55) still reads 0.92. Weights
    // on the scorer's own scale (OpenSIPS, an older controller) are exact to their rounding.
    const slots = live.length > 1 && live.reduce((a, m) => a + m.listedWeight, 0) === RWEIGHT_SLOTS;
    const lowest = Math.max(...live.map((m) => (m.listedWeight - 1) / m.capacity));
    const level = (m: TakeoverSeed) => slots && (m.listedWeight + 1) / m.capacity >= lowest;
    for (const m of live) {
      const factor = level(m) ? 1 : Math.min(1, Math.max(p.factor_floor, perCapacity(m) / top));
      backends.set(m.id, {
        ...FRESH_MEMORY,
        derating: { factor, overSince: null, lastCutAt: null },
        rotation: { kind: 'in', since: now, slowStart: false },
      });
    }
    // Slots go back onto the scorer's scale (largest at weight_max), ratios kept; any other list, and
    // a lone live backend (no ratio to keep), is taken as it is listed.
    const scale = slots ? p.weight_max / Math.max(...live.map((m) => m.listedWeight)) : 1;
    const onScale = (w: number) =>
      w > 0 ? Math.max(p.weight_min, Math.min(p.weight_max, Math.round(w * scale))) : 0;
    sets.set(set, {
      weights: new Map(members.map((m) => [m.id, onScale(m.listedWeight)])),
      poolCapacityCps: null,
      admissionLimitCps: null,
      panicSince: null,
      panicEndedAt: null,
    });
  }
  return { at: null, backends, sets };
}
