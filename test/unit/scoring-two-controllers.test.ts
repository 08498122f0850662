/**
 * A controller beside each LB node (issue 16 part 2), on the simulated pool of scoring-fixtures.ts:
 * two scorers, sharing nothing, each probing the same backends on its own clock (cycles offset by
 * half a period, its own report noise) and pushing only to its own LB; each LB splits its own part
 * of the traffic by its own controller's weights, and every backend carries the sum. The two must
 * agree (weights within the deadband of each other), or the LBs diverge and the pool's load with
 * them. A model, not a measurement: daemon-cluster.test.ts runs the real daemons.
 */
import { expect } from 'chai';
import {
  initialScorerState,
  scoreCycle,
  type BackendSample,
  type ScorerState,
} from '../../src/scoring/index.js';
import { modelSignals, P, quietMetrics, rng, sample, setOf } from './scoring-fixtures.js';

interface Side {
  state: ScorerState;
  weights: Record<string, number>;
  /** Drops each backend reported to this controller so far (a counter: the same at both). */
  readonly rand: () => number;
}

const shares = (w: Record<string, number>) => {
  const sum = Object.values(w).reduce((a, b) => a + b, 0);
  return Object.fromEntries(Object.entries(w).map(([id, x]) => [id, sum > 0 ? x / sum : 0]));
};

/** Runs both loops; returns, per cycle of controller 1 after `fromMs`, each backend's two shares. */
function twoControllers(opts: {
  caps: Record<string, number>;
  load: number;
  lbSplit: number;
  seed: number;
  durationMs: number;
}) {
  const cycle = 250;
  const ids = Object.keys(opts.caps);
  const total = Object.values(opts.caps).reduce((a, b) => a + b, 0);
  const start = Object.fromEntries(ids.map((id) => [id, opts.caps[id]!]));
  const sides: Side[] = [0, 1].map((i) => ({
    state: initialScorerState(),
    weights: { ...start },
    rand: rng(opts.seed * 10 + i),
  }));
  const drops: Record<string, number> = Object.fromEntries(ids.map((id) => [id, 0]));
  const trace: { t: number; a: Record<string, number>; b: Record<string, number>; rho: number[] }[] = [];
  // Every half cycle one of the two controllers scores (controller 2 is offset by 125 ms).
  for (let t = 0; t <= opts.durationMs; t += cycle / 2) {
    const offered = opts.load * total * Math.min(1, t / 5000);
    const [s1, s2] = [shares(sides[0]!.weights), shares(sides[1]!.weights)];
    const rho: number[] = [];
    const load: Record<string, number> = {};
    for (const id of ids) {
      load[id] = offered * (opts.lbSplit * (s1[id] ?? 0) + (1 - opts.lbSplit) * (s2[id] ?? 0));
      const r = load[id] / opts.caps[id]!;
      rho.push(r);
      drops[id] = (drops[id] ?? 0) + (r > 1 ? ((r - 1) * opts.caps[id]! * 3 * cycle) / 2000 : 0);
    }
    const side = sides[Math.round(t / (cycle / 2)) % 2]!;
    const samples: BackendSample[] = ids.map((id) => {
      const real = opts.caps[id]!;
      const { rtt, queue } = modelSignals(load[id]! / real);
      const metrics = quietMetrics({
        capacity: real,
        options_rtt_ms: rtt * (0.7 + 0.7 * side.rand()),
        udp_rx_queue_bytes: Math.round(queue * (0.8 + 0.4 * side.rand())),
        udp_drops: Math.floor(drops[id] ?? 0),
        req_rate: 3 * Math.min(load[id]!, real * 1.05),
        tm_current: Math.round(10 * Math.min(load[id]!, real)),
      });
      return sample(id, real, { metrics, at: t - Math.floor(side.rand() * 20) });
    });
    const out = scoreCycle(side.state, samples, t, P);
    side.state = out.state;
    const w = setOf(out.sets).weights;
    if (w !== null) side.weights = Object.fromEntries(w);
    trace.push({ t, a: shares(sides[0]!.weights), b: shares(sides[1]!.weights), rho });
  }
  return trace;
}

describe('two controllers, one per LB node, on a simulated pool', function () {
  for (const [name, caps, load] of [
    ['1:2:4 at 90 %', { a: 100, b: 200, c: 400 }, 0.9],
    ['equal at 60 %', { a: 150, b: 150 }, 0.6],
    ['1:3 at 95 %', { a: 50, b: 150 }, 0.95],
  ] as const) {
    it(`${name}: both push the same weights within the deadband, and no backend is overloaded`, function () {
      for (const seed of [1, 2, 3]) {
        for (const lbSplit of [0.5, 0.8]) {
          const trace = twoControllers({ caps, load, lbSplit, seed, durationMs: 40_000 });
          for (const step of trace.filter((x) => x.t >= 10_000)) {
            for (const id of Object.keys(caps)) {
              const [a, b] = [step.a[id]!, step.b[id]!];
              // Each weight moves only past the deadband (relative): two controllers can differ by
              // at most that much each way, plus the rounding of a weight to a whole number.
              expect(
                Math.abs(a - b) / Math.max(a, b),
                `seed ${seed} split ${lbSplit} t ${step.t} ${id}`,
              ).to.be.at.most(2 * P.weight_deadband_ratio + 0.02);
            }
            for (const r of step.rho) expect(r, `seed ${seed} t ${step.t}`).to.be.at.most(1);
          }
        }
      }
    });
  }
});
