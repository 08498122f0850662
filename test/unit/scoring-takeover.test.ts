/**
 * Takeover, pure: a controller that starts while the LB carries a previous run's weights continues
 * from them (no weight jump), and a backend the LB does not have active is not put back at full
 * weight in one push.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { initialScorerState, scoreCycle, takeoverState, type TakeoverSeed } from '../../src/scoring/index.js';
import { P, sample, setOf, weightsOf } from './scoring-fixtures.js';

const seeds = (listed: Record<string, [number, number]>, set = 1): TakeoverSeed[] =>
  Object.entries(listed).map(([id, [capacity, listedWeight]]) => ({ id, set, capacity, listedWeight }));

/** Within the scorer's own deadband of `prev` (weights.ts stepWeight). */
const withinDeadband = (w: number, prev: number) =>
  Math.abs(w - prev) < Math.max(1, prev * P.weight_deadband_ratio) + 1;

describe('scoring: takeover from the weights an LB holds', function () {
  it('the first output is the listed weights; a fresh start would jump the derated backend to full', function () {
    // The previous run had derated a (capacity 100) to 40 % of b's share.
    const listed = { a: [100, 40], b: [100, 100] } as Record<string, [number, number]>;
    const samples = [sample('a', 100, { at: 1000 }), sample('b', 100, { at: 1000 })];
    const seeded = scoreCycle(takeoverState(seeds(listed), 0, P), samples, 1000, P);
    expect(weightsOf(setOf(seeded.sets))).to.deep.equal({ a: 40, b: 100 });
    const fresh = scoreCycle(initialScorerState(), samples, 1000, P);
    expect(weightsOf(setOf(fresh.sets))).to.deep.equal({ a: 100, b: 100 });
  });

  it('weights the LB holds as slots of 100 are taken on the scorer scale: the first output keeps their ratios', function () {
    // A previous run's 25/50/100 (capacities 1:2:4), as the LB holds them (src/push/rweight-slots.ts).
    const listed = { a: [25, 14], b: [50, 29], c: [100, 57] } as Record<string, [number, number]>;
    const samples = [
      sample('a', 25, { at: 1000 }),
      sample('b', 50, { at: 1000 }),
      sample('c', 100, { at: 1000 }),
    ];
    const seeded = scoreCycle(takeoverState(seeds(listed), 0, P), samples, 1000, P);
    // On the LB's scale the bounded step would have moved c by 20 and a by 11 (shares 16/33/51).
    expect(weightsOf(setOf(seeded.sets))).to.deep.equal({ a: 25, b: 51, c: 100 });
  });

  it('a list that is not slots, and a lone live backend, is kept as listed (a set held through a panic keeps it)', function () {
    const lone = takeoverState(seeds({ a: [100, 70], b: [100, 0] }), 0, P);
    expect([...lone.sets.get(1)!.weights!]).to.deep.equal([
      ['a', 70],
      ['b', 0],
    ]);
    const operator = takeoverState(seeds({ a: [100, 40], b: [100, 80] }), 0, P);
    expect([...operator.sets.get(1)!.weights!.values()]).to.deep.equal([40, 80]);
  });

  it('equal backends held as 34/33/33 slots (or 30 as 4s and 3s) come back at full capacity, not derated', function () {
    for (const n of [3, 30]) {
      const slots = Array.from({ length: n }, (_, i) =>
        i < 100 % n ? Math.ceil(100 / n) : Math.floor(100 / n),
      );
      const listed = Object.fromEntries(slots.map((w, i) => [`b${i}`, [100, w]])) as Record<
        string,
        [number, number]
      >;
      const state = takeoverState(seeds(listed), 0, P);
      const factors = [...state.backends.values()].map((m) => m.derating.factor);
      expect(
        factors.every((f) => f === 1),
        `${n} backends: ${factors.join(' ')}`,
      ).to.equal(true);
    }
    // A real derating is kept: 25/50/100 with the largest at 0.9 is held as 15/30/55.
    const derated = takeoverState(seeds({ a: [25, 15], b: [50, 30], c: [100, 55] }), 0, P);
    expect(derated.backends.get('c')!.derating.factor).to.be.closeTo(0.917, 0.01);
    expect(derated.backends.get('a')!.derating.factor).to.equal(1);
  });

  it('a few quiet seconds later the derated backend has only recovered at the law rate, step by step', function () {
    const listed = { a: [100, 40], b: [100, 100] } as Record<string, [number, number]>;
    let state = takeoverState(seeds(listed), 0, P);
    let prev = { a: 40, b: 100 };
    for (let t = 0; t <= 2000; t += 250) {
      const r = scoreCycle(state, [sample('a', 100, { at: t }), sample('b', 100, { at: t })], t, P);
      state = r.state;
      const w = weightsOf(setOf(r.sets)) as { a: number; b: number };
      // Never a jump: at most the recovery of one cycle beyond the deadband.
      expect(w.a - prev.a).to.be.at.most(
        Math.max(1, prev.a * P.weight_deadband_ratio) + P.recover_per_s * 100,
      );
      prev = w;
    }
    expect(prev.a).to.be.below(70);
  });

  it('a backend the LB has inactive (its own probing took it out) starts out, then slow-starts', function () {
    const listed = { a: [100, 0], b: [100, 100], c: [100, 100] } as Record<string, [number, number]>;
    const state = takeoverState(seeds(listed), 0, P);
    const first = scoreCycle(
      state,
      [sample('a', 100, { health: 'down' }), sample('b', 100), sample('c', 100)],
      0,
      P,
    );
    expect(weightsOf(setOf(first.sets))).to.deep.equal({ a: 0, b: 100, c: 100 });
    // Confirmed up by its own heartbeats later: it enters in slow start, not at full weight.
    const later = scoreCycle(
      first.state,
      [sample('a', 100, { at: 1000 }), sample('b', 100, { at: 1000 }), sample('c', 100, { at: 1000 })],
      1000,
      P,
    );
    const a = setOf(later.sets).backends.find((b) => b.id === 'a');
    expect(a?.assignment.phase).to.equal('slow_start');
    expect(weightsOf(setOf(later.sets)).a).to.be.below(50);
  });

  it('a set with nothing active at the LB starts fresh; factors stay within [factor_floor, 1]', function () {
    expect(takeoverState(seeds({ a: [100, 0] }), 0, P).sets.size).to.equal(0);
    const s = takeoverState(seeds({ a: [1000, 1], b: [10, 100] }), 0, P);
    expect(s.backends.get('a')?.derating.factor).to.equal(P.factor_floor);
    expect(s.backends.get('b')?.derating.factor).to.equal(1);
  });

  it('property: for any listed weights that scoring could have produced, the first output is within the deadband', function () {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            cap: fc.integer({ min: 10, max: 1000 }),
            f: fc.double({ min: 0.2, max: 1, noNaN: true }),
          }),
          {
            minLength: 1,
            maxLength: 8,
          },
        ),
        (members) => {
          const ids = members.map((_, i) => `b${i}`);
          // What a previous run in steady state pushed: targets from capacity x factor.
          const eff = members.map((m) => m.cap * m.f);
          const top = Math.max(...eff);
          const listed = eff.map((e) =>
            Math.min(P.weight_max, Math.max(P.weight_min, Math.round((P.weight_max * e) / top))),
          );
          const state = takeoverState(
            members.map((m, i) => ({ id: ids[i]!, set: 1, capacity: m.cap, listedWeight: listed[i]! })),
            0,
            P,
          );
          const r = scoreCycle(
            state,
            members.map((m, i) => sample(ids[i]!, m.cap)),
            0,
            P,
          );
          const w = weightsOf(setOf(r.sets));
          ids.forEach((id, i) =>
            expect(withinDeadband(w[id]!, listed[i]!), `${id}: ${w[id]} vs ${listed[i]}`).to.equal(true),
          );
        },
      ),
      { numRuns: 200 },
    );
  });
});
