import { expect } from 'chai';
import {
  capacityFraction,
  capacitySpread,
  capacityVerdict,
  dropSpreads,
  goals,
  loadKey,
  median,
  medianSteps,
  missReasons,
  overloadVerdicts,
  poolOf,
  qualitySummary,
  scenariosRun,
  spread,
  stepCarried,
  timeSpread,
  verdictsByRep,
} from '../../scripts/bench/quality/analysis.js';
import type { PolicyId, QualityRun, StepResult } from '../../scripts/bench/quality/types.js';
import { CRITERIA, fixtureRun, repeatedRun, runWith, step } from './bench-quality-fixture.js';

/** The fixture with one policy's steps replaced by carried steps up to `upTo` and a miss above. */
function withFraction(run: QualityRun, policy: PolicyId, upTo: number): QualityRun {
  const loads = [0.4, 0.55, 0.7, 0.8, 0.9, 1.0];
  const mine = loads.map((l) => step(l, { policy, ...(l <= upTo ? {} : { failed_pct: 5, failed: 100 }) }));
  return { ...run, steps: [...run.steps.filter((s) => s.policy !== policy), ...mine] };
}

describe('bench quality: which steps count as carried', () => {
  it('failed % must be strictly under the limit', () => {
    expect(stepCarried(step(0.7, { failed_pct: 0.99 }), CRITERIA)).to.equal(true);
    expect(stepCarried(step(0.7, { failed_pct: 1 }), CRITERIA)).to.equal(false);
    expect(missReasons(step(0.7, { failed_pct: 2.5 }), CRITERIA)).to.deep.equal(['failed 2.50 % ≥ 1 %']);
  });

  it('p99 must be strictly under the limit; a step without any successful call is not carried', () => {
    const lat = (p99: number) => ({ p50: 10, p95: 50, p99, max: p99 });
    expect(stepCarried(step(0.7, { setup_ms: lat(199.9) }), CRITERIA)).to.equal(true);
    expect(missReasons(step(0.7, { setup_ms: lat(200) }), CRITERIA)).to.deep.equal(['p99 200 ms ≥ 200 ms']);
    expect(missReasons(step(0.7, { setup_ms: null }), CRITERIA)).to.deep.equal(['no call succeeded']);
  });

  it('a step with no calls, or a NaN, is a miss rather than a pass', () => {
    expect(missReasons(step(0.7, { calls: 0 }), CRITERIA)).to.include('no calls were offered');
    expect(missReasons(step(0.7, { failed_pct: Number.NaN }), CRITERIA)).to.include('failed % unknown');
  });

  it('both reasons are given when both fail', () => {
    const s = step(0.9, { failed_pct: 3, setup_ms: { p50: 50, p95: 400, p99: 900, max: 2000 } });
    expect(missReasons(s, CRITERIA)).to.have.length(2);
  });
});

describe('bench quality: capacity fraction', () => {
  it('is the highest carried step when every step below is carried', () => {
    const steps = [step(0.4), step(0.55), step(0.7), step(0.8, { failed_pct: 1.5 })];
    expect(capacityFraction(steps, 'sipweigh', CRITERIA)).to.equal(0.7);
  });

  it('is monotone: a step passing above a missed one does not count, and is reported', () => {
    const steps = [step(0.4), step(0.55, { failed_pct: 3 }), step(0.7), step(0.8)];
    const v = capacityVerdict(steps, 'sipweigh', CRITERIA)!;
    expect(v.fraction).to.equal(0.4);
    expect(v.firstMiss).to.deep.equal({ load_fraction: 0.55, reasons: ['failed 3.00 % ≥ 1 %'] });
    expect(v.passedAboveMiss).to.deep.equal([0.7, 0.8]);
  });

  it('the p99 rule alone stops the fraction', () => {
    const slow = { p50: 40, p95: 150, p99: 260, max: 400 };
    const steps = [step(0.4), step(0.55), step(0.7, { setup_ms: slow }), step(0.8)];
    expect(capacityFraction(steps, 'sipweigh', CRITERIA)).to.equal(0.55);
  });

  it('is 0 when the lowest step fails, and null when the policy has no steps', () => {
    expect(capacityFraction([step(0.4, { failed_pct: 2 }), step(0.55)], 'sipweigh', CRITERIA)).to.equal(0);
    expect(capacityFraction([step(0.4)], 'round_robin', CRITERIA)).to.equal(null);
    expect(capacityFraction([], 'sipweigh', CRITERIA)).to.equal(null);
  });

  it('does not depend on the order the steps come in, and reads only its own policy', () => {
    const steps = [
      step(0.8, { failed_pct: 4 }),
      step(0.55),
      step(0.4, { policy: 'round_robin', failed_pct: 9 }),
      step(0.4),
      step(0.7),
    ];
    expect(capacityFraction(steps, 'sipweigh', CRITERIA)).to.equal(0.7);
    expect(capacityFraction(steps, 'round_robin', CRITERIA)).to.equal(0);
  });

  it('a load level measured twice counts only when both measurements carried', () => {
    const steps = [step(0.4), step(0.55), step(0.55, { failed_pct: 1.2 }), step(0.7)];
    expect(capacityFraction(steps, 'sipweigh', CRITERIA)).to.equal(0.4);
  });

  it('a carried overload step counts (and is not capped), an uncarried one does not', () => {
    const all = [step(0.4), step(0.9), step(1.0), step(1.1)];
    expect(capacityFraction(all, 'sipweigh', CRITERIA)).to.equal(1.1);
    const refused = [step(0.4), step(0.9), step(1.0), step(1.1, { failed_pct: 8, refused_503: 300 })];
    expect(capacityFraction(refused, 'sipweigh', CRITERIA)).to.equal(1.0);
  });

  it('refuses criteria and loads it cannot judge by', () => {
    expect(() => capacityFraction([step(0.4)], 'sipweigh', { max_failed_pct: 0, max_p99_ms: 200 })).to.throw(
      /criteria.max_failed_pct/,
    );
    expect(() => capacityFraction([step(Number.NaN)], 'sipweigh', CRITERIA)).to.throw(/load_fraction/);
  });

  it('the fixture: round robin and equal weights stop at the smallest backend, Kamailio cc=1 has a lucky step', () => {
    const run = fixtureRun();
    const f = (p: PolicyId) => capacityFraction(run.steps, p, run.criteria);
    expect([
      f('round_robin'),
      f('static_equal'),
      f('static_capacity'),
      f('kamailio_cc'),
      f('sipweigh'),
    ]).to.deep.equal([0.4, 0.4, 0.9, 0.55, 0.9]);
    expect(capacityVerdict(run.steps, 'kamailio_cc', run.criteria)!.passedAboveMiss).to.deep.equal([0.8]);
  });
});

describe('bench quality: goals', () => {
  const byId = (run: QualityRun) => Object.fromEntries(goals(run).map((g) => [g.id, g]));

  it('the fixture meets all three, with the numbers', () => {
    const g = byId(fixtureRun());
    expect(g.total_capacity).to.include({ met: true, sipweigh: 0.9, target: 0.9 });
    expect(g.vs_round_robin).to.include({ met: true });
    expect(g.vs_round_robin!.target).to.be.closeTo(0.6, 1e-9);
    expect(g.vs_round_robin!.detail).to.contain('2.25 × round robin');
    expect(g.vs_kamailio_cc).to.include({ met: true, target: 0.55 });
  });

  it('a shortfall says by how much', () => {
    const g = byId(withFraction(fixtureRun(), 'sipweigh', 0.8));
    expect(g.total_capacity!.met).to.equal(false);
    expect(g.total_capacity!.detail).to.equal('0.80 < 0.90: short by 0.10 of total capacity');
  });

  it('against round robin: 1.5 × is the bar, and a round robin that carried nothing is no bar at all', () => {
    const rrHigh = withFraction(withFraction(fixtureRun(), 'round_robin', 0.7), 'sipweigh', 0.9);
    const g = byId(rrHigh);
    expect(g.vs_round_robin!.met).to.equal(false);
    expect(g.vs_round_robin!.detail).to.match(/short by 0\.15/);
    const bothZero = withFraction(withFraction(fixtureRun(), 'round_robin', 0), 'sipweigh', 0);
    expect(byId(bothZero).vs_round_robin!.met).to.equal(false);
  });

  it('against Kamailio cc=1: equal is not above', () => {
    const tie = withFraction(withFraction(fixtureRun(), 'kamailio_cc', 0.9), 'sipweigh', 0.9);
    expect(byId(tie).vs_kamailio_cc!.met).to.equal(false);
  });

  it('a policy missing from the run leaves its goal not judged', () => {
    const run = runWith([step(0.4), step(0.9)]);
    const g = byId(run);
    expect(g.total_capacity!.met).to.equal(true);
    expect(g.vs_round_robin!.met).to.equal(null);
    expect(g.vs_kamailio_cc!.met).to.equal(null);
    expect(g.vs_kamailio_cc!.detail).to.contain('kamailio_cc not in this run');
    expect(byId(runWith([step(0.4, { policy: 'round_robin' })])).total_capacity!.met).to.equal(null);
  });
});

describe('bench quality: the last-line JSON', () => {
  it('the fixture: every policy by the issue names, ranges, overload goodput and the 130 % test, drop figures', () => {
    const s = qualitySummary(fixtureRun(), 'bench-results/quality-x.json');
    const one = (n: number) => [n, n];
    expect(JSON.parse(JSON.stringify(s))).to.deep.equal({
      bench: 'quality',
      capacity_fraction: {
        round_robin: 0.4,
        equal_static: 0.4,
        capacity_static: 0.9,
        kamailio_cc: 0.55,
        sipweigh: 0.9,
      },
      capacity_fraction_range: {
        round_robin: one(0.4),
        equal_static: one(0.4),
        capacity_static: one(0.9),
        kamailio_cc: one(0.55),
        sipweigh: one(0.9),
      },
      overload_goodput_cps: {
        round_robin: { '1.1': 94.2, '1.3': 61.7 },
        equal_static: { '1.1': 93.1, '1.3': 60.4 },
        capacity_static: { '1.1': 104.8, '1.3': 78.6 },
        kamailio_cc: { '1.1': 98.3, '1.3': 80.1 },
        sipweigh: { '1.1': 158.1, '1.3': 156.4 },
      },
      overload: {
        round_robin: { load: 1.3, goodput_fraction: 0.35, admitted_failed: 3316 },
        equal_static: { load: 1.3, goodput_fraction: 0.35, admitted_failed: 3342 },
        capacity_static: { load: 1.3, goodput_fraction: 0.45, admitted_failed: 2978 },
        kamailio_cc: { load: 1.3, goodput_fraction: 0.46, admitted_failed: 2948 },
        sipweigh: { load: 1.3, goodput_fraction: 0.89, admitted_failed: 109 },
      },
      capacity_drop_follow_s: { capacity_static: null, kamailio_cc: null, sipweigh: 4 },
      // The fixture's drop runs have no recovery (before issue 18): the settled "after" stands in.
      drop: {
        capacity_static_follow_s: null,
        capacity_static_failed_after_pct: 12.381,
        kamailio_cc_follow_s: null,
        kamailio_cc_failed_after_pct: 0,
        sipweigh_follow_s: 4,
        sipweigh_failed_after_pct: 0,
      },
      sipweigh_learns_on: [],
      reps: 1,
      duration_s: 1183,
      run_file: 'bench-results/quality-x.json',
    });
  });

  it("alg 64's drop: its failed % is there, its follow times are left out (it has no weights), not null", () => {
    const run = fixtureRun();
    const cc = run.capacity_drop.find((d) => d.policy === 'kamailio_cc')!;
    const oc = { ...cc, policy: 'kamailio_oc' as const, follow_s: null };
    const s = qualitySummary({ ...run, capacity_drop: [...run.capacity_drop, oc] }, 'r.json');
    expect(s.drop).to.have.property('kamailio_oc_failed_after_pct', 0);
    expect(s.drop).to.not.have.property('kamailio_oc_follow_s');
    expect(s.capacity_drop_follow_s).to.not.have.property('kamailio_oc');
    expect(s.capacity_drop_follow_s).to.have.property('kamailio_cc', null);
    expect(s).to.not.have.property('oc_target');
    expect(qualitySummary({ ...run, oc_target: 0.95 }, 'r.json')).to.have.property('oc_target', 0.95);
  });

  it('policies not run are omitted, not null; no overload steps gives an empty object', () => {
    const steps: StepResult[] = [step(0.4), step(0.7), step(0.4, { policy: 'round_robin' })];
    const s = qualitySummary(runWith(steps), 'r.json');
    expect(Object.keys(s.capacity_fraction)).to.deep.equal(['round_robin', 'sipweigh']);
    expect(s.overload_goodput_cps).to.deep.equal({});
    expect(s.capacity_drop_follow_s).to.deep.equal({});
  });

  it('repeated overload measurements at one level are averaged; keys survive float noise', () => {
    const steps = [
      step(0.4),
      step(1.1, { success_cps: 150 }),
      step(1.1, { success_cps: 160 }),
      step(1.3000000000000003, { success_cps: 155.55 }),
    ];
    expect(qualitySummary(runWith(steps), 'r.json').overload_goodput_cps).to.deep.equal({
      sipweigh: { '1.1': 155, '1.3': 155.6 },
    });
    expect(loadKey(1.1)).to.equal('1.1');
  });
});

describe('bench quality: repetitions and scenarios (issue 18)', () => {
  const run = repeatedRun();

  it('median and range; a median of an even count is the mean of the middle two', () => {
    expect(median([])).to.equal(null);
    expect(median([3, 1, 2])).to.equal(2);
    expect(median([4, 1, 3, 2])).to.equal(2.5);
    expect(spread([0.85, 0.95, 0.9])).to.deep.equal({
      median: 0.9,
      min: 0.85,
      max: 0.95,
      n: 3,
      values: [0.85, 0.95, 0.9],
    });
    expect(spread([])).to.equal(null);
  });

  it('a time that may never come: a miss is later than any hit, so misses in the middle make the median never', () => {
    expect(timeSpread([4, null, 6])).to.deep.equal({ median: 6, min: 4, max: 6, misses: 1, n: 3 });
    expect(timeSpread([null, 2, null])).to.deep.equal({ median: null, min: 2, max: 2, misses: 2, n: 3 });
    expect(timeSpread([null])).to.deep.equal({ median: null, min: null, max: null, misses: 1, n: 1 });
    expect(timeSpread([])).to.equal(null);
  });

  it('the headline is the median of each repetition’s capacity fraction, per scenario', () => {
    expect(verdictsByRep(run, 'known', 'sipweigh').map((v) => v.verdict.fraction)).to.deep.equal([
      0.9, 0.95, 0.85,
    ]);
    expect(capacitySpread(run, 'known', 'sipweigh')).to.include({ median: 0.9, min: 0.85, max: 0.95, n: 3 });
    expect(capacitySpread(run, 'known', 'kamailio_cc')).to.include({ median: 0.85, min: 0.8, max: 0.85 });
    expect(capacitySpread(run, 'unknown', 'sipweigh')).to.include({ median: 0.875, n: 2 });
    expect(capacitySpread(run, 'unknown', 'kamailio_cc')).to.include({ median: 0.35, min: 0, max: 0.7 });
    expect(capacitySpread(run, 'slow', 'sipweigh')).to.equal(null);
    // The goals read the known pool's medians.
    expect(goals(run).find((g) => g.id === 'vs_kamailio_cc')).to.include({
      sipweigh: 0.9,
      target: 0.85,
      met: true,
    });
  });

  it('median steps: one row per scenario, policy and load, the medians with their range and how many were carried', () => {
    const rows = medianSteps(
      run.steps.filter((s) => s.policy === 'sipweigh' && (s.scenario ?? 'known') === 'known'),
      CRITERIA,
    );
    expect(rows).to.have.length(6);
    const at90 = rows.find((r) => r.load_fraction === 0.9)!;
    expect(at90).to.include({ n: 3, carried: 2, failed_pct: 0 });
    expect(at90.failed_pct_range).to.deep.equal([0, 3]);
    const at130 = rows.find((r) => r.load_fraction === 1.3)!;
    expect(at130.success_cps).to.equal(158);
    expect(at130.success_cps_range).to.deep.equal([150, 160]);
    // A single measurement comes back as it was.
    const single = medianSteps([step(0.7)], CRITERIA)[0]!;
    expect(single).to.deep.include({ ...step(0.7), rep: undefined, n: 1, carried: 1 });
  });

  it('the last line: the issue’s keys, medians and ranges, the 130 % test and the drop', () => {
    const s = JSON.parse(JSON.stringify(qualitySummary(run, 'r.json'))) as Record<string, unknown>;
    expect(s.capacity_fraction).to.deep.equal({ equal_static: 0, kamailio_cc: 0.85, sipweigh: 0.9 });
    expect(s.capacity_fraction_range).to.deep.equal({
      equal_static: [0, 0],
      kamailio_cc: [0.8, 0.85],
      sipweigh: [0.85, 0.95],
    });
    expect(s.unknown_capacity_fraction).to.deep.equal({ kamailio_cc: 0.35, sipweigh: 0.88 });
    expect(s.unknown_capacity_fraction_range).to.deep.equal({ kamailio_cc: [0, 0.7], sipweigh: [0.85, 0.9] });
    expect(s).not.to.have.property('slow_capacity_fraction');
    // 158 of 175 calls/s: 0.9; the admitted calls that failed: none (every failure a 503).
    expect(s.overload).to.deep.equal({ sipweigh: { load: 1.3, goodput_fraction: 0.9, admitted_failed: 0 } });
    expect(s.overload_goodput_cps).to.deep.equal({ sipweigh: { '1.3': 158 } });
    expect(s.drop).to.deep.equal({
      kamailio_cc_follow_s: null, // two of three never
      kamailio_cc_follow_back_s: null,
      kamailio_cc_failed_after_pct: 1.5,
      sipweigh_follow_s: 5,
      sipweigh_follow_back_s: 5, // 3, 5, never
      sipweigh_failed_after_pct: 0.5,
    });
    expect(s.capacity_drop_follow_s).to.deep.equal({ kamailio_cc: null, sipweigh: 5 });
    expect(s.reps).to.equal(3);
    const spreads = dropSpreads(run);
    expect(spreads.map((d) => d.policy)).to.deep.equal(['kamailio_cc', 'sipweigh']);
    expect(spreads[1]!.failed_after_pct).to.include({ median: 0.5, min: 0.2, max: 0.7 });
  });

  it('a stored pool is read back as it was; a run before issue 18 has the known pool from run.pool', () => {
    expect(poolOf(fixtureRun(), 'known')).to.include({ total_cps: 175 });
    expect(poolOf(fixtureRun(), 'known').configured_cps).to.deep.equal([25, 50, 100]);
    expect(scenariosRun(run)).to.deep.equal(['known', 'unknown']);
    expect(overloadVerdicts(run).sipweigh!.admitted_failed).to.include({ median: 0, max: 10 });
  });
});
