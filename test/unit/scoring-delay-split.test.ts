/**
 * The delay-aware split (src/scoring/delay-split.ts): its properties, its hook into the weights and
 * the scorer, and a numeric check against the M/D/c waiting time of the lab's pool (25/50/100
 * calls/s, 2 workers: service 80/40/20 ms), whose figures docs/controller.md quotes.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import {
  blendOf,
  delayScale,
  delaySplit,
  delaySplitFor,
  delaySplitProblems,
  equalWaitLoads,
  monotoneInCapacity,
  type DelaySplitParams,
  type SplitBackend,
} from '../../src/scoring/delay-split.js';
import {
  initialScorerState,
  scoreCycle,
  targetWeights,
  validateScoringParams,
  type ScorerState,
  type ScoringParams,
} from '../../src/scoring/index.js';
import { P, quietMetrics, sample, setOf, weightsOf } from './scoring-fixtures.js';

const D: DelaySplitParams = { ...P.delay_split, enabled: true };
const ON: ScoringParams = { ...P, delay_split: D };

function pool(caps: readonly number[], delays: readonly (number | null)[]): Map<string, SplitBackend> {
  return new Map(caps.map((k, i) => [`b${i}`, { capacity: k, delayScale: delays[i] ?? null }]));
}
const sum = (xs: Iterable<number>) => [...xs].reduce((a, b) => a + b, 0);

// ---- M/D/c waiting time (Erlang C, halved for deterministic service: Allen–Cunneen, Cs² = 0) ----

function erlangC(c: number, a: number): number {
  if (a >= c) return 1;
  let term = 1;
  let below = 0;
  for (let k = 0; k < c; k++) {
    if (k > 0) term *= a / k;
    below += term;
  }
  const top = (term * a) / c / (1 - a / c);
  return top / (below + top);
}
/** Mean wait (s) in an M/D/c queue: c workers, service s seconds, lambda calls/s. */
function waitMDc(c: number, s: number, lambda: number): number {
  const a = lambda * s;
  return a >= c ? Infinity : (0.5 * erlangC(c, a) * s) / (c * (1 - a / c));
}

const LAB_CAPS = [25, 50, 100] as const;
const WORKERS = 2;
const LAB_SERVICE = LAB_CAPS.map((k) => WORKERS / k);

/** Pool figures of a split (loads in LAB_CAPS order): call-weighted mean wait and worst backend's wait, ms. */
function poolWaits(loads: readonly number[]): { mean: number; worst: number } {
  const waits = loads.map((l, i) => waitMDc(WORKERS, LAB_SERVICE[i] ?? 0, l));
  const total = sum(loads);
  return {
    mean: (1000 * sum(loads.map((l, i) => l * (waits[i] ?? 0)))) / total,
    worst: 1000 * Math.max(...waits),
  };
}

/**
 * What the estimator reads on the lab pool under a split: each backend's M/D/2 queueing delay (ms)
 * at the utilisation the split gives it, turned into D = Wq (1 - rho)/rho.
 */
function labDelayScales(loads: readonly number[]): number[] {
  return LAB_CAPS.map((k, i) => {
    const l = loads[i] ?? 0;
    return delayScale(1000 * waitMDc(WORKERS, LAB_SERVICE[i] ?? 0, l), l / k, D) ?? NaN;
  });
}

/**
 * The closed loop on the model: estimate at the current split, split on the estimates, again,
 * from the proportional split (what the controller does cycle after cycle, without the weight step).
 */
function labFixedPoint(u: number, d: DelaySplitParams): number[] {
  let loads = LAB_CAPS.map((k) => k * u);
  for (let i = 0; i < 100; i++) {
    const split = delaySplit(pool(LAB_CAPS, labDelayScales(loads)), u * sum(LAB_CAPS), d);
    loads = LAB_CAPS.map((k, j) => split?.get(`b${j}`) ?? k * u);
  }
  return loads;
}

describe('scoring delay split: equal queueing delay near the knee', function () {
  it('the schema defaults pass their own checks, and a bad constant is named', function () {
    expect(delaySplitProblems(P.delay_split)).to.deep.equal([]);
    expect(() => validateScoringParams({ ...P, delay_split: { ...D, full_utilisation: 0.5 } })).to.throw(
      /delay_split\.full_utilisation/,
    );
    expect(delaySplitProblems({ ...D, max_delay_ratio: 0.5, min_queueing_ms: 0 })).to.deep.equal([
      'delay_split.min_queueing_ms must be > 0',
      'delay_split.max_delay_ratio must be >= 1',
    ]);
  });

  it('is refused by name together with learned capacity (not yet shown to settle together)', function () {
    expect(() => validateScoringParams({ ...ON, capacity: { ...P.capacity, learn: true } })).to.throw(
      /delay_split\.enabled cannot be on with capacity\.learn/,
    );
    expect(() => validateScoringParams(ON)).not.to.throw();
  });

  it('estimates the delay scale from the queue at the utilisation served, and only where it means something', function () {
    expect(delayScale(9, 0.9, D)).to.be.closeTo(1, 1e-12); // W = D rho/(1-rho) = 9 D
    expect(delayScale(0.1, 0.9, D)).to.be.closeTo(D.min_queueing_ms / 9, 1e-12); // noise floor
    expect(delayScale(5, D.min_estimate_utilisation - 0.01, D)).to.equal(null);
    expect(delayScale(5, 1, D)).to.equal(null);
    expect(delayScale(null, 0.9, D)).to.equal(null);
    expect(delayScale(5, null, D)).to.equal(null);
  });

  it('blends in only between start_utilisation and full_utilisation, monotonically', function () {
    expect(blendOf(0.5, D)).to.equal(0);
    expect(blendOf(D.start_utilisation, D)).to.equal(0);
    expect(blendOf(D.full_utilisation, D)).to.equal(1);
    expect(blendOf(0.99, D)).to.equal(1);
    let last = 0;
    for (let u = 0; u <= 1; u += 0.01) {
      expect(blendOf(u, D)).to.be.at.least(last);
      last = blendOf(u, D);
    }
  });

  it('equal service times give the proportional split', function () {
    const split = delaySplit(pool([25, 50, 100], [3, 3, 3]), 0.95 * 175, D);
    expect(split).to.not.equal(null);
    for (const [i, k] of LAB_CAPS.entries()) expect(split?.get(`b${i}`)).to.be.closeTo(0.95 * k, 1e-9);
  });

  it('near the knee the long-service backend gets less than proportional, the short-service one more', function () {
    const split = delaySplit(pool([25, 50, 100], labDelayScales(LAB_CAPS.map((k) => 0.9 * k))), 0.9 * 175, D);
    expect(split?.get('b0')).to.be.below(0.9 * 25);
    expect(split?.get('b2')).to.be.above(0.9 * 100);
  });

  it('far below the knee, without estimates, or with the feature off: proportional (null)', function () {
    expect(delaySplit(pool([25, 50, 100], [8, 4, 1]), 0.6 * 175, D)).to.equal(null);
    expect(delaySplit(pool([25, 50, 100], [8, null, 1]), 0.9 * 175, D)).to.equal(null);
    expect(delaySplit(pool([25, 50, 100], [8, 4, 1]), 1.1 * 175, D)).to.equal(null);
    expect(delaySplit(pool([25, 50, 100], [8, 4, 1]), 0.9 * 175, { ...D, enabled: false })).to.equal(null);
    expect(delaySplit(pool([100], [8]), 90, D)).to.equal(null);
  });

  const caps = fc.array(fc.double({ min: 1, max: 1000, noNaN: true }), { minLength: 2, maxLength: 8 });
  const arbPool = caps.chain((ks) =>
    fc.record({
      caps: fc.constant(ks),
      delays: fc.array(fc.double({ min: 0.01, max: 100, noNaN: true }), {
        minLength: ks.length,
        maxLength: ks.length,
      }),
      u: fc.double({ min: 0.01, max: 0.999, noNaN: true }),
    }),
  );

  it('conserves the offered load, loads no backend past its capacity, and never gives a larger backend less than a smaller one (property)', function () {
    fc.assert(
      fc.property(arbPool, ({ caps: ks, delays, u }) => {
        const offered = u * sum(ks);
        const split = delaySplit(pool(ks, delays), offered, D);
        const loads = ks.map((k, i) => split?.get(`b${i}`) ?? (k * offered) / sum(ks));
        expect(sum(loads)).to.be.closeTo(offered, 1e-9 * offered);
        for (const [i, k] of ks.entries()) {
          expect(loads[i]).to.be.at.most(k * (1 + 1e-9));
          expect(loads[i]).to.be.above(0);
          for (const [j, k2] of ks.entries())
            if (k2 > k) expect(loads[j]).to.be.at.least((loads[i] ?? 0) - 1e-9);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('equal waits: without the blend and the cap, every backend waits D rho/(1-rho) alike (property)', function () {
    fc.assert(
      fc.property(arbPool, ({ caps: ks, delays, u }) => {
        const offered = u * sum(ks);
        const loads = equalWaitLoads(
          ks.map((k, i) => ({ capacity: k, delay: delays[i] ?? 1 })),
          offered,
        );
        const waits = loads.map((l, i) => {
          const rho = l / (ks[i] ?? 1);
          return ((delays[i] ?? 1) * rho) / (1 - rho);
        });
        const m = Math.max(...waits);
        for (const w of waits) expect(w).to.be.closeTo(m, 1e-6 * m);
      }),
      { numRuns: 300 },
    );
  });

  it('more capacity never gets a smaller share when everything else stays (property)', function () {
    // Exact for the equal-wait split itself (beta = 1) and outside the blend. Inside the blend
    // (start..full utilisation) a larger backend lowers the set's utilisation and so beta, which can
    // take back a little of a fast backend's bonus: 2.9 % of its load at worst in 300,000 random
    // pools with delay scales 8 apart (the cap); asserted under the weights' 4 % deadband.
    const FULL: DelaySplitParams = { ...D, start_utilisation: 0.001, full_utilisation: 0.002 };
    fc.assert(
      fc.property(
        arbPool,
        fc.double({ min: 1, max: 2, noNaN: true }),
        fc.boolean(),
        ({ caps: ks, delays, u }, grow, full) => {
          const d = full ? FULL : D;
          const offered = u * sum(ks);
          const bigger = [...ks];
          bigger[0] = (ks[0] ?? 1) * grow;
          const share = (k: readonly number[]) =>
            delaySplit(pool(k, delays), offered, d)?.get('b0') ?? ((k[0] ?? 0) * offered) / sum(k);
          const before = share(ks);
          const inBlend = offered / sum(bigger) < d.full_utilisation && u > d.start_utilisation;
          expect(share(bigger)).to.be.at.least(before * (inBlend ? 0.96 : 1 - 1e-9));
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('the monotone pass keeps the total and only evens out inversions', function () {
    expect(
      monotoneInCapacity([
        { capacity: 10, load: 9 },
        { capacity: 100, load: 5 },
        { capacity: 50, load: 40 },
      ]),
    ).to.deep.equal([9, 22.5, 22.5]);
  });

  it('targetWeights follows the split, keeps weight_min, and ignores a split that misses a backend', function () {
    const effective = new Map([
      ['a', 25],
      ['b', 50],
      ['c', 100],
    ]);
    expect([...targetWeights(effective, P).values()]).to.deep.equal([25, 50, 100]);
    const split = new Map([
      ['a', 0.2],
      ['b', 40],
      ['c', 100],
    ]);
    expect([...targetWeights(effective, P, split).values()]).to.deep.equal([P.weight_min, 40, 100]);
    expect([...targetWeights(effective, P, new Map([['a', 1]])).values()]).to.deep.equal([25, 50, 100]);
    expect([...targetWeights(effective, P, null).values()]).to.deep.equal([25, 50, 100]);
  });

  it('the hook reads served load and round trip above idle from the scored values', function () {
    const values = (util: number, rtt: number) =>
      ({
        ...Object.fromEntries(Object.keys(P.signals).map((n) => [n, null])),
        utilisation: util,
        options_rtt_ms: rtt,
      }) as never;
    const members = [
      { sample: { id: 'a', capacity: 25 }, values: values(0.9, 20 + D.idle_rtt_ms) },
      { sample: { id: 'b', capacity: 100 }, values: values(0.9, 5 + D.idle_rtt_ms) },
    ];
    const effective = new Map([
      ['a', 25],
      ['b', 100],
    ]);
    const split = delaySplitFor(members, effective, ON);
    expect(split?.get('a')).to.be.below(0.9 * 25);
    expect(sum(split?.values() ?? [])).to.be.closeTo(0.9 * 125, 1e-9);
    expect(delaySplitFor(members, effective, P)).to.equal(null); // off by default
    const quiet = members.map((m) => ({ ...m, values: values(0.5, 0.2) }));
    expect(delaySplitFor(quiet, effective, ON)).to.equal(null); // far below the knee
  });

  it('with learned capacity the served load is the utilisation times the learned capacity, not the configured one', function () {
    const values = (util: number, rtt: number) =>
      ({
        ...Object.fromEntries(Object.keys(P.signals).map((n) => [n, null])),
        utilisation: util,
        options_rtt_ms: rtt,
      }) as never;
    // Both configured 58; learned 25 and 100, each serving 0.9 of its learned capacity.
    const members = [
      { sample: { id: 'a', capacity: 58 }, utilisationBasisCps: 25, values: values(0.9, 20 + D.idle_rtt_ms) },
      { sample: { id: 'b', capacity: 58 }, utilisationBasisCps: 100, values: values(0.9, 5 + D.idle_rtt_ms) },
    ];
    const effective = new Map([
      ['a', 25],
      ['b', 100],
    ]);
    expect(sum(delaySplitFor(members, effective, ON)?.values() ?? [])).to.be.closeTo(0.9 * 125, 1e-9);
  });

  it('M/D/2, the lab pool: the split lowers the mean and the worst backend wait vs proportional at 85/90/95 %', function () {
    const rows: string[] = [];
    for (const u of [0.7, 0.8, 0.85, 0.9, 0.95]) {
      const prop = LAB_CAPS.map((k) => k * u);
      const loads = labFixedPoint(u, D);
      const fullLoads = labFixedPoint(u, { ...D, start_utilisation: 0.01, full_utilisation: 0.02 });
      const a = poolWaits(prop);
      const b = poolWaits(loads);
      const c = poolWaits(fullLoads);
      rows.push(
        `  ${(u * 100).toFixed(0)} %: proportional mean ${a.mean.toFixed(1)} worst ${a.worst.toFixed(1)} ms | ` +
          `law (beta ${blendOf(u, D).toFixed(2)}) rho ${loads.map((l, i) => (l / (LAB_CAPS[i] ?? 1)).toFixed(3)).join('/')} ` +
          `mean ${b.mean.toFixed(1)} worst ${b.worst.toFixed(1)} ms | full equalisation mean ${c.mean.toFixed(1)} worst ${c.worst.toFixed(1)} ms`,
      );
      if (u >= 0.85) {
        expect(b.mean).to.be.below(a.mean);
        expect(b.worst).to.be.below(a.worst);
      }
      if (u < D.start_utilisation) expect(loads).to.deep.equal(prop);
    }
    process.stdout.write(`      M/D/2 waits, lab pool 25/50/100 calls/s:\n${rows.join('\n')}\n`);
  });

  it('worst case: the law keeps every backend above min_estimate_utilisation near the knee', function () {
    // Two backends, delay scales max_delay_ratio apart, the slow one tiny: its load is the least any
    // backend gets. It must stay where its own estimate survives (no flip back to proportional).
    let least = 1;
    for (let u = D.start_utilisation; u < 1; u += 0.0025) {
      const split = delaySplit(pool([0.001, 1000], [D.max_delay_ratio, 1]), u * 1000.001, D);
      least = Math.min(least, (split?.get('b0') ?? 0.001 * u) / 0.001);
    }
    process.stdout.write(
      `      least utilisation the law gives (ratio ${D.max_delay_ratio}): ${least.toFixed(3)}\n`,
    );
    expect(least).to.be.above(D.min_estimate_utilisation);
  });

  it('closed loop on the M/D/2 lab model at 90 %: the scorer settles on the split, the slow backend below proportional', function () {
    // Each cycle the LB splits 90 % of the pool by the last weights; each backend reports 3 requests
    // per call it serves and a round trip of idle + its M/D/2 wait. No noise: this checks the loop's
    // arithmetic and that it settles, not the lab.
    const run = (params: ScoringParams) => {
      let state: ScorerState = initialScorerState();
      let weights: Record<string, number> = { b0: 25, b1: 50, b2: 100 };
      const history: Record<string, number>[] = [];
      for (let t = 0; t <= 30_000; t += 250) {
        const total = sum(Object.values(weights));
        const samples = LAB_CAPS.map((k, i) => {
          const load = (0.9 * sum(LAB_CAPS) * (weights[`b${i}`] ?? 0)) / total;
          const wait = Math.min(1000, 1000 * waitMDc(WORKERS, LAB_SERVICE[i] ?? 0, load));
          const metrics = quietMetrics({ capacity: k, req_rate: 3 * load, options_rtt_ms: 0.2 + wait });
          return sample(`b${i}`, k, { metrics, at: t });
        });
        const r = scoreCycle(state, samples, t, params);
        state = r.state;
        weights = weightsOf(setOf(r.sets));
        history.push(weights);
      }
      return history;
    };
    const off = run(P);
    expect(off.at(-1)).to.deep.equal({ b0: 25, b1: 50, b2: 100 });
    const on = run(ON);
    const last = on.at(-1) ?? {};
    process.stdout.write(`      settled weights with the split: ${JSON.stringify(last)}\n`);
    expect(last['b0']).to.be.below(25);
    expect(last['b2']).to.equal(100);
    for (const w of on.slice(-40)) expect(w).to.deep.equal(last); // settled for the last 10 s
  });
});
