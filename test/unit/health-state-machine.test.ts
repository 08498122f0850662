import { expect } from 'chai';
import fc from 'fast-check';
import { DEFAULT_HEALTH_PARAMS as P } from '../../src/probe/options.js';
import {
  initialHealth,
  inRotation,
  transition,
  type BackendHealth,
  type HealthEvent,
  type HealthKind,
} from '../../src/health/state-machine.js';
import { ProbeTracker } from '../../src/health/probe-tracker.js';

const run = (h: BackendHealth, evs: HealthEvent[]) => evs.reduce((acc, e) => transition(acc, e, P), h);
const oks = (from: number, n: number, step = 200): HealthEvent[] =>
  Array.from({ length: n }, (_, i) => ({ type: 'probe_ok', at: from + i * step }));
const misses = (from: number, n: number, step = 100): HealthEvent[] =>
  Array.from({ length: n }, (_, i) => ({ type: 'probe_missed', at: from + i * step }));

function upAt(t: number): BackendHealth {
  const h = run(initialHealth(0), oks(t - 5 * 200, P.returnAfterOks));
  expect(h.state.kind).to.equal('up');
  return h;
}

describe('backend health state machine', function () {
  it('starts down (never seen) and comes up only after returnAfterOks answers', function () {
    let h = initialHealth(0);
    expect(h.state).to.deep.equal({ kind: 'down', since: 0, cause: 'never_seen' });
    const kinds: HealthKind[] = [];
    for (const e of oks(0, P.returnAfterOks)) {
      h = transition(h, e, P);
      kinds.push(h.state.kind);
    }
    expect(kinds).to.deep.equal([...Array(P.returnAfterOks - 1).fill('returning'), 'up']);
  });

  it(`a dead backend: up -> suspect on the first miss, down on miss ${P.downAfterMisses}`, function () {
    let h = upAt(10_000);
    const kinds: HealthKind[] = [];
    for (const e of misses(10_100, P.downAfterMisses)) {
      h = transition(h, e, P);
      kinds.push(h.state.kind);
    }
    expect(kinds).to.deep.equal([...Array(P.downAfterMisses - 1).fill('suspect'), 'down']);
    expect(inRotation(h.state)).to.equal(false);
  });

  it('a single lost probe costs nothing: suspect, then up again on the next answer', function () {
    const h = run(upAt(10_000), [
      { type: 'probe_missed', at: 10_100 },
      { type: 'probe_ok', at: 10_200 },
    ]);
    expect(h.state.kind).to.equal('up');
    expect(h.penalty).to.equal(0);
  });

  it('retransmissions (passive evidence) make an up backend suspect, never down; one answer clears it', function () {
    const h = run(upAt(10_000), [{ type: 'retransmitted', at: 10_100 }]);
    expect(h.state).to.deep.equal({ kind: 'suspect', since: 10_100, misses: 0 });
    expect(run(h, [{ type: 'retransmitted', at: 10_200 }]).state).to.deep.equal(h.state);
    expect(run(h, oks(10_200, 1)).state.kind).to.equal('up');
    // Still k misses to go down, as without the evidence.
    const k = run(h, misses(10_200, P.downAfterMisses - 1));
    expect(k.state.kind).to.equal('suspect');
    expect(run(k, misses(11_000, 1)).state.kind).to.equal('down');
    for (const other of [initialHealth(0), run(upAt(10_000), [{ type: 'drain', at: 10_050 }])]) {
      expect(run(other, [{ type: 'retransmitted', at: 10_100 }])).to.deep.equal(other);
    }
  });

  it('bye makes any state draining at once, and probes do not end it', function () {
    for (const start of [upAt(10_000), initialHealth(0), run(upAt(10_000), misses(10_100, 1))]) {
      const h = run(start, [{ type: 'bye', at: 10_500 }, ...oks(10_600, 20)]);
      expect(h.state).to.include({ kind: 'draining', cause: 'bye' });
      expect(inRotation(h.state)).to.equal(false);
    }
  });

  it('a restarted agent (hello with a new boot) ends its bye drain; an operator drain survives it', function () {
    const byeThenHello = run(upAt(10_000), [
      { type: 'bye', at: 10_100 },
      { type: 'hello', at: 11_000, newBoot: true },
    ]);
    expect(byeThenHello.state.kind).to.equal('returning');
    const sameBoot = run(upAt(10_000), [
      { type: 'bye', at: 10_100 },
      { type: 'hello', at: 11_000, newBoot: false },
    ]);
    expect(sameBoot.state.kind).to.equal('draining');
    const op = run(upAt(10_000), [
      { type: 'drain', at: 10_100 },
      { type: 'bye', at: 10_200 },
      { type: 'hello', at: 11_000, newBoot: true },
    ]);
    expect(op.state).to.include({ kind: 'draining', cause: 'operator' });
    const undrained = run(op, [{ type: 'undrain', at: 12_000 }, ...oks(12_100, P.returnAfterOks)]);
    expect(undrained.state.kind).to.equal('up');
  });

  it("the report's draining flag drains, and clearing it returns (but cannot end a bye or operator drain)", function () {
    const d = run(upAt(10_000), [{ type: 'report_draining', at: 10_100, draining: true }]);
    expect(d.state).to.include({ kind: 'draining', cause: 'report' });
    expect(run(d, [{ type: 'report_draining', at: 10_200, draining: false }]).state.kind).to.equal(
      'returning',
    );
    const bye = run(d, [
      { type: 'bye', at: 10_150 },
      { type: 'report_draining', at: 10_200, draining: false },
    ]);
    expect(bye.state).to.include({ kind: 'draining', cause: 'bye' });
  });

  /** Alive 1.5 s, dead 1.5 s, for 5 minutes; probes every 200 ms (100 ms while suspect). */
  function flap(params: typeof P) {
    let h = run(initialHealth(0), oks(0, params.returnAfterOks, 1));
    let t = 0;
    let returns = 0;
    let inRotationMs = 0;
    while (t < 300_000) {
      const alive = Math.floor(t / 1500) % 2 === 0;
      const prev = h.state.kind;
      h = transition(h, { type: alive ? 'probe_ok' : 'probe_missed', at: t }, params);
      if (h.state.kind === 'up' && prev !== 'up' && prev !== 'suspect') returns++;
      const step = h.state.kind === 'suspect' ? 100 : 200;
      if (inRotation(h.state)) inRotationMs += step;
      t += step;
    }
    return { returns, inRotation: inRotationMs / 300_000 };
  }

  it('a flapping backend does not oscillate: each fall holds it out longer', function () {
    const damped = flap(P);
    expect(damped.returns).to.be.at.most(5);
    expect(damped.inRotation).to.be.below(0.1);
    // The same history without the hold: back in rotation every cycle (this is what damping prevents).
    const undamped = flap({ ...P, flapBaseHoldMs: 0 });
    expect(undamped.returns).to.be.above(50);
  });

  it('after flapping stops, the penalty decays and a single failure is cheap again', function () {
    let h = upAt(0);
    for (let i = 0; i < 5; i++)
      h = run(h, [...misses(1000 + i * 100_000, 3), ...oks(2000 + i * 100_000, 400, 200)]);
    expect(h.state.kind).to.equal('up');
    const later = 10 * 60_000 + 500_000;
    const fell = run(h, misses(later, 3));
    expect(fell.penalty).to.be.below(1.1);
    const back = run(fell, oks(later + 500, P.returnAfterOks));
    expect(back.state.kind).to.equal('up');
  });

  it('is total: any event sequence yields a valid state and never throws', function () {
    const ev = fc.oneof(
      fc.constant('probe_ok'),
      fc.constant('probe_missed'),
      fc.constant('bye'),
      fc.constant('hello'),
      fc.constant('drain'),
      fc.constant('undrain'),
      fc.constant('report_on'),
      fc.constant('report_off'),
      fc.constant('retransmitted'),
    );
    fc.assert(
      fc.property(fc.array(ev, { maxLength: 200 }), (types) => {
        let h = initialHealth(0);
        let t = 0;
        for (const ty of types) {
          t += 100;
          const before = h.state.kind;
          const e: HealthEvent =
            ty === 'hello'
              ? { type: 'hello', at: t, newBoot: true }
              : ty === 'report_on' || ty === 'report_off'
                ? { type: 'report_draining', at: t, draining: ty === 'report_on' }
                : ({ type: ty, at: t } as HealthEvent);
          h = transition(h, e, P);
          expect(['up', 'suspect', 'down', 'draining', 'returning']).to.include(h.state.kind);
          expect(h.penalty).to.be.at.least(0);
          if (ty === 'bye' || ty === 'drain') expect(h.state.kind).to.equal('draining');
          // Evidence alone never takes a backend out of rotation.
          if (ty === 'retransmitted') expect(h.state.kind === 'down').to.equal(before === 'down');
          if (h.state.kind === 'up')
            expect(['probe_ok', 'report_off', 'hello', 'bye', 'undrain', 'report_on']).to.include(ty);
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe('probe tracker', function () {
  it('matches answers, measures RTT, and settles older probes', function () {
    const t = new ProbeTracker();
    t.sent(1, 0, 150);
    t.sent(2, 100, 150);
    expect(t.answer(2, 103)).to.deep.equal({ kind: 'answered', rttMs: 3 });
    expect(t.outstanding).to.equal(0);
    expect(t.expire(1000)).to.equal(0);
    expect(t.answer(1, 104)).to.deep.equal({ kind: 'unmatched' });
  });

  it('counts a probe as missed at its deadline; a late answer gives an RTT but no credit', function () {
    const t = new ProbeTracker();
    t.sent(7, 0, 150);
    expect(t.expire(149)).to.equal(0);
    expect(t.expire(150)).to.equal(1);
    expect(t.answer(7, 400)).to.deep.equal({ kind: 'late', rttMs: 400 });
    expect(t.answer(7, 401)).to.deep.equal({ kind: 'unmatched' });
  });

  it('keeps memory fixed: more outstanding probes than the ring evicts the oldest as missed', function () {
    const t = new ProbeTracker();
    let evicted = 0;
    for (let i = 0; i < 20; i++) evicted += t.sent(i, i, 10_000);
    expect(evicted).to.equal(12);
    expect(t.outstanding).to.equal(8);
  });
});
