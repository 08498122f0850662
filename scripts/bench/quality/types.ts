/**
 * The record one run of `npm run bench -- quality` writes (JSON). The runner fills it; the analysis,
 * the Markdown report and the plots read only this, so a stored run can be re-reported.
 */

/** The policies compared, in the order they are shown. */
export const POLICIES = [
  'round_robin',
  'static_equal',
  'static_capacity',
  'kamailio_cc',
  'kamailio_oc',
  'sipweigh',
] as const;
export type PolicyId = (typeof POLICIES)[number];

export const POLICY_LABELS: Record<PolicyId, string> = {
  round_robin: 'Kamailio round robin (alg 4)',
  static_equal: 'equal static weights (alg 11)',
  static_capacity: 'capacity-proportional static weights (alg 11)',
  kamailio_cc: 'Kamailio adaptive (alg 11, cc=1 on capacity weights, OPTIONS every 1 s)',
  kamailio_oc:
    "Kamailio 6.1 overload control (alg 64, round robin shedding by the backends' RFC 7339 oc in their OPTIONS replies, every 1 s)",
  sipweigh: 'sipweigh',
};

/**
 * The pools the policies are compared on (issue 18). `capacities` are the backends' real (emulated)
 * capacities; `configured` is what the agents, the controller and a capacity-weighted list are told.
 *   - known: told the truth (the ladder as it always was);
 *   - unknown: every backend told the same (the pool's total over the backends): nobody knows which is big;
 *   - slow: one backend really 30 % below its datasheet (be3 told 100, really 70).
 */
export const SCENARIOS = ['known', 'unknown', 'slow'] as const;
export type ScenarioId = (typeof SCENARIOS)[number];

export const SCENARIO_LABELS: Record<ScenarioId, string> = {
  known: 'known capacities',
  unknown: 'unknown capacities (every backend configured equal)',
  slow: 'a server slower than its datasheet',
};

/**
 * Where sipweigh may run with `scoring.capacity.learn: true`: a scenario's ladder, or the drop run.
 * Each policy runs as its documentation says for the situation (cc=1 with OPTIONS every second and
 * latency statistics); for sipweigh that is learning on a pool whose capacities nobody measured.
 */
export const LEARN_POOLS = ['known', 'unknown', 'slow', 'drop'] as const;
export type LearnPool = (typeof LEARN_POOLS)[number];
/** The bench's default: learning where the capacities are unknown, the configured ones taken as told elsewhere. */
export const DEFAULT_LEARN_POOLS: readonly LearnPool[] = ['unknown'];

/** A scenario's pool as the run used it. */
export interface ScenarioPool {
  readonly id: ScenarioId;
  /** Real (emulated) capacity per backend, calls/s: what the offered loads are fractions of. */
  readonly capacities_cps: readonly number[];
  /** What the agents, the controller and a capacity-weighted static list were told, calls/s. */
  readonly configured_cps: readonly number[];
  /** The real total, calls/s. */
  readonly total_cps: number;
  /** The policies run on it (a policy whose lab would equal another's is left out, see `note`). */
  readonly policies: readonly PolicyId[];
  readonly note?: string;
}

/**
 * Policies whose LB keeps its list's weights and sheds by another knob (alg 64: each destination's
 * oc): a weight share cannot follow anything, so their drop follow times are "n/a", not "never".
 */
export const SHEDS_WITHOUT_WEIGHTS: readonly PolicyId[] = ['kamailio_oc'];

/** The names for the policies in the last-line JSON (the static ones are spelt the other way round). */
export const JSON_POLICY_KEYS: Record<PolicyId, string> = {
  round_robin: 'round_robin',
  static_equal: 'equal_static',
  static_capacity: 'capacity_static',
  kamailio_cc: 'kamailio_cc',
  kamailio_oc: 'kamailio_oc',
  sipweigh: 'sipweigh',
};

/** INVITE→200 times of one step, in milliseconds (from sipp's per-call response-time trace). */
export interface LatencyMs {
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
}

/** One policy at one offered load, measured over a fixed window after a warm-up. */
export interface StepResult {
  readonly policy: PolicyId;
  /** The pool it ran on; absent in runs before issue 18 (= known). */
  readonly scenario?: ScenarioId;
  /** Which repetition (1, 2, ...); absent in runs before issue 18 (= 1). */
  readonly rep?: number;
  /** Offered load as a fraction of the pool's total real (emulated) capacity (0.4 … 1.3). */
  readonly load_fraction: number;
  readonly offered_cps: number;
  readonly duration_s: number;
  /** Calls sipp started in the window. */
  readonly calls: number;
  /** Calls that reached 200 and completed. */
  readonly ok: number;
  /** Calls that did not: timeouts, errors, and refusals. */
  readonly failed: number;
  /** Of `failed`: calls the LB refused with 503 (admission control); reported apart, still failures. */
  readonly refused_503: number;
  /** failed / calls × 100. */
  readonly failed_pct: number;
  /**
   * Goodput: 200s received per second during the window (the pool's throughput). Near and over
   * capacity it is below ok / duration_s, which would also count a backlog answered after the window.
   */
  readonly success_cps: number;
  /** null when no call succeeded. */
  readonly setup_ms: LatencyMs | null;
  /** Share of the window's INVITEs each backend received (by backend id; sums to ~1). */
  readonly shares: Readonly<Record<string, number>>;
}

/**
 * The settle phase before a ladder's first step: one load at a fixed fraction of the pool's real
 * capacity, the same for every policy, measured from its first second to its last and never scored.
 * An adaptive policy that starts from wrong capacities learns here; the figure shows what that costs.
 */
export interface SettleResult {
  readonly policy: PolicyId;
  readonly scenario: ScenarioId;
  readonly rep: number;
  /** Offered load as a fraction of the pool's total real capacity. */
  readonly load_fraction: number;
  readonly offered_cps: number;
  readonly duration_s: number;
  /** Calls sipp started in the phase, and of them those that failed (503 refusals included). */
  readonly calls: number;
  readonly failed: number;
  readonly refused_503: number;
  readonly failed_pct: number;
  /** p99 INVITE→200 of the phase's calls; null when none succeeded. */
  readonly p99_ms: number | null;
  /** Each backend's share of the phase's calls (its own dialog counter): where a transient sent them. */
  readonly shares: Readonly<Record<string, number>>;
  /**
   * Seconds waited after the phase for the backends' backlog to clear (no new dialog for a second),
   * so that what a policy queued here is not served inside its first step's window.
   */
  readonly drain_s: number;
}

/** One sample of the capacity-drop run (one per second). */
export interface DropSample {
  /** Seconds since load started. */
  readonly t_s: number;
  /** Effective weight in rotation per backend as the LB holds it (0 = out of rotation). */
  readonly weights: Readonly<Record<string, number>>;
  /** Share of that second's INVITEs per backend. */
  readonly shares: Readonly<Record<string, number>>;
  readonly success_cps: number;
  readonly failed: number;
  /** p99 INVITE→200 of the calls that started in that second; null when none succeeded. */
  readonly p99_ms: number | null;
}

/** The LB's weights at one moment of the drop run (sampled every WEIGHT_SAMPLE_MS, for the follow times). */
export interface WeightSample {
  /** Seconds since load started. */
  readonly t_s: number;
  /** Effective weight in rotation per backend (a backend missing: not read). */
  readonly weights: Readonly<Record<string, number>>;
}

/** Failed calls, goodput and p99 setup latency of the calls started in a part of the drop run. */
export interface DropWindow {
  readonly failed_pct: number;
  readonly success_cps: number;
  readonly p99_ms: number | null;
}

/** A backend loses half its capacity mid-run (and, since issue 18, gets it back); the same offered load throughout. */
export interface DropResult {
  readonly policy: PolicyId;
  /** Which repetition; absent in runs before issue 18 (= 1). */
  readonly rep?: number;
  readonly backend: string;
  readonly capacity_before_cps: number;
  readonly capacity_after_cps: number;
  readonly offered_cps: number;
  readonly drop_at_s: number;
  readonly duration_s: number;
  /**
   * Seconds from the drop until the dropped backend's share of the LB's weights first came within
   * 10 % of its fair share after the drop (capacity_after / the pool's capacity after); null if never.
   */
  readonly follow_s: number | null;
  /**
   * Before the drop (from 4 s), and settled after it: from 10 s after the drop to the recovery (to
   * the end in runs without one).
   */
  readonly before: DropWindow;
  readonly after: DropWindow;
  /** Seconds into the run the capacity came back; absent: no recovery in this run. */
  readonly recover_at_s?: number;
  /** The whole halved phase, from the drop to the recovery, the weights' transient included. */
  readonly halved?: DropWindow;
  /** From the recovery to the end. */
  readonly recovered?: DropWindow;
  /**
   * Seconds from the recovery until the backend's weight share, moving up, first came within 10 % of
   * its fair share with its capacity back; null if it never did (or never went down).
   */
  readonly follow_back_s?: number | null;
  /** Its fair share with its whole capacity (before the drop, after the recovery). */
  readonly fair_share_before?: number;
  readonly timeline: readonly DropSample[];
  /**
   * The LB's weights every 200 ms, the follow times' source (the timeline's one a second could only
   * tell a follow of 1.2 s from one of 2.0 s as "2 s"); absent in runs before it: the timeline's.
   */
  readonly weight_samples?: readonly WeightSample[];
  /** When the capacity really changed (the RPC answered), seconds since load started; absent: drop_at_s. */
  readonly dropped_at_s?: number;
  readonly recovered_at_s?: number;
  /** The dropped backend's fair share of the pool after the drop (its capacity / the pool's). */
  readonly fair_share_after?: number;
  /** Its mean share of the LB's weights from 10 s after the drop to the end. */
  readonly settled_share?: number;
}

export interface MachineInfo {
  readonly hostname: string;
  readonly cpus: number;
  readonly cpu_model: string;
  readonly kernel: string;
  readonly node: string;
  /** The backends' and every LB's Kamailio but kamailio_oc's. */
  readonly kamailio: string;
  /** kamailio_oc's LB (Kamailio 6.1), when it is built here; absent in runs before it. */
  readonly kamailio_oc_lb?: string;
  readonly sipp: string;
  /** 1-minute load average when the run started: a noisy machine shows here. */
  readonly loadavg_start: number;
}

export interface QualityRun {
  readonly bench: 'quality';
  /** 1: one pool, one measurement per step; 2 (issue 18): scenarios and repetitions. */
  readonly version: 1 | 2;
  readonly quick: boolean;
  /** The command line that produced the run. */
  readonly command: string;
  readonly started_at: string;
  readonly finished_at: string;
  readonly machine: MachineInfo;
  readonly pool: {
    readonly backends: readonly string[];
    /** Configured (emulated) capacity of each backend, calls/s, same order as `backends`. */
    readonly capacities_cps: readonly number[];
    readonly total_cps: number;
    readonly workers: number;
  };
  /** The headline's pass rule: a step counts as carried when both hold. */
  readonly criteria: { readonly max_failed_pct: number; readonly max_p99_ms: number };
  readonly policies: readonly PolicyId[];
  /** The scenarios run (version 2); absent: the known pool only. */
  readonly scenarios?: readonly ScenarioPool[];
  /** Repetitions of every step and drop run, interleaved across the policies (version 2). */
  readonly reps?: number;
  /** What the plan estimated the run to take, seconds (version 2). */
  readonly estimated_s?: number;
  /**
   * The settle phase of every ladder, in run order (none: `--settle 0`); absent in runs before it
   * existed, whose first step's window opened after the warm-up alone.
   */
  readonly settle?: readonly SettleResult[];
  /** The settle phase's settings (seconds 0: off); absent in runs before it existed. */
  readonly settle_options?: { readonly fraction: number; readonly seconds: number };
  /**
   * Where sipweigh learned its backends' capacities (scoring.capacity.learn); elsewhere it took the
   * configured ones as told. Absent in runs before the option: read as nowhere, true of every stored
   * run but the two quick runs of 2026-12-04 made with the schema's default flipped by hand
   * (docs/bench/quality.md).
   */
  readonly sipweigh_learns_on?: readonly LearnPool[];
  /** kamailio_oc's servers' target utilisation (--oc-target); present when it ran. */
  readonly oc_target?: number;
  /** Every measured step, all policies; overload steps (load_fraction > 1) included. */
  readonly steps: readonly StepResult[];
  /** Per policy: the capacity-drop run, when it was run. */
  readonly capacity_drop: readonly DropResult[];
}
