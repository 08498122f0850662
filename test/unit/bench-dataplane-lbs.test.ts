/**
 * The data-plane bench's LB comparison, pure parts: `--lb`/`--reps` on the command line, the order
 * of the runs (repeated, interleaved, rotated), and the aggregation into medians, ranges, per-rep
 * ratios and the JSON last line (keys naming each LB; the default run's keys untouched).
 */
import { expect } from 'chai';
import { parseOptions } from '../../scripts/bench/dataplane/dataplane.js';
import {
  formatLbTable,
  lbSchedule,
  lbSummaryJson,
  pairedRatio,
  parseLbList,
  parseOpenSipsVersion,
  spread,
  summarizeLbRuns,
  type LbRun,
} from '../../scripts/bench/dataplane/lbs.js';

function run(over: Partial<LbRun> & Pick<LbRun, 'lb' | 'rep' | 'usPerCall'>): LbRun {
  return {
    offeredCps: 250,
    calls: 2000,
    successful: 2000,
    failed: 0,
    successfulCps: 249.5,
    rawUsPerCall: over.usPerCall + 10,
    lbProcesses: over.lb === 'kamailio' ? 11 : 13,
    ...over,
  };
}

describe('bench dataplane: LB comparison', () => {
  describe('command line', () => {
    it('keeps the default run as it was: no LB list, modes compared', () => {
      const o = parseOptions(['--quick']);
      expect(o.lbs).to.equal(undefined);
      expect(o.rates).to.deep.equal([250]);
      expect(o.seconds).to.equal(8);
    });

    it('takes --lb as names, both, duplicates dropped; --reps defaults 3 quick, 5 full', () => {
      expect(parseOptions(['--quick', '--lb', 'kamailio,opensips']).lbs).to.deep.equal([
        'kamailio',
        'opensips',
      ]);
      expect(parseOptions(['--lb', 'opensips']).lbs).to.deep.equal(['opensips']);
      expect(parseOptions(['--lb', 'both']).lbs).to.deep.equal(['kamailio', 'opensips']);
      expect(parseLbList('opensips, kamailio,opensips')).to.deep.equal(['opensips', 'kamailio']);
      expect(parseOptions(['--quick', '--lb', 'both']).reps).to.equal(3);
      expect(parseOptions(['--lb', 'both']).reps).to.equal(5);
      expect(parseOptions(['--lb', 'both', '--reps', '7']).reps).to.equal(7);
    });

    it('refuses an unknown LB and --reps without --lb, by name', () => {
      expect(() => parseOptions(['--lb', 'freeswitch'])).to.throw(/--lb.*unknown LB "freeswitch"/);
      expect(() => parseOptions(['--reps', '3'])).to.throw(/--reps applies to an LB comparison/);
      expect(() => parseOptions(['--lb', 'both', '--reps', '0'])).to.throw(/--reps/);
    });
  });

  describe('schedule', () => {
    it('repeats every LB at every rate, interleaved, the order rotated per repetition', () => {
      const plan = lbSchedule(['kamailio', 'opensips'], [250], 3);
      expect(plan.map((p) => `${p.rep}:${p.lb}`)).to.deep.equal([
        '1:kamailio',
        '1:opensips',
        '2:opensips',
        '2:kamailio',
        '3:kamailio',
        '3:opensips',
      ]);
      const two = lbSchedule(['kamailio', 'opensips'], [150, 300], 2);
      expect(two).to.have.length(8);
      expect(two.slice(0, 4).map((p) => `${p.rate}:${p.lb}`)).to.deep.equal([
        '150:kamailio',
        '150:opensips',
        '300:kamailio',
        '300:opensips',
      ]);
      expect(lbSchedule(['opensips'], [250], 2).map((p) => p.lb)).to.deep.equal(['opensips', 'opensips']);
    });
  });

  describe('aggregation', () => {
    const runs: LbRun[] = [
      run({ lb: 'kamailio', rep: 1, usPerCall: 200 }),
      run({ lb: 'opensips', rep: 1, usPerCall: 300, sendDynamic: 0 }),
      run({ lb: 'opensips', rep: 2, usPerCall: 330, sendDynamic: 0, failed: 2, successful: 1998 }),
      run({ lb: 'kamailio', rep: 2, usPerCall: 220 }),
      run({ lb: 'kamailio', rep: 3, usPerCall: 180 }),
      run({ lb: 'opensips', rep: 3, usPerCall: 270, sendDynamic: 0 }),
    ];

    it('spread: median (mean of the middle two when even) and range, non-finite values left out', () => {
      expect(spread([3, 1, 2])).to.deep.equal({ median: 2, min: 1, max: 3, n: 3 });
      expect(spread([4, 1, 2, 3])).to.deep.equal({ median: 2.5, min: 1, max: 4, n: 4 });
      expect(spread([Number.NaN, 5])).to.deep.equal({ median: 5, min: 5, max: 5, n: 1 });
      expect(spread([])).to.equal(null);
    });

    it('summarizes per LB: median and range of CPU per call, calls answered and failed summed', () => {
      const rows = summarizeLbRuns(runs, ['kamailio', 'opensips'], [250]);
      expect(rows.map((r) => r.lb)).to.deep.equal(['kamailio', 'opensips']);
      const [k, o] = rows;
      expect(k!.usPerCall).to.deep.equal({ median: 200, min: 180, max: 220, n: 3 });
      expect(o!.usPerCall).to.deep.equal({ median: 300, min: 270, max: 330, n: 3 });
      expect(o!.rawUsPerCall?.median).to.equal(310);
      expect(k!.successful).to.equal(6000);
      expect(o!.successful).to.equal(5998);
      expect(o!.failed).to.equal(2);
      expect(o!.calls).to.equal(6000);
      expect(o!.sendDynamic).to.equal(0);
      expect(k!.sendDynamic).to.equal(undefined);
      expect(o!.lbProcesses).to.equal(13);
    });

    it('pairs the LBs repetition by repetition for the ratio', () => {
      const r = pairedRatio(runs, 'opensips', 'kamailio', 250)!;
      // 300/200 = 1.5, 330/220 = 1.5, 270/180 = 1.5
      expect(r.n).to.equal(3);
      expect(r.median).to.be.closeTo(1.5, 1e-9);
      expect(r.min).to.be.closeTo(1.5, 1e-9);
      expect(pairedRatio(runs.slice(0, 1), 'opensips', 'kamailio', 250)).to.equal(null);
    });

    it('the JSON line names each LB in its keys, and keeps every run in order', () => {
      const j = lbSummaryJson(runs, {
        lbs: ['kamailio', 'opensips'],
        rates: [250],
        reps: 3,
        seconds: 8,
        versions: { kamailio: 'kamailio 5.6.3', opensips: 'opensips 3.6.8' },
      });
      expect(j).to.include({
        bench: 'dataplane',
        compare: 'lb',
        path: 'transparent',
        rate_cps: 250,
        reps: 3,
      });
      expect(j.cpu_us_per_call).to.deep.equal({ kamailio: 200, opensips: 300 });
      expect(j.cpu_us_per_call_range).to.deep.equal({ kamailio: [180, 220], opensips: [270, 330] });
      expect(j.raw_cpu_us_per_call).to.deep.equal({ kamailio: 210, opensips: 310 });
      expect(j.calls_answered).to.deep.equal({ kamailio: 6000, opensips: 5998 });
      expect(j.calls_failed).to.deep.equal({ kamailio: 0, opensips: 2 });
      expect(j.opensips_over_kamailio).to.deep.equal({ median: 1.5, min: 1.5, max: 1.5, n: 3 });
      expect(j.opensips_send_dynamic).to.equal(0);
      expect((j.runs as unknown[]).length).to.equal(6);
      // Not the default run's keys: nothing reading those mistakes an LB comparison for a mode one.
      expect(j).not.to.have.property('transparent_us_per_call');
      // One line of JSON.
      expect(JSON.stringify(j)).not.to.contain('\n');
    });

    it('one LB alone: its figures, no ratio', () => {
      const j = lbSummaryJson(
        runs.filter((r) => r.lb === 'opensips'),
        { lbs: ['opensips'], rates: [250], reps: 3, seconds: 8, versions: {} },
      );
      expect(j.cpu_us_per_call).to.deep.equal({ opensips: 300 });
      expect(j).not.to.have.property('opensips_over_kamailio');
    });

    it('the table shows median (range) per LB', () => {
      const t = formatLbTable(summarizeLbRuns(runs, ['kamailio', 'opensips'], [250]));
      expect(t).to.contain('| kamailio | 250 | 3 | 6000/6000 | 0 |');
      expect(t).to.contain('| 200.0 (180.0–220.0) |');
      expect(t).to.contain('| opensips | 250 | 3 | 5998/6000 | 2 |');
    });
  });

  it('reads the OpenSIPS version from `opensips -V`', () => {
    expect(parseOpenSipsVersion('version: opensips 3.6.8 (x86_64/linux)\nflags: STATS: On')).to.equal(
      'opensips 3.6.8',
    );
    expect(parseOpenSipsVersion('command not found')).to.equal(null);
  });
});
