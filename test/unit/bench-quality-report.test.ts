import { expect } from 'chai';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { qualitySummary } from '../../scripts/bench/quality/analysis.js';
import {
  formatSettleLine,
  formatStepLine,
  formatSummary,
  qualityMarkdown,
  replaceSection,
  reportQualityRun,
  publishTarget,
  reportStoredRun,
  writeBenchmarksSection,
} from '../../scripts/bench/quality/report.js';
import { checkQualityRun, parseQualityRun } from '../../scripts/bench/quality/run-file.js';
import { POLICY_LABELS, type QualityRun, type SettleResult } from '../../scripts/bench/quality/types.js';
import {
  CRITERIA,
  FIXTURE_TEXT,
  fixturePolicies,
  fixtureRun,
  repeatedRun,
  runWith,
  step,
} from './bench-quality-fixture.js';

/** Unescaped `|` in a Markdown table line: the column count plus one. */
const pipes = (line: string) => line.replace(/\\\|/g, '').split('|').length - 1;

/** Every table in `md` as its lines. */
function tables(md: string): string[][] {
  const out: string[][] = [];
  let cur: string[] = [];
  for (const line of md.split('\n')) {
    if (line.startsWith('|')) cur.push(line);
    else if (cur.length > 0) {
      out.push(cur);
      cur = [];
    }
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

describe('bench quality: terminal lines', () => {
  it('a step line: policy, load, goodput, failed, latency, shares and the verdict with its reason', () => {
    const ok = formatStepLine(step(0.7), CRITERIA);
    expect(ok).to.match(/^sipweigh\s+70 %\s+122\.5\s+122\.5\s+0 %/);
    expect(ok).to.contain('be3 57 %');
    expect(ok).to.match(/carried$/);
    const miss = formatStepLine(step(1.1, { failed_pct: 12.5, refused_503: 400 }), CRITERIA);
    expect(miss).to.contain('110 %');
    expect(miss).to.contain('missed: failed 12.50 % ≥ 1 %');
    expect(miss).to.contain('10.4 %'); // 400 refused of 3850 calls
    expect(formatStepLine(step(0.4, { setup_ms: null }), CRITERIA)).to.contain('n/a');
  });

  it('the summary names every policy with its fraction, the goals, overload goodput and the drop', () => {
    const s = formatSummary(fixtureRun());
    for (const p of fixturePolicies()) expect(s).to.match(new RegExp(`^  ${p}\\s+\\d\\.\\d\\d`, 'm'));
    expect(s).to.match(/kamailio_cc\s+0\.55\s+first miss at 70 %/);
    expect(s).to.contain('≥ 1.5 × round robin');
    expect(s).to.match(/sipweigh\s+110 %: 158\.1\s+130 %: 156\.4/);
    expect(s).to.match(/static_capacity\s+never/);
    expect(s).to.match(/sipweigh\s+4\.0 s/);
  });
});

describe('bench quality: the Markdown section', () => {
  const run = fixtureRun();
  const md = qualityMarkdown(run, {
    runFile: 'bench-results/quality-2026.json',
    plots: { latency: 'docs/bench/quality-latency.svg', dropWeights: 'docs/bench/quality-drop-weights.svg' },
  });

  it('has the exact command, the machine and the date', () => {
    expect(md).to.contain('```sh\nnpm run bench -- quality\n```');
    expect(md).to.contain('Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz');
    expect(md).to.contain('2 ×');
    for (const v of [
      '6.1.0-27-cloud-amd64',
      'v20.20.2',
      '| Kamailio | 5.6.3 |',
      '| SIPp | 3.6.1 |',
      '0.41 (on 2 CPUs)',
    ]) {
      expect(md).to.contain(v);
    }
    expect(md).to.contain('2026-11-25T03:12:04.512Z');
    expect(md).to.contain('(19.7 min)');
    expect(md).to.contain('`bench-results/quality-2026.json`');
  });

  it('states the headline rule, including the monotone part', () => {
    expect(md).to.contain('fewer than 1 % of its calls failed');
    expect(md).to.contain('under 200 ms');
    expect(md).to.contain('with every lower step carried too');
  });

  it('has a headline row and a step table for every policy, and the goals', () => {
    for (const p of fixturePolicies()) {
      expect(md).to.contain(`#### ${POLICY_LABELS[p]}\n`);
    }
    expect(md).to.match(/^\| Kamailio round robin \(alg 4\) \| 0\.40 \| 70\.0 \| 55 %: failed 28\.21 %/m);
    expect(md).to.match(/^\| sipweigh \| 0\.90 \| 157\.5 \| 100 %: failed 7\.60 % ≥ 1 % \|/m);
    expect(md).to.contain('passed above the miss, not counted: 80 %');
    expect(md).to.match(/^\| ≥ 1\.5 × round robin \| \*\*met\*\* \| 2\.25 × round robin/m);
    // 8 load steps per policy: each step table has a head, a rule and 8 rows.
    const stepTables = tables(md).filter((t) => t[0]!.startsWith('| offered load |'));
    expect(stepTables).to.have.length(5);
    for (const t of stepTables) expect(t).to.have.length(10);
    expect(md).to.match(/^\| 100 % \| 175\.0 \| 3500 \| 161\.7 \| 7\.6 \| 7\.5 \| 15 \| 101 \| 171 \|/m);
  });

  it('has the overload and capacity-drop tables', () => {
    expect(md).to.contain('goodput at 110 % offered');
    expect(md).to.contain('goodput at 130 % offered');
    expect(md).to.contain(
      "be3's capacity drops from 100.0 to 50.0 calls/s 10 s into a 30 s run at a constant 105.0 calls/s",
    );
    expect(md).to.match(/^\| sipweigh \| 158\.1 \(90 %\) \| 156\.4 \(89 %\) \|$/m);
    expect(md).to.match(
      /^\| sipweigh \| be3 \| 100\.0 → 50\.0 \| 4\.0 s \| 40 % \| 38 % \| 0 \| 46 \| 105\.0 \| 0 \| 46 \| 105\.0 \|$/m,
    );
    // Without the optional fields (an older run): the fair share from the capacities (50 of 125), no settled share.
    expect(md).to.match(
      /^\| capacity-proportional static weights \(alg 11\) \| be3 \| 100\.0 → 50\.0 \| never \| 40 % \| n\/a \|/m,
    );
  });

  it('links the plots it is given and only those', () => {
    expect(md).to.contain('](docs/bench/quality-latency.svg)');
    expect(md).to.contain('](docs/bench/quality-drop-weights.svg)');
    expect(md).not.to.contain('quality-goodput.svg');
    expect(md).to.contain('### How to read this');
  });

  it('every table row has as many cells as its head', () => {
    const all = tables(md);
    expect(all.length).to.be.greaterThan(8);
    for (const t of all) for (const line of t) expect(pipes(line), line).to.equal(pipes(t[0]!));
  });

  it('a run without overload steps or a drop says so instead of empty tables', () => {
    const small = qualityMarkdown(runWith([step(0.4), step(0.7)]), { runFile: 'r.json', plots: {} });
    expect(small).to.contain('No overload steps in this run.');
    expect(small).to.contain('The capacity-drop variant was not run.');
    expect(small).not.to.contain('### Plots');
    expect(small).not.to.contain(POLICY_LABELS.round_robin);
  });
});

describe('bench quality: the Markdown section of a repeated run with scenarios (issue 18)', () => {
  const run = repeatedRun();
  const md = qualityMarkdown(run, {
    runFile: 'bench-results/quality-v2.json',
    plots: { scenarios: 'docs/bench/quality-scenarios.svg' },
  });

  it('says how the runs were repeated and interleaved, and that the figures are medians', () => {
    expect(md).to.contain('ran 3 times');
    expect(md).to.contain('the policies interleaved');
    expect(md).to.contain('**median**');
  });

  it('the headline: median, range and each repetition; the first miss per repetition', () => {
    expect(md).to.match(
      /^\| sipweigh \| 0\.90 \| 157\.5 \| rep 1: 95 %: failed 3\.00 % ≥ 1 %; rep 2: 130 %: .*\| 0\.85–0\.95 \| 0\.90, 0\.95, 0\.85 \|$/m,
    );
  });

  it('the policy-by-pool table: medians with ranges, and the policies not run on the unknown pool said so', () => {
    expect(md).to.contain('### Adaptivity: the same pool under wrong or changing capacities');
    expect(md).to.match(/^\| sipweigh \| 0\.90 \(0\.85–0\.95\) \| 0\.88 \(0\.85–0\.90\) \|$/m);
    expect(md).to.match(/^\| equal static weights \(alg 11\) \| 0\.00 \| 0\.00 \(its known-pool lab\) \|$/m);
    expect(md).to.match(
      /^\| capacity-proportional static weights \(alg 11\) \| not run \| 0\.00 \(equal static's known-pool lab\) \|$/m,
    );
    expect(md).to.contain('| 58.33 / 58.33 / 58.33 |');
    expect(md).to.contain('not run again: static_equal');
    expect(md).to.contain('#### unknown capacities (every backend configured equal): sipweigh');
  });

  it('step tables as medians: carried k of n, ranges beside the medians', () => {
    expect(md).to.match(/^\| 90 % \| 157\.5 \| 3150 \| 157\.5 \| 0 \(0–3\.0\) \|.*\| 2 of 3 \|$/m);
  });

  it('the 130 % test and the drop medians with the recovery', () => {
    expect(md).to.match(/^\| sipweigh \| 130 % \| 0\.90 \(0\.86–0\.91\) \| 0 \(0–10\) \| \*\*yes\*\* \|$/m);
    expect(md).to.contain('and comes back 40 s into it');
    expect(md).to.match(
      /^\| sipweigh \| 3 \| 5\.0 s \(4\.0–6\.0 s\) \| 5\.0 s \(3\.0–5\.0 s\), 1 of 3 never \| 0 \| 0\.50 \(0\.20–0\.70\) \| 0 \|$/m,
    );
    expect(md).to.match(/^\| Kamailio adaptive .* \| 3 \| never \(2 of 3\) \|/m);
    expect(md).to.match(/^\| sipweigh \(rep 2\) \| be3 \|.*\| 5\.0 s \| 0\.70 \| 0 \|$/m);
    expect(md).to.contain('](docs/bench/quality-scenarios.svg)');
  });

  it('every table row has as many cells as its head', () => {
    const all = tables(md);
    expect(all.length).to.be.greaterThan(10);
    for (const t of all) for (const line of t) expect(pipes(line), line).to.equal(pipes(t[0]!));
  });

  it('the terminal summary has each pool, the ranges and the drop medians', () => {
    const s = formatSummary(run);
    expect(s).to.match(/capacity fraction, known capacities .*median of 3/);
    expect(s).to.match(/^ {2}sipweigh\s+0\.90 \(0\.85–0\.95\)/m);
    expect(s).to.match(/capacity fraction, unknown capacities/);
    expect(s).to.match(
      /^ {2}sipweigh\s+at 130 %: goodput 0\.90 \(0\.86–0\.91\) of capacity, admitted calls failed 0 \(0–10\)/m,
    );
    expect(s).to.match(/^ {2}sipweigh\s+5\.0 s \(4\.0–6\.0 s\) back 5\.0 s/m);
  });

  it('a stored repeated run reads back field by field', () => {
    const back = parseQualityRun(JSON.stringify(run), 'v2.json');
    expect(back.scenarios).to.have.length(2);
    const bad = JSON.parse(JSON.stringify(run)) as Record<string, unknown> & {
      steps: Record<string, unknown>[];
    };
    bad.steps[0]!.scenario = 'optimistic';
    expect(() => checkQualityRun(bad, 'v2.json')).to.throw(
      /v2\.json\.steps\[0\]\.scenario: expected one of known/,
    );
  });
});

describe('bench quality: the settle phase in the report', () => {
  const settle = (
    policy: SettleResult['policy'],
    scenario: SettleResult['scenario'],
    rep: number,
    failed_pct: number,
    p99_ms: number | null,
  ): SettleResult => ({
    policy,
    scenario,
    rep,
    load_fraction: 0.6,
    offered_cps: 105,
    duration_s: 19.99,
    calls: 2100,
    failed: Math.round((failed_pct / 100) * 2100),
    refused_503: 0,
    failed_pct,
    p99_ms,
    shares: { be1: 0.14, be2: 0.29, be3: 0.57 },
    drain_s: 1.2,
  });
  const run: QualityRun = {
    ...repeatedRun(),
    settle: [
      settle('sipweigh', 'known', 1, 0, 40),
      settle('kamailio_cc', 'known', 1, 0.1, 60),
      settle('sipweigh', 'unknown', 1, 4.2, 1500),
      settle('kamailio_cc', 'unknown', 1, 9.6, 3400),
      settle('sipweigh', 'known', 2, 0, 50),
      settle('kamailio_cc', 'known', 2, 0.3, 70),
      settle('sipweigh', 'unknown', 2, 1.8, 616),
      settle('kamailio_cc', 'unknown', 2, 13.1, null),
    ],
  };
  const md = qualityMarkdown(run, { runFile: 'r.json', plots: {} });

  it('a short table, per pool and policy: median and range of failed % and p99, and why it exists', () => {
    const at = md.indexOf('### Settle phase (not scored)');
    expect(at).to.be.greaterThan(0);
    expect(at).to.be.below(md.indexOf('### Steps per policy'));
    expect(md).to.contain("60 % of the pool's real capacity for 20 s");
    expect(md).to.contain('instead of having it scored as its first step');
    // The drain waits, stored per ladder (all 1.2 s in this fixture).
    expect(md).to.contain(
      "waited for the backends' backlog to clear (no new dialog for a second) before the first step (a backend it could not read was not waited on): 1.2–1.2 s",
    );
    expect(md).to.match(/^\| known capacities \| sipweigh \| 2 \| 105\.0 \| 0 \| 45 \(40–50\) \|$/m);
    expect(md).to.match(
      /^\| unknown capacities \(every backend configured equal\) \| sipweigh \| 2 \| 105\.0 \| 3\.0 \(1\.8–4\.2\) \| 1058 \(616–1500\) \|$/m,
    );
    // A run where no call succeeded has no p99: the median is of the other run.
    expect(md).to.match(
      /^\| unknown .* \| Kamailio adaptive .* \| 2 \| 105\.0 \| 11\.3 \(9\.6–13\.1\) \| 3400 \|$/m,
    );
    const t = tables(md).find((x) => x[0]!.startsWith('| pool | policy | runs |'))!;
    expect(t).to.have.length(2 + 4);
    for (const line of t) expect(pipes(line), line).to.equal(pipes(t[0]!));
  });

  it('the terminal: a line per settle phase as the run goes, and the medians in the summary', () => {
    expect(formatSettleLine(run.settle![2]!)).to.match(
      /^sipweigh\s+settle 60 % \(105\.0 calls\/s, 20 s\): 2100 calls, failed 4\.2 %, 503 0 %, p99 1500 ms {2}\(not scored\)$/,
    );
    expect(formatSummary(run)).to.match(
      /^ {2}unknown\s+sipweigh\s+failed 3\.0 \(1\.8–4\.2\) %, p99 1058 \(616–1500\) ms$/m,
    );
  });

  it('the last line gains settle medians per pool and policy; the other keys stay as they were', () => {
    const s = JSON.parse(JSON.stringify(qualitySummary(run, 'r.json'))) as Record<string, unknown>;
    expect(s.settle).to.deep.equal({
      known: {
        kamailio_cc: { failed_pct: 0.2, p99_ms: 65 },
        sipweigh: { failed_pct: 0, p99_ms: 45 },
      },
      unknown: {
        kamailio_cc: { failed_pct: 11.35, p99_ms: 3400 },
        sipweigh: { failed_pct: 3, p99_ms: 1058 },
      },
    });
    const before = JSON.parse(JSON.stringify(qualitySummary(repeatedRun(), 'r.json'))) as Record<
      string,
      unknown
    >;
    expect(Object.keys(s).filter((k) => k !== 'settle')).to.deep.equal(Object.keys(before));
    for (const k of Object.keys(before)) expect(s[k], k).to.deep.equal(before[k]);
  });

  it('a run with the phase off says so; a stored settle entry is checked field by field', () => {
    const off = qualityMarkdown({ ...repeatedRun(), settle: [] }, { runFile: 'r.json', plots: {} });
    expect(off).to.contain('### Settle phase (not scored)');
    expect(off).to.contain('No settle phase in this run (`--settle 0`)');
    expect(qualitySummary({ ...repeatedRun(), settle: [] }, 'r.json').settle).to.deep.equal({});
    // With the settings stored: off says off; on without any result says that instead.
    const offStored = { ...repeatedRun(), settle: [], settle_options: { fraction: 0.7, seconds: 0 } };
    expect(qualityMarkdown(offStored, { runFile: 'r.json', plots: {} })).to.contain(
      'No settle phase in this run',
    );
    const lost = qualityMarkdown(
      { ...repeatedRun(), settle: [], settle_options: { fraction: 0.7, seconds: 20 } },
      { runFile: 'r.json', plots: {} },
    );
    expect(lost).to.contain("The settle phase was on (70 % for 20 s) but no ladder's lab produced a result.");
    expect(lost).not.to.contain('No settle phase');
    expect(
      qualityMarkdown(
        { ...run, settle_options: { fraction: 0.7, seconds: 20 } },
        { runFile: 'r.json', plots: {} },
      ),
    ).to.contain("70 % of the pool's real capacity for 20 s");
    expect(() =>
      checkQualityRun({ ...offStored, settle_options: { fraction: '70 %', seconds: 0 } }, 'o.json'),
    ).to.throw(/o\.json\.settle_options\.fraction/);
    expect(parseQualityRun(JSON.stringify(run), 'v2.json').settle).to.have.length(8);
    const bad = JSON.parse(JSON.stringify(run)) as { settle: Record<string, unknown>[] };
    bad.settle[3]!.p99_ms = '3.4 s';
    expect(() => checkQualityRun(bad, 'v2.json')).to.throw(
      'v2.json.settle[3].p99_ms: expected a number, got "3.4 s"',
    );
    delete bad.settle[3]!.p99_ms;
    bad.settle[1]!.scenario = 'optimistic';
    expect(() => checkQualityRun(bad, 'v2.json')).to.throw(/v2\.json\.settle\[1\]\.scenario/);
  });

  it('a run file from before the settle phase re-reports: no settle section, no settle key', async () => {
    expect(JSON.parse(FIXTURE_TEXT)).not.to.have.property('settle');
    const dir = await mkdtemp(join(tmpdir(), 'sipweigh-bench-settle-'));
    try {
      const file = join(dir, 'old.json');
      await writeFile(file, FIXTURE_TEXT);
      const opts = { benchmarksMd: join(dir, 'BENCHMARKS.md'), plotDir: join(dir, 'plots') };
      const r = await reportStoredRun(file, opts);
      const last = JSON.parse(r.lastLine) as Record<string, unknown>;
      expect(last).not.to.have.property('settle');
      expect(last).to.include({ bench: 'quality', run_file: file });
      const written = await readFile(opts.benchmarksMd, 'utf8');
      expect(written).to.contain('### Steps per policy');
      expect(written).not.to.contain('Settle phase');
      expect(r.summary).not.to.contain('settle phase');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }).timeout(60000);
});

describe('bench quality: where sipweigh learned its capacities, in the report', () => {
  const learning = { ...repeatedRun(), sipweigh_learns_on: ['unknown', 'drop'] as const };

  it('says where before any figure, marks the pool table, and adds the list to the last line', () => {
    const md = qualityMarkdown(learning, { runFile: 'r.json', plots: {} });
    expect(md).to.contain(
      "sipweigh ran with `scoring.capacity.learn: true` (each backend's capacity learned, the configured one its prior) on the unknown capacities (every backend configured equal) ladder, the capacity drop;",
    );
    expect(md.indexOf('scoring.capacity.learn: true')).to.be.below(md.indexOf('### Headline'));
    expect(md).to.match(/\| unknown capacities \(every backend configured equal\) \|[^\n]*\| learned \|/);
    expect(md).to.match(/\| known capacities \|[^\n]*\| as configured \|/);
    expect(qualitySummary(learning, 'r.json').sipweigh_learns_on).to.deep.equal(['unknown', 'drop']);
    expect(formatSummary(learning)).to.contain('median of 3; sipweigh learning capacities):');
    expect(formatSummary(learning)).to.contain('medians; sipweigh learning capacities):');
  });

  it('learning on the known pool alone is not called the setting for unmeasured capacities', () => {
    const md = qualityMarkdown(
      { ...repeatedRun(), sipweigh_learns_on: ['known'] },
      { runFile: 'r.json', plots: {} },
    );
    expect(md).to.contain('on the known capacities ladder; elsewhere with the default');
    expect(md).not.to.contain('where nobody measured the capacities');
    const everywhere = qualityMarkdown(
      { ...repeatedRun(), sipweigh_learns_on: ['known', 'unknown', 'drop'] },
      { runFile: 'r.json', plots: {} },
    );
    expect(everywhere).not.to.contain('where nobody measured the capacities');
  });

  it('a run from before the option learned nowhere and says nothing; a bad entry is refused by field', () => {
    const old = repeatedRun();
    expect(old.sipweigh_learns_on).to.equal(undefined);
    expect(qualityMarkdown(old, { runFile: 'r.json', plots: {} })).not.to.contain('scoring.capacity.learn');
    expect(qualitySummary(old, 'r.json').sipweigh_learns_on).to.deep.equal([]);
    expect(checkQualityRun(JSON.parse(JSON.stringify(learning)), 'l.json').sipweigh_learns_on).to.deep.equal([
      'unknown',
      'drop',
    ]);
    expect(() => checkQualityRun({ ...learning, sipweigh_learns_on: ['overload'] }, 'l.json')).to.throw(
      /l\.json\.sipweigh_learns_on\[0\]: expected one of known, unknown, slow, drop/,
    );
  });
});

describe('bench quality: the drop runs weights read every 200 ms', () => {
  it('says which sampling the follow times come from, and stores the samples checked by field', () => {
    const old = repeatedRun();
    expect(qualityMarkdown(old, { runFile: 'r.json', plots: {} })).to.contain('once a second (so 2 s is');
    const fine = {
      ...old,
      capacity_drop: old.capacity_drop.map((d) => ({
        ...d,
        dropped_at_s: 20.01,
        weight_samples: [{ t_s: 20.2, weights: { be1: 25, be2: 50, be3: 100 } }],
      })),
    };
    expect(qualityMarkdown(fine, { runFile: 'r.json', plots: {} })).to.contain('every 200 ms');
    const back = checkQualityRun(JSON.parse(JSON.stringify(fine)), 'f.json');
    expect(back.capacity_drop[0]!.weight_samples).to.have.length(1);
    const bad = JSON.parse(JSON.stringify(fine)) as { capacity_drop: { weight_samples: unknown[] }[] };
    bad.capacity_drop[0]!.weight_samples = [{ t_s: '20 s', weights: {} }];
    expect(() => checkQualityRun(bad, 'f.json')).to.throw(
      /f\.json\.capacity_drop\[0\]\.weight_samples\[0\]\.t_s/,
    );
  });
});

describe("bench quality: where a run's figures go", () => {
  it("a quick run to its own section and plots, a full run to the full run's, whatever re-reports it", () => {
    expect(publishTarget(true, '/p')).to.deep.equal({
      sectionId: 'quality-quick',
      plotDir: '/p/docs/bench/quick',
    });
    expect(publishTarget(false, '/p')).to.deep.equal({ sectionId: 'quality', plotDir: '/p/docs/bench' });
  });
});

describe('bench quality: a run of the drop only (--no-ladders)', () => {
  const dropOnly = { ...repeatedRun(), steps: [], settle: [], scenarios: [] };

  it('says there was no ladder instead of empty tables and goals not judged, and keeps the drop', () => {
    const md = qualityMarkdown(dropOnly, { runFile: 'r.json', plots: {} });
    expect(md).to.contain('No ladder in this run (`--no-ladders`): the capacity-drop runs only.');
    expect(md).to.contain('Every drop run ran 3 times');
    expect(md).not.to.contain('### Headline');
    expect(md).not.to.contain('not judged');
    expect(md).to.contain('### Capacity drop');
    expect(formatSummary(dropOnly)).not.to.contain('against the goals');
    expect(formatSummary(dropOnly)).to.contain('capacity drop (weights follow within');
    expect(qualitySummary(dropOnly, 'r.json').drop).to.have.property('sipweigh_follow_s');
  });

  it('a run whose ladders all failed to start is not taken for one (its pools are listed)', () => {
    const md = qualityMarkdown({ ...repeatedRun(), steps: [] }, { runFile: 'r.json', plots: {} });
    expect(md).to.contain('### Headline');
  });
});

describe('bench quality: BENCHMARKS.md sections', () => {
  const other = '<!-- bench:failover:begin -->\nfailover table\n<!-- bench:failover:end -->';

  it('creates the file, appends to one without the section, replaces only between its markers', () => {
    const created = replaceSection(null, 'quality', 'Q1');
    expect(created).to.equal(
      '# Benchmarks\n\n<!-- bench:quality:begin -->\nQ1\n<!-- bench:quality:end -->\n',
    );
    const appended = replaceSection(`# Benchmarks\n\n${other}\n`, 'quality', 'Q1\n\n');
    expect(appended).to.equal(
      `# Benchmarks\n\n${other}\n\n<!-- bench:quality:begin -->\nQ1\n<!-- bench:quality:end -->\n`,
    );
    const before = `intro\n<!-- bench:quality:begin -->\nold\n<!-- bench:quality:end -->\n\n${other}\ntrailer`;
    expect(replaceSection(before, 'quality', 'new')).to.equal(
      `intro\n<!-- bench:quality:begin -->\nnew\n<!-- bench:quality:end -->\n\n${other}\ntrailer`,
    );
  });

  it('is idempotent', () => {
    const once = replaceSection(`x\n${other}\n`, 'quality', 'Q');
    expect(replaceSection(once, 'quality', 'Q')).to.equal(once);
  });

  it('refuses broken markers, markers inside the text, and odd section ids', () => {
    const begin = '<!-- bench:quality:begin -->';
    const end = '<!-- bench:quality:end -->';
    expect(() => replaceSection(`${begin}\nhalf`, 'quality', 'Q')).to.throw(/1 begin, 0 end/);
    expect(() => replaceSection(`${end}\n${begin}`, 'quality', 'Q')).to.throw(/end before begin/);
    expect(() => replaceSection(`${begin}${end}${begin}${end}`, 'quality', 'Q')).to.throw(/2 begin, 2 end/);
    expect(() => replaceSection('', 'quality', `a ${end}`)).to.throw(/contains its markers/);
    expect(() => replaceSection('', 'Quality -->', 'Q')).to.throw(/section id/);
  });

  it('writes the file atomically, keeps the other sections, and rewrites to the same bytes', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sipweigh-bench-md-'));
    try {
      const file = join(dir, 'BENCHMARKS.md');
      await writeBenchmarksSection(file, 'quality', 'first');
      expect(await readFile(file, 'utf8')).to.contain('first');
      await writeFile(file, `${await readFile(file, 'utf8')}\n${other}\n`);
      await writeBenchmarksSection(file, 'quality', 'second');
      const text = await readFile(file, 'utf8');
      expect(text).to.contain('second');
      expect(text).not.to.contain('first');
      expect(text).to.contain(other);
      await writeBenchmarksSection(file, 'quality', 'second');
      expect(await readFile(file, 'utf8')).to.equal(text);
      expect(await readdir(dir)).to.deep.equal(['BENCHMARKS.md']);
      await writeFile(file, '<!-- bench:quality:begin -->\nbroken');
      await writeBenchmarksSection(file, 'quality', 'third').then(
        () => expect.fail('a broken file was overwritten'),
        (e: Error) => expect(e.message).to.match(/markers are broken/),
      );
      expect(await readFile(file, 'utf8')).to.equal('<!-- bench:quality:begin -->\nbroken');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('bench quality: stored runs', () => {
  it('the fixture reads back', () => {
    const run = parseQualityRun(FIXTURE_TEXT, 'fixture.json');
    expect(run.steps).to.have.length(40);
    expect(run.capacity_drop).to.have.length(3);
  });

  it('a bad file gets an error naming the field', () => {
    expect(() => parseQualityRun('{"bench":', 'f.json')).to.throw(/^f\.json: not JSON/);
    const edit = (f: (r: Record<string, unknown>) => void) => {
      const r = JSON.parse(FIXTURE_TEXT) as Record<string, unknown>;
      f(r);
      return () => checkQualityRun(r, 'f.json');
    };
    type Rec = Record<string, unknown>;
    expect(
      edit((r) => {
        ((r.steps as Rec[])[2]!.setup_ms as Rec).p99 = 'slow';
      }),
    ).to.throw('f.json.steps[2].setup_ms.p99: expected a number, got "slow"');
    expect(
      edit((r) => {
        (r.steps as Rec[])[0]!.policy = 'least_work_left';
      }),
    ).to.throw(/steps\[0\]\.policy: expected one of round_robin/);
    expect(
      edit((r) => {
        r.version = 3;
      }),
    ).to.throw(/f\.json\.version/);
    expect(
      edit((r) => {
        delete ((r.capacity_drop as Rec[])[1]!.timeline as Rec[])[3]!.weights;
      }),
    ).to.throw('f.json.capacity_drop[1].timeline[3].weights: expected an object, got nothing');
    expect(
      edit((r) => {
        (r.capacity_drop as Rec[])[2]!.settled_share = '38 %';
      }),
    ).to.throw('f.json.capacity_drop[2].settled_share: expected a number, got "38 %"');
    expect(
      edit((r) => {
        (r.pool as Rec).capacities_cps = [25, 50];
      }),
    ).to.throw(/3 backends but 2 capacities/);
  });
});

describe('bench quality: publishing a run', function () {
  this.timeout(60000);

  it('writes the plots and the section, returns the last line; re-reporting the stored run gives the same bytes', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sipweigh-bench-report-'));
    try {
      const runFile = join(dir, 'bench-results', 'quality-x.json');
      const opts = { benchmarksMd: join(dir, 'BENCHMARKS.md'), plotDir: join(dir, 'docs', 'bench') };
      await writeFile(join(dir, 'run.json'), FIXTURE_TEXT);
      const r = await reportQualityRun(fixtureRun(), { ...opts, runFile });
      expect(JSON.parse(r.lastLine)).to.include({ bench: 'quality', run_file: runFile });
      expect(r.files.map((f) => f.slice(dir.length + 1))).to.deep.equal([
        'docs/bench/quality-latency.svg',
        'docs/bench/quality-goodput.svg',
        'docs/bench/quality-drop-weights.svg',
        'docs/bench/quality-scenarios.svg',
        'BENCHMARKS.md',
      ]);
      const md = await readFile(opts.benchmarksMd, 'utf8');
      expect(md).to.contain('](docs/bench/quality-goodput.svg)');
      expect(md).to.contain('`bench-results/quality-x.json`');
      const svgBefore = await readFile(join(opts.plotDir, 'quality-latency.svg'), 'utf8');

      const again = await reportStoredRun(join(dir, 'run.json'), { ...opts });
      expect(JSON.parse(again.lastLine).capacity_fraction).to.deep.equal(
        JSON.parse(r.lastLine).capacity_fraction,
      );
      expect(await readFile(join(opts.plotDir, 'quality-latency.svg'), 'utf8')).to.equal(svgBefore);
      // The same bytes but for the run-file link (the stored copy is another file).
      const md2 = await readFile(opts.benchmarksMd, 'utf8');
      expect(md2.replace(/run\.json/g, 'bench-results/quality-x.json')).to.equal(md);
      expect(r.summary).to.contain('capacity fraction');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a broken run is refused before anything is written', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sipweigh-bench-report-'));
    try {
      const bad = { ...fixtureRun(), criteria: { max_failed_pct: 1, max_p99_ms: -1 } };
      await reportQualityRun(bad, {
        runFile: join(dir, 'r.json'),
        benchmarksMd: join(dir, 'BENCHMARKS.md'),
        plotDir: join(dir, 'plots'),
      }).then(
        () => expect.fail('accepted'),
        (e: Error) => expect(e.message).to.contain('criteria.max_p99_ms'),
      );
      expect(await readdir(dir)).to.deep.equal([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
