/**
 * The quality benchmark's figures, from a stored run only (no I/O, no clock): which steps a policy
 * carried, its capacity fraction (the headline), sipweigh against the goals, and the
 * last-line JSON object.
 */
import { POLICIES, type DropResult, type PolicyId, type QualityRun, type StepResult } from './types.js';

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

/** Every policy of the run that has steps, in the canonical order. */
export function capacityVerdicts(run: QualityRun): CapacityVerdict[] {
  return POLICIES.flatMap((p) => {
    const v = capacityVerdict(run.steps, p, run.criteria);
    return v ? [v] : [];
  });
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
  const frac = (p: PolicyId) => capacityFraction(run.steps, p, run.criteria);
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
 * Goodput (successful calls/s) of each policy at each overload step (load_fraction > 1), keyed by
 * loadKey; several measurements at one level are averaged. Policies without overload steps are omitted.
 */
export function overloadGoodput(run: QualityRun): Partial<Record<PolicyId, Record<string, number>>> {
  const out: Partial<Record<PolicyId, Record<string, number>>> = {};
  for (const p of POLICIES) {
    const over = run.steps.filter((s) => s.policy === p && s.load_fraction > 1);
    if (over.length === 0) continue;
    const byLoad = new Map<string, number[]>();
    for (const s of over) {
      const k = loadKey(s.load_fraction);
      byLoad.set(k, [...(byLoad.get(k) ?? []), s.success_cps]);
    }
    const keys = [...byLoad.keys()].sort((a, b) => Number(a) - Number(b));
    out[p] = Object.fromEntries(keys.map((k) => [k, round1(mean(byLoad.get(k)!))]));
  }
  return out;
}

function mean(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

const round1 = (n: number) => Math.round(n * 10) / 10;
const round2 = (n: number) => Math.round(n * 100) / 100;

export interface QualitySummary {
  readonly bench: 'quality';
  readonly capacity_fraction: Partial<Record<PolicyId, number>>;
  readonly overload_goodput_cps: Partial<Record<PolicyId, Record<string, number>>>;
  /** Seconds for the dropped backend's weight to follow the drop; null: it never did. */
  readonly capacity_drop_follow_s: Partial<Record<PolicyId, number | null>>;
  readonly run_file: string;
}

/** The object printed as the benchmark's last line. Policies that were not run are omitted. */
export function qualitySummary(run: QualityRun, runFile: string): QualitySummary {
  const capacity_fraction: Partial<Record<PolicyId, number>> = {};
  for (const v of capacityVerdicts(run)) capacity_fraction[v.policy] = round2(v.fraction);
  const capacity_drop_follow_s: Partial<Record<PolicyId, number | null>> = {};
  for (const p of POLICIES) {
    const d = run.capacity_drop.find((r) => r.policy === p);
    if (d) capacity_drop_follow_s[p] = d.follow_s === null ? null : round1(d.follow_s);
  }
  return {
    bench: 'quality',
    capacity_fraction,
    overload_goodput_cps: overloadGoodput(run),
    capacity_drop_follow_s,
    run_file: runFile,
  };
}
