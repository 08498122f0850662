import { expect } from 'chai';
import fc from 'fast-check';
import {
  FRESH_DERATING,
  updateFactor as updateRange,
  type DeratingState,
  type ScoringParams,
} from '../../src/scoring/index.js';
import { P } from './scoring-fixtures.js';

/** The law with smoothed and latest pressure agreeing. */
const updateFactor = (s: DeratingState, p: number | null, now: number, dt: number, params: ScoringParams) =>
  updateRange(s, p === null ? null : { low: p, high: p }, now, dt, params);

/** Runs the law every `dt` ms for `n` cycles at a constant pressure. */
function run(s: DeratingState, pressure: number | null, from: number, n: number, dt = 250) {
  let st = s;
  for (let i = 1; i <= n; i++) st = updateFactor(st, pressure, from + i * dt, dt, P);
  return st;
}

const factor = fc.double({ min: P.factor_floor, max: 1, noNaN: true });
const state = fc.record({
  factor,
  overSince: fc.option(fc.integer({ min: 0, max: 10_000 }), { nil: null }),
  lastCutAt: fc.option(fc.integer({ min: 0, max: 10_000 }), { nil: null }),
});

describe('scoring derating law (AIMD with a hold band)', function () {
  it('one report above the knee is not enough: the cut waits overload_confirm_ms', function () {
    const s1 = updateFactor(FRESH_DERATING, 3, 1_000, 250, P);
    expect(s1).to.deep.equal({ factor: 1, overSince: 1_000, lastCutAt: null });
    // The next report is back in the band: forgotten.
    expect(updateFactor(s1, 0.8, 1_250, 250, P).overSince).to.equal(null);
    const s2 = updateFactor(s1, 3, 1_250, 250, P);
    expect(s2.factor).to.be.lessThan(1);
    expect(s2.lastCutAt).to.equal(1_250);
  });

  it('falls multiplicatively with pressure, at most by max_decrease_ratio_per_s per second, never below the floor', function () {
    const mild = run(FRESH_DERATING, 1.2, 0, 5); // 1 s of confirmed overload at 1.2
    expect(mild.factor).to.be.closeTo(Math.pow(1.2, -P.decrease_gain_per_s), 1e-9);
    const hard = run(FRESH_DERATING, 12, 0, 5); // rtt 60 ms: capped at halving per second
    expect(hard.factor).to.be.closeTo(0.5, 1e-9);
    expect(run(FRESH_DERATING, 1_000, 0, 400).factor).to.equal(P.factor_floor);
  });

  it('a cut pauses at served_floor_ratio × the utilisation the backend serves, for served_floor_hold_ms, and never lifts the factor', function () {
    // A backend whose capacity halved serves 0.5 of its configured capacity while its queue stands.
    let s = FRESH_DERATING;
    for (let i = 0; i <= 40; i++) s = updateRange(s, { low: 3, high: 3 }, i * 250, 250, P, 0.5);
    // During the pause (served_floor_hold_ms into the overload) the cut stops at the floor...
    let paused = FRESH_DERATING;
    for (let i = 0; i * 250 < P.served_floor_hold_ms; i++) {
      paused = updateRange(paused, { low: 3, high: 3 }, i * 250, 250, P, 0.5);
    }
    expect(paused.factor).to.be.closeTo(0.5 * P.served_floor_ratio, 1e-9);
    // ...a queue still standing after it is cut through (the served rate may count retransmissions).
    expect(s.factor).to.be.lessThan(0.5 * P.served_floor_ratio);
    // Without the measurement the same overload cuts on, to the floor.
    let blind = FRESH_DERATING;
    for (let i = 0; i <= 40; i++) blind = updateRange(blind, { low: 3, high: 3 }, i * 250, 250, P, null);
    expect(blind.factor).to.be.lessThan(0.2);
    // Serving more than the factor says does not raise it during a cut.
    const low = { ...FRESH_DERATING, factor: 0.3 };
    const step = (st: DeratingState, at: number) => updateRange(st, { low: 3, high: 3 }, at, 250, P, 0.9);
    const cut = step(step(low, 0), 250);
    expect(cut.factor).to.equal(0.3);
  });

  it('recovers additively and slowly, only recover_delay_ms after the last cut, never above 1', function () {
    const cut = run(FRESH_DERATING, 12, 0, 5);
    const at = cut.lastCutAt ?? 0;
    const early = run(cut, 0, at, 3); // 750 ms after the cut: still waiting
    expect(early.factor).to.equal(cut.factor);
    const later = run(cut, 0, at, 7); // 1.75 s after the cut: recovering since 1 s (4 cycles)
    expect(later.factor).to.be.closeTo(cut.factor + P.recover_per_s, 1e-9);
    expect(run(cut, 0, at, 400).factor).to.equal(1);
    // No knowledge behaves as "clearly below".
    expect(run(cut, null, at, 7).factor).to.be.closeTo(later.factor, 1e-12);
  });

  it('cuts only when the smoothed value and the latest report agree, recovers only when both are below', function () {
    const over = { factor: 0.6, overSince: 0, lastCutAt: null };
    // Smoothed still high, but the latest report is back in the band: the load has moved, stop cutting.
    expect(updateRange(over, { low: 0.9, high: 6 }, 1_000, 250, P).factor).to.equal(0.6);
    expect(updateRange(over, { low: 1.5, high: 6 }, 1_000, 250, P).factor).to.be.lessThan(0.6);
    const calm = { factor: 0.6, overSince: null, lastCutAt: null };
    expect(updateRange(calm, { low: 0.1, high: 0.8 }, 1_000, 250, P).factor).to.equal(0.6);
    expect(updateRange(calm, { low: 0.1, high: 0.5 }, 1_000, 250, P).factor).to.be.greaterThan(0.6);
  });

  it('recovery slows as the pressure nears the band (it approaches the knee instead of running into it)', function () {
    const s = { factor: 0.5, overSince: null, lastCutAt: null };
    const gain = (pr: number) => updateFactor(s, pr, 10_000, 1_000, P).factor - 0.5;
    expect(gain(0)).to.be.closeTo(P.recover_per_s, 1e-12);
    expect(gain(0.35)).to.be.closeTo(P.recover_per_s / 2, 1e-12);
    expect(gain(0.69)).to.be.closeTo(P.recover_per_s * 0.1, 1e-12); // never stalls completely
  });

  it('property: pressure inside the hold band never changes the factor', function () {
    fc.assert(
      fc.property(
        state,
        fc.double({ min: P.recover_below_pressure, max: P.decrease_above_pressure, noNaN: true }),
        fc.integer({ min: 0, max: 5_000 }),
        (s, p, dt) => {
          expect(updateFactor(s, p, 20_000, dt, P).factor).to.equal(s.factor);
        },
      ),
    );
  });

  it('property: higher pressure never gives a higher factor; the factor stays in [floor, 1] and falls at most at the bounded rate', function () {
    const pressure = fc.option(fc.double({ min: 0, max: 2_000, noNaN: true }), { nil: null });
    fc.assert(
      fc.property(state, pressure, pressure, fc.integer({ min: 0, max: 10_000 }), (s, a, b, dt) => {
        const lo = a === null ? b : b === null ? a : Math.min(a, b);
        const hi = a === null ? b : b === null ? a : Math.max(a, b);
        const fLo = updateFactor(s, lo, 20_000, dt, P).factor;
        const fHi = updateFactor(s, hi, 20_000, dt, P).factor;
        // null (no knowledge) ranks as the lowest pressure.
        expect(fHi).to.be.at.most(fLo);
        for (const f of [fLo, fHi]) {
          expect(f).to.be.within(P.factor_floor, 1);
          const bound =
            s.factor * Math.pow(P.max_decrease_ratio_per_s, Math.min(dt, P.max_cycle_gap_ms) / 1000);
          expect(f).to.be.at.least(Math.max(P.factor_floor, bound) - 1e-12);
        }
      }),
    );
  });

  it('a long cycle gap integrates at most max_cycle_gap_ms', function () {
    const s = { factor: 0.5, overSince: null, lastCutAt: null };
    expect(updateFactor(s, 0, 100_000, 60_000, P).factor).to.be.closeTo(
      0.5 + (P.recover_per_s * P.max_cycle_gap_ms) / 1000,
      1e-12,
    );
  });
});
