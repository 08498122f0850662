/**
 * A small pure closed-loop simulation for the learned-capacity tests: the LB admits
 * min(offered, admission limit) and splits it by the weights the scorer output the cycle before;
 * each backend is a fluid queue with a real capacity (it serves min(capacity, arrivals + backlog));
 * its report is synthesized from that queue: req_rate = 3 × served (inflated by retransmissions
 * once requests wait past T1), the receive queue = backlog × bytes per call plus the small queue of
 * a backend near its knee (KAMAILIO-NOTES: 5-10 KB at 95 %), the round trip = backlog / capacity,
 * drops when the socket buffer is full. A model, not a measurement: the lab test checks the real thing.
 */
import { DEFAULT_SCORING_PARAMS } from '../../src/config/scoring-params.js';
import {
  initialScorerState,
  scoreCycle,
  type BackendSample,
  type ScorerState,
  type ScoringParams,
  type SetResult,
} from '../../src/scoring/index.js';
import { modelSignals, quietMetrics, rng } from './scoring-fixtures.js';

export interface LoopBackend {
  readonly id: string;
  /** Configured capacity (the prior), calls/s. */
  readonly configured: number;
  /** Real capacity at time t (ms), calls/s. */
  readonly real: (t: number) => number;
}

export interface LoopTick {
  readonly t: number;
  readonly weights: Record<string, number>;
  readonly limit: number | null;
  /** Arrivals over real capacity, per backend, this cycle. */
  readonly rho: Record<string, number>;
  /** Backlog per backend (calls). */
  readonly backlog: Record<string, number>;
  readonly admitted: number;
  readonly served: number;
  readonly result: SetResult;
}

/** The defaults with learning on (off by default: docs/controller.md, "Learned capacity"). */
export const LEARNING: ScoringParams = {
  ...DEFAULT_SCORING_PARAMS,
  capacity: { ...DEFAULT_SCORING_PARAMS.capacity, learn: true },
};

const BYTES_PER_CALL = 1000;
const BUFFER_BYTES = 200_000;
const STEP_MS = 10;

export function runLoop(opts: {
  backends: readonly LoopBackend[];
  offered: (t: number) => number;
  durationMs: number;
  params?: ScoringParams;
  seed?: number;
  cycleMs?: number;
}): LoopTick[] {
  const p = opts.params ?? LEARNING;
  const cycle = opts.cycleMs ?? 250;
  const rand = rng(opts.seed ?? 1);
  let state: ScorerState = initialScorerState();
  // Before the first output the LB splits by configured capacity and admits everything.
  let weights: Record<string, number> = Object.fromEntries(opts.backends.map((b) => [b.id, b.configured]));
  let limit: number | null = null;
  const q: Record<string, number> = Object.fromEntries(opts.backends.map((b) => [b.id, 0]));
  const drops: Record<string, number> = Object.fromEntries(opts.backends.map((b) => [b.id, 0]));
  const ticks: LoopTick[] = [];
  for (let t = 0; t <= opts.durationMs; t += cycle) {
    const total = Object.values(weights).reduce((a, b) => a + b, 0);
    const admitted = Math.min(opts.offered(t), limit ?? Infinity);
    const rho: Record<string, number> = {};
    let servedAll = 0;
    const samples: BackendSample[] = opts.backends.map((b) => {
      const arrivals = total > 0 ? (admitted * (weights[b.id] ?? 0)) / total : 0;
      const real = b.real(t);
      let served = 0;
      for (let s = 0; s < cycle; s += STEP_MS) {
        const dt = STEP_MS / 1000;
        const qb = q[b.id] ?? 0;
        const can = real * dt;
        const done = Math.min(can, qb + arrivals * dt);
        let next = qb + arrivals * dt - done;
        if (next * BYTES_PER_CALL > BUFFER_BYTES) {
          drops[b.id] = (drops[b.id] ?? 0) + (next - BUFFER_BYTES / BYTES_PER_CALL) * 3;
          next = BUFFER_BYTES / BYTES_PER_CALL;
        }
        q[b.id] = next;
        served += done;
      }
      const servedCps = served / (cycle / 1000);
      servedAll += servedCps;
      rho[b.id] = arrivals / real;
      const backlog = q[b.id] ?? 0;
      const near = modelSignals(Math.min(1, arrivals / real));
      const waitMs = (backlog / real) * 1000;
      // Requests that waited past T1 (500 ms) are retransmitted: up to 1.5 x counted.
      const inflation = 1 + Math.min(0.5, Math.max(0, (waitMs - 500) / 1000));
      const metrics = quietMetrics({
        capacity: b.configured,
        options_rtt_ms: (waitMs + near.rtt) * (0.8 + 0.4 * rand()),
        udp_rx_queue_bytes: Math.round((backlog * BYTES_PER_CALL + near.queue) * (0.8 + 0.4 * rand())),
        udp_drops: Math.floor(drops[b.id] ?? 0),
        req_rate: 3 * servedCps * inflation * (0.97 + 0.06 * rand()),
        tm_current: Math.round(10 * servedCps),
      });
      return {
        id: b.id,
        set: 1,
        capacity: b.configured,
        health: 'up',
        report: { metrics, at: t - Math.floor(rand() * 20) },
        probed: true,
      };
    });
    const out = scoreCycle(state, samples, t, p);
    state = out.state;
    const result = out.sets[0] as SetResult;
    if (result.weights !== null) weights = Object.fromEntries(result.weights);
    limit = result.admissionLimitCps;
    ticks.push({
      t,
      weights: { ...weights },
      limit,
      rho,
      backlog: { ...q },
      admitted,
      served: servedAll,
      result,
    });
  }
  return ticks;
}
