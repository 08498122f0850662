/**
 * The quality tests' shared inputs: a made-up run (bench-quality-fixture.json, realistic shapes for a
 * 25/50/100 calls/s pool, not measured) and a step builder for the rule-by-rule cases.
 */
import { readFileSync } from 'node:fs';
import {
  POLICIES,
  type DropResult,
  type PolicyId,
  type QualityRun,
  type ScenarioId,
  type StepResult,
} from '../../scripts/bench/quality/types.js';

export const FIXTURE_TEXT = readFileSync(new URL('./bench-quality-fixture.json', import.meta.url), 'utf8');

/** A fresh copy each call: tests may edit it. */
export function fixtureRun(): QualityRun {
  return JSON.parse(FIXTURE_TEXT) as QualityRun;
}

/** The policies the stored fixture ran (it predates kamailio_oc), in the canonical order. */
export function fixturePolicies(run: QualityRun = fixtureRun()): PolicyId[] {
  return POLICIES.filter((p) => run.steps.some((st) => st.policy === p));
}

export const CRITERIA = { max_failed_pct: 1, max_p99_ms: 200 } as const;

/** A carried step of sipweigh at `load_fraction` (175 calls/s pool) unless `over` says otherwise. */
export function step(load_fraction: number, over: Partial<StepResult> = {}): StepResult {
  const offered = 175 * load_fraction;
  return {
    policy: 'sipweigh',
    load_fraction,
    offered_cps: offered,
    duration_s: 20,
    calls: Math.round(offered * 20),
    ok: Math.round(offered * 20),
    failed: 0,
    refused_503: 0,
    failed_pct: 0,
    success_cps: offered,
    setup_ms: { p50: 12, p95: 40, p99: 80, max: 150 },
    shares: { be1: 0.143, be2: 0.286, be3: 0.571 },
    ...over,
  };
}

/** A run with only these steps (and no capacity drop) on the fixture's pool and machine. */
export function runWith(steps: readonly StepResult[]): QualityRun {
  const base = fixtureRun();
  return {
    ...base,
    policies: [...new Set(steps.map((s) => s.policy))],
    steps,
    capacity_drop: [],
  };
}

/** A ladder of `policy` on `scenario`, repetition `rep`, carried up to `upTo` and missed above. */
export function ladder(policy: PolicyId, scenario: ScenarioId, rep: number, upTo: number): StepResult[] {
  return [0.7, 0.8, 0.85, 0.9, 0.95].map((l) =>
    step(l, { policy, scenario, rep, ...(l <= upTo ? {} : { failed_pct: 3, failed: 60 }) }),
  );
}
function drop(
  policy: PolicyId,
  rep: number,
  follow: number | null,
  back: number | null,
  halvedFailed: number,
): DropResult {
  const w = (failed_pct: number) => ({ failed_pct, success_cps: 105, p99_ms: 40 });
  return {
    policy,
    rep,
    backend: 'be3',
    capacity_before_cps: 100,
    capacity_after_cps: 50,
    offered_cps: 105,
    drop_at_s: 20,
    duration_s: 60,
    follow_s: follow,
    before: w(0),
    after: w(0.1),
    recover_at_s: 40,
    halved: w(halvedFailed),
    recovered: w(0),
    follow_back_s: back,
    timeline: [],
  };
}
/**
 * A made-up issue-18 run (version 2): three repetitions on the known pool, two on the unknown one
 * (configured 58.33 each), 130 % for sipweigh, drop runs with a recovery at 40 s.
 */
export function repeatedRun(): QualityRun {
  return {
    ...fixtureRun(),
    version: 2,
    reps: 3,
    scenarios: [
      {
        id: 'known',
        capacities_cps: [25, 50, 100],
        configured_cps: [25, 50, 100],
        total_cps: 175,
        policies: ['static_equal', 'kamailio_cc', 'sipweigh'],
      },
      {
        id: 'unknown',
        capacities_cps: [25, 50, 100],
        configured_cps: [58.33, 58.33, 58.33],
        total_cps: 175,
        policies: ['kamailio_cc', 'sipweigh'],
        note: 'not run again: static_equal (the same lab as on the known pool)',
      },
    ],
    steps: [
      ...ladder('sipweigh', 'known', 1, 0.9),
      ...ladder('kamailio_cc', 'known', 1, 0.8),
      ...ladder('sipweigh', 'known', 2, 0.95),
      ...ladder('kamailio_cc', 'known', 2, 0.85),
      ...ladder('sipweigh', 'known', 3, 0.85),
      ...ladder('kamailio_cc', 'known', 3, 0.85),
      ...ladder('static_equal', 'known', 1, 0),
      ...ladder('sipweigh', 'unknown', 1, 0.9),
      ...ladder('kamailio_cc', 'unknown', 1, 0),
      ...ladder('sipweigh', 'unknown', 2, 0.85),
      ...ladder('kamailio_cc', 'unknown', 2, 0.7),
      step(1.3, {
        policy: 'sipweigh',
        rep: 1,
        success_cps: 160,
        failed: 500,
        refused_503: 500,
        failed_pct: 11,
      }),
      step(1.3, {
        policy: 'sipweigh',
        rep: 2,
        success_cps: 150,
        failed: 510,
        refused_503: 500,
        failed_pct: 11.2,
      }),
      step(1.3, {
        policy: 'sipweigh',
        rep: 3,
        success_cps: 158,
        failed: 400,
        refused_503: 400,
        failed_pct: 8.8,
      }),
    ],
    capacity_drop: [
      drop('sipweigh', 1, 4, 3, 0.5),
      drop('kamailio_cc', 1, 2, null, 1.5),
      drop('sipweigh', 2, 6, 5, 0.7),
      drop('kamailio_cc', 2, null, null, 2.5),
      drop('sipweigh', 3, 5, null, 0.2),
      drop('kamailio_cc', 3, null, 1, 0.5),
    ],
  };
}
