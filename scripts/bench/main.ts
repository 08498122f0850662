/**
 * `npm run bench -- NAME [--quick] [options]`: one entry point for every benchmark. Each benchmark
 * prints its table for people and, as its last line, one JSON object for machines. Each lives in its
 * own folder; common/ holds the one option parser and the one registry of what Ctrl-C must stop.
 */
import { installInterruptHandler } from './common/cleanup.js';
import { BenchHelpShown, BenchUsageError } from './common/options.js';

type Bench = (args: string[]) => Promise<void>;

/** Each benchmark module exports one runner; loaded on demand so one bench's imports never slow another. */
async function load(file: string, exportName: string): Promise<Bench> {
  const mod = (await import(new URL(file, import.meta.url).href)) as Record<string, unknown>;
  const fn = mod[exportName];
  if (typeof fn !== 'function') throw new Error(`${file} does not export ${exportName}`);
  return fn as Bench;
}

const BENCHES: Record<string, { what: string; load: () => Promise<Bench> }> = {
  dataplane: {
    what: 'LB CPU per call and calls/s: transparent (no Via) against stateful t_relay',
    load: () => load('./dataplane/dataplane.js', 'runDataplaneBench'),
  },
  heartbeat: {
    what: 'controller heartbeat endpoint: reports/s, CPU per 1k reports, memory per backend',
    load: () => load('./heartbeat/heartbeat.js', 'runHeartbeatBench'),
  },
  failover: {
    what: 'backend SIGKILL under load: time to out of rotation and failed calls, sipweigh vs Kamailio probing',
    load: () => load('./failover/failover.js', 'runFailoverBench'),
  },
  fairness: {
    what: 'legitimate sources under one flooding source: fair admission against one global budget',
    load: () => load('./fairness/fairness.js', 'runFairnessBench'),
  },
  cluster: {
    what: 'two LB nodes: CANCELs and retransmissions across nodes, DMQ lag, admission split, overload',
    load: () => load('./cluster/cluster.js', 'runClusterBench'),
  },
  quality: {
    what: 'balancing quality: capacity used, failures, setup latency per policy, overload goodput, capacity drop',
    load: () => load('./quality/quality.js', 'runQualityBench'),
  },
};

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  const bench = name ? BENCHES[name] : undefined;
  if (!bench) {
    const list = Object.entries(BENCHES).map(([n, b]) => `  ${n.padEnd(10)} ${b.what}`);
    process.stderr.write(`usage: npm run bench -- NAME [--quick] [--help]\n${list.join('\n')}\n`);
    return name ? 2 : 0;
  }
  const run = await bench.load();
  // Before the first lab: a Ctrl-C that finds no handler kills Node and leaves detached labs running.
  installInterruptHandler();
  try {
    await run(rest);
  } catch (e) {
    if (e instanceof BenchHelpShown) return 0;
    throw e;
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    // An option error is the operator's: its message says it all, a stack would hide it.
    const text = e instanceof BenchUsageError ? e.message : ((e as Error).stack ?? String(e));
    process.stderr.write(`bench failed: ${text}\n`);
    process.exit(1);
  },
);
