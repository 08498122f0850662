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
import type { HealthKind } from '../../src/health/state-machine.js';
import fc from 'fast-check';
import { P } from './scoring-fixtures.js';

/** Probed members with these healths (what an agent-backed set hands the panic check). */
const probed = (...healths: HealthKind[]) => healths.map((health) => ({ health, probed: true }));
/** Backends the controller has no way to probe (no agent address: LB-listed without sw_agent, SSH-only). */
const unprobed = (n: number, health: HealthKind = 'down') =>
  Array.from({ length: n }, () => ({ health, probed: false }));

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
    expect(panicCheck(probed('up', 'down', 'down'), 0.5)).to.deep.equal({
      panic: true,
      healthy: 1,
      counted: 3,
    });
    expect(panicCheck(probed('up', 'down'), 0.5).panic).to.equal(false); // exactly half is not below
    expect(panicCheck(probed('suspect', 'returning', 'down'), 0.5).panic).to.equal(true);
    // A suspect is not evidence that the observer sees it: one up of three is a panic.
    expect(panicCheck(probed('suspect', 'up', 'down'), 0.5).panic).to.equal(true);
    expect(panicCheck(probed('up', 'up', 'suspect', 'down'), 0.5).panic).to.equal(false);
  });

  it('counts a suspect on passive evidence alone (no probe missed) as healthy', function () {
    const onEvidence = { health: 'suspect' as HealthKind, evidenceOnly: true };
    // Retransmissions pool-wide (an overload): two suspects on evidence and one dead backend, no panic.
    expect(panicCheck([onEvidence, onEvidence, ...probed('down')], 0.5)).to.deep.equal({
      panic: false,
      healthy: 2,
      counted: 3,
    });
    // A suspect that missed a probe still counts as unhealthy.
    expect(
      panicCheck([{ health: 'suspect', evidenceOnly: false }, ...probed('down', 'up')], 0.5).panic,
    ).to.equal(true);
  });

  it('does not count draining backends, and threshold 0 disables it', function () {
    expect(panicCheck(probed('up', 'draining', 'draining', 'draining'), 0.5)).to.deep.equal({
      panic: false,
      healthy: 1,
      counted: 1,
    });
    expect(panicCheck(probed('draining'), 0.5).panic).to.equal(false);
    expect(panicCheck(probed('down', 'down'), 0).panic).to.equal(false);
  });

  it('leaves out backends the controller cannot probe: neither down nor healthy', function () {
    // One agent-backed backend up among three LB-listed destinations without an agent: scored.
    expect(panicCheck([...probed('up'), ...unprobed(3)], 0.5)).to.deep.equal({
      panic: false,
      healthy: 1,
      counted: 1,
    });
    // Nor do they make a set look healthy: a placeholder `up` is not evidence either.
    expect(panicCheck([...probed('up', 'down', 'down'), ...unprobed(5, 'up')], 0.5)).to.deep.equal({
      panic: true,
      healthy: 1,
      counted: 3,
    });
    // A set of unprobeable backends only has nothing the observer could have lost sight of.
    expect(panicCheck(unprobed(4), 0.5).panic).to.equal(false);
  });

  it('law: adding unprobeable backends never changes the verdict or the counts', function () {
    const health = fc.constantFrom<HealthKind>('up', 'suspect', 'down', 'draining', 'returning');
    fc.assert(
      fc.property(
        fc.array(health, { maxLength: 12 }),
        fc.array(health, { maxLength: 12 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.integer({ min: 0, max: 12 }),
        (seen, unseen, threshold, at) => {
          const members = probed(...seen);
          const mixed = [...members];
          mixed.splice(Math.min(at, mixed.length), 0, ...unseen.map((h) => ({ health: h, probed: false })));
          expect(panicCheck(mixed, threshold)).to.deep.equal(panicCheck(members, threshold));
        },
      ),
      { numRuns: 300 },
    );
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
