import { expect } from 'chai';
import { parseClusterOptions } from '../../scripts/bench/cluster/options.js';
import { clusterMarkdown } from '../../scripts/bench/cluster/report.js';
import {
  admittedFailed,
  cancelFigures,
  forkFigures,
  formatRepLine,
  formatSummary,
  lagFigures,
  meanSplitError,
  serverCalls,
  splitErrorPct,
  summarize,
  summaryJson,
  withinSplit,
  type RepResult,
  type SummaryContext,
} from '../../scripts/bench/cluster/summary.js';

const request = (method: string, callId: string) =>
  [
    `${method} sip:x@127.61.1.11:5060 SIP/2.0`,
    'Via: SIP/2.0/UDP 127.61.0.11',
    `Call-ID: ${callId}`,
    `CSeq: 1 ${method}`,
  ].join('\r\n');

function rep(over: Partial<RepResult>): RepResult {
  return {
    rep: 1,
    cancel: { calls: 50, misrouted: 0, sent: 50, client_failed: 0 },
    rtx: { calls: 50, forked: 0, sent: 50, retransmissions: 120, client_failed: 0 },
    lag: lagFigures([1, 2, 3], 3, [0.5, 0.6]),
    split: {
      pool_limit_cps: 46,
      split_follow_s: 3.2,
      readings: [{ lb1: 36.8, lb2: 9.2 }],
      admission_split_error_pct: 0,
      move_follow_s: 4.1,
      after_move: { lb1: 2.3, lb2: 43.7 },
    },
    overload: {
      capacity_cps: 50,
      offered_cps: 65,
      goodput_fraction: 0.91,
      admitted_failed: 0,
      calls: 1300,
      refused_503: 380,
      window_s: 15,
    },
    errors: [],
    ...over,
  };
}

const context: SummaryContext = {
  quick: true,
  repetitions: 3,
  failed_repetitions: 0,
  calls: 50,
  lag_writes: 200,
  capacities_cps: [25, 25],
  overload_load: 1.3,
  overload_s: 20,
  seconds: 200.04,
};

describe('bench cluster: options and figures', () => {
  it('takes the quick and full defaults, and names the option a bad value belongs to', () => {
    expect(parseClusterOptions(['--quick'])).to.include({
      quick: true,
      repetitions: 1,
      calls: 50,
      lagWrites: 200,
      overloadS: 20,
      overloadLoad: 1.3,
      net: 61,
      write: true,
    });
    const full = parseClusterOptions([]);
    expect(full).to.include({ quick: false, repetitions: 3, calls: 200, lagWrites: 500, overloadS: 30 });
    expect(full.capacities).to.deep.equal([25, 25]);
    const o = parseClusterOptions([
      '--quick',
      '--repetitions',
      '2',
      '--calls',
      '10',
      '--capacity',
      '30,40',
      '--no-write',
    ]);
    expect(o).to.include({ repetitions: 2, calls: 10, write: false });
    expect(o.capacities).to.deep.equal([30, 40]);
    expect(() => parseClusterOptions(['--repetitions', '0'])).to.throw(/repetitions/);
    expect(() => parseClusterOptions(['--lag-writes', '5'])).to.throw(/lag-writes/);
    expect(() => parseClusterOptions(['--bogus'])).to.throw(/bogus/);
  });

  it('reads the Call-IDs of the INVITEs and CANCELs a server received', () => {
    const s = serverCalls([
      request('INVITE', 'a'),
      request('CANCEL', 'a'),
      request('ACK', 'a'),
      request('INVITE', 'b'),
    ]);
    expect(s).to.deep.equal({ invites: ['a', 'b'], cancels: ['a'] });
  });

  it('counts a CANCEL that did not reach the server holding its INVITE as misrouted', () => {
    const f = cancelFigures([
      { invites: ['a', 'b', 'c'], cancels: ['a'] },
      // b's CANCEL went to the other backend; c's never arrived anywhere; d is fine.
      { invites: ['d'], cancels: ['b', 'd'] },
    ]);
    expect(f).to.deep.equal({ calls: 4, misrouted: 2 });
  });

  it('counts a call whose INVITE reached two servers as forked, not one seen twice at the same server', () => {
    const f = forkFigures([
      { invites: ['a', 'b', 'b'], cancels: [] },
      { invites: ['a', 'c'], cancels: [] },
    ]);
    expect(f).to.deep.equal({ calls: 3, forked: 1 });
  });

  it('gives the lag percentiles (nearest rank), the missing entries and the poll resolution', () => {
    const lags = Array.from({ length: 200 }, (_, i) => i + 1);
    const f = lagFigures(lags, 203, [2, 1, 3]);
    expect(f).to.deep.equal({
      writes: 203,
      seen: 200,
      missing: 3,
      p50_ms: 100,
      p99_ms: 198,
      max_ms: 200,
      poll_rtt_p50_ms: 2,
    });
    expect(lagFigures([], 5, [])).to.include({ seen: 0, missing: 5, p50_ms: null, p99_ms: null });
  });

  it('measures the split error against 80 % of the parts sum, and its mean over readings', () => {
    expect(splitErrorPct({ lb1: 36.8, lb2: 9.2 })).to.be.closeTo(0, 1e-9);
    // lb1 holds 70 % of 46: |32.2 - 36.8| / 36.8 = 12.5 %.
    expect(splitErrorPct({ lb1: 32.2, lb2: 13.8 })).to.be.closeTo(12.5, 1e-9);
    expect(splitErrorPct({ lb1: 0, lb2: 0 })).to.equal(null);
    expect(withinSplit({ lb1: 32.2, lb2: 13.8 })).to.equal(false);
    expect(withinSplit({ lb1: 34.5, lb2: 11.5 })).to.equal(true);
    expect(
      meanSplitError([
        { lb1: 36.8, lb2: 9.2 },
        { lb1: 32.2, lb2: 13.8 },
        { lb1: 0, lb2: 0 },
      ]),
    ).to.equal(6.25);
    expect(meanSplitError([])).to.equal(null);
  });

  it('counts as admitted-and-failed every call neither answered nor refused', () => {
    expect(
      admittedFailed([
        { created: 100, successful: 100, refused_503: 30 },
        { created: 50, successful: 47, refused_503: 10 },
      ]),
    ).to.equal(3);
  });

  it('summarizes medians and ranges over the repetitions and writes the last line with the issue keys', () => {
    const reps = [
      rep({ rep: 1 }),
      rep({
        rep: 2,
        cancel: { calls: 50, misrouted: 2, sent: 50, client_failed: 2 },
        lag: lagFigures([4, 5], 2, [1]),
      }),
      rep({ rep: 3, split: null, errors: ['admission lab: no even split'] }),
    ];
    const s = summarize(reps);
    expect(s.cancel_misrouted).to.deep.equal({ median: 0, min: 0, max: 2, n: 3 });
    expect(s.admission_split_error_pct?.n).to.equal(2);
    const line = summaryJson(s, reps, context);
    expect(line).to.include({ cancel_misrouted: 0, retransmission_forked: 0, admission_split_error_pct: 0 });
    expect(line.replication_lag_ms).to.deep.equal({ p50: 2, p99: 3 });
    expect(line.overload_130).to.deep.equal({ goodput_fraction: 0.91, admitted_failed: 0 });
    expect(line.totals).to.include({ cancel_misrouted: 2, cancel_calls: 150, admitted_failed: 0 });
    expect(line.seconds).to.equal(200);
    expect(JSON.parse(JSON.stringify(line))).to.deep.equal(line);
    expect(formatRepLine(reps[2]!)).to.match(/^rep 3: .*split -/);
    const table = formatSummary(s);
    expect(table).to.contain('| DMQ replication lag p99 | 3.00 ms (3.00 ms–5.00 ms) |');
    const md = clusterMarkdown(s, context, {
      started_at: '2026-12-05T10:00:00.000Z',
      command: 'npm run bench -- cluster --quick',
      cpus: 2,
      loadavg_start: 0.5,
      run_file: 'bench-results/cluster-quick-x.json',
    });
    expect(md).to.contain('no CANCEL misrouted: 0 (median): met');
    expect(md).to.contain('[bench-results/cluster-quick-x.json]');
  });
});
