/**
 * Options of `npm run bench -- quality`, pure: the pool, the steps, the capacity-drop variant and the
 * reduced `--quick` run.
 */
import { InvalidArgumentError } from 'commander';
import {
  BenchUsageError,
  benchCommand,
  namesOf,
  numberIn,
  numberListIn,
  parseBenchArgs,
} from '../common/options.js';
import {
  DEFAULT_LEARN_POOLS,
  LEARN_POOLS,
  POLICIES,
  SCENARIOS,
  type LearnPool,
  type PolicyId,
  type ScenarioId,
} from './types.js';

export interface DropOptions {
  /** Index of the backend whose capacity halves (default the largest). */
  readonly backend: number;
  /** Offered load, as a fraction of the total capacity before the drop. */
  readonly loadFraction: number;
  /** Seconds of load before the drop, and after it. */
  readonly beforeS: number;
  readonly afterS: number;
  /** Seconds into the run the capacity comes back (beforeS < recoverAtS < beforeS + afterS); null: never. */
  readonly recoverAtS: number | null;
  /** The policies the drop runs for (their weights are what it watches). */
  readonly policies: readonly PolicyId[];
}

export interface QualityOptions {
  readonly quick: boolean;
  readonly policies: readonly PolicyId[];
  /** Emulated capacity per backend, calls/s (default 1:2:4). */
  readonly capacities: readonly number[];
  /** UDP workers of each emulated backend: service delay = workers / capacity. */
  readonly workers: number;
  /** Offered loads as fractions of the total capacity, ascending; > 1 are the overload steps. */
  readonly steps: readonly number[];
  /** The ladders of the scenarios after `known` (none of the overload steps: --quick keeps them short). */
  readonly otherSteps: readonly number[];
  /** The pools compared (issue 18): known, unknown, slow. */
  readonly scenarios: readonly ScenarioId[];
  /** Times every ladder and drop run, interleaved across the policies. */
  readonly reps: number;
  /** The slow scenario: how far below its datasheet the largest backend really is (0.3 = 30 %). */
  readonly slowBy: number;
  /**
   * kamailio_oc's servers: the utilisation their overload law aims at (backend.cfg SW_OC_TARGET),
   * a fraction; the lab's default 0.9 unless --oc-target says.
   */
  readonly ocTarget: number;
  /** Seconds of load before a step's window opens (not measured), and the window's length. */
  readonly warmupS: number;
  readonly windowS: number;
  /** The window of overload steps (> 100 %): long enough for a backlog to exceed the receive timeout. */
  readonly overloadWindowS: number;
  /**
   * The settle phase before every ladder's first step: load at this fraction of the pool's real
   * capacity for `settleS` seconds, the same for every policy, measured and reported apart, never
   * scored (an adaptive policy's first seconds are its transient, not its 70 % step). 0 s: none.
   */
  readonly settleFraction: number;
  readonly settleS: number;
  /** A call without its final reply after this long is failed (sipp -recv_timeout). */
  readonly recvTimeoutMs: number;
  /** null: not run. */
  readonly drop: DropOptions | null;
  /** Where sipweigh learns its backends' capacities (scoring.capacity.learn): ladders by pool, or the drop. */
  readonly learnOn: readonly LearnPool[];
  /** Second octet of the labs' loopback addresses (127.N.x.x). */
  readonly net: number;
  /** Where the run's JSON, BENCHMARKS.md and the plots go (relative to the package root). */
  readonly outDir: string;
  /** Re-report a stored run instead of measuring. */
  readonly reportOnly: string | undefined;
  /** Print the plan and its estimated duration, run nothing. */
  readonly planOnly: boolean;
}

export const FULL_STEPS = [0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0, 1.1, 1.3] as const;
/** Issue 18: the knee's steps, and 130 % so the overload figure stays reported. */
export const QUICK_STEPS = [0.7, 0.8, 0.85, 0.9, 0.95, 1.3] as const;
/** --quick's unknown-capacity ladder: the knee only (the overload step is the known pool's). */
export const QUICK_OTHER_STEPS = [0.7, 0.8, 0.85, 0.9, 0.95] as const;
/**
 * The settle phase's defaults: 70 % of the real capacity (the first step of --quick's ladders: at
 * 60 %, by the estimator's rules (worked out, not measured), a policy learning from equal priors on
 * the 25/50/100 pool, once be1 is learned, offers be2 and be3 0.74 of their prior, under the 0.8
 * that starts a probe, so part of the transient would still fall in that step; 70 % gives 0.86), 20 s
 * (--quick 12 s).
 */
export const SETTLE_DEFAULTS = { fraction: 0.7, seconds: 20, quickSeconds: 12 } as const;
/** A step's measured window, seconds (--quick 3 s). */
export const WINDOW_DEFAULTS = { seconds: 12, quickSeconds: 3 } as const;
/** kamailio_oc's servers aim at 90 % utilisation (the lab's SW_OC_TARGET default, 900 per mille). */
export const OC_TARGET_DEFAULT = 0.9;

/** Drop runs: the adaptive policies only in --quick (a static list's weights cannot move). */
export const QUICK_DROP_POLICIES: readonly PolicyId[] = ['kamailio_cc', 'sipweigh'];
/**
 * Left out of --quick's default policies to keep it well under 10 minutes (issue 18): alg 64's ladder
 * adds about one (its drop is not in --quick's QUICK_DROP_POLICIES either); `--quick --policies ...`
 * naming it runs its ladder.
 */
export const NOT_QUICK_BY_DEFAULT: readonly PolicyId[] = ['kamailio_oc'];

/**
 * The policies this machine can run, and why one cannot (kamailio_oc needs a Kamailio 6.1 LB): the
 * default leaves those out, `--policies` naming one is refused with the reason.
 */
export interface PolicyAvailability {
  readonly unavailable: Readonly<Partial<Record<PolicyId, string>>>;
}
export const ALL_POLICIES_AVAILABLE: PolicyAvailability = { unavailable: {} };

interface QualityArgs {
  policies?: PolicyId[];
  capacity: number[];
  workers: number;
  ocTarget: number;
  steps?: number[];
  window?: number;
  settleFraction?: number;
  settle?: number;
  report?: string;
  net: number;
  drop: boolean;
  ladders: boolean;
  scenarios?: ScenarioId[];
  learn?: LearnPool[];
  reps?: number;
  plan: boolean;
}

export function parseQualityOptions(
  args: readonly string[],
  availability: PolicyAvailability = ALL_POLICIES_AVAILABLE,
): QualityOptions {
  const o = parseBenchArgs<QualityArgs>(
    benchCommand('quality', 'balancing quality per policy, overload goodput, capacity drop')
      .option(
        '--policies <list>',
        `comma-separated, of ${POLICIES.join(',')} (default: all this machine can run; --quick without ${NOT_QUICK_BY_DEFAULT.join(',')})`,
        namesOf(POLICIES),
      )
      .option(
        '--capacity <list>',
        'emulated capacity per backend, calls/s',
        numberListIn(1, 1000),
        [25, 50, 100],
      )
      .option('--workers <n>', 'UDP workers per emulated backend', numberIn(1, 16, true), 2)
      .option(
        '--oc-target <fraction>',
        "kamailio_oc: the utilisation its servers' overload law aims at",
        numberIn(0.5, 1),
        OC_TARGET_DEFAULT,
      )
      .option('--steps <list>', 'offered loads as fractions of the total capacity', numberListIn(0.05, 3))
      .option(
        '--window <s>',
        `measured seconds per step (default ${WINDOW_DEFAULTS.seconds}; --quick ${WINDOW_DEFAULTS.quickSeconds})`,
        numberIn(1, 600),
      )
      .option(
        '--settle-fraction <f>',
        `settle phase's load before each ladder, as a fraction of the real capacity (default ${SETTLE_DEFAULTS.fraction})`,
        numberIn(0.05, 1),
      )
      .option(
        '--settle <s>',
        `seconds of the settle phase before each ladder, not scored (default ${SETTLE_DEFAULTS.seconds}; --quick ${SETTLE_DEFAULTS.quickSeconds}; 0: none)`,
        numberIn(0, 600, true),
      )
      .option(
        '--scenarios <list>',
        `comma-separated, of ${SCENARIOS.join(',')} (default all; --quick known,unknown)`,
        namesOf(SCENARIOS),
      )
      .option(
        '--learn <list>',
        `where sipweigh learns its backends' capacities (scoring.capacity.learn), comma-separated, of ${LEARN_POOLS.join(',')}; none: nowhere (default ${DEFAULT_LEARN_POOLS.join(',')})`,
        learnList,
      )
      .option(
        '--reps <n>',
        'repetitions of every ladder and drop run, interleaved (default 3; --quick 1)',
        numberIn(1, 20, true),
      )
      .option('--report <file>', 're-report a stored run instead of measuring')
      .option('--plan', 'print the runs in order and the estimated duration; run nothing', false)
      .option('--net <n>', "second octet of the labs' loopback addresses", numberIn(1, 254, true), 17)
      .option('--no-drop', 'skip the capacity-drop run')
      .option('--no-ladders', 'skip every ladder: the capacity-drop runs only'),
    args,
  );
  const quick = o.quick;
  if (o.settle === 0 && o.settleFraction !== undefined) {
    // Taken and then unused, it would read as though the phase ran at that load.
    throw new BenchUsageError('quality: --settle-fraction has no phase to set with --settle 0');
  }
  const capacities = o.capacity;
  const steps = [...(o.steps ?? (quick ? QUICK_STEPS : FULL_STEPS))].sort((a, b) => a - b);
  const otherSteps = o.steps ? steps : quick ? [...QUICK_OTHER_STEPS] : steps;
  const windowS = o.window ?? (quick ? WINDOW_DEFAULTS.quickSeconds : WINDOW_DEFAULTS.seconds);
  const largest = capacities.indexOf(Math.max(...capacities));
  const missing = (o.policies ?? []).filter((p) => availability.unavailable[p] !== undefined);
  if (missing.length > 0) {
    throw new BenchUsageError(
      `quality: --policies ${missing.map((p) => `${p} (${availability.unavailable[p]})`).join(', ')}: not on this machine`,
    );
  }
  const policies =
    o.policies ??
    POLICIES.filter(
      (p) => availability.unavailable[p] === undefined && !(quick && NOT_QUICK_BY_DEFAULT.includes(p)),
    );
  if (!o.ladders) {
    if (!o.drop) throw new BenchUsageError('quality: --no-ladders with --no-drop runs nothing');
    // Each would be taken and never used: refused by name.
    const ladderOnly = {
      '--scenarios': o.scenarios,
      '--steps': o.steps,
      '--window': o.window,
      '--settle': o.settle,
      '--settle-fraction': o.settleFraction,
    };
    const given = Object.entries(ladderOnly)
      .filter(([, v]) => v !== undefined)
      .map(([k]) => k);
    if (given.length > 0)
      throw new BenchUsageError(`quality: ${given.join(', ')} set ladders, and --no-ladders runs none`);
  }
  const dropPolicies = quick ? policies.filter((p) => QUICK_DROP_POLICIES.includes(p)) : policies;
  // Taken and then unused, it would read as though alg 64 ran with it: refused unless a ladder or a
  // drop run of kamailio_oc is planned (a re-report runs nothing).
  const ocRuns =
    o.report === undefined &&
    ((o.ladders && policies.includes('kamailio_oc')) || (o.drop && dropPolicies.includes('kamailio_oc')));
  if (args.some((a) => a === '--oc-target' || a.startsWith('--oc-target=')) && !ocRuns) {
    throw new BenchUsageError('quality: --oc-target sets kamailio_oc, which this run does not run');
  }
  if (!o.ladders && o.drop && dropPolicies.length === 0) {
    throw new BenchUsageError(
      `quality: --quick --no-ladders runs the drop for ${QUICK_DROP_POLICIES.join(', ')} only, and --policies names none`,
    );
  }
  const scenarios = o.ladders
    ? SCENARIOS.filter((s) => (o.scenarios ?? (quick ? ['known', 'unknown'] : SCENARIOS)).includes(s))
    : [];
  return {
    quick,
    policies,
    capacities,
    workers: o.workers,
    steps,
    otherSteps,
    scenarios,
    reps: o.reps ?? (quick ? 1 : 3),
    slowBy: 0.3,
    ocTarget: o.ocTarget,
    warmupS: quick ? 1 : 4,
    windowS,
    overloadWindowS: quick ? windowS : Math.max(windowS, 30),
    settleFraction: o.settleFraction ?? SETTLE_DEFAULTS.fraction,
    settleS: o.settle ?? (quick ? SETTLE_DEFAULTS.quickSeconds : SETTLE_DEFAULTS.seconds),
    // A call without its 200 by then has failed for any caller (and the headline asks 200 ms).
    recvTimeoutMs: quick ? 2000 : 5000,
    // Issue 18: the largest backend halves at 20 s and recovers at 40 s; 20 s more to see it come back.
    drop: !o.drop
      ? null
      : {
          backend: largest,
          loadFraction: 0.6,
          beforeS: 20,
          afterS: 40,
          recoverAtS: 40,
          policies: dropPolicies,
        },
    learnOn: o.learn ?? [...DEFAULT_LEARN_POOLS],
    net: o.net,
    outDir: '.',
    reportOnly: o.report,
    planOnly: o.plan,
  };
}

/** `--learn`'s parser: its pools in their canonical order; `none` alone is nowhere, beside a pool refused. */
function learnList(raw: string): LearnPool[] {
  const names = namesOf([...LEARN_POOLS, 'none'] as const)(raw);
  if (!names.includes('none')) return LEARN_POOLS.filter((p) => names.includes(p));
  if (names.length > 1) throw new InvalidArgumentError('none cannot be given with a pool');
  return [];
}
