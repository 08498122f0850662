import { expect } from 'chai';
import { SOURCE_PERIOD_MS, sourceRetryAt } from '../../src/controller/fair-admission.js';

describe('fair admission: an LB node that fails its rounds is asked less often', function () {
  it('a node without failures is asked every round', function () {
    expect(sourceRetryAt(0, 5000)).to.equal(-Infinity);
  });

  it('waits 1, 2, 4, then 8 s after consecutive failures, never longer', function () {
    const waits = [1, 2, 3, 4, 5, 10].map((n) => sourceRetryAt(n, 10_000) - 10_000);
    expect(waits).to.deep.equal([1000, 2000, 4000, 8000, 8000, 8000]);
    expect(waits[0]).to.be.at.least(SOURCE_PERIOD_MS);
  });

  it('over 30 s of an unreachable node, asks it at most 8 times (the loop runs every second)', function () {
    let failures = 0;
    let last = 0;
    let asks = 0;
    for (let now = 0; now < 30_000; now += SOURCE_PERIOD_MS) {
      if (now < sourceRetryAt(failures, last)) continue;
      asks++;
      failures++;
      last = now;
    }
    expect(asks).to.be.within(4, 8);
  });
});
