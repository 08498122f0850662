/**
 * Types of the scorer: what the controller hands in each cycle, what it gets back, and the memory
 * carried from one cycle to the next. Everything is a plain immutable value, so a cycle is a pure
 * function (state, samples, now, params) -> (state, result) that tests can replay exactly.
 */
import type { HealthKind } from '../health/state-machine.js';
import type { ReportMetrics } from '../heartbeat/messages.js';
import type { CapacityMoves, LearnedCapacity } from './capacity/estimator.js';

/** One backend as the controller sees it at the start of a cycle. */
export interface BackendSample {
  readonly id: string;
  /** Dispatcher set. */
  readonly set: number;
  /** Configured capacity, calls per second (> 0): the prior of the learned estimate. */
  readonly capacity: number;
  readonly health: HealthKind;
  /** Latest accepted report and when it arrived (controller's monotonic ms), or null if none yet. */
  readonly report: { readonly metrics: ReportMetrics; readonly at: number } | null;
  /**
   * False when the controller has no way to probe it (no agent address): its health is a
   * placeholder, so the panic check leaves it out. Absent means probed.
   */
  readonly probed?: boolean;
  /**
   * True for a suspect on passive evidence alone (it has missed no probe): the panic check counts it
   * as healthy, since the observer still sees it. Absent means false.
   */
  readonly evidenceOnly?: boolean;
}

/**
 * The load signals, each named with the unit its knee is given in. A signal's *pressure* is its
 * value divided by its knee: 1 means "this backend is at the edge of what it can carry".
 */
export const SIGNAL_NAMES = [
  'options_rtt_ms',
  'udp_rx_queue_bytes',
  'udp_drops_per_s',
  'err5xx_ratio',
  'utilisation',
  'tm_per_cps',
  'dialogs_per_cps',
  'cpu_util',
  'mem_used_ratio',
  'load1',
] as const;
export type SignalName = (typeof SIGNAL_NAMES)[number];

/** One number (or null: unknown / disabled) per signal. */
export type SignalValues = { readonly [K in SignalName]: number | null };

/** Where a backend stands in rotation. Weight 0 goes with `out` and only with it. */
export type Phase = 'normal' | 'slow_start' | 'out';

declare const liveWeightBrand: unique symbol;
/** An integer rweight 1..100 for a backend in rotation (make one with `liveWeight`). */
export type LiveWeight = number & { readonly [liveWeightBrand]: true };

export type Assignment =
  | { readonly phase: 'out'; readonly weight: 0; readonly reason: 'down' | 'draining' | 'returning' }
  | { readonly phase: 'normal'; readonly weight: LiveWeight }
  | {
      readonly phase: 'slow_start';
      readonly weight: LiveWeight;
      /** Fraction of its capacity the ramp grants now (slow_start_initial_ratio .. 1). */
      readonly ramp: number;
      /** Monotonic ms when the ramp ends. */
      readonly until: number;
    };

/** What we know of a backend's load: a report within the staleness limit, an old one, or none. */
export type Knowledge = 'fresh' | 'stale' | 'none';

/** Per backend, what an operator wants to see (status API, logs, demo table). */
export interface BackendScore {
  readonly id: string;
  readonly set: number;
  readonly health: HealthKind;
  readonly capacityCps: number;
  readonly knowledge: Knowledge;
  /** Smoothed pressure per signal (null: unknown or disabled). */
  readonly pressures: SignalValues;
  /** The same smoothed figures in the unit each signal's name carries (ms, bytes, drops/s, ratio...). */
  readonly values: SignalValues;
  /** The tightest smoothed pressure, and which signal it came from (null when nothing is known). */
  readonly pressure: number | null;
  readonly dominant: SignalName | null;
  /** Derating factor for symptoms: the fraction of its (learned) capacity we believe it has (factor_floor..1). */
  readonly factor: number;
  /**
   * Learned capacity, calls/s (capacity/estimator.ts), or null when learning is off or the backend
   * is out of rotation.
   */
  readonly learnedCapacityCps: number | null;
  /**
   * How far each rule of the estimator has moved the learned capacity, calls/s up and down in all
   * (capacity/estimator.ts), or null when learning is off or nothing was learned yet.
   */
  readonly learnedMoves: CapacityMoves | null;
  /**
   * learned capacity (or, with learning off, configured) × factor × slow-start ramp, calls/s; 0 when
   * out of rotation. The weights and the pool's admission limit are computed from it.
   */
  readonly effectiveCapacityCps: number;
  /**
   * The weight this cycle's law gives it. In a panicking set the pushed weight is the held one in
   * `SetResult.weights`, not this.
   */
  readonly assignment: Assignment;
}

export interface PanicInfo {
  /** Backends of the set that answer (up; a suspect missed a probe, see panic.ts). */
  readonly healthy: number;
  /** Backends counted (the set minus the draining ones, which an operator took out on purpose). */
  readonly counted: number;
  readonly threshold: number;
  /** Monotonic ms when this panic began. */
  readonly since: number;
}

interface SetResultBase {
  readonly set: number;
  readonly backends: readonly BackendScore[];
}

/**
 * One dispatcher set's outcome. `weights` is what to push: every backend of the set, 0 meaning
 * take out (write it inactive).
 */
export type SetResult =
  | (SetResultBase & {
      readonly mode: 'scored';
      readonly weights: ReadonlyMap<string, number>;
      /** Sum of the effective capacities of the backends in rotation, calls/s. */
      readonly poolCapacityCps: number;
      /** Limit on new calls/s at the LB, or null when admission control is disabled. */
      readonly admissionLimitCps: number | null;
      readonly panic: null;
    })
  | (SetResultBase & {
      readonly mode: 'panic';
      /** The last scored output, unchanged; null if the set never had one (leave the LB as it is). */
      readonly weights: ReadonlyMap<string, number> | null;
      /** Last scored pool capacity and limit (null if none). */
      readonly poolCapacityCps: number | null;
      readonly admissionLimitCps: number | null;
      readonly panic: PanicInfo;
    });

/** A sample the scorer could not use (and left out of its set). */
export interface RejectedSample {
  readonly id: string;
  readonly reason: string;
}

export interface CycleResult {
  readonly state: ScorerState;
  readonly sets: readonly SetResult[];
  readonly rejected: readonly RejectedSample[];
}

// ---- memory carried between cycles ----

export interface Smoothed {
  readonly value: number;
  /** Time of the last report folded into it. */
  readonly at: number;
}

export interface DropsBaseline {
  readonly count: number;
  readonly at: number;
}

export interface DeratingState {
  readonly factor: number;
  /** When the pressure went above the decrease threshold (null: it is not above). */
  readonly overSince: number | null;
  /** When the factor was last cut (recovery waits recover_delay_ms after it). */
  readonly lastCutAt: number | null;
}

export type Rotation =
  { readonly kind: 'out' } | { readonly kind: 'in'; readonly since: number; readonly slowStart: boolean };

export interface BackendMemory {
  /** `at` of the last report folded (each report is folded once). */
  readonly lastFoldedAt: number | null;
  readonly drops: DropsBaseline | null;
  readonly smoothed: { readonly [K in SignalName]: Smoothed | null };
  /** Each signal's pressure in the last report that carried it (the derating law reads both). */
  readonly latest: { readonly [K in SignalName]: Smoothed | null };
  /** Raw pressures within each signal's standing window (standing.ts); empty when it has none. */
  readonly recent: { readonly [K in SignalName]: readonly Smoothed[] };
  readonly derating: DeratingState;
  /** Learned capacity (null until the backend is first scored in rotation with learning on). */
  readonly learned: LearnedCapacity | null;
  readonly rotation: Rotation;
}

export interface SetMemory {
  /** Last scored output (what the LB should have). */
  readonly weights: ReadonlyMap<string, number> | null;
  readonly poolCapacityCps: number | null;
  readonly admissionLimitCps: number | null;
  readonly panicSince: number | null;
  /** When the last panic ended (backends still returning then keep their held weight a while). */
  readonly panicEndedAt: number | null;
}

export interface ScorerState {
  /** Time of the last cycle (null before the first). */
  readonly at: number | null;
  readonly backends: ReadonlyMap<string, BackendMemory>;
  readonly sets: ReadonlyMap<number, SetMemory>;
}
