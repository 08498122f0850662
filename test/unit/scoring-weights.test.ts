import { expect } from 'chai';
import fc from 'fast-check';
import { liveWeight, stepWeight, targetWeights } from '../../src/scoring/index.js';
import { P } from './scoring-fixtures.js';

const eff = (entries: [string, number][]) => new Map(entries);

describe('scoring weights: effective capacity -> integer rweights', function () {
  it('gives the largest 100 and the others their share of it (1:2:4 -> 25:50:100)', function () {
    const t = targetWeights(
      eff([
        ['a', 100],
        ['b', 200],
        ['c', 400],
      ]),
      P,
    );
    expect(Object.fromEntries(t)).to.deep.equal({ a: 25, b: 50, c: 100 });
  });

  it('never gives a backend in rotation less than weight_min', function () {
    const t = targetWeights(
      eff([
        ['tiny', 1],
        ['huge', 100_000],
      ]),
      P,
    );
    expect(Object.fromEntries(t)).to.deep.equal({ tiny: P.weight_min, huge: 100 });
  });

  it('property: targets are integers in weight_min..weight_max, the largest at weight_max, monotonic in capacity', function () {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0.01, max: 1e5, noNaN: true }), { minLength: 1, maxLength: 20 }),
        (caps) => {
          const m = eff(caps.map((c, i) => [`b${i}`, c]));
          const t = [...targetWeights(m, P).values()];
          for (const w of t) {
            expect(Number.isInteger(w)).to.equal(true);
            expect(w).to.be.within(P.weight_min, P.weight_max);
          }
          expect(Math.max(...t)).to.equal(P.weight_max);
          for (let i = 0; i < caps.length; i++)
            for (let j = 0; j < caps.length; j++)
              if ((caps[i] ?? 0) <= (caps[j] ?? 0)) expect(t[i]).to.be.at.most(t[j] ?? 0);
        },
      ),
    );
  });

  it('holds inside the deadband, moves by at most max_weight_step outside it', function () {
    expect(stepWeight(100, 97, P)).to.equal(100); // |3| < 4 % of 100
    expect(stepWeight(100, 96, P)).to.equal(96);
    expect(stepWeight(25, 24, P)).to.equal(24); // the deadband is at least one point
    expect(stepWeight(100, 10, P)).to.equal(100 - P.max_weight_step);
    expect(stepWeight(0, 100, P)).to.equal(P.max_weight_step);
    expect(stepWeight(undefined, 37, P)).to.equal(37); // nothing pushed before: nothing to step from
  });

  it('property: bounded step, hold inside the deadband, monotonic in the target', function () {
    const w = fc.integer({ min: 0, max: 100 });
    const t = fc.integer({ min: 1, max: 100 });
    fc.assert(
      fc.property(w, t, t, (prev, a, b) => {
        const next = stepWeight(prev, a, P);
        expect(Math.abs(next - Math.max(prev, P.weight_min))).to.be.at.most(P.max_weight_step);
        if (prev >= P.weight_min && Math.abs(a - prev) < Math.max(1, prev * P.weight_deadband_ratio))
          expect(next).to.equal(prev);
        const [lo, hi] = a <= b ? [a, b] : [b, a];
        expect(stepWeight(prev, lo, P)).to.be.at.most(stepWeight(prev, hi, P));
      }),
    );
  });

  it('liveWeight refuses what Kamailio would not take as a live rweight', function () {
    for (const bad of [0, 101, 2.5, NaN, -1]) expect(() => liveWeight(bad)).to.throw(RangeError);
    expect(liveWeight(1)).to.equal(1);
  });
});
