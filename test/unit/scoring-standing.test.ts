import { expect } from 'chai';
import fc from 'fast-check';
import {
  initialScorerState,
  scoreCycle,
  type BackendSample,
  type CycleResult,
  type ScorerState,
} from '../../src/scoring/index.js';
import { standingValue, type Recent } from '../../src/scoring/standing.js';
import { P, quietMetrics, sample, setOf } from './scoring-fixtures.js';

describe('scoring: standing queue (windowed minimum before smoothing)', function () {
  it('takes the minimum over the window, forgets what fell out of it, and passes through with window 0', function () {
    let r: Recent = [];
    const feed = (v: number, at: number) => {
      const out = standingValue(r, v, at, 1000);
      r = out.recent;
      return out.value;
    };
    expect(feed(5, 0)).to.equal(5);
    expect(feed(1, 200)).to.equal(1);
    expect(feed(9, 400)).to.equal(1);
    expect(feed(9, 1250)).to.equal(9); // the 1 at 200 is older than 1000 ms
    expect(r.map((x) => x.at)).to.deep.equal([400, 1250]);
    expect(standingValue([{ value: 0, at: 0 }], 7, 10, 0)).to.deep.equal({ recent: [], value: 7 });
  });

  it('property: never above the newest value, never below the window minimum', function () {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.double({ min: 0, max: 1e6, noNaN: true }), fc.integer({ min: 1, max: 600 })), {
          minLength: 1,
          maxLength: 40,
        }),
        fc.integer({ min: 1, max: 3000 }),
        (steps, windowMs) => {
          let r: Recent = [];
          let at = 0;
          const seen: { v: number; at: number }[] = [];
          for (const [v, dt] of steps) {
            at += dt;
            seen.push({ v, at });
            const out = standingValue(r, v, at, windowMs);
            r = out.recent;
            const inWindow = seen.filter((s) => s.at >= at - windowMs).map((s) => s.v);
            expect(out.value).to.be.at.most(v);
            expect(out.value).to.equal(Math.min(...inWindow));
          }
        },
      ),
    );
  });

  // learn: false pinned: these fixtures test the derating law on the queue signal. Their busy
  // backend serves 10 calls/s (the quiet fixture's req_rate) while its queue stands, which learned
  // capacity rightly reads as a 10 calls/s backend (a queue standing means it serves all it can).
  const NO_LEARNING = { ...P, capacity: { ...P.capacity, learn: false } };

  /** One 100 calls/s backend (and a quiet peer), reports every 200 ms with the given queue. */
  function run(queueAt: (t: number) => number, until: number): { state: ScorerState; last: CycleResult } {
    let state = initialScorerState();
    let last: CycleResult | undefined;
    for (let t = 0; t <= until; t += 200) {
      const samples: BackendSample[] = [
        {
          ...sample('busy', 100, { at: t }),
          report: { metrics: quietMetrics({ udp_rx_queue_bytes: queueAt(t) }), at: t },
        },
        sample('peer', 100, { at: t }),
      ];
      last = scoreCycle(state, samples, t, NO_LEARNING);
      state = last.state;
    }
    return { state, last: last! };
  }

  const knee = P.signals.udp_rx_queue_bytes.knee ?? 32768;

  it('a once-a-second burst that drains (admission lets each second’s quota through at once) derates nothing', function () {
    // 4 × the knee for 0.6 s of every second, empty for the rest: the pattern pipelimit's TAILDROP makes.
    const { last } = run((t) => (t % 1000 < 600 ? 4 * knee : 0), 20_000);
    const busy = setOf(last.sets).backends.find((b) => b.id === 'busy')!;
    expect(busy.factor).to.equal(1);
    expect(setOf(last.sets).poolCapacityCps).to.equal(200);
  });

  it('a standing queue derates within a couple of seconds', function () {
    const { last } = run((t) => (t >= 5_000 ? 4 * knee : 0), 7_500);
    const busy = setOf(last.sets).backends.find((b) => b.id === 'busy')!;
    expect(busy.dominant).to.equal('udp_rx_queue_bytes');
    expect(busy.factor).to.be.below(0.8);
  });
});
