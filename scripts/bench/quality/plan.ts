/**
 * The quality bench's plan, pure: the scenarios' pools (real capacities and what everybody is told),
 * the order of the runs (repeated, the policies interleaved), and how long it should take.
 */
import type { QualityOptions } from './options.js';
import { LEARN_POOLS, type LearnPool, type PolicyId, type ScenarioId, type ScenarioPool } from './types.js';

/** One lab: a policy's whole ladder on one scenario's pool, or its capacity-drop run. */
export type PlannedRun =
  | {
      readonly kind: 'ladder';
      readonly scenario: ScenarioId;
      readonly policy: PolicyId;
      readonly rep: number;
    }
  | { readonly kind: 'drop'; readonly policy: PolicyId; readonly rep: number };

/**
 * Policies whose lab on the unknown pool is the same lab as on the known pool: round robin, equal
 * weights and alg 64 (round robin shed by what each backend measures of itself) never read a
 * capacity, and capacity weights from equal capacities are equal weights.
 */
const SAME_WITHOUT_CAPACITIES: readonly PolicyId[] = [
  'round_robin',
  'static_equal',
  'static_capacity',
  'kamailio_oc',
];

type PoolOptions = Pick<QualityOptions, 'capacities' | 'policies' | 'slowBy'>;

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);
const r2 = (n: number) => Math.round(n * 100) / 100;

/** The known-pool runs that stand for these on the unknown pool (capacity weights: equal weights'). */
function knownTwins(skipped: readonly PolicyId[]): PolicyId[] {
  return [...new Set(skipped.map((p) => (p === 'static_capacity' ? 'static_equal' : p)))];
}

/** The pool of one scenario, for the given policies (in their order). */
export function scenarioPool(o: PoolOptions, id: ScenarioId): ScenarioPool {
  const caps = [...o.capacities];
  const largest = caps.indexOf(Math.max(...caps));
  switch (id) {
    case 'known':
      return { id, capacities_cps: caps, configured_cps: caps, total_cps: sum(caps), policies: o.policies };
    case 'unknown': {
      const each = r2(sum(caps) / caps.length);
      const skipped = o.policies.filter((p) => SAME_WITHOUT_CAPACITIES.includes(p));
      return {
        id,
        capacities_cps: caps,
        configured_cps: caps.map(() => each),
        total_cps: sum(caps),
        policies: o.policies.filter((p) => !SAME_WITHOUT_CAPACITIES.includes(p)),
        ...(skipped.length > 0
          ? {
              note:
                `not run again: ${skipped.join(', ')} (with every backend configured equal their lab is the ` +
                "known pool's lab: round robin, equal weights and alg 64's overload control read no capacity, " +
                `capacity weights from equal capacities are equal weights; read the known pool's ${knownTwins(skipped).join(', ')})`,
            }
          : {}),
      };
    }
    case 'slow': {
      // The datasheet says what the known pool has; the largest backend really does less.
      const real = caps.map((c, i) => (i === largest ? r2(c * (1 - o.slowBy)) : c));
      return { id, capacities_cps: real, configured_cps: caps, total_cps: sum(real), policies: o.policies };
    }
  }
}

/** The policies in the order they run in repetition `rep` (1-based): rotated one place per repetition. */
export function rotated<T>(xs: readonly T[], rep: number): T[] {
  if (xs.length === 0) return [];
  const k = (rep - 1) % xs.length;
  return [...xs.slice(k), ...xs.slice(0, k)];
}

type ScheduleOptions = Pick<QualityOptions, 'reps' | 'scenarios' | 'drop'> & PoolOptions;

/**
 * Every lab of the run in order. Each repetition runs every scenario's ladders, one lab per policy,
 * then the drop runs; the policies are interleaved (one run of each, then the next repetition), and
 * their order rotates from one repetition to the next, so a machine that gets busier or quieter, or a
 * lab that inherits another's warm caches, weighs on every policy alike.
 */
export function schedule(o: ScheduleOptions): PlannedRun[] {
  const runs: PlannedRun[] = [];
  for (let rep = 1; rep <= o.reps; rep++) {
    for (const scenario of o.scenarios) {
      for (const policy of rotated(scenarioPool(o, scenario).policies, rep)) {
        runs.push({ kind: 'ladder', scenario, policy, rep });
      }
    }
    if (o.drop) for (const policy of rotated(o.drop.policies, rep)) runs.push({ kind: 'drop', policy, rep });
  }
  return runs;
}

/** The `--learn` name of a planned lab: its pool for a ladder, `drop` for a drop run. */
const learnPoolOf = (r: PlannedRun): LearnPool => (r.kind === 'drop' ? 'drop' : r.scenario);

/** Whether the planned lab runs sipweigh learning its backends' capacities (`--learn`); never another policy. */
export function sipweighLearns(o: { readonly learnOn: readonly LearnPool[] }, r: PlannedRun): boolean {
  return r.policy === 'sipweigh' && o.learnOn.includes(learnPoolOf(r));
}

/**
 * Where the plan has sipweigh learn, in `--learn`'s order: what the run file and the report may claim.
 * Not `--learn` itself, whose default names the unknown pool also in a run without it (or without
 * sipweigh, or with `--no-drop`).
 */
export function learnedWhere(
  o: { readonly learnOn: readonly LearnPool[] },
  plan: readonly PlannedRun[],
): LearnPool[] {
  const pools = new Set(plan.filter((r) => sipweighLearns(o, r)).map(learnPoolOf));
  return LEARN_POOLS.filter((p) => pools.has(p));
}

/**
 * Rough costs on the lab (seconds): a lab start, Kamailio's idle baseline, sipweigh's first limit, a
 * step's overhead. Calibrated on two runs on the 2-CPU lab machine: --quick of 2026-12-04 (408 s, this
 * gives 436 s) and the full one-repetition run of 2026-11-25 (26.1 min, this gives 25.7), both before
 * the settle phase, which adds its seconds and a step's overhead per ladder.
 */
export const COSTS = {
  labStartS: 4,
  ccBaselineS: 11,
  /** alg 64: two pings, so every backend has answered with its oc once. */
  ocBaselineS: 2,
  loopReadyS: 2,
  /** sipp start, the last calls' fate (up to the receive timeout), the backend counters read. */
  stepOverheadS: 1.5,
} as const;

type EstimateOptions = Pick<
  QualityOptions,
  | 'warmupS'
  | 'windowS'
  | 'overloadWindowS'
  | 'recvTimeoutMs'
  | 'steps'
  | 'otherSteps'
  | 'quick'
  | 'drop'
  | 'settleS'
>;

/** The settle phase a ladder on a pool of `totalCps` (real) starts with; null when it is off. */
export interface SettlePlan {
  readonly fraction: number;
  readonly rate_cps: number;
  readonly seconds: number;
}

export function settlePlan(
  o: Pick<QualityOptions, 'settleFraction' | 'settleS'>,
  totalCps: number,
): SettlePlan | null {
  if (!(o.settleS > 0)) return null;
  // The same fraction of the real capacity for every policy: nobody settles on a kinder load.
  return {
    fraction: o.settleFraction,
    rate_cps: Math.round(o.settleFraction * totalCps),
    seconds: o.settleS,
  };
}

/** The settle phase in words, for the plan and the run's first lines. */
export function settleText(o: Pick<QualityOptions, 'settleFraction' | 'settleS'>): string {
  return o.settleS > 0
    ? `settle ${o.settleS} s at ${Math.round(o.settleFraction * 100)} % of the real capacity before each ladder (measured, not scored)`
    : 'no settle phase (--settle 0): the first step opens after its warm-up alone';
}

/** The ladder a scenario runs. */
export function ladderOf(
  o: Pick<QualityOptions, 'steps' | 'otherSteps'>,
  scenario: ScenarioId,
): readonly number[] {
  return scenario === 'known' ? o.steps : o.otherSteps;
}

/** Seconds the plan should take (an estimate from COSTS, printed before the run and stored with it). */
export function estimateSeconds(o: EstimateOptions, runs: readonly PlannedRun[]): number {
  let s = 0;
  for (const r of runs) {
    s += COSTS.labStartS;
    if (r.policy === 'kamailio_cc') s += COSTS.ccBaselineS;
    else if (r.policy === 'kamailio_oc') s += COSTS.ocBaselineS;
    else if (r.policy === 'sipweigh') s += o.quick ? 2 + COSTS.loopReadyS : 3 + COSTS.loopReadyS;
    else s += 0.3;
    if (r.kind === 'drop') {
      s += (o.drop?.beforeS ?? 0) + (o.drop?.afterS ?? 0) + o.recvTimeoutMs / 1000;
      continue;
    }
    // The settle phase: one more sipp run. Not counted: the drain wait after it (about a second; up
    // to 30 s after an even split overloaded the smallest backend).
    if (o.settleS > 0) s += o.settleS + COSTS.stepOverheadS;
    for (const f of ladderOf(o, r.scenario)) {
      const window = f > 1 ? o.overloadWindowS : o.windowS;
      s += o.warmupS + window + COSTS.stepOverheadS + (f > 1 ? o.recvTimeoutMs / 1000 : 0);
    }
  }
  return Math.round(s);
}
