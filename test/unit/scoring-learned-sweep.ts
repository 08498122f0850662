/**
 * The sweep behind learned capacity's probe constants (docs/controller.md, "Learned capacity"): one
 * line of closed-loop figures (scoring-learned-sim.ts, scoring-fixtures.ts `simulate`) for the
 * defaults, or for R (probe_above_ratio), S (probe_per_s), Q (quiet_queue_bytes), W
 * (standing_window_ms), U (queue_surge_bytes), H (served_half_life_ms) from the environment, on the
 * simulation's lab-like noise or its calm model (N=lab|calm, default lab):
 *   N=lab R=0.8 S=0.15 Q=4096 W=1500 U=24576 H=1000 D=0.6 node --import tsx test/unit/scoring-learned-sweep.ts
 * (D: the offered load of the quality bench's drop case, be3 halved from 20 to 40 s on a pool configured right.)
 * Not a test (no .test.ts): it asserts nothing and prints figures. Q=1e12 turns the quiet gate off.
 */
import { DEFAULT_SCORING_PARAMS as P } from '../../src/config/scoring-params.js';
import { shareError, simulate, rng } from './scoring-fixtures.js';
import { runLoop, type LoopBackend, type LoopTick } from './scoring-learned-sim.js';
const REAL = { a: 25, b: 50, c: 100 } as Record<string, number>;
const POOL = 175;
const eq = (real = (id: string, _t: number) => REAL[id]!): LoopBackend[] =>
  Object.keys(REAL).map((id) => ({ id, configured: 58, real: (t: number) => real(id, t) }));
const share = (k: LoopTick, id: string) =>
  (k.weights[id] ?? 0) / Object.values(k.weights).reduce((x, y) => x + y, 0);
const settledFrom = (ticks: readonly LoopTick[], ok: (k: LoopTick) => boolean) => {
  let from: number | null = null;
  for (const k of ticks) from = ok(k) ? (from ?? k.t) : null;
  return from;
};
function changes(ticks: readonly { weights: Record<string, number> }[]): number {
  let n = 0;
  for (let i = 1; i < ticks.length; i++)
    for (const [id, w] of Object.entries(ticks[i]!.weights)) if (ticks[i - 1]!.weights[id] !== w) n++;
  return n;
}
const ratio = Number(process.env.R ?? P.capacity.probe_above_ratio);
const per = Number(process.env.S ?? P.capacity.probe_per_s);
const quiet = Number(process.env.Q ?? P.capacity.quiet_queue_bytes);
const window = Number(process.env.W ?? P.capacity.standing_window_ms);
const surge = Number(process.env.U ?? P.capacity.queue_surge_bytes);
const halfLife = Number(process.env.H ?? P.capacity.served_half_life_ms);
const params = {
  ...P,
  capacity: {
    ...P.capacity,
    learn: true,
    probe_above_ratio: ratio,
    probe_per_s: per,
    quiet_queue_bytes: quiet,
    standing_window_ms: window,
    queue_surge_bytes: surge,
    served_half_life_ms: halfLife,
  },
};
const noise = (process.env.N ?? 'lab') as 'lab' | 'calm';
/** The offered load of the drop at the end (the quality bench's: 60 %). */
const dropLoad = Number(process.env.D ?? 0.6);
const out: string[] = [`N=${noise} R=${ratio} S=${per} Q=${quiet} W=${window} U=${surge} H=${halfLife}`];
const conv: (number | null)[] = [];
let limLo = Infinity,
  limHi = 0;
for (const seed of [1, 2, 3]) {
  const t = runLoop({ backends: eq(), offered: () => 1.1 * POOL, durationMs: 60_000, seed, params, noise });
  conv.push(settledFrom(t, (k) => shareError(k.weights, REAL) <= 0.15));
  for (const k of t.filter((x) => x.t >= 15_000)) {
    limLo = Math.min(limLo, k.limit!);
    limHi = Math.max(limHi, k.limit!);
  }
}
out.push(`conv110=${conv.join('/')} lim=${limLo.toFixed(0)}-${limHi.toFixed(0)}`);
{
  const errs: number[] = [];
  const lim: number[] = [];
  let rhoMax = 0;
  for (const seed of [1, 2, 3]) {
    const t = runLoop({
      backends: eq(),
      offered: () => 0.78 * POOL,
      durationMs: 40_000,
      seed,
      params,
      noise,
    });
    for (const k of t.filter((x) => x.t >= 15_000)) {
      errs.push(shareError(k.weights, REAL));
      lim.push(k.limit!);
      rhoMax = Math.max(rhoMax, ...Object.values(k.rho));
    }
  }
  errs.sort((a, b) => a - b);
  out.push(
    `78%: err med ${(errs[errs.length >> 1]! * 100).toFixed(0)} max ${(errs[errs.length - 1]! * 100).toFixed(0)} lim ${Math.min(...lim).toFixed(0)}-${Math.max(...lim).toFixed(0)} rhoMax ${rhoMax.toFixed(2)}`,
  );
}
{
  const fol: number[] = [],
    rec: (number | null)[] = [];
  let worst = 0,
    minShare = 1,
    osc = 0;
  for (const seed of [1, 2, 3]) {
    const drop = 30_000,
      back = 50_000;
    const t = runLoop({
      backends: eq((id, tt) => (id === 'c' && tt >= drop && tt < back ? 50 : REAL[id]!)),
      offered: () => 1.1 * POOL,
      durationMs: 75_000,
      seed,
      params,
      noise,
    });
    const halved = t.filter((k) => k.t >= drop && k.t < back);
    fol.push(halved.find((k) => share(k, 'c') <= (50 / 125) * 1.1)!.t - drop);
    for (const k of halved.filter((x) => x.t >= drop + 1000)) {
      minShare = Math.min(minShare, share(k, 'c') / 0.4);
      worst = Math.max(worst, k.rho.a!, k.rho.b!);
    }
    const r = t.filter((k) => k.t >= back).find((k) => share(k, 'c') >= (100 / 175) * 0.9);
    rec.push(r ? r.t - back : null);
    osc += changes(t.filter((k) => k.t >= back + 10_000));
  }
  out.push(
    `halve: follow ${fol.join('/')} minShare ${minShare.toFixed(2)} peerRho ${worst.toFixed(2)} recovery ${rec.join('/')} changes15s ${osc}`,
  );
}
{
  // correctly configured pools, simulate() (no limit), many random pools, at loads 0.3-0.92
  const r = rng(42);
  let bad = 0,
    worstCh = 0,
    runs = 0,
    badErr = 0;
  for (let i = 0; i < 150; i++) {
    const n = 2 + Math.floor(r() * 4);
    let list: number[];
    do {
      list = Array.from({ length: n }, () => 20 + Math.floor(r() * 381));
    } while (Math.max(...list) / Math.min(...list) > 8);
    const load = i < 50 ? 0.85 + 0.07 * r() : 0.3 + 0.62 * r();
    const caps = Object.fromEntries(list.map((c, j) => [`b${j}`, c]));
    const total = list.reduce((a, b) => a + b, 0);
    const ticks = simulate({
      backends: Object.entries(caps).map(([id, c]) => ({ id, capacity: c, realCapacity: () => c })),
      offered: (t) => load * total * Math.min(1, t / 5000),
      durationMs: 40_000,
      seed: 1 + Math.floor(r() * 1e6),
      spikeProbability: 0.03 * r(),
      params,
    });
    const w = ticks.filter((t) => t.t >= 10_000);
    const ch = changes(w);
    runs++;
    if (ch > 2 * n) bad++;
    if (w.some((t) => shareError(t.weights, caps) > 0.1)) badErr++;
    worstCh = Math.max(worstCh, ch / n);
  }
  out.push(
    `correct pools: ${bad}/${runs} oscillate, ${badErr} err>10 %, worst changes/backend ${worstCh.toFixed(1)}`,
  );
}
{
  const parts: string[] = [];
  for (const f of [0.85, 0.92, 1.0, 1.1, 1.3]) {
    let ch = 0,
      lo = Infinity,
      hi = 0,
      err = 0,
      rmax = 0;
    for (const seed of [1, 2, 3]) {
      const t = runLoop({
        backends: Object.keys(REAL).map((id) => ({ id, configured: REAL[id]!, real: () => REAL[id]! })),
        offered: () => f * POOL,
        durationMs: 40_000,
        seed,
        params,
        noise,
      });
      const w = t.filter((k) => k.t >= 10_000);
      ch = Math.max(ch, changes(w));
      for (const k of w) {
        lo = Math.min(lo, k.limit!);
        hi = Math.max(hi, k.limit!);
        err = Math.max(err, shareError(k.weights, REAL));
        rmax = Math.max(rmax, ...Object.values(k.rho));
      }
    }
    parts.push(
      `${f}:ch${ch} lim${lo.toFixed(0)}-${hi.toFixed(0)} err${(err * 100).toFixed(0)} rho${rmax.toFixed(2)}`,
    );
  }
  out.push('correct+limit ' + parts.join(' '));
}
{
  // The quality bench's cases: unknown pool at 80/85 %, be1's utilisation and the limit; the known
  // pool's drop at 60 % offered (be3 halved 20-40 s): follow and recovery.
  const parts: string[] = [];
  for (const f of [0.8, 0.85, 0.9]) {
    const rho1: number[] = [];
    const lim: number[] = [];
    for (const seed of [1, 2, 3]) {
      const t = runLoop({ backends: eq(), offered: () => f * POOL, durationMs: 40_000, seed, params, noise });
      for (const k of t.filter((x) => x.t >= 15_000)) {
        rho1.push(k.rho.a!);
        lim.push(k.limit!);
      }
    }
    rho1.sort((a, b) => a - b);
    lim.sort((a, b) => a - b);
    const q = (xs: number[], p: number) => xs[Math.floor(p * (xs.length - 1))]!;
    parts.push(
      `${f}: be1 rho med ${q(rho1, 0.5).toFixed(2)} p90 ${q(rho1, 0.9).toFixed(2)} lim p10 ${q(lim, 0.1).toFixed(0)} med ${q(lim, 0.5).toFixed(0)}`,
    );
  }
  out.push('unknown ' + parts.join(' '));
  const fol: (number | null)[] = [],
    rec: (number | null)[] = [];
  let rhoC = 0,
    backlogC = 0;
  for (const seed of [1, 2, 3]) {
    const drop = 20_000,
      back = 40_000;
    const t = runLoop({
      backends: Object.keys(REAL).map((id) => ({
        id,
        configured: REAL[id]!,
        real: (tt: number) => (id === 'c' && tt >= drop && tt < back ? 50 : REAL[id]!),
      })),
      offered: () => dropLoad * POOL,
      durationMs: 60_000,
      seed,
      params,
      noise,
    });
    const halved = t.filter((k) => k.t >= drop && k.t < back);
    const f = halved.find((k) => share(k, 'c') <= (50 / 125) * 1.1);
    for (const k of halved.filter((x) => x.t >= drop + 3000)) {
      rhoC = Math.max(rhoC, k.rho.c!);
      backlogC = Math.max(backlogC, k.backlog.c!);
    }
    fol.push(f ? f.t - drop : null);
    const r = t.filter((k) => k.t >= back).find((k) => share(k, 'c') >= (100 / 175) * 0.9);
    rec.push(r ? r.t - back : null);
  }
  out.push(
    `drop at ${dropLoad * 100} %: follow ${fol.join('/')} back ${rec.join('/')} halved be3 rho max ${rhoC.toFixed(2)} backlog max ${backlogC.toFixed(1)}`,
  );
}
console.log(out.join(' | '));
