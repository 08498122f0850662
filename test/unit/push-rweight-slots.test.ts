/**
 * The rweights written as whole slots of Kamailio's 100 (pure), judged against a model of what
 * Kamailio's dispatcher deals from a list (algorithm 11, dispatch.c `dp_init_relative_weights` after
 * `add_dest2list` and `reindex_dests`, 5.6.3 and 6.1.4 alike).
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { desiredDestinations, type ListedBackend } from '../../src/push/desired-list.js';
import { RWEIGHT_SLOTS } from '../../src/kamailio/dispatcher-list.js';
import { asKamailioSlots, rweightSlots } from '../../src/push/rweight-slots.js';

/**
 * Slots Kamailio gives each destination of a list (rweights in file order): its array is the file
 * reversed; each gets rweight × 100 / Σ, truncated; what is left goes to the last one filled.
 */
function kamailioDeals(fileOrder: readonly number[]): number[] {
  const n = fileOrder.length;
  const sum = fileOrder.reduce((a, w) => a + w, 0);
  const deals = fileOrder.map(() => 0);
  let t = 0;
  let last = 0; // dset->nr - 1 of the reversed array: the file's first line
  for (let j = n - 1; j >= 0; j--) {
    const slice = Math.floor((fileOrder[j]! * 100) / sum);
    deals[j]! += slice;
    t += slice;
    if (slice > 0) last = j;
  }
  deals[last]! += 100 - t;
  return deals;
}

const sum = (xs: readonly number[]) => xs.reduce((a, x) => a + x, 0);

describe('push: rweights as whole slots of the LB table', function () {
  it("the model reproduces the bench's measured shares of a list written as the scorer's weights", function () {
    // 25/50/100 measured 15.0 / 28.0 / 57.0 % of the calls (quality bench, capacity-static, every run).
    expect(kamailioDeals([25, 50, 100])).to.deep.equal([15, 28, 57]);
    // Two slots left over, both to the first line: 16.8 % written, 18 % dealt.
    expect(kamailioDeals([32, 58, 100])).to.deep.equal([18, 30, 52]);
  });

  it('written as slots, Kamailio deals exactly what was written', function () {
    expect(rweightSlots([25, 50, 100])).to.deep.equal([14, 29, 57]);
    expect(kamailioDeals(rweightSlots([25, 50, 100]))).to.deep.equal([14, 29, 57]);
    expect(rweightSlots([32, 58, 100])).to.deep.equal([17, 30, 53]);
    expect(rweightSlots([7])).to.deep.equal([7]); // a lone destination has every slot anyway
    expect(rweightSlots([])).to.deep.equal([]);
  });

  it('property: 100 slots, each at least 1, within one of its share, monotone, dealt as written', function () {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 100 }), { minLength: 2, maxLength: 100 }), (w) => {
        const s = rweightSlots(w);
        expect(sum(s)).to.equal(RWEIGHT_SLOTS);
        expect(s.every((x) => Number.isInteger(x) && x >= 1 && x <= 100)).to.equal(true);
        const total = sum(w);
        const floored = w.some((x) => (x * 100) / total < 1);
        w.forEach((x, i) => {
          if (!floored) expect(Math.abs(s[i]! - (x * 100) / total)).to.be.below(1);
          w.forEach((y, j) => {
            if (x > y) expect(s[i]!).to.be.at.least(s[j]!);
          });
        });
        expect(kamailioDeals(s)).to.deep.equal(s);
      }),
      { numRuns: 500 },
    );
  });

  it('more destinations than slots: the weights as they are', function () {
    const w = Array.from({ length: 101 }, () => 1);
    expect(rweightSlots(w)).to.deep.equal(w);
  });

  describe("a Kamailio node's list (asKamailioSlots of the desired list)", function () {
    const backend = (id: string, set: number, health = 'up'): ListedBackend => ({
      id,
      set,
      uri: `sip:127.0.0.${10 + Number(id.slice(2))}:5060`,
      capacity: 100,
      agent: null,
      source: 'config',
      health: { kind: health },
    });

    it("apportions each set's active destinations apart; inactive and disabled ones keep their weight", function () {
      const weights: Record<string, number> = {
        be1: 25,
        be2: 50,
        be3: 100,
        be4: 0,
        be5: 30,
        be6: 60,
        be7: 40,
      };
      const list = asKamailioSlots(
        desiredDestinations(
          [
            backend('be1', 1),
            backend('be2', 1),
            backend('be3', 1),
            backend('be4', 1, 'down'),
            backend('be5', 1, 'draining'),
            backend('be6', 2),
            backend('be7', 2),
          ],
          (id) => weights[id] ?? 0,
        ),
      );
      expect(list.map((d) => `${d.setId} ${d.duid} ${d.state} ${d.rweight}`)).to.deep.equal([
        '1 be1 active 14',
        '1 be2 active 29',
        '1 be3 active 57',
        '1 be4 inactive 1',
        '1 be5 disabled 30',
        '2 be6 active 60',
        '2 be7 active 40',
      ]);
    });

    it('the same weights always give the same list (no churn between pushes)', function () {
      const backends = [backend('be1', 1), backend('be2', 1), backend('be3', 1)];
      const a = asKamailioSlots(desiredDestinations(backends, () => 33));
      const b = asKamailioSlots(desiredDestinations([...backends].reverse(), () => 33));
      expect(a).to.deep.equal(b);
      expect(a.map((d) => d.rweight)).to.deep.equal([34, 33, 33]);
    });
  });
});
