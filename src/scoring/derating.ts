/**
 * The derating law: per backend a factor in [factor_floor, 1], the fraction of its configured
 * capacity we believe it has now (effective capacity = capacity × factor).
 *
 * - Pressure above `decrease_above_pressure`, for at least `overload_confirm_ms`: the factor falls
 *   multiplicatively, d ln(f)/dt = -gain × ln(pressure), but never faster than
 *   `max_decrease_ratio_per_s` (a collapsed backend at 60 ms rtt halves per second rather than
 *   vanishing in one cycle on signals that still lag the last push).
 * - A cut stops at `served_floor_ratio` × the utilisation the backend serves (calls/s it handles
 *   over its configured capacity). While its queue stands, a backend serves exactly what it can:
 *   that throughput is a measurement of its capacity now. The queue signals lag the weights by a
 *   second or two, so a cut driven by them alone keeps going while the queue drains and overshoots:
 *   in the lab a backend whose capacity halved was cut to 0.28 and its load spilled onto peers
 *   that then overloaded in turn. The margin below 1 covers INVITE retransmissions, which the
 *   request counters include once the queue delay passes T1. The floor holds only
 *   `served_floor_hold_ms` into an overload episode: the request counters also count retransmitted
 *   INVITEs and BYEs and probes, so under heavy retransmission "served" reads up to 1.5 x the real
 *   throughput, and a floor that held for ever could keep a backend above its capacity. A queue
 *   that still stands after the pause is cut through it.
 * - Pressure below `recover_below_pressure`, and `recover_delay_ms` after the last cut: the factor
 *   recovers additively, slowly, and slower still as the pressure nears the band (rate ×
 *   (1 - pressure / recover_below), at least a tenth): in a pool simulation this narrowed the sawtooth
 *   of a backend living at its knee. It creeps back up toward the knee from below and stops in the
 *   band, instead of jumping back to where it was overloaded (the oscillation of Kamailio's own
 *   latency mode, where a backend's weight swung 0 <-> 50).
 * - In between: hold. This band is the hysteresis; noise inside it changes nothing.
 *
 * Multiplicative decrease with slow additive increase is the AIMD shape, stable with lagging
 * feedback: the fall is fast where overload destroys calls (110 % of capacity -> ~40 % of calls
 * succeed), the return is slow where being wrong costs little.
 *
 * The law reads a pressure *range* per cycle (scorer.ts): `low`, the tightest signal taking for each
 * the lower of its smoothed value and its latest report, and `high`, the same with the higher. A cut
 * needs both to be over the knee - the smoothing filters a single noisy report, the latest report
 * stops the cut as soon as the load has moved away (a smoothed value alone keeps cutting for a
 * half-life or two after the pushed weights took effect, and the backend ends far below its knee).
 * A recovery needs both to be clearly below.
 *
 * No knowledge (null) counts as "clearly below": a healthy backend we cannot measure drifts back to
 * its configured capacity at the recovery rate, never in one jump.
 */
import type { ScoringParams } from './params.js';
import type { DeratingState } from './types.js';

/** What the signals say this cycle: `low` decides cuts, `high` (symptoms only, no utilisation) recoveries. */
export interface PressureRange {
  readonly low: number;
  readonly high: number;
}

export const FRESH_DERATING: DeratingState = { factor: 1, overSince: null, lastCutAt: null };

export function updateFactor(
  s: DeratingState,
  pressure: PressureRange | null,
  now: number,
  dtMs: number,
  p: ScoringParams,
  /** Smoothed utilisation the backend serves (calls/s over the capacity in use); null unknown. */
  served: number | null = null,
  /**
   * The served floor's ratio. With learned capacity (capacity/estimator.ts) the scorer passes 1:
   * the estimate already moved to what the backend serves, and a cut below it while the queue
   * drains is the overshoot the floor exists to prevent; retransmissions are guarded there.
   */
  floorRatio: number = p.served_floor_ratio,
): DeratingState {
  const dt = Math.min(Math.max(0, dtMs), p.max_cycle_gap_ms) / 1000;
  if (pressure !== null && pressure.low > p.decrease_above_pressure) {
    const overSince = s.overSince ?? now;
    if (now - overSince < p.overload_confirm_ms || dt === 0) {
      return overSince === s.overSince ? s : { ...s, overSince };
    }
    const byLaw = Math.pow(pressure.low / p.decrease_above_pressure, -p.decrease_gain_per_s * dt);
    const fastest = Math.pow(p.max_decrease_ratio_per_s, dt);
    // The floor never lifts the factor: it only pauses a cut, for the signals to catch up.
    const floorHolds = served !== null && now - overSince < p.served_floor_hold_ms;
    const servedFloor = floorHolds ? Math.min(s.factor, served * floorRatio) : 0;
    const factor = Math.max(p.factor_floor, s.factor * Math.max(byLaw, fastest), servedFloor);
    return { factor, overSince, lastCutAt: now };
  }
  const base = s.overSince === null ? s : { ...s, overSince: null };
  const below = pressure === null || pressure.high < p.recover_below_pressure;
  const waited = s.lastCutAt === null || now - s.lastCutAt >= p.recover_delay_ms;
  if (!below || !waited || base.factor >= 1) return base;
  // How far below the band we are: full speed when idle, a crawl just under the band.
  const room = pressure === null ? 1 : Math.max(0.1, 1 - pressure.high / p.recover_below_pressure);
  return { ...base, factor: Math.min(1, base.factor + p.recover_per_s * room * dt) };
}
