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

/** The route's decision; `tat` is $sht(sipweigh_adm=>tat_N) (undefined = $null). */
function cfgCheck(
  state: { tat: number | undefined },
  tSec: number,
  tUsec: number,
  T: number,
  tau: number,
): boolean {
  const now = int32((tSec % 2000) * 1_000_000 + tUsec, 'now');
  let ahead = 0;
  if (state.tat !== undefined) {
    ahead = int32(state.tat - now, 'ahead');
    if (ahead > HALF_US) ahead = int32(ahead - CYCLE_US, 'ahead');
    else if (ahead <= -HALF_US) ahead = int32(ahead + CYCLE_US, 'ahead');
    if (ahead < 0 || ahead > int32(tau + T, 'tau + T')) ahead = 0;
  }
  if (ahead > tau) return false;
  state.tat = int32(now + ahead + T, 'tat') % CYCLE_US;
  return true;
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
          if (fromLast > HALF_US && (phase <= tau + 2 * T || phase >= CYCLE_US - tau - 2 * T)) return;
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
