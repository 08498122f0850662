import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { parseDispatcherList, type DispatcherTarget } from '../../src/kamailio/dispatcher-list-reply.js';
import {
  distribution,
  failoverSummaryJson,
  formatFailoverTable,
  isOutOfRotation,
  killJitterMs,
  median,
  medianCountingMisses,
  parseFailoverOptions,
  poolSettled,
  rotationShare,
  type KillResult,
  type ModeOutcome,
} from '../../scripts/bench/failover/report.js';
import { splitFailures } from '../../src/lab/sipp-counts.js';
import { parseSippCounts } from '../../src/lab/sipp.js';

function target(uri: string, state: DispatcherTarget['state'], rweight: number | null): DispatcherTarget {
  return {
    setId: 1,
    uri,
    state,
    // Kamailio's reading (ds_skip_dst): the failover bench runs on Kamailio.
    inRotation: state === 'active' || state === 'trying',
    probing: 'none',
    priority: 0,
    attrsBody: '',
    attrs: {},
    duid: null,
    weight: null,
    rweight,
    latency: null,
  };
}

/** A failure split of `setup` calls unanswered and `bye` lost BYEs. */
const split = (setup: number, bye: number) => ({
  unanswered: setup,
  byeLost: bye,
  unexpected: 0,
  failedInSetup: setup,
});

function kill(over: Partial<KillResult>): KillResult {
  return {
    mode: 'kamailio_probe',
    kill: 1,
    backend: 'be1',
    shareAtKill: 1 / 3,
    outMs: 1500,
    calls: 600,
    successful: 500,
    failed: 100,
    split: { unanswered: 90, byeLost: 10, unexpected: 0, failedInSetup: 90 },
    redispatched: null,
    settledBefore: true,
    othersOut: [],
    ...over,
  };
}

// Header and last row of a real `sipp -trace_counts` file of the lab UAC (scripts/sipp/uac.xml):
// 54 calls timed out waiting for the INVITE's answer, 10 waiting for the BYE's 200 (the 2 unexpected
// replies are made up for the test).
const COUNTS_CSV = [
  'CurrentTime;ElapsedTime;0_INVITE_Sent;0_INVITE_Retrans;0_INVITE_Timeout;1_100_Recv;1_100_Retrans;' +
    '1_100_Timeout;1_100_Unexp;2_180_Recv;2_180_Retrans;2_180_Timeout;2_180_Unexp;3_200_Recv;3_200_Retrans;' +
    '3_200_Timeout;3_200_Unexp;4_Pause_Sessions;4_Pause_Unexp;5_Pause_Sessions;5_Pause_Unexp;6_Pause_Sessions;' +
    '6_Pause_Unexp;7_ACK_Sent;7_ACK_Retrans;8_Pause_Sessions;8_Pause_Unexp;9_BYE_Sent;9_BYE_Retrans;' +
    '9_BYE_Timeout;10_200_Recv;10_200_Retrans;10_200_Timeout;10_200_Unexp;',
  '2026-11-25\t02:38:26.153366\t1795574306.153366;00:00:01:005000;149;0;0;148;0;0;0;0;0;0;0;147;0;0;0;0;0;0;0;0;0;' +
    '147;0;147;0;118;0;0;117;0;0;0;',
  '2026-11-25\t02:38:29.622517\t1795574309.622517;00:00:04:475000;373;108;0;319;0;54;2;0;0;0;0;319;0;0;0;0;0;0;0;0;0;' +
    '319;0;319;0;319;20;0;309;0;10;0;',
].join('\n');

describe('bench failover: options', () => {
  it('quick and full defaults: half the pool offered, fewer kills when quick', () => {
    const full = parseFailoverOptions([]);
    expect(full).to.include({ quick: false, kills: 10, backends: 3, capacityCps: 100, rateCps: 150 });
    expect(full.modes).to.deep.equal(['kamailio_probe', 'sipweigh', 'controller_down']);
    const quick = parseFailoverOptions(['--quick']);
    expect(quick).to.include({ quick: true, kills: 2 });
    expect(quick.warmupS).to.be.below(full.warmupS);
    expect(parseFailoverOptions(['--modes', 'sipweigh', '--kills', '2']).modes).to.deep.equal(['sipweigh']);
  });

  it('refuses bad values, unknown options, and a load the surviving backends cannot carry', () => {
    expect(() => parseFailoverOptions(['--kills', '0'])).to.throw(/--kills/);
    expect(() => parseFailoverOptions(['--kills', '2.5'])).to.throw(/--kills.*integer/);
    expect(() => parseFailoverOptions(['--modes', 'opensips'])).to.throw(/--modes/);
    expect(() => parseFailoverOptions(['--rate', 'fast'])).to.throw(/--rate/);
    expect(() => parseFailoverOptions(['--frobnicate'])).to.throw(/unknown option '--frobnicate'/);
    // 3 x 100 calls/s: after a kill 200 calls/s remain; 190 is over 90 % of that.
    expect(() => parseFailoverOptions(['--rate', '190'])).to.throw(/overload/);
    expect(parseFailoverOptions(['--rate', '170']).rateCps).to.equal(170);
  });
});

describe('bench failover: kill moments', () => {
  it('spreads the kills over one ping cycle, one in each slice', () => {
    const at = (k: number, u: number) => killJitterMs(k, 4, 1000, u);
    expect([1, 2, 3, 4].map((k) => at(k, 0))).to.deep.equal([0, 250, 500, 750]);
    expect(at(4, 0.999)).to.be.below(1000);
    expect(at(2, 0.5)).to.equal(375);
    // More kills than slices wrap around the cycle.
    expect(at(5, 0)).to.equal(0);
  });
});

describe('bench failover: rotation', () => {
  it('out of rotation means what ds_select_dst skips on Kamailio: inactive or disabled, not trying', () => {
    // The bench's LB is Kamailio: its list as the Kamailio parser reads it (a real 5.6.3 reply).
    const r = parseDispatcherList(
      JSON.parse(
        readFileSync(new URL('./push-fixtures/dispatcher-list-5.6.3-flags.json', import.meta.url), 'utf8'),
      ),
    );
    if (!r.ok) throw new Error(r.error);
    expect(r.targets.map((t) => [t.state, isOutOfRotation(t)])).to.deep.equal([
      ['active', false],
      ['disabled', true],
      ['trying', false],
      ['active', false],
      ['inactive', true],
      ['active', false],
    ]);
  });

  it('share of new calls is the rweight over those in rotation', () => {
    const ts = [
      target('sip:a', 'active', 50),
      target('sip:b', 'active', 30),
      target('sip:c', 'inactive', 20),
    ];
    expect(rotationShare(ts, 'sip:a')).to.equal(50 / 80);
    expect(rotationShare(ts, 'sip:c')).to.equal(0);
    expect(rotationShare(ts, 'sip:nowhere')).to.equal(0);
  });

  it('a pool is at rest when all are in rotation near an equal share', () => {
    const eq = [target('sip:a', 'active', 34), target('sip:b', 'active', 33), target('sip:c', 'trying', 33)];
    expect(poolSettled(eq)).to.equal(true);
    const slowStart = [
      target('sip:a', 'active', 100),
      target('sip:b', 'active', 100),
      target('sip:c', 'active', 20),
    ];
    expect(poolSettled(slowStart)).to.equal(false);
    expect(poolSettled([target('sip:a', 'active', 50), target('sip:b', 'inactive', 50)])).to.equal(false);
    expect(poolSettled([])).to.equal(false);
  });
});

describe('bench failover: sipp message counts', () => {
  it('splits failed calls into failed in setup (unanswered or unexpected reply) and lost BYEs', () => {
    // The 2 unexpected replies came instead of the INVITE's 100 (step 1, before the ACK): setup.
    expect(splitFailures(parseSippCounts(COUNTS_CSV))).to.deep.equal({
      unanswered: 54,
      byeLost: 10,
      unexpected: 2,
      failedInSetup: 56,
    });
    // The same 2 unexpected replies to the BYE instead: counted, but not as failed in setup.
    const [header, ...rows] = COUNTS_CSV.split('\n');
    const swapped = header!
      .replace('1_100_Unexp', 'SWAP')
      .replace('10_200_Unexp', '1_100_Unexp')
      .replace('SWAP', '10_200_Unexp');
    expect(splitFailures(parseSippCounts([swapped, ...rows].join('\n')))).to.include({
      unexpected: 2,
      failedInSetup: 54,
    });
  });

  it('gives null when the file is empty, header-only or has no ACK step', () => {
    expect(splitFailures(parseSippCounts(''))).to.equal(null);
    expect(splitFailures(parseSippCounts(COUNTS_CSV.split('\n')[0]!))).to.equal(null);
    expect(splitFailures(parseSippCounts('CurrentTime;0_OPTIONS_Sent;1_200_Timeout\nx;5;2'))).to.equal(null);
  });
});

describe('bench failover: summary', () => {
  it('medians and distributions', () => {
    expect(median([])).to.equal(null);
    expect(median([3, 1, 2])).to.equal(2);
    expect(median([4, 1, 3, 2])).to.equal(2.5);
    expect(distribution([900, 700, 800])).to.deep.include({ n: 3, min: 700, median: 800, max: 900 });
    expect(distribution([])).to.equal(null);
  });

  it('counts a kill never detected as later than any detection', () => {
    expect(medianCountingMisses([100, 200, 300], 0)).to.equal(200);
    expect(medianCountingMisses([100, 200, 300], 2)).to.equal(300);
    expect(medianCountingMisses([100, 200], 2)).to.equal(null);
  });

  const probe: ModeOutcome = {
    mode: 'kamailio_probe',
    runnable: true,
    kills: [
      kill({ kill: 1, outMs: 1800.4, failed: 104 }),
      kill({
        kill: 2,
        outMs: 1129.6,
        failed: 99,
        split: { unanswered: 76, byeLost: 23, unexpected: 0, failedInSetup: 76 },
      }),
      kill({ kill: 3, outMs: 1850, failed: 105, settledBefore: false, othersOut: ['be2'] }),
    ],
  };

  it('last-line JSON: headline medians per mode, null for a mode that could not run', () => {
    const notRun: ModeOutcome = { mode: 'sipweigh', runnable: false, reason: 'controller did not start' };
    const json = failoverSummaryJson([probe, notRun], {
      options: parseFailoverOptions(['--quick']),
      seconds: 41.6,
    });
    expect(json).to.include({
      bench: 'failover',
      kamailio_probe_ms: 1800,
      kamailio_failed_calls: 104,
      sipweigh_ms: null,
      sipweigh_failed_calls: null,
      seconds: 42,
      quick: true,
    });
    type Detail = { out_ms: { values: number[] }; unsettled: number; false_alarms: number };
    const detail = (json as { kamailio_probe: Detail }).kamailio_probe;
    expect(detail.out_ms.values).to.deep.equal([1800, 1130, 1850]);
    expect(detail.unsettled).to.equal(1);
    expect(detail.false_alarms).to.equal(1);
    expect((json as { sipweigh: unknown }).sipweigh).to.deep.equal({
      runnable: false,
      reason: 'controller did not start',
    });
    expect(() => JSON.parse(JSON.stringify(json)) as unknown).not.to.throw();
  });

  it('last-line JSON: calls failed in setup and lost BYEs per kill, and the controller-down variant', () => {
    const sw: ModeOutcome = {
      mode: 'sipweigh',
      runnable: true,
      kills: [
        kill({ mode: 'sipweigh', outMs: 700, redispatched: 40, split: split(1, 11) }),
        kill({ mode: 'sipweigh', outMs: 650, redispatched: 36, split: split(0, 9) }),
        kill({ mode: 'sipweigh', outMs: 720, redispatched: 38, split: split(0, 12) }),
      ],
    };
    const down: ModeOutcome = {
      mode: 'controller_down',
      runnable: true,
      kills: [
        kill({ mode: 'controller_down', outMs: 1400, backstopOnMs: 1700, split: split(2, 10) }),
        kill({ mode: 'controller_down', outMs: 2100, backstopOnMs: null, split: split(4, 8) }),
      ],
    };
    const json = failoverSummaryJson([probe, sw, down], { options: parseFailoverOptions([]), seconds: 300 });
    expect(json).to.deep.include({
      sipweigh_ms: 700,
      kamailio_probe_ms: 1800,
      failed_per_kill: { sipweigh: 0, kamailio_probe: 90 },
      lost_bye_per_kill: { sipweigh: 11, kamailio_probe: 10 },
      kills_per_mode: 10,
    });
    type Down = { out_ms: number; failed: number; lost_bye: number; backstop_on_ms: number };
    expect((json as { controller_down: Down }).controller_down).to.include({
      out_ms: 1750,
      failed: 3,
      lost_bye: 9,
      backstop_on_ms: 1700,
      backstop_missing: 1,
    });
    const swDetail = (json as { sipweigh: { redispatched: { median: number } } }).sipweigh;
    expect(swDetail.redispatched.median).to.equal(38);
  });

  it('last-line JSON: the controller-down fields are there, null, when that mode did not run', () => {
    const json = failoverSummaryJson([probe], { options: parseFailoverOptions(['--quick']), seconds: 40 });
    expect(json).to.deep.include({
      failed_per_kill: { sipweigh: null, kamailio_probe: 90 },
      controller_down: {
        out_ms: null,
        failed: null,
        lost_bye: null,
        backstop_on_ms: null,
        backstop_missing: null,
        detail: null,
      },
    });
  });

  it('table: one row per kill with its notes, then min / median / max per mode', () => {
    const sw: ModeOutcome = {
      mode: 'sipweigh',
      runnable: true,
      kills: [kill({ mode: 'sipweigh', outMs: null, failed: 300, split: null })],
    };
    const table = formatFailoverTable([probe, sw]);
    expect(table).to.match(
      /\| Kamailio OPTIONS probing \| 2 \| be1 \| 33 % \| 1130 \| 600 \| 99 \| 76 \| 76 \| 23 \| 0 \| n\/a \|/,
    );
    expect(table).to.include('pool not back at rest before the kill; live backend also out: be2');
    expect(table).to.match(
      /\| sipweigh controller \| 1 \| be1 \| 33 % \| n\/a \| 600 \| 300 \| n\/a \| n\/a \| n\/a \| n\/a \| n\/a \| never left rotation \|/,
    );
    expect(table).to.match(/\| Kamailio OPTIONS probing \| 3 \| 1130 \/ 1800 \/ 1850 \| 99 \/ 104 \/ 105 \|/);
    expect(table).to.include('n/a (1 never out)');
    const down = formatFailoverTable([
      {
        mode: 'controller_down',
        runnable: true,
        kills: [kill({ mode: 'controller_down', backstopOnMs: 1712.4, redispatched: 3 })],
      },
    ]);
    expect(down).to.match(
      /\| controller down: LB backstop \| 1 \| .* \| 3 \| backstop on 1712 ms after the controller's kill \|/,
    );
  });
});
