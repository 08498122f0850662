/**
 * The LB's GCRA (route SIPWEIGH_ADMISSION_CHECK in kamailio/sipweigh-lb.cfg) works on 32-bit signed
 * integers, with time in µs modulo a 2,000 s cycle. This transcribes the route's arithmetic line by
 * line, failing on any value outside int32 as Kamailio would wrap it, and checks it against GCRA on
 * unbounded time: the same decisions across the cycle's wrap and after quiet spells. (A model of the
 * cfg, not the cfg: the integration tests run the real one.)
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { gcraParamsFor } from '../../src/kamailio/admission.js';

const CYCLE_US = 2_000_000_000;
const HALF_US = 1_000_000_000;

function int32(v: number, what: string): number {
  if (!Number.isInteger(v) || v > 2 ** 31 - 1 || v < -(2 ** 31))
    throw new Error(`${what} = ${v} leaves int32`);
  return v;
}

/**
 * Route SIPWEIGH_GCRA's decision; `tat` is the stored TAT (undefined = $null). `force` charges a call
 * admitted by its source's share even when it does not conform, up to `room` past tau + T (the set's
 * limiter passes room = tau, a source's own limiter 0). Returns whether the call conforms.
 */
function cfgCheck(
  state: { tat: number | undefined },
  tSec: number,
  tUsec: number,
  T: number,
  tau: number,
  force = false,
  room = 0,
): boolean {
  const now = int32((tSec % 2000) * 1_000_000 + tUsec, 'now');
  const bound = int32(tau + T + room, 'bound');
  let ahead = 0;
  if (state.tat !== undefined) {
    ahead = int32(state.tat - now, 'ahead');
    if (ahead > HALF_US) ahead = int32(ahead - CYCLE_US, 'ahead');
    else if (ahead <= -HALF_US) ahead = int32(ahead + CYCLE_US, 'ahead');
    if (ahead < 0 || ahead > bound) ahead = 0;
  }
  const ok = ahead <= tau;
  if (ok || force) {
    ahead = int32(ahead + T, 'ahead + T');
    if (ahead > bound) ahead = bound;
    state.tat = int32(now + ahead, 'tat') % CYCLE_US;
  }
  return ok;
}

/** GCRA on unbounded time (µs, exact in a double up to 2^53). */
function idealCheck(state: { tat: number }, nowUs: number, T: number, tau: number): boolean {
  const tat = Math.max(state.tat, nowUs);
  if (tat - nowUs > tau) return false;
  state.tat = tat + T;
  return true;
}

describe('admission: the LB script’s GCRA arithmetic (32-bit, modulo 2,000 s)', function () {
  // Epoch seconds near a wrap of the cycle (x mod 2000 = 1999) and elsewhere.
  const start = fc.oneof(fc.constant(1_795_573_999), fc.integer({ min: 1_700_000_000, max: 1_900_000_000 }));
  const limit = fc.oneof(
    fc.constant(1),
    fc.constant(92),
    fc.constant(185),
    fc.double({ min: 0.01, max: 5000, noNaN: true }),
  );
  // Gaps between INVITEs: mostly around T (bursts and overload), sometimes quiet spells of up to 50 min.
  const gap = fc.oneof(
    { weight: 8, arbitrary: fc.integer({ min: 0, max: 30_000 }) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 3_000_000_000 }) },
  );

  it('decides as GCRA on unbounded time, across the wrap and quiet spells', function () {
    fc.assert(
      fc.property(start, limit, fc.array(gap, { minLength: 1, maxLength: 300 }), (s0, cps, gaps) => {
        const { emissionUs: T, toleranceUs: tau } = gcraParamsFor(cps);
        const cfg: { tat: number | undefined } = { tat: undefined };
        const ideal = { tat: 0 };
        let nowUs = s0 * 1e6;
        let lastAdmitUs = -Infinity;
        for (const g of gaps) {
          nowUs += g;
          const fromLast = nowUs - lastAdmitUs;
          // A quiet spell that ends within tau + T of a whole number of cycles aliases onto a live
          // TAT: the one case the script cannot tell apart (one call refused at most, T at worst).
          const phase = fromLast % CYCLE_US;
          const window = tau + 2 * T;
          if (fromLast > HALF_US && (phase <= window || phase >= CYCLE_US - window)) return;
          const a = cfgCheck(cfg, Math.floor(nowUs / 1e6), nowUs % 1e6, T, tau);
          const b = idealCheck(ideal, nowUs, T, tau);
          if (a !== b) return false;
          if (a) lastAdmitUs = nowUs;
        }
        return true;
      }),
      { numRuns: 500 },
    );
  });

  it('forced charges (calls within their source share) stay in int32, within tau + T + room, and close the limiter', function () {
    // The widest values the script lets through: T 1e8 (per-source G clamped), tau 1e7 (Gtau clamped).
    const params = fc.record({
      T: fc.oneof(fc.constant(100_000_000), fc.integer({ min: 1, max: 100_000_000 })),
      tau: fc.oneof(fc.constant(10_000_000), fc.integer({ min: 0, max: 10_000_000 })),
    });
    const step = fc.record({ gap: fc.integer({ min: 0, max: 50_000 }), forced: fc.boolean() });
    fc.assert(
      fc.property(
        start,
        params,
        fc.array(step, { minLength: 1, maxLength: 200 }),
        (s0, { T, tau }, steps) => {
          const st: { tat: number | undefined } = { tat: undefined };
          // GCRA on unbounded time with the same cap: what the stored TAT must mean.
          let idealTat = 0;
          let nowUs = s0 * 1e6;
          for (const { gap, forced } of steps) {
            nowUs += gap;
            const ok = cfgCheck(st, Math.floor(nowUs / 1e6), nowUs % 1e6, T, tau, forced, tau);
            const base = Math.max(idealTat, nowUs);
            if (ok !== base - nowUs <= tau) return false;
            if (ok || forced) idealTat = Math.min(base + T, nowUs + 2 * tau + T);
            // Never taken for stale: the stored TAT is the ideal one, modulo the cycle.
            if (st.tat !== idealTat % CYCLE_US) return false;
          }
          return true;
        },
      ),
      { numRuns: 300 },
    );
  });

  it('admits at most 1 + tau/T calls at once, then one per T', function () {
    const { emissionUs: T, toleranceUs: tau } = gcraParamsFor(92);
    const st: { tat: number | undefined } = { tat: undefined };
    let admitted = 0;
    // 2,000 INVITEs 1 ms apart (1,000/s for 2 s), starting 0.5 s before the cycle wraps.
    for (let i = 0; i < 2000; i++) {
      const us = 1_795_573_999_500_000 + i * 1000;
      if (cfgCheck(st, Math.floor(us / 1e6), us % 1e6, T, tau)) admitted++;
    }
    expect(admitted).to.be.within(Math.floor(2e6 / T), Math.floor(2e6 / T) + 1 + Math.floor(tau / T));
  });
});
