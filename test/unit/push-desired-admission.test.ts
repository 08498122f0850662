/**
 * The admission limit each LB node is given per set (pure): split over the nodes, and nothing for a
 * set in panic that never had a limit (the LB keeps what it enforces).
 */
import { expect } from 'chai';
import { desiredAdmission } from '../../src/push/desired-list.js';
import type { SetResult } from '../../src/scoring/index.js';

function scored(set: number, limit: number): SetResult {
  return {
    set,
    mode: 'scored',
    weights: new Map(),
    poolCapacityCps: limit,
    admissionLimitCps: limit,
    panic: null,
    backends: [],
  };
}

function panicking(set: number, limit: number | null): SetResult {
  return {
    set,
    mode: 'panic',
    weights: null,
    poolCapacityCps: limit,
    admissionLimitCps: limit,
    panic: { healthy: 0, counted: 3, threshold: 0.5, since: 0 },
    backends: [],
  };
}

describe('controller: admission limits per LB node', function () {
  it("gives the node its fraction of each set's limit, to 0.01 call/s and at least 1", function () {
    expect([...desiredAdmission([scored(1, 95), scored(2, 10.2)], 0.5)]).to.deep.equal([
      [1, 47.5],
      [2, 5.1],
    ]);
    expect([...desiredAdmission([scored(1, 95)], 0.333)]).to.deep.equal([[1, 31.64]]);
    expect([...desiredAdmission([scored(1, 10)], 0.05)]).to.deep.equal([[1, 1]]);
  });

  it('a set in panic keeps its last limit', function () {
    expect([...desiredAdmission([panicking(1, 95)], 1)]).to.deep.equal([[1, 95]]);
  });

  it('a set in panic that never had a limit is left alone, not given "no limit"', function () {
    // null would lift the limit the LB enforces (say, a previous run's) while the pool is unseen.
    expect([...desiredAdmission([panicking(1, null), scored(2, 50)], 1)]).to.deep.equal([[2, 50]]);
  });
});
