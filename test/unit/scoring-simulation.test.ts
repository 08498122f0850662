/**
 * The closed loop on a simulated pool (scoring-fixtures.ts `simulate`): the LB splits the offered
 * load by the weights pushed the cycle before, each backend reports the signals an emulated backend
 * shows at its true utilisation, and the scorer computes the next weights. A model, not a
 * measurement: the end-to-end tests check the real thing.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { shareError, simulate, type SimBackend, type SimTick } from './scoring-fixtures.js';

const fixed = (caps: Record<string, number>): SimBackend[] =>
  Object.entries(caps).map(([id, c]) => ({ id, capacity: c, realCapacity: () => c }));

/** Weight changes per backend within the ticks. */
function changes(ticks: readonly SimTick[]): number {
  let n = 0;
  for (let i = 1; i < ticks.length; i++)
    for (const [id, w] of Object.entries(ticks[i]?.weights ?? {})) if (ticks[i - 1]?.weights[id] !== w) n++;
  return n;
}

const spread = (ticks: readonly SimTick[], id: string) => {
  const ws = ticks.map((t) => t.weights[id] ?? 0);
  return Math.max(...ws) - Math.min(...ws);
};

describe('scoring closed loop on a simulated pool', function () {
  it('1:2:4 under steady load (90 %, rising over 5 s, noisy round trips): within ±10 % of the ratio by 10 s, then steady for 30 s', function () {
    const caps = { a: 100, b: 200, c: 400 };
    for (const seed of [1, 2, 3, 4, 5]) {
      const ticks = simulate({
        backends: fixed(caps),
        offered: (t) => 0.9 * 700 * Math.min(1, t / 5_000),
        durationMs: 40_000,
        seed,
        spikeProbability: 0.02,
      });
      const window = ticks.filter((t) => t.t >= 10_000);
      for (const t of window) expect(shareError(t.weights, caps), `seed ${seed} t ${t.t}`).to.be.at.most(0.1);
      // Not a single weight change in 30 s is the hysteresis doing its job (a few allowed for noise).
      expect(changes(window), `seed ${seed}`).to.be.at.most(3);
    }
  });

  it('property: any pool (2-5 backends, capacities within 1:8) at 30-92 % load converges within 10 s and does not oscillate', function () {
    fc.assert(
      fc.property(
        fc
          .array(fc.integer({ min: 20, max: 400 }), { minLength: 2, maxLength: 5 })
          .filter((c) => Math.max(...c) / Math.min(...c) <= 8),
        fc.double({ min: 0.3, max: 0.92, noNaN: true }),
        fc.integer({ min: 1, max: 1_000_000 }),
        fc.double({ min: 0, max: 0.03, noNaN: true }),
        (list, load, seed, spikes) => {
          const caps = Object.fromEntries(list.map((c, i) => [`b${i}`, c]));
          const total = list.reduce((a, b) => a + b, 0);
          const ticks = simulate({
            backends: fixed(caps),
            offered: (t) => load * total * Math.min(1, t / 5_000),
            durationMs: 40_000,
            seed,
            spikeProbability: spikes,
          });
          const window = ticks.filter((t) => t.t >= 10_000);
          for (const t of window) expect(shareError(t.weights, caps)).to.be.at.most(0.1);
          expect(changes(window)).to.be.at.most(2 * list.length);
          for (const t of window) for (const r of Object.values(t.rho)) expect(r).to.be.at.most(1);
        },
      ),
      { numRuns: 60 },
    );
  });

  it("capacity drop: one backend's real capacity halves; its share falls within a second or two and settles", function () {
    const caps = { a: 100, b: 200, c: 400 };
    for (const seed of [1, 2, 3, 4]) {
      const backends = fixed(caps).map((b) =>
        b.id === 'c' ? { ...b, realCapacity: (t: number) => (t < 10_000 ? 400 : 200) } : b,
      );
      const ticks = simulate({
        backends,
        offered: () => 0.6 * 700,
        durationMs: 50_000,
        seed,
        spikeProbability: 0.02,
      });
      const at = (t: number) => ticks.find((x) => x.t === t) as SimTick;
      const share = (t: SimTick) => (t.weights.c ?? 0) / Object.values(t.weights).reduce((x, y) => x + y, 0);
      expect(share(at(9_750)), 'before the drop c has its configured share').to.be.closeTo(4 / 7, 0.01);
      expect(at(10_000).rho.c).to.be.greaterThan(1.1); // the drop overloads it
      // Within two seconds c is back under its (new) capacity and stays there, give or take the
      // recovery probing up to its knee: 2 % over for a moment queues a call or two, which the
      // standing-queue signal then trims.
      for (const t of ticks.filter((x) => x.t >= 12_000))
        expect(t.rho.c, `seed ${seed} t ${t.t}`).to.be.at.most(1.02);
      // Settled: c carries close to, but under, its new capacity (share of 420 calls/s: 200/420 at the
      // most), and the weights move within a narrow band rather than swinging.
      const late = ticks.filter((x) => x.t >= 20_000);
      for (const t of late) expect(share(t)).to.be.within(0.38, 0.5);
      for (const id of ['a', 'b', 'c']) expect(spread(late, id), `seed ${seed} ${id}`).to.be.at.most(15);
    }
  });
});
