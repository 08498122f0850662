/**
 * The quality tests' shared inputs: a made-up run (bench-quality-fixture.json, realistic shapes for a
 * 25/50/100 calls/s pool, not measured) and a step builder for the rule-by-rule cases.
 */
import { readFileSync } from 'node:fs';
import type { QualityRun, StepResult } from '../../scripts/bench/quality/types.js';

export const FIXTURE_TEXT = readFileSync(new URL('./bench-quality-fixture.json', import.meta.url), 'utf8');

/** A fresh copy each call: tests may edit it. */
export function fixtureRun(): QualityRun {
  return JSON.parse(FIXTURE_TEXT) as QualityRun;
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
