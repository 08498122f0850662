import { expect } from 'chai';
import type { HealthKind } from '../../src/health/state-machine.js';
import type { ReportMetrics } from '../../src/heartbeat/messages.js';
import {
  initialScorerState,
  scoreCycle,
  type BackendSample,
  type CycleResult,
  type ScorerState,
  type SetResult,
} from '../../src/scoring/index.js';
import { P, RTT_KNEE, quietMetrics, sample, setOf, weightsOf } from './scoring-fixtures.js';

const CAPS = { a: 100, b: 200, c: 400 } as const;
type Id = keyof typeof CAPS;

/** Samples for a, b, c at `t` with fresh quiet reports, some health overridden. */
function pool(t: number, health: Partial<Record<Id, HealthKind>> = {}, set = 1): BackendSample[] {
  return (Object.keys(CAPS) as Id[]).map((id) =>
    sample(id, CAPS[id], { set, health: health[id] ?? 'up', at: t - 10 }),
  );
}

/** Runs cycles every 250 ms from `from` to `to` with samples from `make(t)`. */
function runCycles(state: ScorerState, from: number, to: number, make: (t: number) => BackendSample[]) {
  const outs: CycleResult[] = [];
  let s = state;
  for (let t = from; t <= to; t += 250) {
    const out = scoreCycle(s, make(t), t, P);
    outs.push(out);
    s = out.state;
  }
  return { state: s, outs, last: outs[outs.length - 1] as CycleResult };
}

function scored(r: SetResult): Extract<SetResult, { mode: 'scored' }> {
  if (r.mode !== 'scored') throw new Error(`set ${r.set} is in panic`);
  return r;
}

describe('scoring cycle', function () {
  it('weights a quiet pool by configured capacity at once, with operator figures', function () {
    const out = scoreCycle(initialScorerState(), pool(1_000), 1_000, P);
    const r = scored(setOf(out.sets));
    expect(weightsOf(r)).to.deep.equal({ a: 25, b: 50, c: 100 });
    expect(r.poolCapacityCps).to.equal(700);
    expect(r.admissionLimitCps).to.equal(700 * P.admission_headroom_ratio);
    const c = r.backends.find((b) => b.id === 'c');
    expect(c).to.include({
      knowledge: 'fresh',
      factor: 1,
      effectiveCapacityCps: 400,
      dominant: 'mem_used_ratio',
    });
    expect(c?.assignment).to.deep.equal({ phase: 'normal', weight: 100 });
    expect(c?.pressures.options_rtt_ms).to.be.closeTo(0.2 / RTT_KNEE, 1e-12);
    expect(c?.values.options_rtt_ms).to.be.closeTo(0.2, 1e-12); // in ms, for the operator
    expect(out.rejected).to.deep.equal([]);
  });

  it('a backend with no report (or a stale one) counts at configured capacity, without load knowledge', function () {
    const samples = [
      sample('a', 100, { metrics: null }),
      sample('b', 200, { at: 0 }), // 10 s old at t = 10 s
      sample('c', 400, { at: 9_990 }),
    ];
    const r = scored(setOf(scoreCycle(initialScorerState(), samples, 10_000, P).sets));
    expect(weightsOf(r)).to.deep.equal({ a: 25, b: 50, c: 100 });
    const [a, b] = r.backends;
    expect(a).to.include({ knowledge: 'none', pressure: null, dominant: null, factor: 1 });
    expect(b).to.include({ knowledge: 'stale', pressure: null, dominant: null, factor: 1 });
  });

  it('takes down, draining and returning backends out at once (weight 0, phase out); suspect keeps its weight', function () {
    const start = scoreCycle(initialScorerState(), pool(1_000), 1_000, P).state;
    const suspect = scoreCycle(start, pool(1_250, { b: 'suspect' }), 1_250, P);
    expect(weightsOf(setOf(suspect.sets))).to.deep.equal({ a: 25, b: 50, c: 100 });
    const out = scoreCycle(suspect.state, pool(1_500, { a: 'draining', c: 'down' }), 1_500, P);
    const r = scored(setOf(out.sets));
    // a and c go to 0 in one cycle (from 25 and 100); b, alone now, rises by the bounded step only.
    expect(weightsOf(r)).to.deep.equal({ a: 0, b: 50 + P.max_weight_step, c: 0 });
    const byId = Object.fromEntries(r.backends.map((b) => [b.id, b.assignment]));
    expect(byId.a).to.deep.equal({ phase: 'out', weight: 0, reason: 'draining' });
    expect(byId.c).to.deep.equal({ phase: 'out', weight: 0, reason: 'down' });
    expect(byId.b?.phase).to.equal('normal');
    expect(r.poolCapacityCps).to.equal(200);
    const returning = scoreCycle(out.state, pool(1_750, { c: 'returning' }), 1_750, P);
    expect(weightsOf(setOf(returning.sets)).c).to.equal(0);
  });

  it('a set whose every backend is out has weights 0 and an admission limit of 0 (panic disabled)', function () {
    const params = { ...P, panic_threshold_ratio: 0 };
    const out = scoreCycle(
      initialScorerState(),
      pool(1_000, { a: 'down', b: 'down', c: 'returning' }),
      1_000,
      params,
    );
    const r = scored(setOf(out.sets));
    expect(weightsOf(r)).to.deep.equal({ a: 0, b: 0, c: 0 });
    expect(r.admissionLimitCps).to.equal(0);
  });

  it('folds each report once: a second cycle at the same time with the same report changes nothing', function () {
    const hot = (t: number) =>
      pool(t).map((s) =>
        s.id === 'c'
          ? { ...s, report: { metrics: quietMetrics({ options_rtt_ms: 8 * RTT_KNEE }), at: 900 } }
          : s,
      );
    const first = scoreCycle(initialScorerState(), hot(1_000), 1_000, P);
    const again = scoreCycle(first.state, hot(1_000), 1_000, P);
    expect(again.state.backends.get('c')).to.deep.equal(first.state.backends.get('c'));
    expect(weightsOf(setOf(again.sets))).to.deep.equal(weightsOf(setOf(first.sets)));
  });

  it('an overloaded backend loses weight within 2.5 s (a standing window, then the cut), then holds while it is in the band', function () {
    let { state } = runCycles(initialScorerState(), 0, 2_000, (tt) => pool(tt));
    const t = 2_250;
    const hot = (tt: number, rtt: number) =>
      pool(tt).map((s) =>
        s.id === 'c' ? { ...s, report: { metrics: quietMetrics({ options_rtt_ms: rtt }), at: tt - 10 } } : s,
      );
    const over = runCycles(state, t, t + 2_500, (tt) => hot(tt, 12 * RTT_KNEE));
    const w = weightsOf(setOf(over.last.sets));
    const c = setOf(over.last.sets).backends.find((b) => b.id === 'c');
    expect(c?.dominant).to.equal('options_rtt_ms');
    expect(c?.factor).to.be.lessThan(0.7);
    // c is still the largest by weight normalisation, so the others rise instead.
    expect(w.a ?? 0).to.be.greaterThan(25);
    expect(w.b ?? 0).to.be.greaterThan(50);
    state = over.state;
    const band = runCycles(state, t + 2_750, t + 7_000, (tt) => hot(tt, 0.8 * RTT_KNEE));
    const held = band.outs.map((o) => weightsOf(setOf(o.sets)));
    // The latest report is in the band: the cut stops at once, and nothing moves while it stays there.
    expect(new Set(held.slice(1).map((x) => JSON.stringify(x))).size).to.equal(1);
  });

  it('ignores a udp_drops counter reset (agent restart) instead of reading it as overload', function () {
    const mk = (tt: number) =>
      pool(tt).map((s) =>
        s.id === 'b'
          ? {
              ...s,
              report: { metrics: quietMetrics({ udp_drops: tt < 2_000 ? 1_000_000 : 5 }), at: tt - 10 },
            }
          : s,
      );
    const { last } = runCycles(initialScorerState(), 0, 4_000, mk);
    const b = setOf(last.sets).backends.find((x) => x.id === 'b');
    expect(b?.pressures.udp_drops_per_s).to.equal(0);
    expect(b?.factor).to.equal(1);
  });

  it('slow start: a backend that comes back ramps up over several steps, not in one jump', function () {
    const up = runCycles(initialScorerState(), 0, 2_000, (t) => pool(t));
    const down = runCycles(up.state, 2_250, 3_000, (t) => pool(t, { c: 'down' }));
    expect(weightsOf(setOf(down.last.sets)).c).to.equal(0);
    const back = runCycles(down.state, 3_250, 3_250 + P.slow_start_ms + 2_000, (t) => pool(t));
    const cw = back.outs.map((o) => weightsOf(setOf(o.sets)).c ?? 0);
    const phases = back.outs.map((o) => setOf(o.sets).backends.find((b) => b.id === 'c')?.assignment.phase);
    expect(phases[0]).to.equal('slow_start');
    expect(phases[phases.length - 1]).to.equal('normal');
    // c comes back as the largest: the others are scaled against it, so look at its share.
    const shares = back.outs.map((o) => {
      const w = weightsOf(setOf(o.sets));
      return (w.c ?? 0) / ((w.a ?? 0) + (w.b ?? 0) + (w.c ?? 0));
    });
    expect(shares[0]).to.be.lessThan(0.2);
    expect(shares[shares.length - 1]).to.be.closeTo(4 / 7, 0.02);
    for (let i = 1; i < shares.length; i++) expect(shares[i]).to.be.at.least((shares[i - 1] ?? 0) - 1e-9);
    expect(new Set(shares.map((s) => s.toFixed(3))).size).to.be.at.least(5);
    expect(cw.every((w) => w > 0)).to.equal(true);
  });

  it('no slow start for the first backends of a set (nothing to shift load from)', function () {
    const out = scoreCycle(initialScorerState(), pool(0), 0, P);
    expect(setOf(out.sets).backends.map((b) => b.assignment.phase)).to.deep.equal([
      'normal',
      'normal',
      'normal',
    ]);
  });

  it('panic: when most of a set looks down at once, keeps the last weights and limit and says so', function () {
    const up = runCycles(initialScorerState(), 0, 1_000, (t) => pool(t));
    const before = scored(setOf(up.last.sets));
    const out = scoreCycle(up.state, pool(1_250, { b: 'down', c: 'down' }), 1_250, P);
    const r = setOf(out.sets);
    expect(r.mode).to.equal('panic');
    expect(r.panic).to.deep.equal({ healthy: 1, counted: 3, threshold: 0.5, since: 1_250 });
    expect(weightsOf(r)).to.deep.equal(weightsOf(before));
    expect(r.admissionLimitCps).to.equal(before.admissionLimitCps);
    // Still in panic later: same weights, panic start kept.
    const later = scoreCycle(out.state, pool(5_000, { a: 'down', b: 'down', c: 'down' }), 5_000, P);
    expect(setOf(later.sets).panic?.since).to.equal(1_250);
    expect(weightsOf(setOf(later.sets))).to.deep.equal(weightsOf(before));
    // Agents heard again: scored, and the weights move on from the held ones.
    const healed = scoreCycle(later.state, pool(5_250), 5_250, P);
    expect(setOf(healed.sets).mode).to.equal('scored');
  });

  it('backends the controller cannot probe do not hold the set in panic: the probed ones are scored', function () {
    // a has an agent; three LB-listed destinations without one sit in the same set, never probed.
    const samples = (t: number) => [
      sample('a', 100, { at: t - 10 }),
      ...['x', 'y', 'z'].map((id) => sample(id, 100, { health: 'down', metrics: null, probed: false })),
    ];
    const out = runCycles(initialScorerState(), 0, 1_000, samples);
    const r = setOf(out.last.sets);
    expect(r.mode).to.equal('scored');
    expect(weightsOf(r).a).to.be.greaterThan(0);
  });

  it('panic before any output: weights null (leave the LB as it is), other sets unaffected', function () {
    const samples = [...pool(0, { a: 'down', b: 'down', c: 'down' }), sample('x', 50, { set: 2 })];
    const out = scoreCycle(initialScorerState(), samples, 0, P);
    const s1 = setOf(out.sets, 1);
    expect(s1.mode).to.equal('panic');
    expect(s1.weights).to.equal(null);
    expect(s1.admissionLimitCps).to.equal(null);
    expect(weightsOf(setOf(out.sets, 2))).to.deep.equal({ x: 100 });
  });

  it('rejects unusable samples with a reason and scores the rest', function () {
    const samples = [
      sample('a', 100),
      sample('a', 200),
      sample('z', -5),
      sample('n', NaN),
      { ...sample('h', 10), health: 'weird' as HealthKind },
      { ...sample('m', 10), report: { at: 0, metrics: null as unknown as ReportMetrics } },
      { ...sample('t', 10), report: { at: NaN, metrics: quietMetrics() } },
    ];
    const out = scoreCycle(initialScorerState(), samples, 0, P);
    expect(out.rejected.map((r) => r.id)).to.deep.equal(['a', 'z', 'n', 'h', 'm', 't']);
    expect(out.rejected[0]?.reason).to.include('duplicate');
    expect(weightsOf(setOf(out.sets))).to.deep.equal({ a: 100 });
  });

  it('forgets backends and sets that are no longer sampled', function () {
    const out = scoreCycle(initialScorerState(), [...pool(0), sample('x', 50, { set: 2 })], 0, P);
    const next = scoreCycle(out.state, pool(250).slice(0, 2), 250, P);
    expect([...next.state.backends.keys()].sort()).to.deep.equal(['a', 'b']);
    expect([...next.state.sets.keys()]).to.deep.equal([1]);
  });
});

describe('scoring cycle: slow start only for what the LB was told to skip', function () {
  it('a partition that heals brings nobody back through slow start; a single dead backend does ramp', function () {
    let { state } = runCycles(initialScorerState(), 0, 2_000, (tt) => pool(tt));
    // Every agent silent: all down, the set panics and holds its output.
    const silent = runCycles(state, 2_250, 3_000, (tt) => pool(tt, { a: 'down', b: 'down', c: 'down' }));
    expect(setOf(silent.last.sets).mode).to.equal('panic');
    // Heals in two steps: a and b confirmed first (panic over), c still proving itself a cycle longer.
    const healing = runCycles(silent.state, 3_250, 3_250, (tt) => pool(tt, { c: 'returning' }));
    expect(weightsOf(setOf(healing.last.sets)).c, 'c kept while it is confirmed').to.be.greaterThan(0);
    const healed = runCycles(healing.state, 3_500, 3_500, (tt) => pool(tt));
    const c = setOf(healed.last.sets).backends.find((b) => b.id === 'c')!;
    expect(c.assignment.phase).to.equal('normal');

    // A single backend that really died and was taken out: it ramps when it returns.
    state = healed.state;
    const dead = runCycles(state, 3_750, 5_000, (tt) => pool(tt, { b: 'down' }));
    expect(weightsOf(setOf(dead.last.sets)).b).to.equal(0);
    const back = runCycles(dead.state, 5_250, 5_250, (tt) => pool(tt));
    expect(setOf(back.last.sets).backends.find((x) => x.id === 'b')!.assignment.phase).to.equal('slow_start');
  });
});
