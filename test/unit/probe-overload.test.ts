import { expect } from 'chai';
import fc from 'fast-check';
import { DEFAULT_OVERLOAD as P, nextProbeCap } from '../../src/probe/overload.js';

describe('probe-rate cap under overload (event-loop utilisation)', function () {
  it('cuts to a fraction of the current rate when the loop is saturated', function () {
    expect(nextProbeCap(Infinity, 0.99, 40_000, 50_000)).to.equal(40_000 * P.decrease);
    expect(nextProbeCap(20_000, 0.99, 30_000, 50_000)).to.equal(20_000 * P.decrease);
  });

  it('raises the cap when the loop has room, and lifts it once the schedule fits', function () {
    expect(nextProbeCap(10_000, 0.5, 10_000, 50_000)).to.be.closeTo(10_000 * P.increase, 1e-9);
    expect(nextProbeCap(48_000, 0.5, 48_000, 50_000)).to.equal(Infinity);
  });

  it('holds between the thresholds, and without a cap never invents one on an idle loop', function () {
    expect(nextProbeCap(12_345, (P.low + P.high) / 2, 12_000, 50_000)).to.equal(12_345);
    expect(nextProbeCap(Infinity, 0.1, 100, 50_000)).to.equal(Infinity);
  });

  it('never goes below the floor and never returns a non-positive cap', function () {
    fc.assert(
      fc.property(
        fc.oneof(fc.constant(Infinity), fc.double({ min: 1, max: 1e6, noNaN: true })),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.double({ min: 0, max: 1e6, noNaN: true }),
        fc.double({ min: 1, max: 1e6, noNaN: true }),
        (cap, elu, sent, wanted) => {
          const next = nextProbeCap(cap, elu, sent, wanted);
          expect(next).to.be.greaterThan(0);
          if (elu > P.high) expect(next).to.be.at.least(P.floorPerS);
        },
      ),
    );
  });

  it('converges below saturation: a loop whose cost grows with the rate settles under its capacity', function () {
    // Toy model: ELU = rate / capacity (capped at 1). Start uncapped at 50k/s wanted, capacity 20k/s.
    const capacity = 20_000;
    let cap = Infinity;
    const rates: number[] = [];
    for (let i = 0; i < 200; i++) {
      const rate = Math.min(50_000, cap);
      rates.push(rate);
      cap = nextProbeCap(cap, Math.min(1, rate / capacity), rate, 50_000);
    }
    const tail = rates.slice(-50);
    expect(Math.max(...tail)).to.be.at.most(capacity * P.high * P.increase + 1);
    expect(Math.min(...tail)).to.be.at.least(capacity * P.low * P.decrease - 1);
  });
});
