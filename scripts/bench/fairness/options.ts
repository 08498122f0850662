/**
 * Options of `npm run bench -- fairness`, pure: the pool, the sources' loads, the modes compared, the
 * repetitions and the reduced `--quick` run.
 */
import { benchCommand, namesOf, numberIn, numberListIn, parseBenchArgs } from '../common/options.js';

/** fair: per-source fair shares of the admission limit (issue 14); global: one budget, first come first served. */
export const FAIRNESS_MODES = ['fair', 'global'] as const;
export type FairnessMode = (typeof FAIRNESS_MODES)[number];

export interface FairnessOptions {
  readonly quick: boolean;
  readonly modes: readonly FairnessMode[];
  /** Emulated capacity per backend, calls/s. */
  readonly capacities: readonly number[];
  /** UDP workers of each emulated backend: service delay = workers / capacity. */
  readonly workers: number;
  /** Legitimate sources, each a sipp UAC on its own address, sharing `legitLoad` equally. */
  readonly legitSources: number;
  /** All legitimate sources together, as a fraction of the pool's capacity. */
  readonly legitLoad: number;
  /** The one flooding source, as a fraction of the pool's capacity. */
  readonly floodLoad: number;
  /** The single source alone (no competition), as a fraction of the pool's capacity; null = not run. */
  readonly aloneLoad: number | null;
  /** Times each mode runs, interleaved (fair, global, fair, global...). */
  readonly reps: number;
  /**
   * Seconds the legitimate sources run before the flood starts (a flood hits a service in use); 0 =
   * everybody starts together from an idle pool.
   */
  readonly floodDelayS: number;
  /** Seconds of load before the window opens (the controller sees the sources and sets shares). */
  readonly warmupS: number;
  /** Measured seconds. */
  readonly windowS: number;
  /** A call without its final reply after this long is failed (sipp -recv_timeout). */
  readonly recvTimeoutMs: number;
  /** Second octet of the labs' loopback addresses (127.N.x.x). */
  readonly net: number;
  /** Write the run's JSON (bench-results/) and its BENCHMARKS.md section. */
  readonly write: boolean;
}

interface FairnessArgs {
  modes: FairnessMode[];
  capacity: number[];
  workers: number;
  legitSources: number;
  legitLoad: number;
  floodLoad: number;
  aloneLoad: number;
  alone: boolean;
  floodDelay: number;
  reps?: number;
  window?: number;
  warmup?: number;
  net: number;
  write: boolean;
}

export function parseFairnessOptions(args: readonly string[]): FairnessOptions {
  const o = parseBenchArgs<FairnessArgs>(
    benchCommand('fairness', 'legitimate sources under one flooding source, with and without fair admission')
      .option('--modes <list>', `comma-separated, of ${FAIRNESS_MODES.join(',')}`, namesOf(FAIRNESS_MODES), [
        ...FAIRNESS_MODES,
      ])
      .option(
        '--capacity <list>',
        'emulated capacity per backend, calls/s',
        numberListIn(1, 1000),
        [25, 50, 100],
      )
      .option('--workers <n>', 'UDP workers per emulated backend', numberIn(1, 16, true), 2)
      .option('--legit-sources <n>', 'legitimate sources (own addresses)', numberIn(1, 20, true), 3)
      .option(
        '--legit-load <f>',
        "legitimate sources together, fraction of the pool's capacity",
        numberIn(0.05, 2),
        0.5,
      )
      .option(
        '--flood-load <f>',
        "the flooding source, fraction of the pool's capacity",
        numberIn(0.1, 10),
        3,
      )
      .option(
        '--alone-load <f>',
        "the single source alone, fraction of the pool's capacity",
        numberIn(0.1, 5),
        1.3,
      )
      .option('--no-alone', 'skip the single-source-alone run')
      .option(
        '--flood-delay <s>',
        'seconds the legitimate sources run before the flood starts (0: all start together)',
        numberIn(0, 60),
        4,
      )
      .option(
        '--reps <n>',
        'repetitions of each mode, interleaved (default 3; --quick 1)',
        numberIn(1, 20, true),
      )
      .option('--window <s>', 'measured seconds per run (default 20; --quick 8)', numberIn(2, 600))
      .option('--warmup <s>', 'seconds of load before the window (default 6; --quick 5)', numberIn(1, 120))
      .option('--net <n>', "second octet of the labs' loopback addresses", numberIn(1, 254, true), 45)
      .option('--no-write', 'print only: no run file, no BENCHMARKS.md section'),
    args,
  );
  const quick = o.quick;
  return {
    quick,
    modes: [...new Set(o.modes)],
    capacities: o.capacity,
    workers: o.workers,
    legitSources: o.legitSources,
    legitLoad: o.legitLoad,
    floodLoad: o.floodLoad,
    aloneLoad: o.alone ? o.aloneLoad : null,
    floodDelayS: o.floodDelay,
    reps: o.reps ?? (quick ? 1 : 3),
    warmupS: o.warmup ?? (quick ? 5 : 6),
    windowS: o.window ?? (quick ? 8 : 20),
    recvTimeoutMs: 2000,
    net: o.net,
    write: o.write,
  };
}
