/**
 * `npm run bench -- fairness [--quick]`: can one flooding source starve the others?
 *
 * The lab (src/lab): the transparent Kamailio LB with admission control, backends of emulated
 * capacity (default 25/50/100 calls/s) each with its sipp UAS and its agent, and `sipweigh
 * controller` setting the admission limit. Load: several legitimate sources, each a sipp UAC on its
 * own loopback address (the LB's source key), together at half the pool's capacity, and one flooding
 * source at three times the pool's capacity, all started together.
 * Two modes, each on a fresh lab, repeated and interleaved (fair, global, fair, global...):
 *   - fair: the controller's per-source fair shares of the admission limit (admission.fairness);
 *   - global: the same limit as one budget, first come first served (fairness off: today's limiter).
 * Per run, over a window after a warm-up, from each source's sipp traces: the legitimate calls
 * answered (% of those started), the flood's share of the answered calls, and the pool's goodput (200s
 * per second over its capacity). Then one source alone at 1.3× the pool (fair mode): the share of the
 * pool it gets without competition.
 *
 * Prints a line per run and a median (range) table; the last line is one JSON object.
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { readLimiters } from '../../../src/kamailio/admission.js';
import { KamailioRpcClient } from '../../../src/kamailio/rpc.js';
import { LAB_SCENARIOS, startLab, startLabController, type RunningLab } from '../../../src/lab/lab.js';
import type { ProcessGroup } from '../../../src/lab/processes.js';
import { parseSippRows, parseSippRtt, startSipp, type SippRun } from '../../../src/lab/sipp.js';
import { PACKAGE_ROOT } from '../../../src/util/package-root.js';
import { sleep } from '../../../src/util/sleep.js';
import { writeBenchmarksSection } from '../quality/report.js';
import { fairnessMarkdown } from './report.js';
import { withStopped } from '../common/cleanup.js';
import { measureWindow, perSecond, type SippTraces } from '../quality/window.js';
import { controllerConfigFor, keysByKind } from './mode-config.js';
import { parseFairnessOptions, type FairnessMode, type FairnessOptions } from './options.js';
import {
  aloneSources,
  competitionSources,
  formatRunLine,
  formatSummary,
  meanLimit,
  peakSecond,
  poolCps,
  round,
  runFigures,
  schedule,
  summarize,
  summaryJson,
  type FairnessSummary,
  type RunResult,
  type ScheduledRun,
  type SummaryContext,
  type SourceCounts,
  type SourcePlan,
} from './summary.js';

const T0 = performance.now();
const say = (s: string) =>
  process.stderr.write(`fairness [${((performance.now() - T0) / 1000).toFixed(0)} s]: ${s}\n`);

/** The per-source table the LB keeps (issue 14 contract), read only to show what was written. */
const SOURCE_HTABLE = 'sipweigh_src';
/** Bound on waiting for the controller's first admission limit at the LB. */
const LIMIT_DEADLINE_MS = 30_000;

interface RunLab {
  readonly lab: RunningLab;
  readonly rpc: KamailioRpcClient;
  /** The set's admission limit once the controller had set it (idle pool), calls/s. */
  readonly limitCps: number;
}

async function limitAtLb(rpc: KamailioRpcClient, setId: number): Promise<number | null> {
  const limiters = await readLimiters(rpc);
  return [...limiters.values()].find((l) => l.setId === setId)?.limitCps ?? null;
}

/** The controller's first limit at the LB (what the controller wrote, read from outside), bounded. */
async function waitForLimit(rpc: KamailioRpcClient, setId: number): Promise<number> {
  const deadline = Date.now() + LIMIT_DEADLINE_MS;
  for (;;) {
    const limit = await limitAtLb(rpc, setId).catch(() => null);
    if (limit !== null && limit > 0) return limit;
    if (Date.now() > deadline) throw new Error(`no admission limit at the LB within ${LIMIT_DEADLINE_MS} ms`);
    await sleep(200);
  }
}

async function startRunLab(
  o: FairnessOptions,
  mode: FairnessMode,
  onGroup: (g: ProcessGroup) => void,
): Promise<RunLab> {
  const lab = await startLab({
    onGroup,
    backends: o.capacities.length,
    capacities: o.capacities,
    workers: o.workers,
    net: o.net,
    dir: mkdtempSync(join(tmpdir(), `sipweigh-bench-fairness-${mode}-`)),
    agents: true,
    controller: false,
  });
  const plan = lab.state.plan;
  const rpc = new KamailioRpcClient({
    url: lab.state.lb_rpc_url,
    username: plan.lb.rpc.username,
    password: plan.lb.rpc.password,
    deadlineMs: 1000,
  });
  try {
    const file = lab.state.configs.controller;
    const cfg = parseYaml(readFileSync(file, 'utf8')) as Record<string, unknown>;
    writeFileSync(file, stringifyYaml(controllerConfigFor(cfg, mode)), { mode: 0o600 });
    await startLabController(lab.group, plan, file);
    const limitCps = await waitForLimit(rpc, plan.lb.dispatcherSet);
    return { lab, rpc, limitCps };
  } catch (e) {
    rpc.close();
    await lab.stop();
    throw e;
  }
}

function startSource(rl: RunLab, o: FairnessOptions, s: SourcePlan, sendS: number): Promise<SippRun> {
  const plan = rl.lab.state.plan;
  return startSipp(rl.lab.group, {
    name: `uac-${s.name}`,
    scenario: LAB_SCENARIOS.uacAdmission,
    localIp: s.address,
    localPort: 5060,
    remote: `${plan.lb.sip.address}:${plan.lb.sip.port}`,
    rate: s.rateCps,
    maxCalls: Math.round(s.rateCps * sendS),
    // Bounded: the calls, then at most the receive timeout for the last of them.
    timeoutS: Math.ceil(sendS + o.recvTimeoutMs / 1000 + 20),
    traceCounts: true,
    traceRtt: true,
    extraArgs: ['-recv_timeout', String(o.recvTimeoutMs), '-max_recv_loops', '10000'],
  });
}

function readText(file: string | undefined): string {
  try {
    return file ? readFileSync(file, 'utf8') : '';
  } catch {
    return '';
  }
}

function tracesOf(run: SippRun): SippTraces {
  return { counts: parseSippRows(readText(run.countsFile)), rtt: parseSippRtt(readText(run.rttFile)) };
}

/** The window is from `fromS` to `sendS` seconds into this source's own run. */
function countsOf(s: SourcePlan, traces: SippTraces, fromS: number, sendS: number): SourceCounts {
  const w = measureWindow(traces, fromS, sendS);
  return {
    name: s.name,
    role: s.role,
    address: s.address,
    offered_cps: s.rateCps,
    calls: w.calls,
    answered: w.ok,
    refused_503: w.refused_503,
    answered_in_window: w.answered_in_window,
    window_s: round(Math.max(1, sendS - w.fromS), 3),
  };
}

/** What the LB's per-source table holds at the end of the window (null: the LB has none). */
async function sourceTable(rpc: KamailioRpcClient): Promise<Record<string, number> | null> {
  try {
    return keysByKind(await rpc.call('htable.dump', [SOURCE_HTABLE]));
  } catch {
    return null;
  }
}

async function measure(rl: RunLab, o: FairnessOptions, run: ScheduledRun): Promise<RunResult> {
  const sources = run.kind === 'alone' ? aloneSources(o) : competitionSources(o);
  // Seconds after the last start (the flood's) the window closes; each source's own times add its lead.
  const sendS = o.warmupS + o.windowS;
  const setId = rl.lab.state.plan.lb.dispatcherSet;
  const runs: SippRun[] = [];
  const limits: { t_s: number; cps: number | null }[] = [];
  const firstLead = Math.max(...sources.map((s) => s.leadS));
  try {
    // Earliest first: the legitimate sources, then (after their lead) the flood.
    const start0 = performance.now();
    for (const [i, s] of [...sources.entries()].sort(([, a], [, b]) => b.leadS - a.leadS)) {
      await sleep(Math.max(0, start0 + (firstLead - s.leadS) * 1000 - performance.now()));
      runs[i] = await startSource(rl, o, s, s.leadS + sendS);
    }
    const t0 = performance.now();
    // The limit the controller keeps at the LB, once a second through the run (bounded: sendS ticks).
    for (let tick = 1; tick <= Math.ceil(sendS); tick++) {
      await sleep(Math.max(0, t0 + tick * 1000 - performance.now()));
      const limit = await limitAtLb(rl.rpc, setId).catch(() => null);
      limits.push({ t_s: (performance.now() - t0) / 1000, cps: limit });
    }
    const table = await sourceTable(rl.rpc);
    const inWindow = limits.filter((l) => l.t_s >= o.warmupS);
    say(
      `${run.mode}: limit at the LB ${rl.limitCps.toFixed(1)} calls/s idle, in the window ` +
        `${inWindow.map((l) => l.cps?.toFixed(0) ?? '-').join(' ')}; per-source table: ${table === null ? 'none' : JSON.stringify(table)}`,
    );
    // Every call has ended by the receive timeout after the last INVITE; sipp exits then (bounded).
    const guard = setTimeout(() => runs.forEach((r) => void r.process.stop()), o.recvTimeoutMs + 25_000);
    try {
      await Promise.all(runs.map((r) => r.done()));
    } finally {
      clearTimeout(guard);
    }
  } finally {
    await Promise.all(runs.map((r) => r.process.stop()));
  }
  const traces = runs.map(tracesOf);
  const counts = sources.map((s, i) => countsOf(s, traces[i]!, s.leadS + o.warmupS, s.leadS + sendS));
  const pool = poolCps(o.capacities);
  const limit = meanLimit(limits.filter((l) => l.t_s >= o.warmupS).map((l) => l.cps));
  return {
    ...run,
    window_s: o.windowS,
    sources: counts,
    ...runFigures(counts, pool),
    limit_fraction: limit === null ? null : round(limit / pool, 4),
    // Each source's seconds on one clock, from the first start.
    peak_second_fraction: peakSecond(
      traces.map((t, i) =>
        perSecond(t).map((x) => ({ second: x.second + firstLead - sources[i]!.leadS, ok: x.ok })),
      ),
      pool,
    ),
  };
}

async function runOne(o: FairnessOptions, run: ScheduledRun): Promise<RunResult> {
  return withStopped(
    (whileStarting) => startRunLab(o, run.mode, (g) => whileStarting(() => g.stopAll())),
    async (rl) => {
      rl.rpc.close();
      await rl.lab.stop();
    },
    (rl) => measure(rl, o, run),
  );
}

/**
 * The run's JSON in bench-results/ and its figures in BENCHMARKS.md (a quick run has its own section,
 * so it never overwrites a full run's figures). Returns the files written.
 */
async function publish(
  o: FairnessOptions,
  args: readonly string[],
  when: { started: Date; loadavgStart: number },
  runs: readonly RunResult[],
  summary: FairnessSummary,
  context: SummaryContext,
  line: Record<string, unknown>,
): Promise<string[]> {
  const command = `npm run bench -- fairness${args.length ? ` ${args.join(' ')}` : ''}`;
  const runsDir = join(PACKAGE_ROOT, 'bench-results');
  mkdirSync(runsDir, { recursive: true });
  const name = `fairness-${o.quick ? 'quick-' : ''}${when.started.toISOString().replace(/[:.]/g, '-')}.json`;
  const runFile = join(runsDir, name);
  const run = {
    bench: 'fairness',
    version: 1,
    command,
    started_at: when.started.toISOString(),
    options: o,
    runs,
    summary: line,
  };
  writeFileSync(runFile, `${JSON.stringify(run, null, 2)}\n`);
  const benchmarksMd = join(PACKAGE_ROOT, 'BENCHMARKS.md');
  const markdown = fairnessMarkdown(summary, context, {
    started_at: when.started.toISOString(),
    command,
    cpus: cpus().length,
    loadavg_start: when.loadavgStart,
    warmup_s: o.warmupS,
    run_file: `bench-results/${name}`,
  });
  await writeBenchmarksSection(benchmarksMd, o.quick ? 'fairness-quick' : 'fairness', markdown);
  return [runFile, benchmarksMd];
}

export async function runFairnessBench(args: string[]): Promise<void> {
  const o = parseFairnessOptions(args);
  const pool = poolCps(o.capacities);
  const comp = competitionSources(o);
  const alone = aloneSources(o);
  const plan = schedule(o);
  say(
    `pool ${o.capacities.join('/')} = ${pool} calls/s; ${o.legitSources} legitimate sources at ${comp[0]?.rateCps} calls/s each, ` +
      `flood at ${comp.at(-1)?.rateCps} calls/s ${o.floodDelayS > 0 ? `${o.floodDelayS} s after them` : 'with them'}${alone[0] ? `, alone at ${alone[0].rateCps} calls/s` : ''}; ` +
      `${plan.length} runs (${o.warmupS} s warm-up + ${o.windowS} s window each)`,
  );
  const started = new Date();
  const loadavgStart = Number(loadavg()[0]!.toFixed(2));
  const results: RunResult[] = [];
  let failed = 0;
  for (const [i, run] of plan.entries()) {
    say(`run ${i + 1}/${plan.length}: ${run.kind} ${run.mode} (rep ${run.rep})`);
    try {
      const r = await runOne(o, run);
      results.push(r);
      say(formatRunLine(r));
    } catch (e) {
      // One lab that would not start costs one run, not the comparison: counted in the JSON.
      failed++;
      say(`run ${i + 1} failed: ${(e as Error).message.split('\n').slice(0, 4).join(' | ')}`);
    }
  }
  const summary = summarize(results);
  process.stderr.write(`\n${formatSummary(summary)}\n\n`);
  const context: SummaryContext = {
    quick: o.quick,
    pool_cps: pool,
    capacities_cps: o.capacities,
    legit_sources: o.legitSources,
    legit_offered_cps: comp.filter((s) => s.role === 'legit').reduce((a, s) => a + s.rateCps, 0),
    flood_offered_cps: comp.find((s) => s.role === 'flood')?.rateCps ?? 0,
    alone_offered_cps: alone[0]?.rateCps ?? null,
    flood_delay_s: o.floodDelayS,
    reps: o.reps,
    window_s: o.windowS,
    seconds: (performance.now() - T0) / 1000,
    failed_runs: failed,
  };
  const line = summaryJson(summary, context);
  if (o.write && results.length > 0) {
    const files = await publish(o, args, { started, loadavgStart }, results, summary, context, line);
    say(`wrote ${files.join(', ')}`);
  }
  process.stdout.write(`${JSON.stringify(line)}\n`);
  // After the line: what did run is reported, and the exit status still says the comparison is short.
  if (failed > 0) throw new Error(`${failed} of ${plan.length} runs failed (see above)`);
}
