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

/**
 * Receive-queue bytes per queued call (INVITE, ACK, BYE as the kernel counts them): in the lab, a
 * backend of 25 calls/s offered 76 for about 1.5 s queued 195 KB, 2.6 KB a call (2026-12-04).
 */
const BYTES_PER_CALL = 2500;

/**
 * The receive queue of a backend below its capacity, as sampled in the lab (2026-12-04, 130 %
 * offered, every backend configured 58, learning on; 2 workers per emulated backend, reports every
 * 200 ms): at a utilisation of about 0.85 the queue averaged 7.5-8 KB with a standard deviation as
 * large (0 in a third of the reports, >= 8 KB in 40 %), at 0.95 about 15 KB. An M/M/1 queue length
 * (rho^2 / (1 - rho) requests) of 1.5 KB requests, drawn exponentially, gives the figure at 0.85
 * (7.2 KB) and overstates 0.95 (27 KB): a harsher knee than the lab's.
 * The served count of those reports varied by 10-25 % (sd) around its mean: drawn uniform +-20 %.
 */
function labQueueBytes(rho: number, rand: () => number): number {
  if (rho <= 0) return 0;
  const r = Math.min(rho, 0.97);
  const mean = (1500 * r * r) / (1 - r);
  return Math.round(-mean * Math.log(1 - rand()));
}
const BUFFER_BYTES = 200_000;
const STEP_MS = 10;

export function runLoop(opts: {
  backends: readonly LoopBackend[];
  offered: (t: number) => number;
  durationMs: number;
  params?: ScoringParams;
  seed?: number;
  cycleMs?: number;
  /**
   * 'lab': the near-knee queue and the served count as noisy as the lab's 2-worker
   * emulated backends; 'calm' (default): the smooth model the probe constants were first swept on
   * (then with 1 KB per queued call; 2.5 KB now, as measured).
   */
  noise?: 'lab' | 'calm';
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
      const lab = (opts.noise ?? 'calm') === 'lab';
      const nearQueue = lab ? labQueueBytes(arrivals / real, rand) : near.queue * (0.8 + 0.4 * rand());
      const waitMs = (backlog / real) * 1000;
      // Requests that waited past T1 (500 ms) are retransmitted: up to 1.5 x counted.
      const inflation = 1 + Math.min(0.5, Math.max(0, (waitMs - 500) / 1000));
      const metrics = quietMetrics({
        capacity: b.configured,
        options_rtt_ms: (waitMs + near.rtt) * (0.8 + 0.4 * rand()),
        udp_rx_queue_bytes: Math.round(backlog * BYTES_PER_CALL * (0.8 + 0.4 * rand()) + nearQueue),
        udp_drops: Math.floor(drops[b.id] ?? 0),
        req_rate: 3 * servedCps * inflation * (lab ? 0.8 + 0.4 * rand() : 0.97 + 0.06 * rand()),
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
