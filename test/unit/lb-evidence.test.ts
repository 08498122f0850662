/** Passive evidence and the lease, pure: the LB's htables read, counter deltas, the suspect rule, one node's watch. */
import { expect } from 'chai';
import fc from 'fast-check';
import {
  EVIDENCE_MIN_RTX,
  EVIDENCE_WINDOW_MS,
  evidenceVerdict,
  foldEvidence,
} from '../../src/health/passive-evidence.js';
import {
  counterDeltas,
  parseEvidence,
  parseLease,
  refreshLease,
  type DestinationCounters,
} from '../../src/kamailio/lb-evidence.js';
import { RpcMethodError, type RpcParam } from '../../src/kamailio/rpc.js';
import {
  HANDOVER_MS,
  MAX_WATCH_BACKOFF_MS,
  watchDelayMs,
  evidenceSuspects,
  handedOver,
  initialWatchState,
  leaseWithheld,
  watchStep,
  type WatchRead,
} from '../../src/controller/lb-watch.js';

/** `htable.dump sipweigh_ev` as Kamailio 5.6.3 shapes a dump (see admission.test.ts). */
const EV_DUMP = [
  { entry: 1, size: 1, slot: [{ name: 'rtx::sip:127.0.0.11:5060', value: 7, type: 'int' }] },
  {
    entry: 4,
    size: 2,
    slot: [
      { name: 'redispatch::sip:127.0.0.11:5060', value: 3, type: 'int' },
      { name: 'rtx::sip:127.0.0.12:5060', value: 1, type: 'int' },
    ],
  },
  { entry: 6, size: 1, slot: [{ name: 'note', value: 'a string', type: 'str' }] },
];

const c = (rtx: number, redispatch = 0): DestinationCounters => ({ rtx, redispatch });

describe('LB evidence: the htables', function () {
  it('parses rtx:: and redispatch:: counters per destination URI, ignoring other keys', function () {
    expect([...parseEvidence(EV_DUMP)]).to.deep.equal([
      ['sip:127.0.0.11:5060', c(7, 3)],
      ['sip:127.0.0.12:5060', c(1)],
    ]);
    expect(parseEvidence([]).size).to.equal(0);
    expect(() => parseEvidence({})).to.throw(/not an array/);
  });

  it('reads the backstop flag and countdown of the lease table (absent keys: null)', function () {
    const dump = [
      { entry: 2, size: 1, slot: [{ name: 'backstop', value: 1, type: 'int' }] },
      { entry: 3, size: 1, slot: [{ name: 'ms_left', value: -120, type: 'int' }] },
    ];
    expect(parseLease(dump)).to.deep.equal({ backstop: true, msLeft: -120 });
    expect(parseLease([])).to.deep.equal({ backstop: null, msLeft: null });
  });

  it('deltas: nothing on the first read, differences after, a counter that went down was reset', function () {
    const first = new Map([['a', c(5, 1)]]);
    expect(counterDeltas(null, first).size).to.equal(0);
    expect([
      ...counterDeltas(
        first,
        new Map([
          ['a', c(9, 1)],
          ['b', c(2)],
        ]),
      ),
    ]).to.deep.equal([
      ['a', c(4, 0)],
      ['b', c(2, 0)],
    ]);
    // LB restarted: its counters start again from 0, and what they hold was counted since.
    expect([...counterDeltas(first, new Map([['a', c(2, 0)]]))]).to.deep.equal([['a', c(2, 0)]]);
    expect(counterDeltas(first, first).size).to.equal(0);
  });

  it('deltas are never negative and add up to the growth of a monotonic counter', function () {
    fc.assert(
      fc.property(fc.array(fc.nat(50), { minLength: 1, maxLength: 20 }), (steps) => {
        let prev: Map<string, DestinationCounters> | null = new Map([['a', c(0)]]);
        let value = 0;
        let sum = 0;
        for (const s of steps) {
          value += s;
          const next = new Map([['a', c(value)]]);
          const d = counterDeltas(prev, next).get('a')?.rtx ?? 0;
          expect(d).to.be.at.least(0);
          sum += d;
          prev = next;
        }
        expect(sum).to.equal(value);
      }),
    );
  });

  it('refreshes the lease with htable.seti sipweigh_lease ms_left <ms>', async function () {
    const calls: [string, readonly RpcParam[]][] = [];
    await refreshLease(
      {
        call: (m, p = []) => {
          calls.push([m, p]);
          return Promise.resolve('Ok. Key set to new value.');
        },
      },
      1500,
    );
    expect(calls).to.deep.equal([['htable.seti', ['sipweigh_lease', 'ms_left', 1500]]]);
  });
});

describe('passive evidence: the suspect rule', function () {
  const at = (since: number, t: number, rtx: number) => ({ since, at: t, rtx });

  it(`>= ${EVIDENCE_MIN_RTX} retransmissions in ${EVIDENCE_WINDOW_MS} ms and no probe answer since they began: suspect`, function () {
    const w = [at(1000, 1250, 1), at(1250, 1500, 1)];
    expect(evidenceVerdict(w, 900, 1500, 0)).to.deep.equal({ rtx: 2, suspect: true });
    expect(evidenceVerdict(w, NaN, 1500, 0).suspect).to.equal(true);
  });

  it('an answer younger than probe interval + timeout says nothing: not suspected on its age alone', function () {
    const w = [at(1000, 1250, 1), at(1250, 1500, 1)];
    // Probes every 1000 ms (+ 500 ms timeout): the last answer, at 900, was not yet due again at 1500.
    expect(evidenceVerdict(w, 900, 1500, 1500).suspect).to.equal(false);
    expect(evidenceVerdict(w, 900, 2401, 1500).suspect).to.equal(false); // out of the window by then
    expect(evidenceVerdict([at(2000, 2300, 2)], 700, 2300, 1500).suspect).to.equal(true);
    expect(evidenceVerdict(w, NaN, 1500, 1500).suspect).to.equal(true);
  });

  it('a backend that answered a probe since (slow but alive) is not suspected', function () {
    expect(evidenceVerdict([at(1000, 1250, 5)], 1100, 1250, 0)).to.deep.equal({ rtx: 5, suspect: false });
  });

  it('one retransmission (a lost 100 Trying) is not enough; old ones leave the window', function () {
    expect(evidenceVerdict([at(1000, 1250, 1)], 0, 1250, 0).suspect).to.equal(false);
    expect(evidenceVerdict([at(1000, 1250, 5)], 0, 1250 + EVIDENCE_WINDOW_MS, 0).suspect).to.equal(false);
    const folded = foldEvidence([at(1000, 1250, 5)], at(2250, 2500, 0), 2500);
    expect(folded).to.deep.equal([]);
  });

  it('sums every LB node, maps URIs to backends', function () {
    const backends = [
      { id: 'be1', uri: 'sip:127.0.0.11:5060', lastReportAt: 500 },
      { id: 'be2', uri: 'sip:127.0.0.12:5060', lastReportAt: 1200 },
    ];
    const one = evidenceSuspects(
      new Map(),
      { deltas: new Map([['sip:127.0.0.11:5060', c(1)]]), since: 1000 },
      1250,
      backends,
      0,
    );
    expect(one.suspects).to.deep.equal([]);
    const two = evidenceSuspects(
      one.windows,
      {
        deltas: new Map([
          ['sip:127.0.0.11:5060', c(1)],
          ['sip:127.0.0.12:5060', c(9)],
        ]),
        since: 1010,
      },
      1260,
      backends,
      0,
    );
    expect(two.suspects).to.deep.equal([{ id: 'be1', rtx: 2 }]);
    // A first read (no since) counts nothing.
    expect(
      evidenceSuspects(new Map(), { deltas: new Map([['x', c(9)]]), since: null }, 10, [], 0).windows.size,
    ).to.equal(0);
  });
});

describe('LB watch: one node', function () {
  const ok = <T>(value: T) => ({ ok: true as const, value });
  const fail = (error: string, unsupported = false) => ({ ok: false as const, error, unsupported });
  const read = (over: Partial<WatchRead> & { at: number }): WatchRead => ({
    lease: ok(null),
    evidence: ok(new Map()),
    backstop: ok(false),
    ...over,
  });

  it('tells the backstop switches seen, not the first read of an LB already off', function () {
    let s = initialWatchState('lb1');
    const types: string[][] = [];
    for (const [t, b] of [
      [1, false],
      [2, true],
      [3, true],
      [4, false],
    ] as const) {
      const step = watchStep(s, read({ at: t, backstop: ok(b) }));
      types.push(step.events.map((e) => e.type));
      s = step.state;
      if (t === 4) expect(step.backstopOff).to.equal(true);
    }
    expect(types).to.deep.equal([[], ['lb_backstop_on'], [], ['lb_backstop_off']]);
    expect(s.backstopSwitches).to.deep.equal({ on: 1, off: 1 });
    // A controller that starts while the LB probes on its own says so, but it is a state, not a switch.
    const found = watchStep(initialWatchState('lb1'), read({ at: 1, backstop: ok(true) }));
    expect(found.events).to.deep.equal([{ type: 'lb_backstop_on', node: 'lb1' }]);
    expect(found.state.backstopSwitches).to.deep.equal({ on: 0, off: 0 });
    // Its going off is the controller taking over: a switch.
    const off = watchStep(found.state, read({ at: 2, backstop: ok(false) }));
    expect(off.state.backstopSwitches).to.deep.equal({ on: 0, off: 1 });
    expect(off.backstopOff).to.equal(true);
  });

  it('a failing evidence read is told once and counted; the recovery is told; not twice with the lease', function () {
    let s = initialWatchState('lb1');
    const types: string[] = [];
    for (const [t, ev] of [
      [1, fail('timeout')],
      [2, fail('timeout')],
      [3, ok(new Map())],
    ] as const) {
      const step = watchStep(s, read({ at: t, evidence: ev }));
      types.push(...step.events.map((e) => e.type));
      s = step.state;
    }
    expect(types).to.deep.equal(['lb_evidence_read_failed', 'lb_evidence_read_recovered']);
    expect(s.reads).to.deep.equal({ ok: 1, failed: 2 });
    // A node down for the lease too: lease_refresh_failed says it, no second event.
    const down = watchStep(
      initialWatchState('lb1'),
      read({ at: 1, lease: fail('ECONNREFUSED'), evidence: fail('ECONNREFUSED') }),
    );
    expect(down.events.map((e) => e.type)).to.deep.equal(['lease_refresh_failed']);
  });

  it('a failing lease refresh is told once and counted every time; the recovery is told', function () {
    let s = initialWatchState('lb1');
    const told: string[] = [];
    for (let t = 1; t <= 5; t++) {
      const step = watchStep(s, read({ at: t, lease: fail('ECONNREFUSED') }));
      told.push(...step.events.map((e) => e.type));
      s = step.state;
    }
    const back = watchStep(s, read({ at: 6 }));
    expect([...told, ...back.events.map((e) => e.type)]).to.deep.equal([
      'lease_refresh_failed',
      'lease_refresh_recovered',
    ]);
    expect(back.state.leaseRefreshes).to.deep.equal({ ok: 1, failed: 5 });
    // Not armed: nothing refreshed, nothing counted.
    expect(watchStep(s, read({ at: 7, lease: null })).state.leaseRefreshes).to.deep.equal({
      ok: 0,
      failed: 5,
    });
  });

  it('an LB without the evidence table is told once as such, not counted as failing reads', function () {
    const noTable = read({
      at: 1,
      evidence: fail('No such htable', true),
      backstop: fail('No such htable', true),
    });
    const first = watchStep(initialWatchState('lb1'), noTable);
    expect(first.events.map((e) => e.type)).to.deep.equal(['lb_evidence_unsupported']);
    const again = watchStep(first.state, { ...noTable, at: 2 });
    expect(again.events).to.deep.equal([]);
    expect(again.state.reads).to.deep.equal({ ok: 0, failed: 0 });
    expect(again.state.evidence).to.equal('unsupported');
  });

  it('counts what was new between reads, over [since, at], and keeps totals', function () {
    const a = watchStep(initialWatchState('lb1'), read({ at: 100, evidence: ok(new Map([['u', c(4)]])) }));
    expect(a.deltas.size).to.equal(0);
    const b = watchStep(a.state, read({ at: 350, evidence: ok(new Map([['u', c(6, 1)]])) }));
    expect([...b.deltas]).to.deep.equal([['u', c(2, 1)]]);
    expect(b.since).to.equal(100);
    expect([...b.state.totals]).to.deep.equal([['u', c(2, 1)]]);
  });

  it('a transport failure of the evidence read is counted, and the next good read compares with the last good one', function () {
    const a = watchStep(initialWatchState('lb1'), read({ at: 100, evidence: ok(new Map([['u', c(4)]])) }));
    const b = watchStep(
      a.state,
      read({ at: 350, evidence: fail(new RpcMethodError('x', 'y', 500, 'boom').message) }),
    );
    expect(b.state.reads).to.deep.equal({ ok: 1, failed: 1 });
    const d = watchStep(b.state, read({ at: 600, evidence: ok(new Map([['u', c(7)]])) }));
    expect([...d.deltas]).to.deep.equal([['u', c(3)]]);
    expect(d.since).to.equal(100);
  });
});

describe('LB watch: handing over from the backstop', function () {
  it('a node is not pushed to while its backstop is on, for HANDOVER_MS after its lease was first refreshed', function () {
    expect(handedOver(true, 1000, 1000)).to.equal(false);
    expect(handedOver(true, 1000, 1000 + HANDOVER_MS - 1)).to.equal(false);
    // A backstop that does not go off does not keep the controller out for good.
    expect(handedOver(true, 1000, 1000 + HANDOVER_MS)).to.equal(true);
    // Off, or unknown (an LB without a lease table): pushed at once.
    expect(handedOver(false, 1000, 1000)).to.equal(true);
    expect(handedOver(null, 1000, 1000)).to.equal(true);
  });
});

describe('LB watch: the lease is a promise to act on the LB', function () {
  const D = 1500;
  it('is refreshed while cycles are scored and applies succeed, or fail for less than the lease', function () {
    expect(leaseWithheld(10_000, 10_000, undefined, D, 250)).to.equal(null);
    expect(leaseWithheld(10_000, 10_000 - D, undefined, D, 250)).to.equal(null);
    // A failure streak younger than the lease: the retries (250-1000 ms apart) may still succeed.
    expect(leaseWithheld(10_000, 9_900, 10_000 - D, D, 250)).to.equal(null);
  });

  it('is withheld when no cycle was scored for longer than the lease (scoring throws, or none yet)', function () {
    expect(leaseWithheld(10_000, null, undefined, D, 250)).to.equal('not_scored');
    expect(leaseWithheld(10_000, 10_000 - D - 1, undefined, D, 250)).to.equal('not_scored');
    // A cycle longer than the lease: two cycles without a score.
    expect(leaseWithheld(10_000, 10_000 - 5000, undefined, D, 3000)).to.equal(null);
    expect(leaseWithheld(10_000, 10_000 - 6001, undefined, D, 3000)).to.equal('not_scored');
  });

  it('is withheld when every apply at the node has failed for longer than the lease', function () {
    expect(leaseWithheld(10_000, 9_900, 10_000 - D - 1, D, 250)).to.equal('apply_failing');
    // Property: withheld exactly when one of the two ages exceeds the lease.
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 5000 }),
        fc.option(fc.integer({ min: 0, max: 5000 }), { nil: undefined }),
        (scoredAge, failingAge) => {
          const now = 100_000;
          const why = leaseWithheld(
            now,
            now - scoredAge,
            failingAge === undefined ? undefined : now - failingAge,
            D,
            250,
          );
          expect(why === null).to.equal(scoredAge <= D && (failingAge === undefined || failingAge <= D));
        },
      ),
    );
  });
});

describe('LB watch: an unreachable node', function () {
  it('is visited every refresh while it answers, then less and less often, at most every 8 s', function () {
    expect(watchDelayMs(0, 250)).to.equal(0);
    expect([1, 2, 3, 4, 5, 10].map((f) => watchDelayMs(f, 250))).to.deep.equal([
      500, 1000, 2000, 4000, 8000, 8000,
    ]);
    expect(watchDelayMs(50, 250)).to.equal(MAX_WATCH_BACKOFF_MS);
  });
});
