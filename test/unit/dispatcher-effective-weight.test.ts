import { expect } from 'chai';
import { effectiveWeight, type DispatcherTarget } from '../../src/kamailio/dispatcher-list-reply.js';

const target = (state: DispatcherTarget['state'], rweight: number | null): DispatcherTarget => ({
  setId: 1,
  uri: 'sip:127.0.0.11:5060',
  state,
  probing: 'none',
  priority: 0,
  attrsBody: '',
  attrs: {},
  duid: 'be1',
  weight: null,
  rweight,
  latency: null,
});

describe('effective weight of a dispatcher destination', function () {
  it('is its rweight while active, 1 without one, and 0 out of rotation', function () {
    expect(effectiveWeight(target('active', 40))).to.equal(40);
    expect(effectiveWeight(target('active', null))).to.equal(1);
    for (const s of ['inactive', 'disabled', 'trying'] as const)
      expect(effectiveWeight(target(s, 40))).to.equal(0);
  });
});
