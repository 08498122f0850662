/**
 * Reading a stored quality run back: the JSON is checked field by field against QualityRun, so a
 * hand-edited or truncated file gets an error naming the field instead of a NaN deep in a table.
 */
import { readFile } from 'node:fs/promises';
import { LEARN_POOLS, POLICIES, SCENARIOS, type QualityRun } from './types.js';

type Check = (v: unknown, at: string) => void;

function fail(at: string, want: string, v: unknown): never {
  const got = v === undefined ? 'nothing' : (JSON.stringify(v)?.slice(0, 60) ?? String(v));
  throw new Error(`${at}: expected ${want}, got ${got}`);
}

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const num: Check = (v, at) => {
  if (typeof v !== 'number' || !Number.isFinite(v)) fail(at, 'a number', v);
};
const str: Check = (v, at) => {
  if (typeof v !== 'string') fail(at, 'a string', v);
};
const bool: Check = (v, at) => {
  if (typeof v !== 'boolean') fail(at, 'true or false', v);
};
const optional =
  (c: Check): Check =>
  (v, at) => {
    if (v !== undefined) c(v, at);
  };
const nullable =
  (c: Check): Check =>
  (v, at) => {
    if (v !== null) c(v, at);
  };
const policy: Check = (v, at) => {
  if (!(POLICIES as readonly unknown[]).includes(v)) fail(at, `one of ${POLICIES.join(', ')}`, v);
};
const scenario: Check = (v, at) => {
  if (!(SCENARIOS as readonly unknown[]).includes(v)) fail(at, `one of ${SCENARIOS.join(', ')}`, v);
};
const learnPool: Check = (v, at) => {
  if (!(LEARN_POOLS as readonly unknown[]).includes(v)) fail(at, `one of ${LEARN_POOLS.join(', ')}`, v);
};
const arrayOf =
  (c: Check): Check =>
  (v, at) => {
    if (!Array.isArray(v)) fail(at, 'an array', v);
    v.forEach((x, i) => c(x, `${at}[${i}]`));
  };
const recordOf =
  (c: Check): Check =>
  (v, at) => {
    if (!isObj(v)) fail(at, 'an object', v);
    for (const [k, x] of Object.entries(v)) c(x, `${at}.${k}`);
  };
const shape =
  (fields: Record<string, Check>): Check =>
  (v, at) => {
    if (!isObj(v)) fail(at, 'an object', v);
    for (const [k, c] of Object.entries(fields)) c(v[k], `${at}.${k}`);
  };

const latency = shape({ p50: num, p95: num, p99: num, max: num });
const step = shape({
  policy,
  scenario: optional(scenario),
  rep: optional(num),
  load_fraction: num,
  offered_cps: num,
  duration_s: num,
  calls: num,
  ok: num,
  failed: num,
  refused_503: num,
  failed_pct: num,
  success_cps: num,
  setup_ms: nullable(latency),
  shares: recordOf(num),
});
const settle = shape({
  policy,
  scenario,
  rep: num,
  load_fraction: num,
  offered_cps: num,
  duration_s: num,
  calls: num,
  failed: num,
  refused_503: num,
  failed_pct: num,
  p99_ms: nullable(num),
  shares: recordOf(num),
  drain_s: num,
});
const window = shape({ failed_pct: num, success_cps: num, p99_ms: nullable(num) });
const drop = shape({
  policy,
  rep: optional(num),
  recover_at_s: optional(num),
  follow_back_s: optional(nullable(num)),
  fair_share_before: optional(num),
  backend: str,
  capacity_before_cps: num,
  capacity_after_cps: num,
  offered_cps: num,
  drop_at_s: num,
  duration_s: num,
  follow_s: nullable(num),
  fair_share_after: optional(num),
  settled_share: optional(num),
  before: window,
  after: window,
  halved: optional(window),
  recovered: optional(window),
  weight_samples: optional(arrayOf(shape({ t_s: num, weights: recordOf(num) }))),
  dropped_at_s: optional(num),
  recovered_at_s: optional(num),
  timeline: arrayOf(
    shape({
      t_s: num,
      weights: recordOf(num),
      shares: recordOf(num),
      success_cps: num,
      failed: num,
      p99_ms: nullable(num),
    }),
  ),
});
const run = shape({
  bench: (v, at) => (v === 'quality' ? undefined : fail(at, '"quality"', v)),
  version: (v, at) => (v === 1 || v === 2 ? undefined : fail(at, '1 or 2 (the versions this code reads)', v)),
  quick: bool,
  command: str,
  started_at: str,
  finished_at: str,
  machine: shape({
    hostname: str,
    cpus: num,
    cpu_model: str,
    kernel: str,
    node: str,
    kamailio: str,
    kamailio_oc_lb: optional(str),
    sipp: str,
    loadavg_start: num,
  }),
  pool: shape({ backends: arrayOf(str), capacities_cps: arrayOf(num), total_cps: num, workers: num }),
  criteria: shape({ max_failed_pct: num, max_p99_ms: num }),
  policies: arrayOf(policy),
  scenarios: optional(
    arrayOf(
      shape({
        id: scenario,
        capacities_cps: arrayOf(num),
        configured_cps: arrayOf(num),
        total_cps: num,
        policies: arrayOf(policy),
        note: optional(str),
      }),
    ),
  ),
  reps: optional(num),
  estimated_s: optional(num),
  settle: optional(arrayOf(settle)),
  settle_options: optional(shape({ fraction: num, seconds: num })),
  sipweigh_learns_on: optional(arrayOf(learnPool)),
  oc_target: optional(num),
  steps: arrayOf(step),
  capacity_drop: arrayOf(drop),
});

/** `value` as a QualityRun, or an error naming the first field that is wrong (prefixed by `source`). */
export function checkQualityRun(value: unknown, source = 'run'): QualityRun {
  run(value, source);
  const r = value as QualityRun;
  if (r.pool.backends.length !== r.pool.capacities_cps.length) {
    throw new Error(
      `${source}.pool: ${r.pool.backends.length} backends but ${r.pool.capacities_cps.length} capacities`,
    );
  }
  if (!(r.pool.total_cps > 0)) fail(`${source}.pool.total_cps`, 'a positive number', r.pool.total_cps);
  for (const [k, v] of Object.entries(r.criteria)) {
    if (!(v > 0)) fail(`${source}.criteria.${k}`, 'a positive number', v);
  }
  r.steps.forEach((s, i) => {
    if (!(s.load_fraction > 0))
      fail(`${source}.steps[${i}].load_fraction`, 'a positive number', s.load_fraction);
  });
  return r;
}

export function parseQualityRun(text: string, source: string): QualityRun {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new Error(`${source}: not JSON (${(e as Error).message})`, { cause: e });
  }
  return checkQualityRun(value, source);
}

export async function readQualityRun(file: string): Promise<QualityRun> {
  return parseQualityRun(await readFile(file, 'utf8'), file);
}
