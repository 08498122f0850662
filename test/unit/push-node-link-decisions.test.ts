/** The decisions of an LB node link (src/push/node-link.ts), pure: fresh reads, drift, lifted limits. */
import { expect } from 'chai';
import { isDriftRepair, mustReadLiftedLimits, readsAfresh } from '../../src/push/node-link.js';

describe('node link decisions', function () {
  it('readsAfresh: a forced apply and every retry read the LB; a first, unforced try may trust the cache', function () {
    expect(readsAfresh({ force: false, attempt: 0 })).to.equal(false);
    expect(readsAfresh({ force: true, attempt: 0 })).to.equal(true);
    expect(readsAfresh({ force: false, attempt: 1 })).to.equal(true);
    expect(readsAfresh({ force: false, attempt: 7 })).to.equal(true);
    expect(readsAfresh({ force: true, attempt: 3 })).to.equal(true);
  });

  it('isDriftRepair: only a push that changed the LB to the list of the last success', function () {
    const list = JSON.stringify([{ duid: 'a', rweight: 50 }]);
    const other = JSON.stringify([{ duid: 'a', rweight: 60 }]);
    expect(isDriftRepair('applied', list, list)).to.equal(true);
    expect(isDriftRepair('applied', other, list), 'a change of our own').to.equal(false);
    expect(isDriftRepair('applied', list, null), 'the first push').to.equal(false);
    expect(isDriftRepair('in_sync', list, list), 'nothing changed at the LB').to.equal(false);
    expect(isDriftRepair('failed', list, list)).to.equal(false);
  });

  it('mustReadLiftedLimits: once per switch to off or to other sets, and on every forced apply', function () {
    const sets = JSON.stringify([1, 2]);
    expect(mustReadLiftedLimits(null, sets, false), 'first cycle with admission off').to.equal(true);
    expect(mustReadLiftedLimits(sets, sets, false), 'already lifted').to.equal(false);
    expect(mustReadLiftedLimits(sets, sets, true), 'a reconcile or a retry').to.equal(true);
    expect(mustReadLiftedLimits(JSON.stringify([1]), sets, false), 'a set added').to.equal(true);
  });
});
