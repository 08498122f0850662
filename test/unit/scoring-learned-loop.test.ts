/**
 * Learned capacity in the closed loop (scoring-learned-sim.ts): three queueing backends of real
 * capacity 25, 50 and 100 calls/s, all configured 58 (a wrong datasheet: 174 in all), fed by the
 * weights and the admission limit the scorer outputs cycle by cycle. With today's law (the
 * configured capacity derated by AIMD; `capacity.learn: false`) the first test fails: the weights
 * stay far from 1:2:4 and the limit far below the real pool.
 */
import { expect } from 'chai';
import { DEFAULT_SCORING_PARAMS as P } from '../../src/config/scoring-params.js';
import { shareError } from './scoring-fixtures.js';
import { runLoop, type LoopBackend, type LoopTick } from './scoring-learned-sim.js';

const REAL = { a: 25, b: 50, c: 100 };
const POOL = 175;
const equalPriors = (real: (id: string, t: number) => number = (id) => REAL[id as 'a']): LoopBackend[] =>
  Object.keys(REAL).map((id) => ({ id, configured: 58, real: (t: number) => real(id, t) }));
const share = (k: LoopTick, id: string) =>
  (k.weights[id] ?? 0) / Object.values(k.weights).reduce((x, y) => x + y, 0);
/** First time from which every later tick satisfies `ok` (null: never). */
const settledFrom = (ticks: readonly LoopTick[], ok: (k: LoopTick) => boolean): number | null => {
  let from: number | null = null;
  for (const k of ticks) from = ok(k) ? (from ?? k.t) : null;
  return from;
};

describe('learned capacity in the closed loop (simulated queueing backends, configured equal)', function () {
  it('overloaded (110 % of the real pool): weights converge to 1:2:4 and the limit to the real pool', function () {
    for (const seed of [1, 2, 3]) {
      const ticks = runLoop({ backends: equalPriors(), offered: () => 1.1 * POOL, durationMs: 60_000, seed });
      const conv = settledFrom(ticks, (k) => shareError(k.weights, REAL) <= 0.15);
      process.stdout.write(`      (seed ${seed}: within ±15 % of 1:2:4 from ${conv} ms)\n`);
      expect(conv, `seed ${seed}: never settled within ±15 %`).to.not.equal(null);
      expect(conv!, 'convergence time (ms)').to.be.at.most(15_000);
      for (const k of ticks.filter((x) => x.t >= 15_000)) {
        // The limit follows the learned pool: above the 160 today's law would take from the
        // configured 174 once it is no longer derated, and never past the real pool.
        expect(k.limit!, `seed ${seed} t ${k.t}`).to.be.within(0.85 * POOL, 1.05 * POOL);
      }
    }
  });

  it('at 78 % of the real pool: weights within ±15 % of 1:2:4, the limit above the load and at most 5 % over the real pool', function () {
    const offered = 0.78 * POOL;
    for (const seed of [1, 2, 3]) {
      const ticks = runLoop({ backends: equalPriors(), offered: () => offered, durationMs: 40_000, seed });
      for (const k of ticks.filter((x) => x.t >= 15_000)) {
        // Measured 9-10 % (seeds 1-3): the under-used backend probes while its queue is quiet.
        expect(shareError(k.weights, REAL), `seed ${seed} t ${k.t}`).to.be.at.most(0.15);
        // The real pool's limit is 0.92 x 175 = 161; the estimate may pass the real capacity by what
        // a probe adds before it stops (served / probe_above_ratio): measured 161-164.
        expect(k.limit!, `seed ${seed} t ${k.t}`).to.be.within(offered, 1.05 * 0.92 * POOL);
        for (const r of Object.values(k.rho)) expect(r, `seed ${seed} t ${k.t}`).to.be.at.most(1.05);
      }
    }
  });

  it('configured right, held at 85-130 % of the pool (the admission limit binds): no oscillation, no backend pushed into a standing queue', function () {
    const right: LoopBackend[] = Object.entries(REAL).map(([id, c]) => ({
      id,
      configured: c,
      real: () => c,
    }));
    for (const f of [0.85, 0.92, 1.0, 1.1, 1.3]) {
      for (const seed of [1, 2, 3]) {
        const ticks = runLoop({ backends: right, offered: () => f * POOL, durationMs: 40_000, seed });
        const window = ticks.filter((k) => k.t >= 10_000);
        let changes = 0;
        for (let i = 1; i < window.length; i++)
          for (const [id, w] of Object.entries(window[i]!.weights))
            if (window[i - 1]!.weights[id] !== w) changes++;
        // The bound of scoring-simulation.test.ts's no-oscillation property: 2 per backend in 30 s.
        // Before the probe waited for a quiet queue: 87-99 changes at 100-130 %.
        expect(changes, `offered ${f} seed ${seed}`).to.be.at.most(2 * 3);
        for (const k of window) {
          expect(shareError(k.weights, REAL), `offered ${f} seed ${seed} t ${k.t}`).to.be.at.most(0.1);
          for (const r of Object.values(k.rho))
            expect(r, `offered ${f} seed ${seed} t ${k.t}`).to.be.at.most(1);
        }
      }
    }
  });

  it('a halved backend is at its new fair share within 1 s without overshoot, and regains its share when its capacity comes back', function () {
    const drop = 30_000;
    const back = 50_000;
    const ticks = runLoop({
      backends: equalPriors((id, t) => (id === 'c' && t >= drop && t < back ? 50 : REAL[id as 'a'])),
      offered: () => 1.1 * POOL,
      durationMs: 70_000,
    });
    // Fair share of c at half capacity: 50 of 125.
    const halved = ticks.filter((k) => k.t >= drop && k.t < back);
    const follow = halved.find((k) => share(k, 'c') <= (50 / 125) * 1.1);
    process.stdout.write(`      (c at its halved share ${follow!.t - drop} ms after the drop)\n`);
    expect(follow!.t - drop, 'follow time (ms)').to.be.at.most(1_000);
    for (const k of halved.filter((x) => x.t >= drop + 1_000)) {
      // No overshoot: never cut below 85 % of its fair share, and no peer pushed over its capacity.
      expect(share(k, 'c'), `t ${k.t}`).to.be.at.least((50 / 125) * 0.85);
      expect(k.rho.c!, `c t ${k.t}`).to.be.at.most(1.1);
      expect(Math.max(k.rho.a!, k.rho.b!), `peers t ${k.t}`).to.be.at.most(1.05);
    }
    const recovered = ticks.filter((k) => k.t >= back).find((k) => share(k, 'c') >= (100 / 175) * 0.9);
    process.stdout.write(
      `      (c back within 10 % of its full share ${recovered!.t - back} ms after recovery)\n`,
    );
    // Measured 3.5 s with the retry of a fall (4.0-4.5 s before it; 3.25-3.5 s with the served rate's half-life at 500 ms; 16.5 s when the probe started at 0.9 of the estimate, which a
    // limit lowered by a peer's standing queue kept interrupting).
    expect(recovered!.t - back, 'recovery time (ms)').to.be.at.most(5_000);
    // And then it stays: no oscillation (measured 0 weight changes; 105 in 3 seeds before).
    const after = ticks.filter((k) => k.t >= back + 10_000);
    let changes = 0;
    for (let i = 1; i < after.length; i++)
      for (const [id, w] of Object.entries(after[i]!.weights)) if (after[i - 1]!.weights[id] !== w) changes++;
    expect(changes, 'weight changes 10-20 s after recovery').to.be.at.most(2 * 3);
  });

  it('configured right, 60 % offered (the quality bench drop): a halved backend is followed within 1 s and regains its share within 6 s of its recovery', function () {
    // Below the pool's limit the probe cannot find a capacity that came back (the backend's share
    // grows more slowly than its estimate; it stopped at 56 of 100, for good); the retry of a fall
    // from an estimate that had held does.
    const drop = 20_000;
    const back = 40_000;
    for (const seed of [1, 2, 3]) {
      const ticks = runLoop({
        backends: Object.entries(REAL).map(([id, c]) => ({
          id,
          configured: c,
          real: (t: number) => (id === 'c' && t >= drop && t < back ? 50 : c),
        })),
        offered: () => 0.6 * POOL,
        durationMs: 60_000,
        seed,
      });
      const halved = ticks.filter((k) => k.t >= drop && k.t < back);
      const follow = halved.find((k) => share(k, 'c') <= (50 / 125) * 1.1);
      expect(follow, `seed ${seed}: followed`).not.to.equal(undefined);
      expect(follow!.t - drop, `seed ${seed}: follow time (ms)`).to.be.at.most(1_000);
      // While halved its queue keeps the retry off: never fed past its capacity after the first second.
      for (const k of halved.filter((x) => x.t >= drop + 1_000))
        expect(k.rho.c!, `seed ${seed} t ${k.t}`).to.be.at.most(1);
      const recovered = ticks.filter((k) => k.t >= back).find((k) => share(k, 'c') >= (100 / 175) * 0.9);
      process.stdout.write(
        `      (seed ${seed}: followed in ${follow!.t - drop} ms, back ${recovered ? `${recovered.t - back} ms` : 'never'} after recovery)\n`,
      );
      // Measured 2.5-2.75 s (seeds 1-3; 2.75-4.5 s with the lab's noise, scoring-learned-sweep.ts D=0.6);
      // never before the retry.
      expect(recovered, `seed ${seed}: back`).not.to.equal(undefined);
      expect(recovered!.t - back, `seed ${seed}: recovery time (ms)`).to.be.at.most(6_000);
    }
  });

  it("today's law (capacity.learn false) does not converge: the first test's bounds fail", function () {
    const off = { ...P, capacity: { ...P.capacity, learn: false } };
    const ticks = runLoop({
      backends: equalPriors(),
      offered: () => 1.1 * POOL,
      durationMs: 60_000,
      params: off,
    });
    const late = ticks.filter((k) => k.t >= 15_000);
    const worst = Math.max(...late.map((k) => shareError(k.weights, REAL)));
    const limit = late[late.length - 1]!.limit!;
    process.stdout.write(
      `      (today's law: worst share error ${(worst * 100).toFixed(0)} %, limit ${limit.toFixed(0)})\n`,
    );
    expect(worst > 0.15 || limit < 0.85 * POOL).to.equal(true);
  });
});

describe("learned capacity in the closed loop with the lab's noise (a knee's queue that comes and goes)", function () {
  // scoring-learned-sim.ts `noise: 'lab'`: the near-knee queue and the served count as the lab's
  // 2-worker emulated backends showed them. The rule before the standing window (two reports over
  // 8 KB, served half-life 500 ms) took that queue for a standing one: median limit 146-148, 5th
  // percentile 135-138, 57-60 weight changes in 30 s per run on average (52-75 per run; seeds 1-3, the same cases).
  for (const configured of ['right', 'equal'] as const) {
    it(`configured ${configured}, the admission limit binding (100 and 130 % offered): the limit stays near the real pool's 161`, function () {
      for (const f of [1.0, 1.3]) {
        const limits: number[] = [];
        for (const seed of [1, 2, 3]) {
          const ticks = runLoop({
            backends: Object.entries(REAL).map(([id, c]) => ({
              id,
              configured: configured === 'right' ? c : 58,
              real: () => c,
            })),
            offered: () => f * POOL,
            durationMs: 40_000,
            seed,
            noise: 'lab',
          });
          const window = ticks.filter((k) => k.t >= 10_000);
          let changes = 0;
          for (let i = 1; i < window.length; i++)
            for (const [id, w] of Object.entries(window[i]!.weights))
              if (window[i - 1]!.weights[id] !== w) changes++;
          // Measured 3-18 (the noise moves a weight now and then; the calm model's bound is 6).
          expect(changes, `offered ${f} seed ${seed}: weight changes in 30 s`).to.be.at.most(30);
          limits.push(...window.map((k) => k.limit!));
        }
        limits.sort((a, b) => a - b);
        const at = (p: number) => limits[Math.floor(p * (limits.length - 1))]!;
        process.stdout.write(
          `      (offered ${f}: limit median ${at(0.5).toFixed(0)}, 5th percentile ${at(0.05).toFixed(0)})\n`,
        );
        // Measured: median 153-155, 5th percentile 145-149.
        expect(at(0.5), `offered ${f}: median limit`).to.be.at.least(150);
        expect(at(0.05), `offered ${f}: 5th percentile of the limit`).to.be.at.least(143);
        expect(at(0.95), `offered ${f}: 95th percentile of the limit`).to.be.at.most(1.05 * 0.92 * POOL);
      }
    });
  }
});
