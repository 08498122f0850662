import { expect } from 'chai';
import { controllerConfigFor, keysByKind } from '../../scripts/bench/fairness/mode-config.js';
import { parseFairnessOptions } from '../../scripts/bench/fairness/options.js';
import { fairnessMarkdown } from '../../scripts/bench/fairness/report.js';
import {
  aloneSources,
  competitionSources,
  formatRunLine,
  formatSummary,
  meanLimit,
  peakSecond,
  runFigures,
  schedule,
  spread,
  summarize,
  summaryJson,
  type RunResult,
  type SourceCounts,
} from '../../scripts/bench/fairness/summary.js';

function source(over: Partial<SourceCounts>): SourceCounts {
  return {
    name: 'legit1',
    role: 'legit',
    address: '127.45.2.1',
    offered_cps: 29,
    calls: 100,
    answered: 100,
    refused_503: 0,
    answered_in_window: 100,
    window_s: 10,
    ...over,
  };
}

function run(over: Partial<RunResult>): RunResult {
  return {
    kind: 'competition',
    mode: 'fair',
    rep: 1,
    window_s: 10,
    sources: [],
    legit_success_pct: 100,
    flood_admitted_share: 0.5,
    pool_goodput_fraction: 0.9,
    limit_fraction: 0.92,
    peak_second_fraction: 1.1,
    ...over,
  };
}

describe('bench fairness: plan and figures', () => {
  it('takes the quick defaults, and names the option a bad value belongs to', () => {
    const q = parseFairnessOptions(['--quick']);
    expect(q).to.include({
      quick: true,
      reps: 1,
      legitSources: 3,
      legitLoad: 0.5,
      floodLoad: 3,
      aloneLoad: 1.3,
      net: 45,
    });
    expect(q.modes).to.deep.equal(['fair', 'global']);
    expect(q.warmupS + q.windowS).to.be.at.most(15);
    expect(parseFairnessOptions([]).reps).to.equal(3);
    expect(parseFairnessOptions(['--no-alone']).aloneLoad).to.equal(null);
    expect(parseFairnessOptions(['--modes', 'global,global']).modes).to.deep.equal(['global']);
    expect(() => parseFairnessOptions(['--modes', 'fifo'])).to.throw(/--modes.*unknown "fifo"/);
    expect(() => parseFairnessOptions(['--legit-sources', '0'])).to.throw(/--legit-sources.*1\.\.20/);
  });

  it('gives each source its own address: legitimate ones share half the pool, the flood three times it', () => {
    const o = parseFairnessOptions(['--capacity', '25,50,100']);
    const s = competitionSources(o);
    expect(s.map((x) => [x.name, x.role, x.address, x.rateCps, x.leadS])).to.deep.equal([
      ['legit1', 'legit', '127.45.2.1', 29, 4],
      ['legit2', 'legit', '127.45.2.2', 29, 4],
      ['legit3', 'legit', '127.45.2.3', 29, 4],
      ['flood', 'flood', '127.45.3.1', 525, 0],
    ]);
    const together = competitionSources(parseFairnessOptions(['--flood-delay', '0']));
    expect(together.map((x) => x.leadS)).to.deep.equal([0, 0, 0, 0]);
    expect(aloneSources(o)).to.deep.equal([
      { name: 'alone', role: 'alone', address: '127.45.4.1', rateCps: 228, leadS: 0 },
    ]);
    expect(aloneSources(parseFairnessOptions(['--no-alone']))).to.deep.equal([]);
  });

  it('interleaves the modes in every repetition and ends each with the lone source', () => {
    const order = schedule({ reps: 2, modes: ['fair', 'global'], aloneLoad: 1.3 });
    expect(order.map((r) => `${r.kind}:${r.mode}:${r.rep}`)).to.deep.equal([
      'competition:fair:1',
      'competition:global:1',
      'alone:fair:1',
      'competition:fair:2',
      'competition:global:2',
      'alone:fair:2',
    ]);
    expect(schedule({ reps: 1, modes: ['global'], aloneLoad: null })).to.have.length(1);
  });

  it('computes legitimate success, the flood share of answered calls and the pool goodput', () => {
    const f = runFigures(
      [
        source({ name: 'legit1', calls: 200, answered: 198, answered_in_window: 190 }),
        source({ name: 'legit2', calls: 200, answered: 200, answered_in_window: 200 }),
        source({
          name: 'flood',
          role: 'flood',
          calls: 5000,
          answered: 602,
          refused_503: 4398,
          answered_in_window: 610,
          window_s: 10,
        }),
      ],
      175,
    );
    expect(f.legit_success_pct).to.equal(99.5);
    expect(f.flood_admitted_share).to.equal(0.602);
    // (190 + 200 + 610) answered in 10 s = 100 calls/s of 175.
    expect(f.pool_goodput_fraction).to.equal(0.5714);
  });

  it('uses each source its own window length, and says null where nothing was there to count', () => {
    const f = runFigures([source({ role: 'alone', answered_in_window: 160, window_s: 8 })], 200);
    expect(f).to.deep.equal({ legit_success_pct: null, flood_admitted_share: 0, pool_goodput_fraction: 0.1 });
    expect(runFigures([source({ calls: 0, answered: 0, answered_in_window: 0 })], 175)).to.deep.equal({
      legit_success_pct: null,
      flood_admitted_share: null,
      pool_goodput_fraction: 0,
    });
  });

  it('takes the median and range over repetitions, leaving out runs without the figure', () => {
    expect(spread([3, 1, 2])).to.deep.equal({ median: 2, min: 1, max: 3, n: 3 });
    expect(spread([4, null, 1, 2, 3])).to.deep.equal({ median: 2.5, min: 1, max: 4, n: 4 });
    expect(spread([null])).to.equal(null);
    expect(meanLimit([100, null, 140])).to.equal(120);
    expect(meanLimit([null])).to.equal(null);
    // Seconds 1 and 2 of two sources: second 1 has 90 + 60 answered calls, of a pool of 100.
    const a = [
      { second: 1, ok: 90 },
      { second: 2, ok: 40 },
    ];
    const b = [
      { second: 1, ok: 60 },
      { second: 2, ok: 50 },
    ];
    expect(peakSecond([a, b], 100)).to.equal(1.5);
    expect(peakSecond([], 100)).to.equal(null);
  });

  it('summarises per mode and prints the issue keys in the last line', () => {
    const runs = [
      run({ mode: 'fair', legit_success_pct: 99.6, flood_admitted_share: 0.45, pool_goodput_fraction: 0.88 }),
      run({ mode: 'global', legit_success_pct: 20, flood_admitted_share: 0.85, pool_goodput_fraction: 0.7 }),
      run({ mode: 'fair', legit_success_pct: 99.9, flood_admitted_share: 0.47, pool_goodput_fraction: 0.9 }),
      run({ mode: 'global', legit_success_pct: 22, flood_admitted_share: 0.84, pool_goodput_fraction: 0.72 }),
      run({
        kind: 'alone',
        mode: 'fair',
        legit_success_pct: null,
        flood_admitted_share: 0,
        pool_goodput_fraction: 0.91,
      }),
    ];
    const s = summarize(runs);
    expect(s.modes.fair?.legit_success_pct).to.deep.equal({ median: 99.75, min: 99.6, max: 99.9, n: 2 });
    expect(s.modes.global?.pool_goodput_fraction?.median).to.equal(0.71);
    expect(s.alone_pool_fraction).to.deep.equal({ median: 0.91, min: 0.91, max: 0.91, n: 1 });
    const j = summaryJson(s, {
      quick: true,
      pool_cps: 175,
      capacities_cps: [25, 50, 100],
      legit_sources: 3,
      legit_offered_cps: 87,
      flood_offered_cps: 525,
      alone_offered_cps: 228,
      flood_delay_s: 4,
      reps: 2,
      window_s: 8,
      seconds: 150.4,
      failed_runs: 0,
    });
    expect(j.legit_success_pct).to.deep.equal({ fair: 99.75, global: 21 });
    expect(j.legit_success_pct_range).to.deep.equal({ fair: [99.6, 99.9], global: [20, 22] });
    expect(j.flood_admitted_share).to.equal(0.46);
    expect(j.pool_goodput_fraction).to.equal(0.89);
    expect(j.single_source_pool_fraction).to.equal(0.91);
    expect(j.goals_met).to.deep.equal({ legit_success: true, pool_goodput: false, single_source: true });
    expect(j.seconds).to.equal(150);
    // One line of JSON, as the last line must be.
    expect(JSON.stringify(j)).to.not.include('\n');
    const table = formatSummary(s);
    expect(table).to.include('| fair | 99.8 % (99.6 %–99.9 %) | 0.460 (0.450–0.470) | 0.890 (0.880–0.900) |');
    expect(table).to.include('| one source alone (fair) |');
    expect(formatRunLine(run({ sources: [source({})] }))).to.include('legit1 100/100 (503: 0)');
  });

  it('a mode that was not run is null in the last line, not missing', () => {
    const j = summaryJson(summarize([run({ mode: 'global', legit_success_pct: 20 })]), {
      quick: true,
      pool_cps: 175,
      capacities_cps: [175],
      legit_sources: 1,
      legit_offered_cps: 88,
      flood_offered_cps: 525,
      alone_offered_cps: null,
      flood_delay_s: 0,
      reps: 1,
      window_s: 8,
      seconds: 30,
      failed_runs: 1,
    });
    expect(j.legit_success_pct).to.deep.equal({ fair: null, global: 20 });
    expect(j.flood_admitted_share).to.equal(null);
    expect(j.goals_met).to.deep.equal({ legit_success: null, pool_goodput: null, single_source: null });
  });
});

describe('bench fairness: BENCHMARKS.md figures', () => {
  it('states the conditions, the median (range) table and each goal met or not', () => {
    const s = summarize([
      run({ mode: 'fair', legit_success_pct: 99.5, pool_goodput_fraction: 0.85 }),
      run({ mode: 'global', legit_success_pct: 21 }),
    ]);
    const md = fairnessMarkdown(
      s,
      {
        quick: true,
        pool_cps: 175,
        capacities_cps: [25, 50, 100],
        legit_sources: 3,
        legit_offered_cps: 87,
        flood_offered_cps: 525,
        alone_offered_cps: null,
        flood_delay_s: 0,
        reps: 1,
        window_s: 8,
        seconds: 90,
        failed_runs: 1,
      },
      {
        started_at: '2026-12-03T19:20:00.000Z',
        command: 'npm run bench -- fairness --quick',
        cpus: 2,
        loadavg_start: 1.5,
        warmup_s: 5,
        run_file: 'bench-results/fairness-quick-x.json',
      },
    );
    expect(md).to.include('`npm run bench -- fairness --quick`, 2026-12-03 19:20 UTC, on 2 CPUs');
    expect(md).to.include('Pool 25/50/100 = 175 calls/s; 3 legitimate sources, 87 calls/s together');
    expect(md).to.include('one flood at 525 calls/s, starting with them from an idle pool');
    expect(md).to.include('1 run(s) failed and are left out.');
    expect(md).to.include('| fair | 99.5 % (99.5 %–99.5 %) |');
    expect(md).to.include('≥ 99 % (fair mode): 99.5 %: met');
    expect(md).to.include('≥ 0.9 of capacity: 0.850: not met');
    expect(md).to.include('≥ 0.9 of the pool: not measured');
    expect(md).to.include('[bench-results/fairness-quick-x.json](bench-results/fairness-quick-x.json)');
    expect(parseFairnessOptions(['--no-write']).write).to.equal(false);
  });
});

describe('bench fairness: controller config per mode', () => {
  it('keeps admission on in both modes and switches fairness on only in fair mode', () => {
    const cfg = { kind: 'controller', admission: { headroom: 0.9 } };
    const fair = controllerConfigFor(cfg, 'fair');
    expect(fair.admission).to.deep.equal({ headroom: 0.9, enabled: true, fairness: { enabled: true } });
    expect(controllerConfigFor(cfg, 'global').admission).to.deep.equal({
      headroom: 0.9,
      enabled: true,
      fairness: { enabled: false },
    });
    expect(cfg).to.deep.equal({ kind: 'controller', admission: { headroom: 0.9 } });
  });

  it('counts the per-source table keys by kind, ignoring what is not an htable dump', () => {
    const dump = [
      {
        entry: 1,
        size: 2,
        slot: [{ name: 'G::1::127.45.2.1', value: 30000, type: 'int' }, { name: 'G::1::*' }],
      },
      { entry: 2, size: 1, slot: [{ name: 'off::1::127.45.3.1', value: 5, type: 'int' }] },
      { entry: 3, slot: 'nonsense' },
    ];
    expect(keysByKind(dump)).to.deep.equal({ G: 2, off: 1 });
    expect(keysByKind({ error: 'x' })).to.deep.equal({});
  });
});
