/**
 * The rweights written for a set's active destinations: the scorer's weights as whole slots of
 * Kamailio's 100-slot table, so that the LB deals each backend exactly the share written. Pure.
 *
 * Why (Kamailio 5.6 and 6.1, dispatcher algorithm 11, dispatch.c `dp_init_relative_weights`): each
 * active destination gets `rweight * 100 / Σ rweight` slots, truncated, and every slot the
 * truncation leaves (up to one fewer than the destinations) goes to the destination filled last.
 * Among destinations of equal priority that is the *first* line of the list file (with a slice):
 * `add_dest2list` appends in file order and `reindex_dests` copies the list backwards. Written as the scorer's 25/50/100, the first backend
 * (14.3 % of the pool) got 15 slots of 100, 5 % over its share, in every run of the quality bench;
 * written as 32/58/100 it got 18 for 16.8. On a small backend near its knee that excess is the
 * difference between carrying the step and missing it on p99.
 *
 * Rweights that sum to exactly 100 make every slice its own rweight with nothing left over, in any
 * order Kamailio keeps. They are apportioned by largest remainder (Hamilton), each at least 1 (the
 * LB refuses 0, and an active destination must keep a slot). Kamailio nodes only (node-link.ts):
 * OpenSIPS draws by running weights, exact as they are, and slots would only round them.
 */

import { RWEIGHT_SLOTS, type Destination } from '../kamailio/dispatcher-list.js';

/**
 * Whole slots for `weights` (positive integers, one per active destination, in any order): sums to
 * RWEIGHT_SLOTS, each at least 1, each within one slot of its exact share unless the floor of 1
 * forced it, and a larger weight never gets fewer slots. A lone destination, and more destinations
 * than slots (they cannot each have one; Kamailio then truncates as it always did), keep their weights.
 */
export function rweightSlots(weights: readonly number[]): number[] {
  const n = weights.length;
  // One destination gets every slot whatever its weight: written as it is, a list the LB already
  // holds (a set kept through a panic) is not rewritten for nothing.
  if (n < 2 || n > RWEIGHT_SLOTS) return [...weights];
  const total = weights.reduce((a, w) => a + w, 0);
  if (!(total > 0) || !Number.isFinite(total)) return [...weights];
  const quota = weights.map((w) => (w * RWEIGHT_SLOTS) / total);
  const slots = quota.map((q) => Math.max(1, Math.floor(q)));
  // How far short of its share each is now (a floor of 1 put it over: negative). Ties: the larger
  // weight, then the earlier destination, so the same weights always give the same list.
  const order = (sign: 1 | -1) =>
    weights
      .map((w, i) => ({ i, w, short: quota[i]! - slots[i]! }))
      .sort((a, b) => sign * (b.short - a.short) || sign * (b.w - a.w) || a.i - b.i);
  let left = RWEIGHT_SLOTS - slots.reduce((a, s) => a + s, 0);
  // Slots still to deal (fewer than n): the largest remainders get one each.
  for (const { i } of order(1).slice(0, Math.max(0, left))) slots[i]! += 1;
  // Over, by the floors of 1: one back at a time from the most over its share that has more than 1.
  for (; left < 0; left++) {
    const take = order(-1).find(({ i }) => slots[i]! > 1);
    if (take === undefined) break;
    slots[take.i]! -= 1;
  }
  return slots;
}

/**
 * A Kamailio node's list: each set's active destinations written as whole slots of its 100, so that
 * it deals them the shares the scorer chose. The others keep their weight (the LB deals them none).
 */
export function asKamailioSlots(list: readonly Destination[]): Destination[] {
  const out = [...list];
  for (const set of new Set(list.map((d) => d.setId))) {
    const active = out.flatMap((d, i) => (d.setId === set && d.state === 'active' ? [i] : []));
    const slots = rweightSlots(active.map((i) => out[i]!.rweight));
    active.forEach((i, k) => {
      out[i] = { ...out[i]!, rweight: slots[k]! };
    });
  }
  return out;
}
