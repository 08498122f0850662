import { expect } from 'chai';
import { parseQualityOptions, SETTLE_DEFAULTS } from '../../scripts/bench/quality/options.js';
import {
  COSTS,
  estimateSeconds,
  rotated,
  scenarioPool,
  schedule,
  settlePlan,
  settleText,
  learnedWhere,
  sipweighLearns,
} from '../../scripts/bench/quality/plan.js';
import { POLICIES, type PolicyId } from '../../scripts/bench/quality/types.js';

describe('bench quality: options (issue 18)', () => {
  it('--quick: one repetition of the knee for known and unknown capacities, 130 % on the known pool, the drop for the adaptive policies', () => {
    const o = parseQualityOptions(['--quick']);
    expect(o.reps).to.equal(1);
    expect(o.scenarios).to.deep.equal(['known', 'unknown']);
    expect(o.steps).to.deep.equal([0.7, 0.8, 0.85, 0.9, 0.95, 1.3]);
    expect(o.otherSteps).to.deep.equal([0.7, 0.8, 0.85, 0.9, 0.95]);
    expect(o.drop).to.deep.include({ beforeS: 20, recoverAtS: 40, afterS: 40, backend: 2 });
    expect(o.drop!.policies).to.deep.equal(['kamailio_cc', 'sipweigh']);
  });

  it('the full run: three repetitions of the whole ladder on every pool, the drop for every policy', () => {
    const o = parseQualityOptions([]);
    expect(o.reps).to.equal(3);
    expect(o.scenarios).to.deep.equal(['known', 'unknown', 'slow']);
    expect(o.otherSteps).to.deep.equal(o.steps);
    expect(o.steps).to.include.members([0.7, 0.8, 0.85, 0.9, 0.95, 1.3]);
    expect(o.drop!.policies).to.deep.equal([...POLICIES]);
  });

  it('--scenarios, --reps, --no-drop and --plan are read; a name not known is refused', () => {
    const o = parseQualityOptions(['--scenarios', 'slow,known', '--reps', '5', '--no-drop', '--plan']);
    expect(o.scenarios).to.deep.equal(['known', 'slow']);
    expect(o.reps).to.equal(5);
    expect(o.drop).to.equal(null);
    expect(o.planOnly).to.equal(true);
    expect(() => parseQualityOptions(['--scenarios', 'optimistic'])).to.throw(/scenarios/);
  });
});

describe('bench quality: the policies this machine can run (kamailio_oc needs Kamailio 6.1)', () => {
  const without61 = { unavailable: { kamailio_oc: 'needs Kamailio 6.1 at /opt/x' } };

  it('by default every policy the machine can run; --quick leaves alg 64 out to stay under 10 minutes', () => {
    expect(parseQualityOptions([]).policies).to.include('kamailio_oc');
    expect(parseQualityOptions([], without61).policies).to.deep.equal(
      POLICIES.filter((p) => p !== 'kamailio_oc'),
    );
    expect(parseQualityOptions(['--quick']).policies).to.not.include('kamailio_oc');
    expect(parseQualityOptions(['--quick', '--policies', 'kamailio_oc,sipweigh']).policies).to.deep.equal([
      'kamailio_oc',
      'sipweigh',
    ]);
  });

  it('refuses --policies naming one the machine cannot run, with the reason', () => {
    expect(() => parseQualityOptions(['--policies', 'kamailio_oc'], without61)).to.throw(
      /--policies kamailio_oc \(needs Kamailio 6\.1 at \/opt\/x\): not on this machine/,
    );
    expect(parseQualityOptions(['--policies', 'kamailio_cc'], without61).policies).to.deep.equal([
      'kamailio_cc',
    ]);
  });

  it('--quick --no-ladders naming only alg 64 would run nothing: refused, naming the drop policies', () => {
    expect(() => parseQualityOptions(['--quick', '--no-ladders', '--policies', 'kamailio_oc'])).to.throw(
      /--quick --no-ladders runs the drop for kamailio_cc, sipweigh only/,
    );
  });

  it("the unknown pool's note names the known-pool runs that stand for the ones not run again", () => {
    const pool = (policies: PolicyId[]) =>
      scenarioPool({ capacities: [25, 50, 100], policies, slowBy: 0.3 }, 'unknown').note ?? '';
    expect(pool(['static_capacity', 'sipweigh'])).to.match(/read the known pool's static_equal\)$/);
    expect(pool(['kamailio_oc', 'round_robin', 'sipweigh'])).to.match(
      /read the known pool's kamailio_oc, round_robin\)$/,
    );
  });

  it("--oc-target: the servers' target for alg 64, 0.9 by default; refused without kamailio_oc or out of 0.5..1", () => {
    expect(parseQualityOptions([]).ocTarget).to.equal(0.9);
    expect(parseQualityOptions(['--policies', 'kamailio_oc', '--oc-target', '0.95']).ocTarget).to.equal(0.95);
    expect(() => parseQualityOptions(['--policies', 'sipweigh', '--oc-target', '0.95'])).to.throw(
      /--oc-target sets kamailio_oc, which this run does not run/,
    );
    expect(() => parseQualityOptions(['--policies', 'kamailio_oc', '--oc-target', '1.5'])).to.throw(
      /oc-target/,
    );
    // Named but never run: --quick's drop is not alg 64's, and a re-report runs nothing.
    expect(() =>
      parseQualityOptions([
        '--quick',
        '--no-ladders',
        '--policies',
        'kamailio_oc,sipweigh',
        '--oc-target',
        '0.95',
      ]),
    ).to.throw(/--oc-target sets kamailio_oc, which this run does not run/);
    expect(() => parseQualityOptions(['--report', 'x.json', '--oc-target', '0.95'])).to.throw(/--oc-target/);
  });

  it('its lab waits two pings before the load, counted in the estimate', () => {
    const o = parseQualityOptions([
      '--policies',
      'kamailio_oc',
      '--scenarios',
      'known',
      '--no-drop',
      '--reps',
      '1',
    ]);
    const rr = parseQualityOptions([
      '--policies',
      'round_robin',
      '--scenarios',
      'known',
      '--no-drop',
      '--reps',
      '1',
    ]);
    const diff = estimateSeconds(o, schedule(o)) - estimateSeconds(rr, schedule(rr));
    expect(diff).to.be.closeTo(COSTS.ocBaselineS - 0.3, 1);
  });
});

describe('bench quality: where sipweigh learns its capacities (--learn)', () => {
  it('by default on the unknown pool only; a list in canonical order; none for nowhere', () => {
    expect(parseQualityOptions([]).learnOn).to.deep.equal(['unknown']);
    expect(parseQualityOptions(['--quick']).learnOn).to.deep.equal(['unknown']);
    expect(parseQualityOptions(['--learn', 'drop,known']).learnOn).to.deep.equal(['known', 'drop']);
    expect(parseQualityOptions(['--learn', 'none']).learnOn).to.deep.equal([]);
  });

  it('refuses a pool not known, and none beside a pool, naming the option', () => {
    expect(() => parseQualityOptions(['--learn', 'everywhere'])).to.throw(/--learn.*unknown "everywhere"/);
    expect(() => parseQualityOptions(['--learn', 'none,drop'])).to.throw(/--learn.*none cannot be given/);
  });

  it('turns learning on for sipweigh only, on the ladders and drop runs listed', () => {
    const o = { learnOn: ['unknown', 'drop'] as const };
    expect(sipweighLearns(o, { kind: 'ladder', scenario: 'unknown', policy: 'sipweigh', rep: 1 })).to.equal(
      true,
    );
    expect(sipweighLearns(o, { kind: 'ladder', scenario: 'known', policy: 'sipweigh', rep: 1 })).to.equal(
      false,
    );
    expect(sipweighLearns(o, { kind: 'drop', policy: 'sipweigh', rep: 2 })).to.equal(true);
    expect(sipweighLearns(o, { kind: 'drop', policy: 'kamailio_cc', rep: 2 })).to.equal(false);
    expect(
      sipweighLearns(o, { kind: 'ladder', scenario: 'unknown', policy: 'kamailio_cc', rep: 1 }),
    ).to.equal(false);
    expect(sipweighLearns({ learnOn: [] }, { kind: 'drop', policy: 'sipweigh', rep: 1 })).to.equal(false);
  });
});

describe('bench quality: --no-ladders', () => {
  it('plans the drop runs only; refused with --scenarios or --no-drop, by name', () => {
    const o = parseQualityOptions(['--no-ladders', '--policies', 'kamailio_cc,sipweigh', '--learn', 'drop']);
    expect(o.scenarios).to.deep.equal([]);
    const runs = schedule(o);
    expect(runs.map((r) => r.kind)).to.deep.equal(Array(6).fill('drop'));
    expect(learnedWhere(o, runs)).to.deep.equal(['drop']);
    expect(() => parseQualityOptions(['--no-ladders', '--scenarios', 'known'])).to.throw(/--no-ladders/);
    expect(() => parseQualityOptions(['--no-ladders', '--steps', '0.7', '--settle', '0'])).to.throw(
      '--steps, --settle set ladders, and --no-ladders runs none',
    );
    expect(() => parseQualityOptions(['--no-ladders', '--no-drop'])).to.throw(/--no-ladders with --no-drop/);
  });
});

describe('bench quality: where the run says sipweigh learned', () => {
  const where = (args: string[]) => {
    const o = parseQualityOptions(args);
    return learnedWhere(o, schedule(o));
  };

  it('only where a planned sipweigh run learns, not every pool --learn names', () => {
    expect(where([])).to.deep.equal(['unknown']);
    expect(where(['--learn', 'known,unknown,drop'])).to.deep.equal(['known', 'unknown', 'drop']);
    // The default names the unknown pool, which this run does not have.
    expect(where(['--scenarios', 'known'])).to.deep.equal([]);
    expect(where(['--scenarios', 'known', '--no-drop', '--learn', 'drop'])).to.deep.equal([]);
    expect(where(['--policies', 'kamailio_cc', '--learn', 'unknown,drop'])).to.deep.equal([]);
    expect(where(['--quick', '--learn', 'slow,drop'])).to.deep.equal(['drop']);
  });
});

describe('bench quality: the settle phase options', () => {
  it('defaults: 70 % of the real capacity for 20 s, 12 s with --quick', () => {
    expect(SETTLE_DEFAULTS).to.deep.equal({ fraction: 0.7, seconds: 20, quickSeconds: 12 });
    expect(parseQualityOptions([])).to.include({ settleFraction: 0.7, settleS: 20 });
    expect(parseQualityOptions(['--quick'])).to.include({ settleFraction: 0.7, settleS: 12 });
  });

  it('--settle-fraction and --settle are read; --settle 0 turns the phase off', () => {
    expect(parseQualityOptions(['--settle-fraction', '0.5', '--settle', '30'])).to.include({
      settleFraction: 0.5,
      settleS: 30,
    });
    expect(parseQualityOptions(['--quick', '--settle', '0'])).to.include({ settleS: 0 });
    expect(() => parseQualityOptions(['--settle', '0', '--settle-fraction', '0.5'])).to.throw(
      /--settle-fraction has no phase to set with --settle 0/,
    );
  });

  it('a bad value is refused with the flag named', () => {
    for (const [flag, v] of [
      ['--settle-fraction', '0'],
      ['--settle-fraction', '1.5'],
      ['--settle-fraction', 'most'],
      ['--settle', '-1'],
      ['--settle', '2.5'],
      ['--settle', '601'],
      ['--settle', ''],
    ] as const) {
      expect(() => parseQualityOptions([flag, v]), `${flag} ${v}`).to.throw(
        new RegExp(`quality: option '${flag} <[a-z]+>' argument '${v}' is invalid`),
      );
    }
  });

  it("the same load for every policy: the fraction of the pool's real capacity, none when off", () => {
    const o = parseQualityOptions([]);
    // The same rate as a 70 % step (Math.round of 122.49999...).
    expect(settlePlan(o, 175)).to.deep.equal({ fraction: 0.7, rate_cps: 122, seconds: 20 });
    // The slow pool's real capacity (145), not its datasheet's (175).
    expect(settlePlan(o, scenarioPool(o, 'slow').total_cps)).to.include({ rate_cps: 102 });
    expect(settlePlan({ ...o, settleS: 0 }, 175)).to.equal(null);
    expect(settleText(o)).to.contain('settle 20 s at 70 %');
    expect(settleText({ ...o, settleS: 0 })).to.contain('no settle phase');
  });
});

describe('bench quality: the pools of the scenarios', () => {
  const o = { capacities: [25, 50, 100], policies: [...POLICIES], slowBy: 0.3 };

  it('known: told the truth, every policy', () => {
    expect(scenarioPool(o, 'known')).to.deep.equal({
      id: 'known',
      capacities_cps: [25, 50, 100],
      configured_cps: [25, 50, 100],
      total_cps: 175,
      policies: [...POLICIES],
    });
  });

  it('unknown: every backend configured as the total over the backends; the policies whose lab would repeat another are not run, and said so', () => {
    const p = scenarioPool(o, 'unknown');
    expect(p.capacities_cps).to.deep.equal([25, 50, 100]);
    expect(p.configured_cps).to.deep.equal([58.33, 58.33, 58.33]);
    expect(p.total_cps).to.equal(175);
    expect(p.policies).to.deep.equal(['kamailio_cc', 'sipweigh']);
    expect(p.note).to.contain('static_capacity').and.to.contain('equal weights');
    // Alg 64 reads no capacity either: its unknown-pool lab is its known-pool lab.
    expect(p.note).to.contain('kamailio_oc');
    expect(scenarioPool({ ...o, policies: ['sipweigh'] }, 'unknown').note).to.equal(undefined);
  });

  it("slow: the datasheet is the known pool's, the largest backend really 30 % below it", () => {
    const p = scenarioPool(o, 'slow');
    expect(p.capacities_cps).to.deep.equal([25, 50, 70]);
    expect(p.configured_cps).to.deep.equal([25, 50, 100]);
    expect(p.total_cps).to.equal(145);
    expect(p.policies).to.deep.equal([...POLICIES]);
  });
});

describe('bench quality: the order of the runs', () => {
  it('rotates one place per repetition', () => {
    expect(rotated(['a', 'b', 'c'], 1)).to.deep.equal(['a', 'b', 'c']);
    expect(rotated(['a', 'b', 'c'], 2)).to.deep.equal(['b', 'c', 'a']);
    expect(rotated(['a', 'b', 'c'], 4)).to.deep.equal(['a', 'b', 'c']);
    expect(rotated([], 3)).to.deep.equal([]);
  });

  it('interleaves: one run of each policy per repetition, never two runs of a policy in a row', () => {
    const o = parseQualityOptions([]);
    const runs = schedule(o);
    // Per repetition: 6 known + 2 unknown + 6 slow ladders, 6 drops.
    expect(runs).to.have.length(3 * (6 + 2 + 6 + 6));
    for (let i = 1; i < runs.length; i++) {
      const [a, b] = [runs[i - 1]!, runs[i]!];
      expect(a.policy === b.policy && a.kind === b.kind, `${i}: ${JSON.stringify([a, b])}`).to.equal(false);
    }
    for (const rep of [1, 2, 3]) {
      const mine = runs.filter((r) => r.rep === rep);
      expect(
        mine.filter((r) => r.kind === 'ladder' && r.scenario === 'known').map((r) => r.policy),
      ).to.have.members([...POLICIES]);
      // The repetitions follow each other: all of rep 1 before any of rep 2.
      expect(runs.indexOf(mine[0]!)).to.equal(runs.findIndex((r) => r.rep === rep));
    }
    const firstKnown = (rep: number) => runs.find((r) => r.rep === rep && r.kind === 'ladder')!.policy;
    expect([firstKnown(1), firstKnown(2), firstKnown(3)]).to.deep.equal([
      'round_robin',
      'static_equal',
      'static_capacity',
    ]);
    // Every policy's ladders and drops, three each: each step is measured at least three times.
    for (const p of POLICIES) {
      expect(
        runs.filter((r) => r.policy === p && r.kind === 'ladder' && r.scenario === 'known'),
      ).to.have.length(3);
      expect(runs.filter((r) => r.policy === p && r.kind === 'drop')).to.have.length(3);
    }
  });

  it('--quick: known, unknown, then the two drop runs', () => {
    const runs = schedule(parseQualityOptions(['--quick']));
    expect(runs.map((r) => `${r.kind === 'ladder' ? r.scenario : 'drop'}:${r.policy}`)).to.deep.equal([
      'known:round_robin',
      'known:static_equal',
      'known:static_capacity',
      'known:kamailio_cc',
      'known:sipweigh',
      'unknown:kamailio_cc',
      'unknown:sipweigh',
      'drop:kamailio_cc',
      'drop:sipweigh',
    ]);
  });

  it('estimates --quick under 10 minutes and the full run from its plan', () => {
    const quick = parseQualityOptions(['--quick']);
    const q = estimateSeconds(quick, schedule(quick));
    expect(q).to.be.below(600);
    expect(q).to.be.above(240);
    const full = parseQualityOptions([]);
    const f = estimateSeconds(full, schedule(full));
    expect(f).to.be.above(3600);
    // Twice the repetitions, about twice the time.
    const six = parseQualityOptions(['--reps', '6']);
    expect(estimateSeconds(six, schedule(six)) / f).to.be.closeTo(2, 0.01);
  });

  it('the estimate includes the settle phase: its seconds and one load overhead per ladder, none per drop run', () => {
    for (const args of [['--quick'], []]) {
      const o = parseQualityOptions(args);
      const runs = schedule(o);
      const ladders = runs.filter((r) => r.kind === 'ladder').length;
      const without = estimateSeconds({ ...o, settleS: 0 }, runs);
      const extra = ladders * (o.settleS + COSTS.stepOverheadS);
      expect(estimateSeconds(o, runs) - without, args.join(' ')).to.be.closeTo(extra, 1);
    }
    // --quick: 7 ladders with 12 s each.
    const quick = parseQualityOptions(['--quick']);
    expect(estimateSeconds(quick, schedule(quick))).to.be.above(7 * 12 + 400);
  });
});
