/**
 * The quality benchmark's figures, from a stored run only (no I/O, no clock): which steps a policy
 * carried, its capacity fraction (the headline), sipweigh against the goals, and the
 * last-line JSON object.
 */
import {
  JSON_POLICY_KEYS,
  POLICIES,
  SCENARIOS,
  SHEDS_WITHOUT_WEIGHTS,
  type DropResult,
  type PolicyId,
  type QualityRun,
  type ScenarioId,
  type LearnPool,
  type ScenarioPool,
  type SettleResult,
  type StepResult,
} from './types.js';

export type Criteria = QualityRun['criteria'];

/** Why a step does not count as carried; empty when it does. */
export function missReasons(step: StepResult, criteria: Criteria): string[] {
  const reasons: string[] = [];
  if (!(step.calls > 0)) reasons.push('no calls were offered');
  if (!Number.isFinite(step.failed_pct)) reasons.push('failed % unknown');
  else if (!(step.failed_pct < criteria.max_failed_pct)) {
    reasons.push(`failed ${step.failed_pct.toFixed(2)} % ≥ ${criteria.max_failed_pct} %`);
  }
  if (step.setup_ms === null) reasons.push('no call succeeded');
  else if (!Number.isFinite(step.setup_ms.p99)) reasons.push('p99 unknown');
  else if (!(step.setup_ms.p99 < criteria.max_p99_ms)) {
    reasons.push(`p99 ${Math.round(step.setup_ms.p99)} ms ≥ ${criteria.max_p99_ms} ms`);
  }
  return reasons;
}

/** A step counts as carried when fewer than max_failed_pct of its calls failed and p99 < max_p99_ms. */
export function stepCarried(step: StepResult, criteria: Criteria): boolean {
  return missReasons(step, criteria).length === 0;
}

export interface CapacityVerdict {
  readonly policy: PolicyId;
  /**
   * The highest offered load (fraction of total capacity) carried with every lower step carried too;
   * 0 when the lowest step already misses. Above 1 only if an overload step was carried, which means
   * the pool carried more than its configured capacity (the emulation's slack): reported, not capped.
   */
  readonly fraction: number;
  /** The load levels measured, ascending. */
  readonly loads: readonly number[];
  /** The lowest load that missed, with why (the measurement that missed first); null if none missed. */
  readonly firstMiss: { readonly load_fraction: number; readonly reasons: readonly string[] } | null;
  /** Loads above the first miss that passed anyway: luck or noise, not counted. */
  readonly passedAboveMiss: readonly number[];
}

function checkCriteria(c: Criteria): void {
  for (const [k, v] of Object.entries(c)) {
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
      throw new Error(`criteria.${k}: expected a positive number, got ${String(v)}`);
    }
  }
}

/**
 * The headline rule. Steps are grouped by load level; a level counts as carried only when every
 * measurement at it was carried, and the policy's fraction is the highest carried level reached
 * without crossing a missed one (monotone: one lucky step above a failure does not count).
 * null when the policy has no steps in the run.
 */
export function capacityVerdict(
  steps: readonly StepResult[],
  policy: PolicyId,
  criteria: Criteria,
): CapacityVerdict | null {
  checkCriteria(criteria);
  const mine = steps.filter((s) => s.policy === policy);
  if (mine.length === 0) return null;
  for (const s of mine) {
    if (!Number.isFinite(s.load_fraction) || s.load_fraction <= 0) {
      throw new Error(`${policy}: a step has load_fraction ${String(s.load_fraction)}`);
    }
  }
  const loads = [...new Set(mine.map((s) => s.load_fraction))].sort((a, b) => a - b);
  let fraction = 0;
  let firstMiss: CapacityVerdict['firstMiss'] = null;
  const passedAboveMiss: number[] = [];
  for (const load of loads) {
    const reasons = mine.filter((s) => s.load_fraction === load).flatMap((s) => missReasons(s, criteria));
    if (firstMiss !== null) {
      if (reasons.length === 0) passedAboveMiss.push(load);
    } else if (reasons.length === 0) {
      fraction = load;
    } else {
      firstMiss = { load_fraction: load, reasons: [...new Set(reasons)] };
    }
  }
  return { policy, fraction, loads, firstMiss, passedAboveMiss };
}

/** The headline figure alone; null when the policy was not run. */
export function capacityFraction(
  steps: readonly StepResult[],
  policy: PolicyId,
  criteria: Criteria,
): number | null {
  return capacityVerdict(steps, policy, criteria)?.fraction ?? null;
}

/** Every policy of the run that has steps, in the canonical order (the known pool, every repetition pooled). */
export function capacityVerdicts(run: QualityRun): CapacityVerdict[] {
  const steps = scenarioSteps(run, 'known');
  return POLICIES.flatMap((p) => {
    const v = capacityVerdict(steps, p, run.criteria);
    return v ? [v] : [];
  });
}

// --- scenarios and repetitions (issue 18) ---------------------------------------------------------

/** A step's scenario and repetition; runs before issue 18 have neither (known, 1). */
export const scenarioOf = (s: { readonly scenario?: ScenarioId }): ScenarioId => s.scenario ?? 'known';
export const repOf = (s: { readonly rep?: number }): number => s.rep ?? 1;

export function scenarioSteps(run: QualityRun, scenario: ScenarioId): StepResult[] {
  return run.steps.filter((s) => scenarioOf(s) === scenario);
}

/** The scenarios the run has steps for, in the canonical order. */
export function scenariosRun(run: QualityRun): ScenarioId[] {
  return SCENARIOS.filter((id) => run.steps.some((s) => scenarioOf(s) === id));
}

/** A scenario's pool as recorded, or (runs before issue 18) the known pool from `run.pool`. */
export function poolOf(run: QualityRun, scenario: ScenarioId): ScenarioPool {
  const stored = run.scenarios?.find((p) => p.id === scenario);
  if (stored) return stored;
  return {
    id: scenario,
    capacities_cps: run.pool.capacities_cps,
    configured_cps: run.pool.capacities_cps,
    total_cps: run.pool.total_cps,
    policies: POLICIES.filter((p) => run.steps.some((s) => s.policy === p && scenarioOf(s) === scenario)),
  };
}

/** Median of numbers (the mean of the middle two for an even count); null for none. */
export function median(xs: readonly number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** One figure over the repetitions: the median (the headline), the range, and every value in run order. */
export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly n: number;
  readonly values: readonly number[];
}

export function spread(xs: readonly number[]): Spread | null {
  const m = median(xs);
  if (m === null) return null;
  return { median: m, min: Math.min(...xs), max: Math.max(...xs), n: xs.length, values: [...xs] };
}

/**
 * A time that may never happen (null), over the repetitions: a miss counts as later than any hit, so
 * the median is null when the misses reach the middle; the range is over the hits, `misses` apart.
 */
export interface TimeSpread {
  readonly median: number | null;
  readonly min: number | null;
  readonly max: number | null;
  readonly misses: number;
  readonly n: number;
}

export function timeSpread(xs: readonly (number | null)[]): TimeSpread | null {
  if (xs.length === 0) return null;
  const hits = xs.filter((x): x is number => x !== null);
  const all = [...hits].sort((a, b) => a - b).concat(Array<number>(xs.length - hits.length).fill(Infinity));
  const m = median(all);
  return {
    median: m === null || !Number.isFinite(m) ? null : m,
    min: hits.length > 0 ? Math.min(...hits) : null,
    max: hits.length > 0 ? Math.max(...hits) : null,
    misses: xs.length - hits.length,
    n: xs.length,
  };
}

/** A policy's verdict in each repetition on one scenario's pool (repetitions in order). */
export function verdictsByRep(
  run: QualityRun,
  scenario: ScenarioId,
  policy: PolicyId,
): { rep: number; verdict: CapacityVerdict }[] {
  const steps = scenarioSteps(run, scenario).filter((s) => s.policy === policy);
  const reps = [...new Set(steps.map(repOf))].sort((a, b) => a - b);
  return reps.flatMap((rep) => {
    const v = capacityVerdict(
      steps.filter((s) => repOf(s) === rep),
      policy,
      run.criteria,
    );
    return v ? [{ rep, verdict: v }] : [];
  });
}

/** The headline over the repetitions: each repetition's capacity fraction, median and range; null if not run. */
export function capacitySpread(run: QualityRun, scenario: ScenarioId, policy: PolicyId): Spread | null {
  return spread(verdictsByRep(run, scenario, policy).map((r) => r.verdict.fraction));
}

/** A step's figures as the median over its repetitions, with how many of them were carried. */
export interface MedianStep extends StepResult {
  /** Repetitions measured at this load, and how many of them were carried. */
  readonly n: number;
  readonly carried: number;
  readonly success_cps_range: readonly [number, number];
  readonly failed_pct_range: readonly [number, number];
  readonly p99_ms_range: readonly [number, number] | null;
}

/**
 * Per scenario, policy and load: the median of every figure over the repetitions (a single
 * measurement is returned as it is). Shares are per-backend medians; setup latencies the medians of
 * the repetitions that had any.
 */
export function medianSteps(steps: readonly StepResult[], criteria: Criteria): MedianStep[] {
  const groups = new Map<string, StepResult[]>();
  for (const s of steps) {
    const k = `${scenarioOf(s)}|${s.policy}|${loadKey(s.load_fraction)}`;
    groups.set(k, [...(groups.get(k) ?? []), s]);
  }
  const med = (xs: number[]) => median(xs) ?? Number.NaN;
  const rng = (xs: number[]): [number, number] => [Math.min(...xs), Math.max(...xs)];
  return [...groups.values()].map((g) => {
    const first = g[0]!;
    const lat = g.flatMap((s) => (s.setup_ms ? [s.setup_ms] : []));
    const backends = [...new Set(g.flatMap((s) => Object.keys(s.shares)))];
    const one = g.length === 1;
    return {
      ...first,
      rep: undefined,
      offered_cps: med(g.map((s) => s.offered_cps)),
      duration_s: one ? first.duration_s : med(g.map((s) => s.duration_s)),
      calls: one ? first.calls : Math.round(med(g.map((s) => s.calls))),
      ok: one ? first.ok : Math.round(med(g.map((s) => s.ok))),
      failed: one ? first.failed : Math.round(med(g.map((s) => s.failed))),
      refused_503: one ? first.refused_503 : Math.round(med(g.map((s) => s.refused_503))),
      failed_pct: med(g.map((s) => s.failed_pct)),
      success_cps: med(g.map((s) => s.success_cps)),
      setup_ms:
        lat.length === 0
          ? null
          : {
              p50: med(lat.map((l) => l.p50)),
              p95: med(lat.map((l) => l.p95)),
              p99: med(lat.map((l) => l.p99)),
              max: med(lat.map((l) => l.max)),
            },
      shares: one
        ? first.shares
        : Object.fromEntries(backends.map((b) => [b, med(g.flatMap((s) => s.shares[b] ?? []))])),
      n: g.length,
      carried: g.filter((s) => stepCarried(s, criteria)).length,
      success_cps_range: rng(g.map((s) => s.success_cps)),
      failed_pct_range: rng(g.map((s) => s.failed_pct)),
      p99_ms_range: lat.length === 0 ? null : rng(lat.map((l) => l.p99)),
    };
  });
}

/** Calls that were admitted (not refused with 503) and still failed: timeouts, errors. */
export const admittedFailed = (s: StepResult): number => Math.max(0, s.failed - s.refused_503);

export interface OverloadVerdict {
  readonly load_fraction: number;
  /** Goodput over the pool's real capacity: median and range over the repetitions. */
  readonly goodput_fraction: Spread;
  /** Admitted calls that failed: median and range. */
  readonly admitted_failed: Spread;
}

/**
 * The highest overload step of the known pool (130 % in the ladders) per policy: does the pool keep
 * carrying (goodput ≥ 0.9 of its capacity) without failing a call it admitted?
 */
export function overloadVerdicts(run: QualityRun): Partial<Record<PolicyId, OverloadVerdict>> {
  const steps = scenarioSteps(run, 'known').filter((s) => s.load_fraction > 1);
  const total = poolOf(run, 'known').total_cps;
  const out: Partial<Record<PolicyId, OverloadVerdict>> = {};
  for (const p of POLICIES) {
    const mine = steps.filter((s) => s.policy === p);
    if (mine.length === 0) continue;
    const top = Math.max(...mine.map((s) => s.load_fraction));
    const at = mine.filter((s) => loadKey(s.load_fraction) === loadKey(top));
    out[p] = {
      load_fraction: top,
      goodput_fraction: spread(at.map((s) => s.success_cps / total))!,
      admitted_failed: spread(at.map(admittedFailed))!,
    };
  }
  return out;
}

export interface DropSpread {
  readonly policy: PolicyId;
  readonly runs: number;
  readonly follow_s: TimeSpread;
  readonly follow_back_s: TimeSpread | null;
  /** Failed % of the calls started between the drop and the recovery (the transient included). */
  readonly failed_after_pct: Spread;
  readonly failed_before_pct: Spread;
  readonly failed_recovered_pct: Spread | null;
}

/** Each policy's drop runs over the repetitions, in the canonical order. */
export function dropSpreads(run: QualityRun): DropSpread[] {
  return POLICIES.flatMap((p) => {
    const ds = run.capacity_drop.filter((d) => d.policy === p);
    if (ds.length === 0) return [];
    const back = ds.filter((d) => d.follow_back_s !== undefined).map((d) => d.follow_back_s ?? null);
    const recovered = ds.flatMap((d) => (d.recovered ? [d.recovered.failed_pct] : []));
    return [
      {
        policy: p,
        runs: ds.length,
        follow_s: timeSpread(ds.map((d) => d.follow_s))!,
        follow_back_s: timeSpread(back),
        // Runs before issue 18 had no recovery: their "after" (settled, to the end) stands in.
        failed_after_pct: spread(ds.map((d) => (d.halved ?? d.after).failed_pct))!,
        failed_before_pct: spread(ds.map((d) => d.before.failed_pct))!,
        failed_recovered_pct: spread(recovered),
      },
    ];
  });
}

/** One policy's settle phases on one pool, over the repetitions. */
export interface SettleSpread {
  readonly scenario: ScenarioId;
  readonly policy: PolicyId;
  readonly runs: number;
  readonly load_fraction: number;
  readonly offered_cps: number;
  readonly duration_s: number;
  readonly failed_pct: Spread;
  /** Over the runs where some call succeeded; null when none did in any. */
  readonly p99_ms: Spread | null;
}

/**
 * The settle phases by pool and policy (canonical orders), medians and ranges; empty for a run
 * without them (`--settle 0`, or a run from before the phase existed).
 */
export function settleSpreads(run: QualityRun): SettleSpread[] {
  const all: readonly SettleResult[] = run.settle ?? [];
  return SCENARIOS.flatMap((scenario) =>
    POLICIES.flatMap((policy) => {
      const mine = all.filter((x) => x.scenario === scenario && x.policy === policy);
      if (mine.length === 0) return [];
      const p99 = mine.flatMap((x) => (x.p99_ms === null ? [] : [x.p99_ms]));
      return [
        {
          scenario,
          policy,
          runs: mine.length,
          load_fraction: median(mine.map((x) => x.load_fraction))!,
          offered_cps: median(mine.map((x) => x.offered_cps))!,
          duration_s: median(mine.map((x) => x.duration_s))!,
          failed_pct: spread(mine.map((x) => x.failed_pct))!,
          p99_ms: spread(p99),
        },
      ];
    }),
  );
}

export type GoalId = 'total_capacity' | 'vs_round_robin' | 'vs_kamailio_cc';

export interface GoalResult {
  readonly id: GoalId;
  /** What the goal asks, in words. */
  readonly goal: string;
  /** sipweigh's fraction; null when sipweigh was not run. */
  readonly sipweigh: number | null;
  /** The figure sipweigh must reach (≥) or beat (>); null when the reference policy was not run. */
  readonly target: number | null;
  /** null: cannot be judged from this run (a policy missing). */
  readonly met: boolean | null;
  /** The numbers, e.g. "0.80 < 0.90: short by 0.10 of total capacity". */
  readonly detail: string;
}

const f2 = (n: number) => n.toFixed(2);

/** sipweigh against the three goals, each met / not met / not judged, with the numbers. */
export function goals(run: QualityRun): GoalResult[] {
  // The median over the repetitions on the known pool (a run of one repetition: its fraction).
  const frac = (p: PolicyId) => capacitySpread(run, 'known', p)?.median ?? null;
  const sw = frac('sipweigh');
  const rr = frac('round_robin');
  const cc = frac('kamailio_cc');
  const missing = (who: string): string => `not judged: ${who} not in this run`;

  const total: GoalResult =
    sw === null
      ? {
          id: 'total_capacity',
          goal: '≥ 0.9 of total capacity',
          sipweigh: null,
          target: 0.9,
          met: null,
          detail: missing('sipweigh'),
        }
      : {
          id: 'total_capacity',
          goal: '≥ 0.9 of total capacity',
          sipweigh: sw,
          target: 0.9,
          met: sw >= 0.9 - 1e-9,
          detail:
            sw >= 0.9 - 1e-9
              ? `${f2(sw)} ≥ 0.90`
              : `${f2(sw)} < 0.90: short by ${f2(0.9 - sw)} of total capacity`,
        };

  let vsRr: GoalResult;
  if (sw === null || rr === null) {
    vsRr = {
      id: 'vs_round_robin',
      goal: '≥ 1.5 × round robin',
      sipweigh: sw,
      target: rr === null ? null : 1.5 * rr,
      met: null,
      detail: missing(sw === null ? 'sipweigh' : 'round_robin'),
    };
  } else {
    const target = 1.5 * rr;
    // Against a round robin that carried nothing, 1.5 × 0 is no bar: sipweigh must carry something.
    const met = sw >= target - 1e-9 && sw > 0;
    const ratio =
      rr > 0
        ? `${(sw / rr).toFixed(2)} × round robin (${f2(sw)} vs ${f2(rr)})`
        : `round robin carried no step; sipweigh ${f2(sw)}`;
    vsRr = {
      id: 'vs_round_robin',
      goal: '≥ 1.5 × round robin',
      sipweigh: sw,
      target,
      met,
      detail: met ? ratio : `${ratio}: short by ${f2(Math.max(target - sw, 0))} of total capacity`,
    };
  }

  let vsCc: GoalResult;
  if (sw === null || cc === null) {
    vsCc = {
      id: 'vs_kamailio_cc',
      goal: '> Kamailio adaptive (cc=1)',
      sipweigh: sw,
      target: cc,
      met: null,
      detail: missing(sw === null ? 'sipweigh' : 'kamailio_cc'),
    };
  } else {
    const met = sw > cc + 1e-9;
    vsCc = {
      id: 'vs_kamailio_cc',
      goal: '> Kamailio adaptive (cc=1)',
      sipweigh: sw,
      target: cc,
      met,
      detail: met ? `${f2(sw)} > ${f2(cc)}` : `${f2(sw)} ≤ ${f2(cc)}: not above Kamailio's adaptive mode`,
    };
  }
  return [total, vsRr, vsCc];
}

/**
 * The dropped backend's fair share after the drop: its new capacity over the pool's new total, as the
 * runner recorded it or, for runs without the field, from the capacities.
 */
export function fairShareAfter(d: DropResult, poolTotalCps: number): number {
  return (
    d.fair_share_after ?? d.capacity_after_cps / (poolTotalCps - d.capacity_before_cps + d.capacity_after_cps)
  );
}

/** "1.1", "1.3": the key of an overload step in the last-line JSON. */
export function loadKey(loadFraction: number): string {
  return String(Math.round(loadFraction * 100) / 100);
}

/**
 * Goodput (successful calls/s) of each policy at each overload step (load_fraction > 1) of the known
 * pool, keyed by loadKey; several measurements at one level (the repetitions) give their median.
 * Policies without overload steps are omitted.
 */
export function overloadGoodput(run: QualityRun): Partial<Record<PolicyId, Record<string, number>>> {
  const out: Partial<Record<PolicyId, Record<string, number>>> = {};
  const known = scenarioSteps(run, 'known');
  for (const p of POLICIES) {
    const over = known.filter((s) => s.policy === p && s.load_fraction > 1);
    if (over.length === 0) continue;
    const byLoad = new Map<string, number[]>();
    for (const s of over) {
      const k = loadKey(s.load_fraction);
      byLoad.set(k, [...(byLoad.get(k) ?? []), s.success_cps]);
    }
    const keys = [...byLoad.keys()].sort((a, b) => Number(a) - Number(b));
    out[p] = Object.fromEntries(keys.map((k) => [k, round1(median(byLoad.get(k)!)!)]));
  }
  return out;
}

const round1 = (n: number) => Math.round(n * 10) / 10;
const round2 = (n: number) => Math.round(n * 100) / 100;

type Keyed<T> = Partial<Record<string, T>>;

export interface QualitySummary {
  readonly bench: 'quality';
  /** The headline, known capacities: median over the repetitions, by the policy names. */
  readonly capacity_fraction: Keyed<number>;
  readonly capacity_fraction_range: Keyed<readonly [number, number]>;
  /** Every backend configured equal (only the policies that read capacities are run on it). */
  readonly unknown_capacity_fraction?: Keyed<number>;
  readonly unknown_capacity_fraction_range?: Keyed<readonly [number, number]>;
  /** The largest backend really 30 % below its datasheet. */
  readonly slow_capacity_fraction?: Keyed<number>;
  readonly slow_capacity_fraction_range?: Keyed<readonly [number, number]>;
  readonly overload_goodput_cps: Keyed<Record<string, number>>;
  /** The highest overload step (130 %): goodput over the real capacity and admitted calls failed, medians. */
  readonly overload: Keyed<{ load: number; goodput_fraction: number; admitted_failed: number }>;
  /** Seconds for the dropped backend's weight to follow the drop; null: it never did (median). */
  readonly capacity_drop_follow_s: Keyed<number | null>;
  /** `<policy>_follow_s`, `<policy>_follow_back_s`, `<policy>_failed_after_pct` (medians). */
  readonly drop: Keyed<number | null>;
  /**
   * The settle phase before each ladder (not scored), by pool and policy: median failed % and p99
   * setup ms (null: no call succeeded). Absent for a run without settle data.
   */
  readonly settle?: Partial<Record<ScenarioId, Keyed<{ failed_pct: number; p99_ms: number | null }>>>;
  /** Where sipweigh learned its backends' capacities (the run's `--learn`; [] for runs before it). */
  readonly sipweigh_learns_on: readonly LearnPool[];
  /** kamailio_oc's servers' target utilisation, when it ran. */
  readonly oc_target?: number;
  /** Repetitions of every ladder (and drop run). */
  readonly reps: number;
  /** The run's wall-clock seconds. */
  readonly duration_s: number | null;
  readonly run_file: string;
}

function keyedFractions(
  run: QualityRun,
  scenario: ScenarioId,
): { med: Keyed<number>; range: Keyed<readonly [number, number]> } {
  const med: Keyed<number> = {};
  const range: Keyed<readonly [number, number]> = {};
  for (const p of POLICIES) {
    const sp = capacitySpread(run, scenario, p);
    if (!sp) continue;
    med[JSON_POLICY_KEYS[p]] = round2(sp.median);
    range[JSON_POLICY_KEYS[p]] = [round2(sp.min), round2(sp.max)];
  }
  return { med, range };
}

const nullable1 = (n: number | null) => (n === null ? null : round1(n));

/**
 * The object printed as the benchmark's last line. Policies that were not run are omitted; so are the
 * scenarios that were not. Keys are the policy names (equal_static, capacity_static).
 */
export function qualitySummary(run: QualityRun, runFile: string): QualitySummary {
  const known = keyedFractions(run, 'known');
  const scen = scenariosRun(run);
  const extra: Record<string, unknown> = {};
  for (const id of ['unknown', 'slow'] as const) {
    if (!scen.includes(id)) continue;
    const f = keyedFractions(run, id);
    extra[`${id}_capacity_fraction`] = f.med;
    extra[`${id}_capacity_fraction_range`] = f.range;
  }
  const capacity_drop_follow_s: Keyed<number | null> = {};
  const drop: Keyed<number | null> = {};
  for (const d of dropSpreads(run)) {
    const k = JSON_POLICY_KEYS[d.policy];
    // A policy with no weights has no follow time: left out rather than null ("never followed").
    if (!SHEDS_WITHOUT_WEIGHTS.includes(d.policy)) {
      capacity_drop_follow_s[k] = nullable1(d.follow_s.median);
      drop[`${k}_follow_s`] = nullable1(d.follow_s.median);
      if (d.follow_back_s) drop[`${k}_follow_back_s`] = nullable1(d.follow_back_s.median);
    }
    drop[`${k}_failed_after_pct`] = Math.round(d.failed_after_pct.median * 1000) / 1000;
  }
  const overload: Keyed<{ load: number; goodput_fraction: number; admitted_failed: number }> = {};
  for (const [p, v] of Object.entries(overloadVerdicts(run)) as [PolicyId, OverloadVerdict][]) {
    overload[JSON_POLICY_KEYS[p]] = {
      load: v.load_fraction,
      goodput_fraction: round2(v.goodput_fraction.median),
      admitted_failed: v.admitted_failed.median,
    };
  }
  const settle: Partial<Record<ScenarioId, Keyed<{ failed_pct: number; p99_ms: number | null }>>> = {};
  for (const x of settleSpreads(run)) {
    (settle[x.scenario] ??= {})[JSON_POLICY_KEYS[x.policy]] = {
      failed_pct: Math.round(x.failed_pct.median * 1000) / 1000,
      p99_ms: x.p99_ms === null ? null : round1(x.p99_ms.median),
    };
  }
  const goodput = overloadGoodput(run);
  const seconds = (Date.parse(run.finished_at) - Date.parse(run.started_at)) / 1000;
  return {
    bench: 'quality',
    capacity_fraction: known.med,
    capacity_fraction_range: known.range,
    ...extra,
    overload_goodput_cps: Object.fromEntries(
      (Object.entries(goodput) as [PolicyId, Record<string, number>][]).map(([p, v]) => [
        JSON_POLICY_KEYS[p],
        v,
      ]),
    ),
    overload,
    capacity_drop_follow_s,
    drop,
    ...(run.settle === undefined ? {} : { settle }),
    sipweigh_learns_on: run.sipweigh_learns_on ?? [],
    ...(run.oc_target === undefined ? {} : { oc_target: run.oc_target }),
    reps: run.reps ?? 1,
    duration_s: Number.isFinite(seconds) && seconds >= 0 ? Math.round(seconds) : null,
    run_file: runFile,
  };
}
