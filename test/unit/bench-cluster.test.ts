import { expect } from 'chai';
import { parseClusterOptions } from '../../scripts/bench/cluster/options.js';
import {
  crossCancel,
  formatPartition,
  partitionJson,
  partitionMarkdown,
  peerStatus,
  scriptCounter,
  setupLatency,
  type PartitionResult,
} from '../../scripts/bench/cluster/partition-figures.js';
import { clusterMarkdown } from '../../scripts/bench/cluster/report.js';
import { cutCommands, droppedByCut, rootIsDefault } from '../../scripts/bench/cluster/tc.js';
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
    partition: null,
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

  it('builds a tc cut that drops UDP to the DMQ port between the two nodes only, both ways', () => {
    const cmds = cutCommands({ a: '127.61.0.10', b: '127.61.0.30', port: 5090 });
    expect(cmds[0]).to.deep.equal([
      'qdisc',
      'add',
      'dev',
      'lo',
      'root',
      'handle',
      '1:',
      'htb',
      'default',
      '1',
      'r2q',
      '100000',
    ]);
    // The drop class: a pfifo that holds nothing.
    expect(cmds.some((c) => c.join(' ') === 'qdisc add dev lo parent 1:2 handle 2: pfifo limit 0')).to.equal(
      true,
    );
    const filters = cmds.filter((c) => c[0] === 'filter').map((c) => c.join(' '));
    expect(filters).to.have.length(2);
    expect(filters[0]).to.contain(
      'match ip src 127.61.0.10/32 match ip dst 127.61.0.30/32 match ip dport 5090 0xffff flowid 1:2',
    );
    expect(filters[1]).to.contain('match ip src 127.61.0.30/32 match ip dst 127.61.0.10/32');
    expect(filters[0]).to.contain('match ip protocol 17 0xff');
  });

  it('replaces only a default root qdisc and reads the drop class counter', () => {
    expect(rootIsDefault('qdisc noqueue 0: root refcnt 2 \n')).to.equal(true);
    expect(rootIsDefault('qdisc htb 1: root refcnt 2 r2q 10 default 0x1\n')).to.equal(false);
    const stats = [
      'qdisc htb 1: root refcnt 2 r2q 100000 default 0x1 direct_packets_stat 0 direct_qlen 1000',
      ' Sent 43 bytes 1 pkt (dropped 7, overlimits 1 requeues 0) ',
      'qdisc pfifo 2: parent 1:2 limit 0p',
      ' Sent 0 bytes 0 pkt (dropped 6, overlimits 0 requeues 0) ',
      'qdisc pfifo 3: parent 1:1 limit 100000p',
      ' Sent 43 bytes 1 pkt (dropped 0, overlimits 0 requeues 0) ',
    ].join('\n');
    expect(droppedByCut(stats)).to.equal(6);
    expect(droppedByCut('qdisc noqueue 0: root refcnt 2')).to.equal(null);
  });

  it('gives the setup latency of response time 1 and counts CANCELs across LBs for given calls only', () => {
    const l = setupLatency(
      [
        { atMs: 1, ms: 3, rtd: 1 },
        { atMs: 2, ms: 1, rtd: 1 },
        { atMs: 3, ms: 900, rtd: 2 },
        { atMs: 4, ms: 2, rtd: 1 },
      ],
      4,
      1,
    );
    expect(l).to.deep.equal({ calls: 4, failed: 1, samples: 3, p50_ms: 2, p99_ms: 3 });
    expect(setupLatency([], 0, 0)).to.include({ samples: 0, p50_ms: null });
    const servers = [
      { invites: ['x1', 'x2', 'other'], cancels: ['x1', 'other'] },
      { invites: ['x3'], cancels: [] },
    ];
    // x4 never reached a backend: not a call; "other" is not one of ours.
    expect(crossCancel(servers, new Set(['x1', 'x2', 'x3', 'x4']))).to.deep.equal({ calls: 3, reached: 1 });
  });

  it('reads the peer in dmq.list_nodes and a script counter in stats.fetchn', () => {
    const nodes = [
      { host: '127.61.0.10', port: '5090', status: 'active', local: 1 },
      { host: '127.61.0.30', port: '5090', status: 'timeout', local: 0 },
    ];
    expect(peerStatus(nodes, '127.61.0.30')).to.equal('timeout');
    expect(peerStatus(nodes, '127.61.0.99')).to.equal(null);
    expect(peerStatus(null, '127.61.0.30')).to.equal(null);
    expect(
      scriptCounter({ 'script.sipweigh_cancel_unknown_dropped': '3' }, 'sipweigh_cancel_unknown_dropped'),
    ).to.equal(3);
    expect(scriptCounter({}, 'sipweigh_cancel_unknown_dropped')).to.equal(null);
  });

  it('summarizes the partition over the repetitions, in the last line and in BENCHMARKS.md', () => {
    const p = (over: Partial<PartitionResult>): PartitionResult => ({
      method: 'tc-drop',
      cut_s: 10,
      rate_cps: 20,
      dropped_packets: 40,
      peer_status_end_of_cut: { lb1: 'timeout', lb2: 'timeout' },
      before: { calls: 100, failed: 0, samples: 100, p50_ms: 1, p99_ms: 3 },
      during: { calls: 170, failed: 0, samples: 170, p50_ms: 1.2, p99_ms: 4 },
      cancel_other_lb_during: { calls: 8, reached: 0, unknown_dropped_at_lb2: 24 },
      entries_written_during: 170,
      entries_missing_soon_after_heal: 170,
      entries_missing_after_heal: 170,
      checked_after_heal_s: [3, 15],
      healed_replication_ok: true,
      healed_replication_s: 8,
      heal_probes: 17,
      ...over,
    });
    const j = partitionJson([
      p({}),
      null,
      p({ healed_replication_s: 10, during: { ...p({}).during, failed: 2 } }),
    ]);
    expect(j).to.include({
      method: 'tc-drop',
      calls: 340,
      failed: 2,
      entries_missing_after_heal: 340,
      healed_replication_ok: true,
      healed_replication_s: 9,
    });
    expect(j?.setup_during_ms).to.deep.equal({ p50: 1.2, p99: 4 });
    expect(j?.cancel_other_lb_during).to.deep.equal({ calls: 16, reached: 0, unknown_dropped_at_lb2: 24 });
    expect(partitionJson([null])).to.equal(null);
    expect(formatPartition(p({}))).to.contain('CANCEL via lb2 reached 0/8');
    expect(formatPartition(null)).to.equal('partition -');
    const md = partitionMarkdown(j);
    expect(md).to.contain('0 of 16 CANCELs');
    expect(md).to.contain(
      'of the 340 Call-IDs written at lb1 during the cut, 340 were missing at lb2 3.0 s later',
    );
    expect(md).to.contain('340 15.0 s later (nothing resynced the healed peer)');
    expect(j?.checked_after_heal_s).to.deep.equal([3, 15]);
    expect(partitionMarkdown(partitionJson([p({ method: 'peer-frozen' })]))).to.contain('no true partition');
    const line = summaryJson(summarize([rep({ partition: p({}) })]), [rep({ partition: p({}) })], context);
    expect(line.partition).to.include({ method: 'tc-drop', entries_missing_after_heal: 170 });
  });
});
