/**
 * Per-source rates from the LB's counters, pure: two readings of `sipweigh_src` a moment apart give
 * each key's calls offered, admitted and refused since the last one (its deltas) and its rates.
 *
 * - A counter that went down was reset (the LB restarted, or the entry expired and came back): its
 *   value is what happened since; so is the whole value of a key that appeared since the last reading.
 *   Unless it wrapped (32 bits): then the count is taken modulo 2^32 (counterDelta).
 * - The first reading is a baseline: it says nothing about when those calls came.
 * - Offered rates are smoothed (EWMA, time constant SMOOTHING_MS) and the demand the share law
 *   sees is the larger of the smoothed and the latest rate: a source that speeds up is seen at once,
 *   one that slows down is believed after a few seconds, so one quiet second does not cut its share.
 */
import { ZERO_COUNTS, type SourceCounts } from '../kamailio/source-table.js';

export type CounterReading = ReadonlyMap<number, ReadonlyMap<string, SourceCounts>>;

/** Time constant of the offered-rate EWMA. */
export const SMOOTHING_MS = 3000;

/** Below this many calls/s (smoothed and latest) a key is no longer active. */
export const ACTIVE_MIN_CPS = 0.05;

export interface KeyRates {
  /** Calls/s over the last interval. */
  readonly offered: number;
  readonly admitted: number;
  readonly refused: number;
  /** Smoothed offered calls/s. */
  readonly smoothedOffered: number;
}

export interface RateState {
  readonly atMs: number;
  readonly counters: CounterReading;
  /** Per set, per active key. */
  readonly rates: ReadonlyMap<number, ReadonlyMap<string, KeyRates>>;
}

export interface RateStep {
  readonly state: RateState;
  /** Per set, per key: calls since the previous reading (empty at the baseline). */
  readonly deltas: ReadonlyMap<number, ReadonlyMap<string, SourceCounts>>;
}

/**
 * The LB's counters are 32-bit signed (a cfg integer): past 2^31 - 1 they go on from -2^31. Read as
 * unsigned they wrap from 2^32 - 1 to 0.
 */
const COUNTER_CYCLE = 2 ** 32;

/**
 * Counts after a wrap that we believe: far more calls than any LB takes between two readings, far
 * fewer than the counter's cycle, so a counter reset from high up (an LB restart) is not taken for
 * a wrap.
 */
export const MAX_WRAP_DELTA = 2 ** 24;

const unsigned = (x: number): number => (x < 0 ? x + COUNTER_CYCLE : x);

/** Calls counted between two readings of one counter: never < 0; a wrap counted modulo 2^32. */
export function counterDelta(now: number, before: number | undefined): number {
  const n = unsigned(now);
  if (before === undefined) return n;
  const b = unsigned(before);
  if (n >= b) return n - b;
  const wrapped = n + COUNTER_CYCLE - b;
  return wrapped <= MAX_WRAP_DELTA ? wrapped : n;
}

const delta = counterDelta;

/** The key's demand for the share law: calls/s it asks, seen from its rates. */
export function demandOf(r: KeyRates): number {
  return Math.max(r.offered, r.smoothedOffered);
}

export function advanceRates(prev: RateState | null, reading: CounterReading, nowMs: number): RateStep {
  if (prev === null || nowMs <= prev.atMs) {
    return { state: { atMs: nowMs, counters: reading, rates: prev?.rates ?? new Map() }, deltas: new Map() };
  }
  const dtS = (nowMs - prev.atMs) / 1000;
  const alpha = 1 - Math.exp(-(nowMs - prev.atMs) / SMOOTHING_MS);
  const deltas = new Map<number, Map<string, SourceCounts>>();
  const rates = new Map<number, Map<string, KeyRates>>();
  for (const [set, keys] of reading) {
    const before = prev.counters.get(set);
    const ratesBefore = prev.rates.get(set);
    const d = new Map<string, SourceCounts>();
    const r = new Map<string, KeyRates>();
    for (const [key, now] of keys) {
      const was = before?.get(key);
      const step: SourceCounts = {
        offered: delta(now.offered, was?.offered),
        admitted: delta(now.admitted, was?.admitted),
        refused: delta(now.refused, was?.refused),
      };
      if (step.offered > 0 || step.admitted > 0 || step.refused > 0) d.set(key, step);
      const offered = step.offered / dtS;
      const smoothedBefore = ratesBefore?.get(key)?.smoothedOffered ?? offered;
      const smoothedOffered = smoothedBefore + alpha * (offered - smoothedBefore);
      if (Math.max(offered, smoothedOffered) >= ACTIVE_MIN_CPS) {
        r.set(key, { offered, admitted: step.admitted / dtS, refused: step.refused / dtS, smoothedOffered });
      }
    }
    if (d.size > 0) deltas.set(set, d);
    if (r.size > 0) rates.set(set, r);
  }
  return { state: { atMs: nowMs, counters: reading, rates }, deltas };
}

/** Adds `b` into `a` (cumulative totals per set and key). */
export function addCounts(
  a: Map<number, Map<string, SourceCounts>>,
  b: ReadonlyMap<number, ReadonlyMap<string, SourceCounts>>,
): void {
  for (const [set, keys] of b) {
    let m = a.get(set);
    if (!m) a.set(set, (m = new Map()));
    for (const [key, c] of keys) {
      const t = m.get(key) ?? ZERO_COUNTS;
      m.set(key, {
        offered: t.offered + c.offered,
        admitted: t.admitted + c.admitted,
        refused: t.refused + c.refused,
      });
    }
  }
}
