/**
 * Shared builders for the scoring tests, and a small pool model: a simulated emulated backend whose
 * signals follow its true utilisation the way KAMAILIO-NOTES.md measured them (round trip 0.1-0.2 ms
 * below 80 %, ~3 ms at 95 %, 60 ms+ above capacity; rx queue 0 -> 5-10 KB -> 120 KB; drops only
 * above capacity). It is a model (a fake of real backends), not a measurement.
 */
import type { HealthKind } from '../../src/health/state-machine.js';
import type { ReportMetrics } from '../../src/heartbeat/messages.js';
import { DEFAULT_SCORING_PARAMS } from '../../src/config/scoring-params.js';
import {
  initialScorerState,
  scoreCycle,
  type BackendSample,
  type ScorerState,
  type ScoringParams,
  type SetResult,
} from '../../src/scoring/index.js';

export const P = DEFAULT_SCORING_PARAMS;
/** The round-trip knee in force (tests are written against it, not against a number). */
export const RTT_KNEE = P.signals.options_rtt_ms.knee ?? 5;

export function quietMetrics(over: Partial<ReportMetrics> = {}): ReportMetrics {
  return {
    cpu_util: 0.2,
    mem_used_ratio: 0.3,
    load1: 0.5,
    tm_current: 100,
    dialogs_active: 50,
    req_rate: 30,
    err5xx_rate: 0,
    udp_rx_queue_bytes: 0,
    udp_drops: 0,
    options_rtt_ms: 0.2,
    capacity: 100,
    draining: false,
    ...over,
  };
}

export function sample(
  id: string,
  capacity: number,
  opts: {
    set?: number;
    health?: HealthKind;
    metrics?: ReportMetrics | null;
    at?: number;
    probed?: boolean;
  } = {},
): BackendSample {
  const metrics = opts.metrics === undefined ? quietMetrics({ capacity }) : opts.metrics;
  return {
    id,
    set: opts.set ?? 1,
    capacity,
    health: opts.health ?? 'up',
    report: metrics === null ? null : { metrics, at: opts.at ?? 0 },
    probed: opts.probed ?? true,
  };
}

export function setOf(results: readonly SetResult[], set = 1): SetResult {
  const r = results.find((x) => x.set === set);
  if (!r) throw new Error(`no result for set ${set}`);
  return r;
}

export function weightsOf(r: SetResult): Record<string, number> {
  if (r.weights === null) throw new Error(`set ${r.set} has no weights`);
  return Object.fromEntries(r.weights);
}

/** Deterministic PRNG (mulberry32), so a failing simulation replays exactly. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const lerp = (x: number, x0: number, x1: number, y0: number, y1: number) =>
  y0 + ((Math.min(x1, Math.max(x0, x)) - x0) / (x1 - x0)) * (y1 - y0);

/** Round trip (ms) and rx queue (bytes) of an emulated backend at true utilisation rho. */
export function modelSignals(rho: number): { rtt: number; queue: number } {
  if (rho <= 0.8) return { rtt: 0.15, queue: 0 };
  if (rho <= 0.95) return { rtt: lerp(rho, 0.8, 0.95, 0.15, 3), queue: lerp(rho, 0.8, 0.95, 0, 8_000) };
  if (rho <= 1) return { rtt: lerp(rho, 0.95, 1, 3, 20), queue: lerp(rho, 0.95, 1, 8_000, 40_000) };
  return { rtt: 60 * rho, queue: 120_000 };
}

export interface SimBackend {
  readonly id: string;
  /** Configured capacity, calls/s. */
  readonly capacity: number;
  /** True capacity at time t (ms). */
  readonly realCapacity: (t: number) => number;
}

export interface SimTick {
  readonly t: number;
  readonly weights: Record<string, number>;
  readonly rho: Record<string, number>;
  readonly result: SetResult;
}

/**
 * Runs the closed loop: every `cycleMs` the LB splits `offered` calls/s by the weights pushed the
 * cycle before (one cycle of push lag), each backend reports signals of its true utilisation (with
 * multiplicative noise on the round trip, and occasional scheduling spikes), and the scorer
 * computes the next weights.
 */
export function simulate(opts: {
  backends: readonly SimBackend[];
  offered: (t: number) => number;
  durationMs: number;
  cycleMs?: number;
  seed?: number;
  spikeProbability?: number;
  params?: ScoringParams;
}): SimTick[] {
  const cycle = opts.cycleMs ?? 250;
  const rand = rng(opts.seed ?? 1);
  const params = opts.params ?? P;
  let state: ScorerState = initialScorerState();
  // Before the first output the LB splits by configured capacity (static weights).
  let weights: Record<string, number> = Object.fromEntries(opts.backends.map((b) => [b.id, b.capacity]));
  const drops: Record<string, number> = Object.fromEntries(opts.backends.map((b) => [b.id, 0]));
  const ticks: SimTick[] = [];
  for (let t = 0; t <= opts.durationMs; t += cycle) {
    const total = Object.values(weights).reduce((a, b) => a + b, 0);
    const rho: Record<string, number> = {};
    const samples: BackendSample[] = opts.backends.map((b) => {
      const load = total > 0 ? (opts.offered(t) * (weights[b.id] ?? 0)) / total : 0;
      const real = b.realCapacity(t);
      const r = load / real;
      rho[b.id] = r;
      const { rtt, queue } = modelSignals(r);
      const spike = rand() < (opts.spikeProbability ?? 0) ? 5 + rand() * 10 : 0;
      drops[b.id] = (drops[b.id] ?? 0) + (r > 1 ? ((r - 1) * real * 3 * cycle) / 1000 : 0);
      const metrics = quietMetrics({
        capacity: b.capacity,
        options_rtt_ms: rtt * (0.7 + 0.7 * rand()) + spike,
        udp_rx_queue_bytes: Math.round(queue * (0.8 + 0.4 * rand())),
        udp_drops: Math.floor(drops[b.id] ?? 0),
        req_rate: 3 * Math.min(load, real * 1.05),
        tm_current: Math.round(10 * Math.min(load, real)),
      });
      return sample(b.id, b.capacity, { metrics, at: t - Math.floor(rand() * 20) });
    });
    const out = scoreCycle(state, samples, t, params);
    state = out.state;
    const result = setOf(out.sets);
    if (result.weights !== null) weights = Object.fromEntries(result.weights);
    ticks.push({ t, weights: { ...weights }, rho, result });
  }
  return ticks;
}

/** Largest relative error of the weights' shares against the capacities' shares. */
export function shareError(weights: Record<string, number>, capacities: Record<string, number>): number {
  const wSum = Object.values(weights).reduce((a, b) => a + b, 0);
  const cSum = Object.values(capacities).reduce((a, b) => a + b, 0);
  let worst = 0;
  for (const [id, c] of Object.entries(capacities)) {
    const want = c / cSum;
    const got = (weights[id] ?? 0) / wSum;
    worst = Math.max(worst, Math.abs(got - want) / want);
  }
  return worst;
}
