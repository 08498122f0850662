/**
 * The quality bench's measurement of a step from sipp's own trace files (rows as sipp 3.6 writes
 * them with -fd 1), and the capacity-drop follow time.
 */
import { expect } from 'chai';
import { parseSippRows, parseSippRtt } from '../../src/lab/sipp.js';
import { followTime, weightShare } from '../../scripts/bench/quality.js';
import { elapsedSeconds, measureWindow, percentile, perSecond } from '../../scripts/bench/quality-window.js';

const counts = (rows: [string, number, number, number][]) =>
  [
    'CurrentTime;ElapsedTime;0_INVITE_Sent;3_503_Recv;4_200_Recv;',
    ...rows.map(
      ([t, inv, r503, ok]) => `2026-11-25\t04:31:03.119361\t1795581063.119361;${t};${inv};${r503};${ok};`,
    ),
  ].join('\n');
const stats = (rows: [string, number][]) =>
  ['StartTime;ElapsedTime(C);FailedCall(C);', ...rows.map(([t, f]) => `x;${t};${f};`)].join('\n');

describe('quality bench: a step measured from sipp trace files', function () {
  const traces = {
    // 100 calls/s: a row a second, a little late each time, as sipp writes them.
    counts: parseSippRows(
      counts([
        ['00:00:00:002000', 0, 0, 0],
        ['00:00:01:004000', 100, 0, 99],
        ['00:00:02:006000', 200, 0, 198],
        ['00:00:03:008000', 300, 5, 290],
        ['00:00:04:010000', 400, 10, 380],
        ['00:00:09:010000', 400, 10, 385],
      ]),
    ),
    stats: parseSippRows(
      stats([
        ['00:00:00', 0],
        ['00:00:01', 0],
        ['00:00:02', 0],
        ['00:00:03', 0],
        ['00:00:04', 0],
        ['00:00:09', 5],
      ]),
    ),
    rtt: parseSippRtt(
      [
        'Date_ms;response_time_ms;rtd_no',
        '500.0;10;1',
        '1500.0;20;1',
        '2500.0;30;1',
        '3500.0;400;1',
        '3600.0;5;2',
      ].join('\n'),
    ),
  };

  it('parses both elapsed-time formats', function () {
    expect(elapsedSeconds('00:00:07')).to.equal(7);
    expect(elapsedSeconds('00:01:02:500000')).to.equal(62.5);
    expect(elapsedSeconds('garbage')).to.be.NaN;
  });

  it('opens the window at the last row before the warm-up ends and counts to the last row', function () {
    // Warm-up of 2 s: the row at 2.006 s is after it, so the window opens at 1.004 s.
    const w = measureWindow(traces, 2);
    expect(w.fromS).to.be.closeTo(1.004, 1e-9);
    expect(w.calls).to.equal(300);
    expect(w.refused_503).to.equal(10);
    // Failed = sipp's failed calls (timeouts) + the 503 refusals; ok = the rest of the calls started.
    expect(w.failed).to.equal(15);
    expect(w.ok).to.equal(285);
  });

  it('takes setup percentiles from the INVITE->200 times (rtd 1) after the window opened', function () {
    const w = measureWindow(traces, 2);
    expect(w.setup_ms).to.deep.equal({ p50: 30, p95: 400, p99: 400, max: 400 });
    expect(measureWindow({ ...traces, rtt: [] }, 2).setup_ms).to.equal(null);
  });

  it('nearest-rank percentiles', function () {
    const v = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(v, 50)).to.equal(50);
    expect(percentile(v, 99)).to.equal(99);
    expect(percentile([7], 99)).to.equal(7);
  });

  it('per second: answered and failed calls of each row, with that second p99', function () {
    const s = perSecond(traces);
    expect(s.map((x) => x.second)).to.deep.equal([0, 1, 2, 3, 4, 9]);
    expect(s[3]).to.include({ ok: 92, failed: 5, p99_ms: 30 });
    expect(s[5]).to.include({ ok: 5, failed: 5 });
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

  it('is the first sample after the drop at or below the target share', function () {
    expect(weightShare(sample(0, 75), 'be3')).to.equal(0.5);
    // be3 share 60/135 = 0.44 at 22 s, 2 s after the drop at 20 s.
    expect(followTime(timeline, 'be3', 20, 0.45)).to.equal(2);
    expect(followTime(timeline, 'be3', 20, 0.35)).to.equal(3); // 40/115 = 0.348
    expect(followTime(timeline, 'be3', 20, 0.1)).to.equal(null);
  });
});
