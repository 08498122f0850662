import { expect } from 'chai';
import { DEFAULT_SCORING_PARAMS } from '../../src/config/scoring-params.js';
import {
  ScoringParamsError,
  admissionLimit,
  panicCheck,
  poolCapacity,
  rampRatio,
  validateScoringParams,
} from '../../src/scoring/index.js';
import { P } from './scoring-fixtures.js';

describe('scoring slow start ramp', function () {
  it('rises linearly from slow_start_initial_ratio to 1 over slow_start_ms', function () {
    expect(rampRatio(1_000, 1_000, P)).to.equal(P.slow_start_initial_ratio);
    expect(rampRatio(1_000, 1_000 + P.slow_start_ms / 2, P)).to.be.closeTo(
      (1 + P.slow_start_initial_ratio) / 2,
      1e-12,
    );
    expect(rampRatio(1_000, 1_000 + P.slow_start_ms, P)).to.equal(1);
    expect(rampRatio(1_000, 0, P)).to.equal(P.slow_start_initial_ratio); // clock before the start
    expect(rampRatio(1_000, 1_000, { ...P, slow_start_ms: 0 })).to.equal(1);
  });
});

describe('scoring panic threshold', function () {
  it('panics when fewer than threshold of the counted backends look healthy', function () {
    expect(panicCheck(['up', 'down', 'down'], 0.5)).to.deep.equal({ panic: true, healthy: 1, counted: 3 });
    expect(panicCheck(['up', 'down'], 0.5).panic).to.equal(false); // exactly half is not below
    expect(panicCheck(['suspect', 'returning', 'down'], 0.5).panic).to.equal(true);
    // A suspect is not evidence that the observer sees it: one up of three is a panic.
    expect(panicCheck(['suspect', 'up', 'down'], 0.5).panic).to.equal(true);
    expect(panicCheck(['up', 'up', 'suspect', 'down'], 0.5).panic).to.equal(false);
  });

  it('does not count draining backends, and threshold 0 disables it', function () {
    expect(panicCheck(['up', 'draining', 'draining', 'draining'], 0.5)).to.deep.equal({
      panic: false,
      healthy: 1,
      counted: 1,
    });
    expect(panicCheck(['draining'], 0.5).panic).to.equal(false);
    expect(panicCheck(['down', 'down'], 0).panic).to.equal(false);
  });
});

describe('scoring admission figures', function () {
  it('pool capacity sums effective capacities; the limit keeps the headroom; null when disabled', function () {
    expect(poolCapacity([100, 50.5, 0])).to.equal(150.5);
    expect(admissionLimit(200, P)).to.equal(200 * P.admission_headroom_ratio);
    expect(admissionLimit(200, { ...P, admission_enabled: false })).to.equal(null);
    expect(admissionLimit(0, P)).to.equal(0);
  });
});

describe('scoring params', function () {
  it('accepts the defaults', function () {
    expect(validateScoringParams(DEFAULT_SCORING_PARAMS)).to.equal(DEFAULT_SCORING_PARAMS);
  });

  it('lists every problem in one clear error', function () {
    const bad = {
      ...P,
      recover_below_pressure: 2,
      weight_max: 150,
      signals: { ...P.signals, options_rtt_ms: { knee: -1, half_life_ms: 100, standing_window_ms: 0 } },
    };
    try {
      validateScoringParams(bad);
      expect.fail('accepted invalid params');
    } catch (e) {
      expect(e).to.be.instanceOf(ScoringParamsError);
      const problems = (e as ScoringParamsError).problems;
      expect(problems).to.have.length(3);
      expect((e as Error).message).to.include('signals.options_rtt_ms.knee');
      expect((e as Error).message).to.include('recover_below_pressure');
      expect((e as Error).message).to.include('weight_max');
    }
  });
});
