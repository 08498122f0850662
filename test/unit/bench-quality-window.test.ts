/**
 * The quality bench's measurement of a step from sipp's own trace files (rows as sipp 3.6 writes
 * them with -fd 1), and the capacity-drop follow time.
 */
import { expect } from 'chai';
import { parseSippRows, parseSippRtt } from '../../src/lab/sipp.js';
import { followBackTime, followTime, weightShare } from '../../scripts/bench/quality/quality.js';
import {
  elapsedSeconds,
  failedPct,
  measureWindow,
  percentile,
  perSecond,
  settleResult,
  backlogCleared,
  dialogShares,
  windowSeconds,
} from '../../scripts/bench/quality/window.js';

const counts = (rows: [string, number, number, number][]) =>
  [
    'CurrentTime;ElapsedTime;0_INVITE_Sent;3_503_Recv;4_200_Recv;',
    ...rows.map(
      ([t, inv, r503, ok]) => `2026-11-25\t04:31:03.119361\t1795581063.119361;${t};${inv};${r503};${ok};`,
    ),
  ].join('\n');

describe('quality bench: a step measured from sipp trace files', function () {
  // Rows as sipp 3.6.1 writes them: a few ms later every second. 100 calls/s for 4 s.
  const traces = {
    counts: parseSippRows(
      counts([
        ['00:00:00:005000', 0, 0, 0],
        ['00:00:01:008000', 100, 0, 99],
        ['00:00:02:011000', 200, 0, 198],
        ['00:00:03:016000', 300, 5, 290],
        ['00:00:04:021000', 400, 10, 380],
        ['00:00:09:021000', 400, 10, 385],
      ]),
    ),
    // at = when the 200 came, ms = INVITE->200: the call started at at - ms.
    rtt: parseSippRtt(
      [
        'Date_ms;response_time_ms;rtd_no',
        '500.0;10;1', // started 0.49 s: warm-up
        '1200.0;400;1', // started 0.8 s, answered in the window: still a warm-up call
        '1500.0;20;1',
        '2500.0;30;1',
        '3500.0;40;1',
        '3600.0;5;2', // another response time of the scenario: not a setup
      ].join('\n'),
    ),
  };

  it('parses both elapsed-time formats', function () {
    expect(elapsedSeconds('00:00:07')).to.equal(7);
    expect(elapsedSeconds('00:01:02:500000')).to.equal(62.5);
    expect(elapsedSeconds('garbage')).to.be.NaN;
  });

  it('opens the window at the first row written after the warm-up, not a second early', function () {
    expect(measureWindow(traces, 1).fromS).to.be.closeTo(1.008, 1e-9);
    expect(measureWindow(traces, 2).fromS).to.be.closeTo(2.011, 1e-9);
  });

  it('judges the calls started in the window by their own fate: answered ones from the per-call trace', function () {
    const w = measureWindow(traces, 1);
    expect(w.calls).to.equal(300);
    // Three 200s belong to calls started after 1.008 s; the other 297 calls were not answered.
    expect(w.ok).to.equal(3);
    expect(w.failed).to.equal(297);
    expect(w.refused_503).to.equal(10);
  });

  it('goodput counts the 200s received inside the window, whichever call they answer', function () {
    // 200s at 1.2, 1.5 and 2.5 s fall in [1.008, 3); the one at 3.5 s came after sending ended.
    expect(measureWindow(traces, 1, 3).answered_in_window).to.equal(3);
    expect(measureWindow(traces, 1).answered_in_window).to.equal(4);
  });

  it('takes setup percentiles from the INVITE->200 times (rtd 1) of those calls only', function () {
    expect(measureWindow(traces, 1).setup_ms).to.deep.equal({ p50: 30, p95: 40, p99: 40, max: 40 });
    expect(measureWindow({ ...traces, rtt: [] }, 1).setup_ms).to.equal(null);
  });

  it('a settle phase is the whole run, from its first row, each call by its own fate', function () {
    const w = measureWindow(traces, 0, 4);
    expect(w.fromS).to.be.closeTo(0.005, 1e-9);
    const s = settleResult(
      { policy: 'sipweigh', scenario: 'unknown', rep: 2, load_fraction: 0.6, offered_cps: 100 },
      w,
      4,
      { shares: { be1: 0.2, be2: 0.3, be3: 0.5 }, drain_s: 2.1 },
    );
    // 400 calls, the five 200s of setup (rtd 1) all answered: 395 failed, 10 of them refused.
    expect(s).to.deep.equal({
      policy: 'sipweigh',
      scenario: 'unknown',
      rep: 2,
      load_fraction: 0.6,
      offered_cps: 100,
      duration_s: 4,
      calls: 400,
      failed: 395,
      refused_503: 10,
      failed_pct: 98.75,
      p99_ms: 400,
      shares: { be1: 0.2, be2: 0.3, be3: 0.5 },
      drain_s: 2.1,
    });
    expect(settleResult({ ...s }, measureWindow({ counts: [], rtt: [] }, 0, 4), 4, s)).to.include({
      calls: 0,
      failed_pct: 0,
      p99_ms: null,
    });
    expect(windowSeconds({ fromS: 3.5 }, 4)).to.equal(1);
    expect(failedPct({ calls: 3, failed: 1 })).to.equal(33.333);
  });

  it('after a settle phase the backlog has cleared when no readable backend set up a new dialog', function () {
    expect(backlogCleared([10, 20, 30], [10, 20, 30])).to.equal(true);
    expect(backlogCleared([10, 20, 30], [11, 20, 30])).to.equal(false);
    // A backend that could not be read (NaN) in either read is not waited on; the others decide.
    expect(backlogCleared([10, Number.NaN, 30], [10, 25, 30])).to.equal(true);
    expect(backlogCleared([10, 20, 30], [10, Number.NaN, 31])).to.equal(false);
    expect(backlogCleared([Number.NaN, Number.NaN], [Number.NaN, Number.NaN])).to.equal(true);
  });

  it('shares of the dialogs set up: an unreadable backend is left out, never written as NaN', function () {
    const ids = ['be1', 'be2', 'be3'];
    expect(dialogShares(ids, [0, 10, 20], [10, 40, 80])).to.deep.equal({ be1: 0.1, be2: 0.3, be3: 0.6 });
    const one = dialogShares(ids, [0, 10, 20], [10, Number.NaN, 50]);
    expect(one).to.deep.equal({ be1: 0.25, be3: 0.75 });
    expect(JSON.parse(JSON.stringify(one))).to.deep.equal(one);
    expect(dialogShares(ids, [Number.NaN, 0, 0], [5, 0, 0])).to.deep.equal({ be2: 0, be3: 0 });
  });

  it('an empty trace (sipp died at once) gives no calls, not a negative count', function () {
    const w = measureWindow({ counts: [], rtt: [] }, 1);
    expect(w).to.include({ calls: 0, ok: 0, failed: 0, refused_503: 0 });
  });

  it('nearest-rank percentiles', function () {
    const v = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(v, 50)).to.equal(50);
    expect(percentile(v, 99)).to.equal(99);
    expect(percentile([7], 99)).to.equal(7);
  });

  it('per second: the calls started in each second, answered or not, with their p99', function () {
    const s = perSecond(traces);
    expect(s.map((x) => x.second)).to.deep.equal([0, 1, 2, 3, 4, 9]);
    // Second 1 (0..1 s): 100 started, two answered (started at 0.49 and 0.8 s).
    expect(s[1]).to.include({ ok: 2, failed: 98, p99_ms: 400 });
    expect(s[5]).to.include({ ok: 0, failed: 0, p99_ms: null });
  });

  it('per second: a call started just after a whole second still belongs to the row written after it', function () {
    // The row at 1.008 s covers calls started up to 1.008 s; one started at 1.004 s is among them.
    const drift = { counts: traces.counts, rtt: parseSippRtt('1014.0;10;1') };
    expect(perSecond(drift)[1]).to.include({ ok: 1, failed: 99 });
  });
});

describe('quality bench: how fast the weights follow a capacity drop', function () {
  const sample = (t_s: number, be3: number) => ({
    t_s,
    weights: { be1: 25, be2: 50, be3 },
    shares: {},
    success_cps: 0,
    failed: 0,
    p99_ms: null,
  });
  const timeline = [
    sample(19, 100),
    sample(20, 100),
    sample(21, 100),
    sample(22, 60),
    sample(23, 40),
    sample(24, 100),
  ];

  it('is the first sample after the drop whose share moved down to the target or below', function () {
    expect(weightShare(sample(0, 75), 'be3')).to.equal(0.5);
    // be3 share 60/135 = 0.44 at 22 s, 2 s after the drop at 20 s.
    expect(followTime(timeline, 'be3', 20, 0.45)).to.equal(2);
    expect(followTime(timeline, 'be3', 20, 0.35)).to.equal(3); // 40/115 = 0.348
    expect(followTime(timeline, 'be3', 20, 0.1)).to.equal(null);
    // Weights that never move follow nothing, even below the target.
    const still = [sample(19, 30), sample(21, 30), sample(22, 30)];
    expect(followTime(still, 'be3', 20, 0.45)).to.equal(null);
  });

  it('back: the first sample after the recovery whose share moved up to the target or above', function () {
    // Down to 40 at 30 s, recovery at 40 s; be3's fair share with 100 of 175 is 0.571, 90 % of it 0.514.
    const back = [
      sample(38, 40),
      sample(39, 40),
      sample(40, 40),
      sample(41, 60),
      sample(42, 90),
      sample(43, 100),
    ];
    expect(followBackTime(back, 'be3', 40, 0.514)).to.equal(2); // 90/165 = 0.545
    expect(followBackTime(back, 'be3', 40, 0.57)).to.equal(3); // 100/175
    expect(followBackTime(back, 'be3', 40, 0.6)).to.equal(null);
    // Weights that never went down cannot come back, even when above the target (a static list).
    const still = [sample(39, 100), sample(41, 100), sample(42, 100)];
    expect(followBackTime(still, 'be3', 40, 0.5)).to.equal(null);
  });
});
