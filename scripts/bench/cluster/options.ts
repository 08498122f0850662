/**
 * Options of `npm run bench -- cluster`, pure: the sizes of each part (calls, writes, seconds), the
 * pool of the admission part, the repetitions and the reduced `--quick` run.
 */
import { benchCommand, numberIn, numberListIn, parseBenchArgs } from '../common/options.js';

export interface ClusterOptions {
  readonly quick: boolean;
  /** Repetitions, each on fresh labs. */
  readonly repetitions: number;
  /** Calls of the CANCEL part (INVITE via lb1, CANCEL via lb2) and of the retransmission part. */
  readonly calls: number;
  /** Calls/s of the CANCEL part. */
  readonly cancelRate: number;
  /** Calls/s of the retransmission part (each INVITE holds a backend worker 1.2 s, twice or more). */
  readonly rtxRate: number;
  /** Entries written at lb1 and polled for at lb2: the replication lag's samples. */
  readonly lagWrites: number;
  /** Emulated (and configured) capacity per backend, calls/s: the admission and overload parts' pool. */
  readonly capacities: readonly number[];
  /** UDP workers of each emulated backend. */
  readonly workers: number;
  /** Calls/s offered in the split and move parts (below the pool's limit: only the demand matters). */
  readonly splitCps: number;
  /** Readings of the split (one a second) averaged into admission_split_error_pct. */
  readonly splitReadings: number;
  /** The overload's offer, as a fraction of the pool's configured capacity. */
  readonly overloadLoad: number;
  /** Seconds of overload. */
  readonly overloadS: number;
  /** Seconds of the overload before its goodput is counted (the split follows the 60/40 first). */
  readonly overloadWarmupS: number;
  /** Seconds DMQ is cut between the two LBs (the partition part). */
  readonly partitionS: number;
  /** Calls/s through lb1 before and during the cut. */
  readonly partitionCps: number;
  /** Seconds of the same traffic before the cut (the latency's reference). */
  readonly partitionBeforeS: number;
  /** Calls INVITE via lb1, CANCEL via lb2 during the cut. */
  readonly partitionCrossCalls: number;
  /** Second octet of the labs' loopback addresses (127.N.x.x). */
  readonly net: number;
  /** Write the run's JSON (bench-results/) and its BENCHMARKS.md section. */
  readonly write: boolean;
}

interface ClusterArgs {
  repetitions?: number;
  calls?: number;
  lagWrites?: number;
  capacity: number[];
  workers: number;
  splitCps: number;
  splitReadings: number;
  overloadLoad: number;
  overload?: number;
  partition: number;
  partitionCps: number;
  net: number;
  write: boolean;
}

export function parseClusterOptions(args: readonly string[]): ClusterOptions {
  const o = parseBenchArgs<ClusterArgs>(
    benchCommand(
      'cluster',
      'two LB nodes: CANCELs and retransmissions across nodes, DMQ lag, a DMQ partition, the admission split, overload',
    )
      .option(
        '--repetitions <n>',
        'repetitions, each on fresh labs (default 3; --quick 1)',
        numberIn(1, 20, true),
      )
      .option(
        '--calls <n>',
        'calls of the CANCEL part and of the retransmission part (default 200; --quick 50)',
        numberIn(1, 5000, true),
      )
      .option(
        '--lag-writes <n>',
        'Call-ID entries written at lb1, polled at lb2 (default 500; --quick 200)',
        numberIn(10, 20000, true),
      )
      .option('--capacity <list>', 'emulated capacity per backend, calls/s', numberListIn(1, 1000), [25, 25])
      .option('--workers <n>', 'UDP workers per emulated backend', numberIn(1, 16, true), 2)
      .option('--split-cps <n>', 'calls/s offered in the split and move parts', numberIn(2, 1000), 20)
      .option('--split-readings <n>', 'one-a-second readings of the settled split', numberIn(1, 60, true), 5)
      .option(
        '--overload-load <f>',
        "the overload's offer, fraction of the pool's configured capacity",
        numberIn(0.1, 10),
        1.3,
      )
      .option('--overload <s>', 'seconds of overload (default 30; --quick 20)', numberIn(8, 600))
      .option('--partition <s>', 'seconds DMQ is cut between the LBs', numberIn(3, 120), 10)
      .option('--partition-cps <n>', 'calls/s through lb1 before and during the cut', numberIn(1, 200), 20)
      .option('--net <n>', "second octet of the labs' loopback addresses", numberIn(1, 254, true), 61)
      .option('--no-write', 'print only: no run file, no BENCHMARKS.md section'),
    args,
  );
  const quick = o.quick;
  return {
    quick,
    repetitions: o.repetitions ?? (quick ? 1 : 3),
    calls: o.calls ?? (quick ? 50 : 200),
    cancelRate: 25,
    rtxRate: 5,
    lagWrites: o.lagWrites ?? (quick ? 200 : 500),
    capacities: o.capacity,
    workers: o.workers,
    splitCps: o.splitCps,
    splitReadings: o.splitReadings,
    overloadLoad: o.overloadLoad,
    overloadS: o.overload ?? (quick ? 20 : 30),
    overloadWarmupS: 5,
    partitionS: o.partition,
    partitionCps: o.partitionCps,
    partitionBeforeS: 5,
    partitionCrossCalls: 8,
    net: o.net,
    write: o.write,
  };
}
