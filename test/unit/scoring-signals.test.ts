import { expect } from 'chai';
import fc from 'fast-check';
import type { ReportMetrics } from '../../src/heartbeat/messages.js';
import {
  PRESSURE_CAP,
  SIGNAL_NAMES,
  dropsPerSecond,
  pressureRange,
  reportSignals,
  tightest,
  type ScoringParams,
} from '../../src/scoring/index.js';
import { P, RTT_KNEE, quietMetrics } from './scoring-fixtures.js';

const LOAD_FIELDS = [
  'cpu_util',
  'mem_used_ratio',
  'load1',
  'tm_current',
  'dialogs_active',
  'req_rate',
  'err5xx_rate',
  'udp_rx_queue_bytes',
  'udp_drops',
  'options_rtt_ms',
] as const;

const ALL_ON: ScoringParams = {
  ...P,
  signals: {
    ...P.signals,
    dialogs_per_cps: { knee: 10, half_life_ms: 0, standing_window_ms: 0 },
    load1: { knee: 4, half_life_ms: 0, standing_window_ms: 0 },
  },
};

describe('scoring signals: a report -> pressure per signal', function () {
  it('maps each signal to value / knee (1 = at the edge of capacity)', function () {
    const m = quietMetrics({
      options_rtt_ms: RTT_KNEE,
      udp_rx_queue_bytes: 16_384,
      req_rate: 300,
      err5xx_rate: 5,
      tm_current: 2_000,
      cpu_util: 0.45,
    });
    const { pressures } = reportSignals(m, 1_000, 100, null, P);
    expect(pressures.options_rtt_ms).to.equal(1);
    expect(pressures.udp_rx_queue_bytes).to.equal(0.5);
    expect(pressures.utilisation).to.be.closeTo(1 / 1.5, 1e-12); // 100 calls/s of 100, knee 1.5
    expect(pressures.err5xx_ratio).to.be.closeTo(0.5, 1e-12); // 5/s of 100 cps, knee 0.1
    expect(pressures.tm_per_cps).to.equal(0.5); // 2000 / 100 / 40
    expect(pressures.cpu_util).to.equal(0.5);
    expect(pressures.udp_drops_per_s).to.equal(null); // no previous counter yet
    expect(pressures.dialogs_per_cps).to.equal(null); // disabled by default
    expect(pressures.load1).to.equal(null);
  });

  it('uses the drops delta, not the cumulative counter, and survives a counter reset', function () {
    const first = reportSignals(quietMetrics({ udp_drops: 5_000 }), 1_000, 100, null, P);
    expect(first.pressures.udp_drops_per_s).to.equal(null);
    const same = reportSignals(quietMetrics({ udp_drops: 5_000 }), 1_500, 100, first.drops, P);
    expect(same.pressures.udp_drops_per_s).to.equal(0);
    const rising = reportSignals(quietMetrics({ udp_drops: 5_010 }), 2_000, 100, same.drops, P);
    expect(rising.pressures.udp_drops_per_s).to.equal(20); // 10 drops in 0.5 s, knee 1/s
    const reset = reportSignals(quietMetrics({ udp_drops: 3 }), 2_500, 100, rising.drops, P);
    expect(reset.pressures.udp_drops_per_s).to.equal(null);
    expect(reset.drops).to.deep.equal({ count: 3, at: 2_500 });
    const after = reportSignals(quietMetrics({ udp_drops: 3 }), 3_000, 100, reset.drops, P);
    expect(after.pressures.udp_drops_per_s).to.equal(0);
    // A report without the counter keeps the old baseline.
    expect(reportSignals(quietMetrics({ udp_drops: null }), 3_500, 100, after.drops, P).drops).to.equal(
      after.drops,
    );
    expect(dropsPerSecond({ count: 1, at: 10 }, 5, 10)).to.equal(null); // no time passed
  });

  it('a null, negative or non-finite field gives a null pressure, never a throw', function () {
    const weird = fc.oneof(
      fc.constant(null),
      fc.constant(NaN),
      fc.constant(Infinity),
      fc.constant(-Infinity),
      fc.double(),
    );
    fc.assert(
      fc.property(fc.record(Object.fromEntries(LOAD_FIELDS.map((f) => [f, weird]))), (fields) => {
        const m = { ...quietMetrics(), ...fields } as ReportMetrics;
        const { pressures } = reportSignals(m, 1_000, 100, { count: 0, at: 0 }, ALL_ON);
        for (const name of SIGNAL_NAMES) {
          const v = pressures[name];
          expect(v === null || (Number.isFinite(v) && v >= 0 && v <= PRESSURE_CAP), name).to.equal(true);
        }
      }),
    );
  });

  it('property: more of any load field never lowers any pressure', function () {
    const field = fc.constantFrom(...LOAD_FIELDS);
    fc.assert(
      fc.property(
        field,
        fc.double({ min: 0, max: 1e6, noNaN: true }),
        fc.double({ min: 0, max: 1e6, noNaN: true }),
        fc.double({ min: 1, max: 1e4, noNaN: true }),
        (f, a, b, cap) => {
          const [lo, hi] = a <= b ? [a, b] : [b, a];
          const base = { count: 0, at: 0 };
          const pl = reportSignals(quietMetrics({ [f]: lo }), 1_000, cap, base, ALL_ON).pressures;
          const ph = reportSignals(quietMetrics({ [f]: hi }), 1_000, cap, base, ALL_ON).pressures;
          for (const name of SIGNAL_NAMES) expect(ph[name] ?? 0, name).to.be.at.least(pl[name] ?? 0);
        },
      ),
    );
  });

  it('more traffic does not make 5xx look better (5xx is measured against capacity)', function () {
    const low = reportSignals(quietMetrics({ err5xx_rate: 10, req_rate: 30 }), 1, 100, null, P);
    const high = reportSignals(quietMetrics({ err5xx_rate: 10, req_rate: 3_000 }), 1, 100, null, P);
    expect(high.pressures.err5xx_ratio).to.equal(low.pressures.err5xx_ratio);
  });

  it('the tightest signal dominates, and is named', function () {
    const { pressures } = reportSignals(
      quietMetrics({ options_rtt_ms: 40 * RTT_KNEE, udp_rx_queue_bytes: 120_000, cpu_util: 0.3 }),
      1,
      100,
      null,
      P,
    );
    expect(tightest(pressures)).to.deep.equal({ pressure: 40, dominant: 'options_rtt_ms' });
    const none = Object.fromEntries(SIGNAL_NAMES.map((n) => [n, null])) as typeof pressures;
    expect(tightest(none)).to.equal(null);
  });

  it('pressure range: per signal the lower and higher of smoothed and latest, then the tightest of each', function () {
    const none = Object.fromEntries(SIGNAL_NAMES.map((n) => [n, null])) as Record<
      (typeof SIGNAL_NAMES)[number],
      number | null
    >;
    expect(pressureRange(none, none)).to.equal(null);
    const smoothed = { ...none, options_rtt_ms: 3, cpu_util: 0.5 };
    const latest = { ...none, options_rtt_ms: 0.9, udp_rx_queue_bytes: 1.2 };
    // rtt: [0.9, 3]; cpu (smoothed only): 0.5; queue (latest only): 1.2.
    expect(pressureRange(smoothed, latest)).to.deep.equal({ low: 1.2, high: 3 });
  });
});
