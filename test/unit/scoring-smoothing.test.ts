import { expect } from 'chai';
import fc from 'fast-check';
import { ewmaAlpha, ewmaFold } from '../../src/scoring/index.js';
import { current } from '../../src/scoring/smoothing.js';

describe('scoring smoothing: time-aware EWMA', function () {
  it('blends by elapsed time: one half-life moves halfway', function () {
    expect(ewmaAlpha(400, 400)).to.equal(0.5);
    expect(ewmaFold({ value: 0, at: 0 }, 10, 400, 400, 10_000)).to.deep.equal({ value: 5, at: 400 });
    expect(ewmaAlpha(100, 0)).to.equal(1); // half-life 0: take each value as it is
  });

  it('property: two reports 1 ms..1 s apart move it as much as one report after the same total time', function () {
    fc.assert(
      fc.property(
        fc.double({ min: -100, max: 100, noNaN: true }),
        fc.double({ min: -100, max: 100, noNaN: true }),
        fc.integer({ min: 1, max: 1_000 }),
        fc.integer({ min: 1, max: 1_000 }),
        fc.integer({ min: 1, max: 5_000 }),
        (start, v, d1, d2, hl) => {
          const s0 = { value: start, at: 0 };
          const twice = ewmaFold(ewmaFold(s0, v, d1, hl, 1e9), v, d1 + d2, hl, 1e9);
          const once = ewmaFold(s0, v, d1 + d2, hl, 1e9);
          expect(twice.value).to.be.closeTo(once.value, 1e-9 * (1 + Math.abs(start) + Math.abs(v)));
        },
      ),
    );
  });

  it('folds each report once: the same or an older `at` changes nothing', function () {
    const s = ewmaFold({ value: 1, at: 0 }, 9, 200, 400, 10_000);
    expect(ewmaFold(s, 100, 200, 400, 10_000)).to.equal(s);
    expect(ewmaFold(s, 100, 100, 400, 10_000)).to.equal(s);
  });

  it('starts afresh after a gap longer than the reset limit, and goes stale', function () {
    expect(ewmaFold({ value: 50, at: 0 }, 2, 5_000, 400, 3_000)).to.deep.equal({ value: 2, at: 5_000 });
    expect(ewmaFold(null, 7, 10, 400, 3_000)).to.deep.equal({ value: 7, at: 10 });
    expect(current({ value: 3, at: 1_000 }, 4_000, 3_000)).to.equal(3);
    expect(current({ value: 3, at: 1_000 }, 4_001, 3_000)).to.equal(null);
    expect(current(null, 0, 3_000)).to.equal(null);
  });
});
