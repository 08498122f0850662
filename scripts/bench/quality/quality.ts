/**
 * `npm run bench -- quality [--quick]`: how well each balancing policy uses a pool of unequal
 * backends, measured on the same machine in the same run.
 *
 * The pool is the lab's: Kamailio backends with emulated capacities (default 25/50/100 calls/s, i.e.
 * 1:2:4; fixed workers and service delay, so the figures do not depend on this machine's CPU), a sipp
 * UAS behind each, the transparent Kamailio LB in front. For each policy a fresh lab, then one sipp UAC
 * per offered-load step (warm-up, then a measured window): calls, failures, 503 refusals, INVITE→200
 * percentiles from sipp's per-call trace, and each backend's share from its own dialog counter.
 * Before a ladder's first step, a settle phase (--settle, --settle-fraction): the same load for
 * every policy, a fixed fraction of the real capacity for a fixed time, measured and reported apart,
 * never scored, so an adaptive policy's learning transient is shown rather than taken for its first step.
 *
 * Policies: Kamailio round robin (algorithm 4); relative weights (algorithm 11) equal, or proportional
 * to the configured capacities (the operator's best static guess); Kamailio's own adaptive mode
 * (algorithm 11 with `cc=1` on the capacity weights, OPTIONS every second, latency statistics on);
 * Kamailio 6.1's overload control (algorithm 64 on a 6.1 LB, fed by the backends' RFC 7339 answers
 * to its pings, docs/bench/quality.md); sipweigh (agents, controller, admission control: the product
 * as shipped).
 *
 * Capacity-drop variant: the largest backend's service delay doubles mid-run (its capacity halves, a
 * noisy neighbour) through the backend's JSON-RPC, and comes back later; the LB's weights are read
 * every second.
 *
 * Scenarios (issue 18), each a pool with real capacities and what everybody is told: known (the
 * truth), unknown (every backend configured equal), slow (the largest backend really 30 % below its
 * datasheet). Every ladder and drop run is repeated (--reps, default 3), the policies interleaved
 * and their order rotated per repetition (plan.ts); the report gives the median and the range.
 *
 * Writes the run's JSON, BENCHMARKS.md's quality section and SVG plots; prints one JSON line last.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, hostname, loadavg, release } from 'node:os';
import { join, resolve } from 'node:path';
import { execFileSync } from 'node:child_process';
import { followEvents } from '../../../src/api/event-client.js';
import { targetFromConfig } from '../../../src/cli/commands/api-client.js';
import type { StampedEvent } from '../../../src/controller/events.js';
import { formatDispatcherList } from '../../../src/kamailio/dispatcher-list.js';
import { fetchEffectiveWeights } from '../../../src/kamailio/fetch-dispatcher-list.js';
import { KamailioRpcClient } from '../../../src/kamailio/rpc.js';
import { initialDestinations, startLab, type RunningLab } from '../../../src/lab/lab.js';
import { LAB_SCENARIOS } from '../../../src/lab/scenarios.js';
import { parseSippRows, parseSippRtt, startSipp, type SippRun } from '../../../src/lab/sipp.js';
import type { Defines } from '../../../src/lab/kamailio.js';
import { KAMAILIO_61_BINARY, kamailioFeatures, probeKamailio } from '../../../src/lab/platforms.js';
import type { ProcessGroup } from '../../../src/lab/processes.js';
import { PACKAGE_ROOT } from '../../../src/util/package-root.js';
import {
  ALL_POLICIES_AVAILABLE,
  parseQualityOptions,
  type PolicyAvailability,
  type QualityOptions,
} from './options.js';
import { withStopped } from '../common/cleanup.js';
import {
  formatSettleLine,
  formatStepHeader,
  formatStepLine,
  publishTarget,
  reportQualityRun,
  type ReportResult,
} from './report.js';
import { readQualityRun } from './run-file.js';
import {
  SHEDS_WITHOUT_WEIGHTS,
  type DropResult,
  type DropSample,
  type MachineInfo,
  type PolicyId,
  type QualityRun,
  type ScenarioId,
  type ScenarioPool,
  type SettleResult,
  type StepResult,
  type WeightSample,
} from './types.js';
import {
  estimateSeconds,
  ladderOf,
  scenarioPool,
  schedule,
  settlePlan,
  settleText,
  learnedWhere,
  sipweighLearns,
  type PlannedRun,
} from './plan.js';
import {
  failedPct,
  latencyOf,
  measureWindow,
  perSecond,
  settleResult,
  backlogCleared,
  dialogShares,
  windowSeconds,
  type SippTraces,
  type WindowCounts,
} from './window.js';
import { labClient } from '../../../src/lab/topology.js';
import { sleep } from '../../../src/util/sleep.js';

const CRITERIA = { max_failed_pct: 1, max_p99_ms: 200 } as const;
/** Idle pinging before load for Kamailio's cc=1: ten pings at 1 s, and one to spare. */
const CC_BASELINE_MS = 11_000;
/** Alg 64: two pings, so every backend has answered with its oc once (plan.ts COSTS.ocBaselineS). */
const OC_BASELINE_MS = 2_000;
const T0 = performance.now();
const say = (s: string) => process.stderr.write(`${s}\n`);
const elapsed = () => `${((performance.now() - T0) / 1000).toFixed(0)} s`;

// ---- the labs ------------------------------------------------------------------------------------

/** What a policy changes in the lab. */
interface PolicyLabSpec {
  /** The LB's defines: its algorithm and probing. */
  readonly defines: Defines;
  /** Its list's weights at start. */
  readonly weights: 'equal' | 'capacity';
  /** cc=1 on every destination, and the idle pinging its latency baseline needs. */
  readonly cc: boolean;
  /** The closed loop: agents, controller, admission limits. */
  readonly loop: boolean;
  /** A Kamailio 6.1 LB, and backends that answer its OPTIONS with RFC 7339 overload control. */
  readonly oc: boolean;
}

/** What each policy changes in the lab: the LB's algorithm and probing, its list, the closed loop. */
function policyLab(policy: PolicyId): PolicyLabSpec {
  const none = { cc: false, loop: false, oc: false } as const;
  switch (policy) {
    case 'round_robin':
      return { ...none, defines: { SW_DS_ALG: 4 }, weights: 'equal' };
    case 'static_equal':
      return { ...none, defines: {}, weights: 'equal' };
    case 'static_capacity':
      return { ...none, defines: {}, weights: 'capacity' };
    case 'kamailio_cc':
      // Kamailio derives congestion from its own OPTIONS round trips: ping every destination each
      // second and keep latency statistics.
      return {
        ...none,
        defines: { SW_DS_PING_INTERVAL: 1, SW_DS_LATENCY_STATS: 1, SW_DS_PROBING_MODE: 1 },
        weights: 'capacity',
        cc: true,
      };
    case 'kamailio_oc':
      // Kamailio 6.1's alg 64: round robin, each destination skipped in oc of every 100 selections.
      // The oc comes from the backends (RFC 7339: the server measures its own overload) in their
      // answers to the LB's OPTIONS, once a second as cc=1's pings (src/lab/kamailio/lb.cfg SW_DS_OC,
      // backend.cfg SW_OC). It reads no weight; an equal list.
      return {
        ...none,
        defines: { SW_DS_ALG: 64, SW_DS_OC: true, SW_DS_PING_INTERVAL: 1, SW_DS_PROBING_MODE: 1 },
        weights: 'equal',
        oc: true,
      };
    case 'sipweigh':
      return { ...none, defines: {}, weights: 'capacity', loop: true };
  }
}

interface PolicyLab {
  readonly lab: RunningLab;
  readonly lbRpc: KamailioRpcClient;
  readonly backendRpc: readonly KamailioRpcClient[];
  readonly ids: readonly string[];
  close(): Promise<void>;
}

async function startPolicyLab(
  o: QualityOptions,
  policy: PolicyId,
  pool: ScenarioPool,
  learnCapacity: boolean,
  dir: string,
  onGroup: (group: ProcessGroup) => void,
): Promise<PolicyLab> {
  const p = policyLab(policy);
  const lab = await startLab({
    onGroup,
    backends: pool.capacities_cps.length,
    capacities: pool.capacities_cps,
    // What the agents, the controller and a capacity-weighted list are told (the scenario's datasheet).
    configuredCapacities: pool.configured_cps,
    workers: o.workers,
    net: o.net,
    dir,
    agents: p.loop,
    controller: p.loop,
    initialWeights: p.weights,
    learnCapacity,
    ...(p.oc
      ? {
          lbKamailio: KAMAILIO_61_BINARY,
          backendDefines: { SW_OC: true, SW_OC_TARGET: Math.round(o.ocTarget * 1000) },
        }
      : {}),
    // Without the closed loop no controller refreshes the LB's lease: its backstop would probe the
    // backends (1 s ping timeout) and take a loaded one out, which the static baselines never do.
    lbDefines: p.loop ? p.defines : { SW_NO_BACKSTOP: true, ...p.defines },
  });
  const plan = lab.state.plan;
  const lbRpc = new KamailioRpcClient({
    url: lab.state.lb_rpc_url,
    username: plan.lb.rpc.username,
    password: plan.lb.rpc.password,
  });
  const backendRpc = plan.backends.map(
    (b) => new KamailioRpcClient({ url: `http://${b.sip.address}:${b.rpcPort}/RPC` }),
  );
  const close = async () => {
    lbRpc.close();
    backendRpc.forEach((c) => c.close());
    await lab.stop();
  };
  try {
    if (p.cc) {
      // cc=1 adjusts from the `weight` attribute (rweight = weight - congestion ms, Kamailio 5.6
      // dispatch.c ds_update_latency); without it Kamailio leaves the weights alone.
      const list = initialDestinations(plan, p.weights).map((d) => ({
        ...d,
        extraAttrs: { weight: String(d.rweight), cc: '1' },
      }));
      writeFileSync(lab.state.dispatcher_list, formatDispatcherList(list));
      await lbRpc.call('dispatcher.reload', []);
    }
    if (p.loop) await waitForEvent(lab, (e) => e.type === 'admission_applied', 'admission limits set', 30000);
    // Kamailio learns each destination's normal latency from its first ten pings (one a second),
    // so it must ping an idle pool first or it takes the loaded latency for normal. The loop needs
    // a few probes.
    await sleep(p.cc ? CC_BASELINE_MS : p.oc ? OC_BASELINE_MS : p.loop ? (o.quick ? 2000 : 3000) : 300);
  } catch (e) {
    await close();
    throw e;
  }
  return { lab, lbRpc, backendRpc, ids: plan.backends.map((b) => b.id), close };
}

/** Waits for an event of the lab controller (GET /api/v1/events, the kept ones first). */
async function waitForEvent(
  lab: RunningLab,
  wanted: (e: StampedEvent) => boolean,
  what: string,
  timeoutMs: number,
): Promise<void> {
  const target = targetFromConfig(lab.state.configs.controller);
  const token = target.tokenFile === null ? null : readFileSync(target.tokenFile, 'utf8').trim();
  let seen = false;
  const follower = followEvents({ url: target.url, token, history: true }, (e) => {
    seen ||= wanted(e);
  });
  try {
    await follower.ready;
    const deadline = Date.now() + timeoutMs;
    while (!seen) {
      if (Date.now() > deadline) throw new Error(`the controller did not tell "${what}" in ${timeoutMs} ms`);
      await sleep(200);
    }
  } finally {
    follower.close();
  }
}

/** Dialogs each backend has created so far (one per admitted INVITE, retransmissions not counted). */
async function dialogsPerBackend(pl: PolicyLab): Promise<number[]> {
  return Promise.all(
    pl.backendRpc.map(async (rpc) => {
      try {
        const r = (await rpc.call('stats.fetch', ['dialog:processed_dialogs'], {
          deadlineMs: 1000,
        })) as Record<string, unknown>;
        // A missing stat is unreadable (NaN), not zero dialogs: a zero would end a drain wait at once.
        const n = Number(r['dialog.processed_dialogs'] ?? Number.NaN);
        return Number.isFinite(n) ? n : Number.NaN;
      } catch {
        return Number.NaN;
      }
    }),
  );
}

// ---- one sipp run --------------------------------------------------------------------------------

function startLoad(
  pl: PolicyLab,
  o: QualityOptions,
  name: string,
  rate: number,
  seconds: number,
): Promise<SippRun> {
  const plan = pl.lab.state.plan;
  return startSipp(pl.lab.group, {
    name,
    scenario: LAB_SCENARIOS.uacAdmission,
    ...labClient(plan),
    rate,
    maxCalls: Math.round(rate * seconds),
    // Bounded: the calls, then at most the receive timeout for the last of them.
    timeoutS: Math.ceil(seconds + o.recvTimeoutMs / 1000 + 20),
    traceCounts: true,
    traceRtt: true,
    extraArgs: ['-recv_timeout', String(o.recvTimeoutMs), '-max_recv_loops', '10000'],
  });
}

function readTraces(run: SippRun): SippTraces {
  const read = (f: string | undefined) => {
    try {
      return f ? readFileSync(f, 'utf8') : '';
    } catch {
      return '';
    }
  };
  return {
    counts: parseSippRows(read(run.countsFile)),
    rtt: parseSippRtt(read(run.rttFile)),
  };
}

// ---- the steps -----------------------------------------------------------------------------------

/** One load measured: its window's calls, how long they were offered, each backend's share of them. */
interface MeasuredLoad {
  readonly window: WindowCounts;
  /** The sipp run's seconds of sending (warm-up included). */
  readonly sendS: number;
  readonly shares: Record<string, number>;
}

/**
 * One sipp run at `rate` calls/s for `warmupS + measureS` seconds: the calls started after the
 * warm-up are measured, each by its own fate, and the backends' dialog counters read across the
 * window. A step and the settle phase (no warm-up: all of it measured) are both this.
 */
async function runLoad(
  pl: PolicyLab,
  o: QualityOptions,
  name: string,
  rate: number,
  warmupS: number,
  measureS: number,
): Promise<MeasuredLoad> {
  const sendS = warmupS + measureS;
  const run = await startLoad(pl, o, name, rate, sendS);
  await sleep(warmupS * 1000);
  const before = await dialogsPerBackend(pl);
  await sleep(measureS * 1000);
  const after = await dialogsPerBackend(pl);
  const result = await run.done();
  if (result.exit.code !== 0 && result.exit.code !== 1) {
    say(`  (sipp ended with ${result.exit.code ?? result.exit.signal}: ${run.process.tail(3).trim()})`);
  }
  return {
    window: measureWindow(readTraces(run), warmupS, sendS),
    sendS,
    shares: dialogShares(pl.ids, before, after),
  };
}

async function runStep(
  pl: PolicyLab,
  o: QualityOptions,
  policy: PolicyId,
  fraction: number,
  pool: ScenarioPool,
  rep: number,
): Promise<StepResult> {
  // A fraction of the pool's real capacity, whatever it was configured as.
  const rate = Math.round(fraction * pool.total_cps);
  // Overload runs longer: a backlog takes a while to outgrow the callers' patience.
  const m = await runLoad(
    pl,
    o,
    `uac-${pool.id}-${policy}-${Math.round(fraction * 100)}-r${rep}`,
    rate,
    o.warmupS,
    fraction > 1 ? o.overloadWindowS : o.windowS,
  );
  const w = m.window;
  const windowS = windowSeconds(w, m.sendS);
  return {
    policy,
    scenario: pool.id,
    rep,
    load_fraction: fraction,
    offered_cps: rate,
    duration_s: Number(windowS.toFixed(2)),
    calls: w.calls,
    ok: w.ok,
    failed: w.failed,
    refused_503: w.refused_503,
    failed_pct: failedPct(w),
    success_cps: Number((w.answered_in_window / windowS).toFixed(2)),
    setup_ms: w.setup_ms,
    shares: m.shares,
  };
}

/**
 * The settle phase before a ladder's first step: the same load for every policy (a fixed fraction
 * of the real capacity, for a fixed time), measured whole and kept apart from the steps.
 */
async function runSettle(
  pl: PolicyLab,
  o: QualityOptions,
  policy: PolicyId,
  pool: ScenarioPool,
  rep: number,
): Promise<SettleResult | null> {
  const plan = settlePlan(o, pool.total_cps);
  if (plan === null) return null;
  const m = await runLoad(pl, o, `uac-${pool.id}-${policy}-settle-r${rep}`, plan.rate_cps, 0, plan.seconds);
  const drain_s = await waitForDrain(pl);
  return settleResult(
    { policy, scenario: pool.id, rep, load_fraction: plan.fraction, offered_cps: plan.rate_cps },
    m.window,
    m.sendS,
    { shares: m.shares, drain_s },
  );
}

/** Longest wait for a backlog to clear after a settle phase (a queue the settle overfilled). */
const DRAIN_MAX_S = 30;

/**
 * Waits until no backend sets up a new dialog between two reads a second apart (what the settle
 * queued has been served; `backlogCleared`), for at most DRAIN_MAX_S and the last read; returns the
 * seconds waited. A static policy that splits evenly overloads the
 * smallest backend at the settle's load (round robin at 70 % of the 25/50/100 pool sends it 41 calls/s),
 * and without this its backlog would be served inside the first step's window.
 */
async function waitForDrain(pl: PolicyLab): Promise<number> {
  const t0 = performance.now();
  let last = await dialogsPerBackend(pl);
  while (performance.now() - t0 < DRAIN_MAX_S * 1000) {
    await sleep(1000);
    const now = await dialogsPerBackend(pl);
    if (backlogCleared(last, now)) break;
    last = now;
  }
  return Number(((performance.now() - t0) / 1000).toFixed(1));
}

// ---- the capacity drop ---------------------------------------------------------------------------

async function setServiceDelay(rpc: KamailioRpcClient, us: number): Promise<void> {
  await rpc.call('pv.shvSet', ['sw_service_delay_us', 'int', us]);
}

/** The backend's share of the LB's weights in one sample (NaN when the list could not be read). */
export function weightShare(s: Pick<DropSample, 'weights'>, backend: string): number {
  const sum = Object.values(s.weights).reduce((a, b) => a + b, 0);
  return sum > 0 ? (s.weights[backend] ?? 0) / sum : Number.NaN;
}

/**
 * Seconds from the drop until the backend's weight share first reached `target` or below by moving
 * down; null if it never did. Weights that never move follow nothing, even when they already sit
 * below the target (equal weights, round robin).
 */
export function followTime(
  samples: readonly WeightSample[],
  backend: string,
  dropAtS: number,
  target: number,
): number | null {
  const before = samples.filter((s) => s.t_s < dropAtS).at(-1);
  const was = before === undefined ? Number.NaN : weightShare(before, backend);
  const hit = samples.find((s) => {
    const share = weightShare(s, backend);
    return s.t_s >= dropAtS && share <= target && !(share >= was - 0.01);
  });
  return hit === undefined ? null : Number((hit.t_s - dropAtS).toFixed(2));
}

/**
 * Seconds from the recovery until the backend's weight share first reached `target` or above by
 * moving up; null if it never did. Weights that never went down cannot come back (static lists).
 */
export function followBackTime(
  samples: readonly WeightSample[],
  backend: string,
  recoverAtS: number,
  target: number,
): number | null {
  const before = samples.filter((s) => s.t_s < recoverAtS).at(-1);
  const was = before === undefined ? Number.NaN : weightShare(before, backend);
  const hit = samples.find((s) => {
    const share = weightShare(s, backend);
    return s.t_s >= recoverAtS && share >= target && !(share <= was + 0.01);
  });
  return hit === undefined ? null : Number((hit.t_s - recoverAtS).toFixed(2));
}

/**
 * The LB's effective weights by backend id, or null when the list could not be read. A backend
 * missing from the list is left out, not written as NaN: JSON stores NaN as null and the run file
 * could no longer be re-reported (weightShare of {} is NaN).
 */
async function readWeights(pl: PolicyLab, deadlineMs: number): Promise<Record<string, number> | null> {
  const w = await fetchEffectiveWeights(pl.lbRpc, { deadlineMs }).catch(() => null);
  if (w === null) return null;
  return Object.fromEntries(pl.ids.flatMap((id) => (w.has(id) ? [[id, w.get(id)!] as const] : [])));
}

/** How often the drop run reads the LB's weights for the follow times. */
const WEIGHT_SAMPLE_MS = 200;

/**
 * Reads the LB's weights every WEIGHT_SAMPLE_MS until `until` (ms) or `stopped()`; an unread list
 * is skipped, and a stall is not caught up with a burst of reads.
 */
async function sampleWeights(
  pl: PolicyLab,
  since: () => number,
  push: (s: WeightSample) => void,
  until: number,
  stopped: () => boolean,
): Promise<void> {
  for (
    let next = Date.now();
    next < until && !stopped();
    next = Math.max(next + WEIGHT_SAMPLE_MS, Date.now())
  ) {
    await sleep(Math.max(0, next - Date.now()));
    const weights = await readWeights(pl, WEIGHT_SAMPLE_MS);
    if (weights) push({ t_s: since(), weights });
  }
}

async function runDrop(pl: PolicyLab, o: QualityOptions, policy: PolicyId, rep: number): Promise<DropResult> {
  const drop = o.drop!;
  const total = o.capacities.reduce((a, b) => a + b, 0);
  const rate = Math.round(drop.loadFraction * total);
  const duration = drop.beforeS + drop.afterS;
  const victim = pl.ids[drop.backend]!;
  const capBefore = o.capacities[drop.backend]!;
  const delayUs = Math.round((o.workers * 1e6) / capBefore);
  const recoverAt = drop.recoverAtS;
  const run = await startLoad(pl, o, `uac-${policy}-drop-r${rep}`, rate, duration);
  const t0 = Date.now();
  const sinceStart = () => Number(((Date.now() - t0) / 1000).toFixed(2));
  const samples: { t_s: number; weights: Record<string, number>; dialogs: number[] }[] = [];
  const fine: WeightSample[] = [];
  let stop = false;
  const sampler = sampleWeights(
    pl,
    sinceStart,
    (w) => fine.push(w),
    t0 + duration * 1000,
    () => stop,
  );
  let droppedAt: number | null = null;
  let recoveredAt: number | null = null;
  try {
    for (let tick = 1; tick <= duration; tick++) {
      await sleep(Math.max(0, t0 + tick * 1000 - Date.now()));
      if (droppedAt === null && tick >= drop.beforeS) {
        await setServiceDelay(pl.backendRpc[drop.backend]!, delayUs * 2);
        droppedAt = sinceStart();
      }
      if (droppedAt !== null && recoveredAt === null && recoverAt !== null && tick >= recoverAt) {
        await setServiceDelay(pl.backendRpc[drop.backend]!, delayUs);
        recoveredAt = sinceStart();
      }
      const [weights, dialogs] = await Promise.all([readWeights(pl, 800), dialogsPerBackend(pl)]);
      samples.push({ t_s: sinceStart(), weights: weights ?? {}, dialogs });
    }
  } finally {
    // A run that throws must not leave the sampler reading the next lab's LB.
    stop = true;
    await sampler;
  }
  await run.done();
  const traces = readTraces(run);
  const seconds = perSecond(traces);
  const timeline: DropSample[] = samples.map((s, i) => {
    const sec = seconds.find((x) => x.second === i + 1);
    return {
      t_s: s.t_s,
      weights: s.weights,
      shares: dialogShares(pl.ids, samples[i - 1]?.dialogs ?? s.dialogs, s.dialogs),
      success_cps: sec?.ok ?? 0,
      failed: sec?.failed ?? 0,
      p99_ms: sec?.p99_ms ?? null,
    };
  });
  const part = (fromS: number, toS: number) => {
    const secs = seconds.filter((s) => s.second > fromS && s.second <= toS);
    const ok = secs.reduce((a, s) => a + s.ok, 0);
    const failed = secs.reduce((a, s) => a + s.failed, 0);
    const lat = latencyOf(
      traces.rtt
        .filter((r) => r.rtd === 1 && r.atMs - r.ms >= fromS * 1000 && r.atMs - r.ms < toS * 1000)
        .map((r) => r.ms),
    );
    return {
      failed_pct: ok + failed > 0 ? Number(((100 * failed) / (ok + failed)).toFixed(3)) : 0,
      success_cps: Number((ok / Math.max(1, toS - fromS)).toFixed(2)),
      p99_ms: lat?.p99 ?? null,
    };
  };
  // Its fair share once halved: what a controller that knew the new capacities would give it.
  const capsAfter = o.capacities.map((c, i) => (i === drop.backend ? c / 2 : c));
  const fair = capBefore / 2 / capsAfter.reduce((a, b) => a + b, 0);
  const fairBefore = capBefore / o.capacities.reduce((a, b) => a + b, 0);
  const halvedEnd = recoverAt ?? duration;
  const settled = timeline
    .filter((s) => s.t_s >= drop.beforeS + 10 && s.t_s < halvedEnd)
    .map((s) => weightShare(s, victim));
  const settledShare = settled.length > 0 ? settled.reduce((a, b) => a + b, 0) / settled.length : Number.NaN;
  return {
    policy,
    rep,
    backend: victim,
    capacity_before_cps: capBefore,
    capacity_after_cps: capBefore / 2,
    offered_cps: rate,
    drop_at_s: drop.beforeS,
    duration_s: duration,
    // Down: only while halved (after the recovery the share rises anyway). From the 200 ms samples,
    // and from when the capacity really changed.
    follow_s: followTime(
      fine.filter((s) => s.t_s < (recoveredAt ?? halvedEnd)),
      victim,
      droppedAt ?? drop.beforeS,
      fair * 1.1,
    ),
    weight_samples: fine,
    ...(droppedAt === null ? {} : { dropped_at_s: droppedAt }),
    ...(recoveredAt === null ? {} : { recovered_at_s: recoveredAt }),
    before: part(4, drop.beforeS),
    after: part(drop.beforeS + 10, halvedEnd),
    timeline,
    fair_share_after: Number(fair.toFixed(4)),
    settled_share: Number(settledShare.toFixed(4)),
    ...(recoverAt === null
      ? {}
      : {
          recover_at_s: recoverAt,
          halved: part(drop.beforeS, recoverAt),
          recovered: part(recoverAt, duration),
          follow_back_s: followBackTime(fine, victim, recoveredAt ?? recoverAt, fairBefore * 0.9),
          fair_share_before: Number(fairBefore.toFixed(4)),
        }),
  };
}

/** A scenario's pool as the run uses it (the known pool for the drop runs). */
function poolFor(o: QualityOptions, pools: readonly ScenarioPool[], id: ScenarioId): ScenarioPool {
  return pools.find((p) => p.id === id) ?? scenarioPool(o, 'known');
}

// ---- the run -------------------------------------------------------------------------------------

/** The first non-empty line a command prints (sipp -v starts with an empty one). */
function firstLine(cmd: string, args: string[]): string {
  let out: string;
  try {
    out = execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    out = (e as { stdout?: string }).stdout ?? '';
  }
  return (
    out
      .split('\n')
      .map((l) => l.trim())
      .find((l) => l !== '') ?? 'unknown'
  );
}

function machine(): MachineInfo {
  return {
    hostname: hostname(),
    cpus: cpus().length,
    cpu_model: cpus()[0]?.model.trim() ?? 'unknown',
    kernel: release(),
    node: process.version,
    kamailio: firstLine('kamailio', ['-v']),
    ...(existsSync(KAMAILIO_61_BINARY) ? { kamailio_oc_lb: firstLine(KAMAILIO_61_BINARY, ['-v']) } : {}),
    sipp: firstLine('sipp', ['-v']).replace(/^\s*SIPp\s*/i, 'SIPp ') || 'unknown',
    loadavg_start: Number(loadavg()[0]!.toFixed(2)),
  };
}

/** Prints the summary and the files written, then the one JSON line for machines, last. */
function published(result: ReportResult): void {
  say(result.summary);
  say(`wrote ${result.files.join(', ')}`);
  process.stdout.write(`${result.lastLine}\n`);
}

/** kamailio_oc needs Kamailio 6.1's dispatcher (alg 64) for its LB, where scripts/third-party.sh puts it. */
function policyAvailability(): PolicyAvailability {
  const lb = probeKamailio(KAMAILIO_61_BINARY);
  return lb && kamailioFeatures(lb.version).overloadControlAlg
    ? ALL_POLICIES_AVAILABLE
    : { unavailable: { kamailio_oc: `needs Kamailio 6.1's dispatcher alg 64 at ${KAMAILIO_61_BINARY}` } };
}

export async function runQualityBench(args: string[]): Promise<void> {
  const o = parseQualityOptions(
    args,
    args.includes('--report') ? ALL_POLICIES_AVAILABLE : policyAvailability(),
  );
  const outDir = resolve(PACKAGE_ROOT, o.outDir);
  const runsDir = join(outDir, 'bench-results');
  mkdirSync(runsDir, { recursive: true });
  // A quick run has its own section and plots: it never overwrites the full run's figures. A stored
  // run goes where its own `quick` says, whatever this command line says (a quick run re-reported
  // without --quick overwrote the full run's section).
  const benchmarksMd = join(outDir, 'BENCHMARKS.md');
  if (o.reportOnly) {
    const runFile = resolve(o.reportOnly);
    const stored = await readQualityRun(runFile);
    published(
      await reportQualityRun(stored, { runFile, benchmarksMd, ...publishTarget(stored.quick, outDir) }),
    );
    return;
  }
  const { sectionId, plotDir } = publishTarget(o.quick, outDir);
  const started = new Date();
  const m = machine();
  const total = o.capacities.reduce((a, b) => a + b, 0);
  const ladders =
    o.scenarios.length === 0
      ? 'no ladders (--no-ladders): the capacity-drop runs only'
      : `steps ${o.steps.map((s) => `${Math.round(s * 100)}%`).join(' ')} (other pools ${o.otherSteps.map((s) => `${Math.round(s * 100)}%`).join(' ')}); window ${o.windowS} s after ${o.warmupS} s warm-up; ${settleText(o)}`;
  say(
    `quality bench: pool ${o.capacities.join('/')} calls/s (${total}), ${o.workers} workers each; ${ladders}; load average ${m.loadavg_start}`,
  );
  const results: Results = { steps: [], drops: [], settle: [] };
  const pools = o.scenarios.map((id) => scenarioPool(o, id));
  const plan = schedule(o);
  const learnsOn = learnedWhere(o, plan);
  for (const p of pools) {
    say(
      `  ${p.id}: real ${p.capacities_cps.join('/')} calls/s, configured ${p.configured_cps.join('/')}; ` +
        `${p.policies.join(', ')}${p.note ? ` (${p.note})` : ''}` +
        `${learnsOn.includes(p.id) ? '; sipweigh learns the capacities' : ''}`,
    );
  }
  const estimated = estimateSeconds(o, plan);
  say(
    `  ${plan.length} labs, ${o.reps} repetition(s), policies interleaved; estimated ${(estimated / 60).toFixed(1)} min`,
  );
  if (o.planOnly) {
    for (const [i, r] of plan.entries()) {
      const settle = r.kind === 'ladder' ? settlePlan(o, poolFor(o, pools, r.scenario).total_cps) : null;
      say(
        `  ${i + 1}. ${r.kind === 'ladder' ? `${r.scenario} ladder` : 'capacity drop'}: ${r.policy}${sipweighLearns(o, r) ? ' learning capacities' : ''} (rep ${r.rep})` +
          (settle ? `, after a ${settle.seconds} s settle at ${settle.rate_cps} calls/s` : ''),
      );
    }
    process.stdout.write(
      `${JSON.stringify({
        bench: 'quality',
        plan: plan.length,
        reps: o.reps,
        estimated_s: estimated,
        settle: { fraction: o.settleFraction, seconds: o.settleS },
        sipweigh_learns_on: learnsOn,
      })}\n`,
    );
    return;
  }
  const labDir = (what: string) => join('/tmp', `sipweigh-quality-${process.pid}`, what);
  let failedRuns = 0;
  for (const [i, r] of plan.entries()) {
    try {
      await runPlanned(o, r, pools, labDir, results, `${i + 1}/${plan.length}`);
    } catch (e) {
      // One lab that would not start costs its runs, not the comparison: counted and said.
      failedRuns++;
      say(`  run ${i + 1} failed: ${(e as Error).message.split('\n').slice(0, 4).join(' | ')}`);
    }
  }
  const run: QualityRun = {
    bench: 'quality',
    version: 2,
    quick: o.quick,
    command: `npm run bench -- quality${args.length ? ` ${args.join(' ')}` : ''}`,
    started_at: started.toISOString(),
    finished_at: new Date().toISOString(),
    machine: m,
    pool: {
      backends: o.capacities.map((_, i) => `be${i + 1}`),
      capacities_cps: o.capacities,
      total_cps: total,
      workers: o.workers,
    },
    criteria: CRITERIA,
    policies: o.policies,
    scenarios: pools,
    reps: o.reps,
    estimated_s: estimated,
    settle: results.settle,
    settle_options: { fraction: o.settleFraction, seconds: o.settleS },
    sipweigh_learns_on: learnsOn,
    ...(plan.some((r) => r.policy === 'kamailio_oc') ? { oc_target: o.ocTarget } : {}),
    steps: results.steps,
    capacity_drop: results.drops,
  };
  const runFile = join(
    runsDir,
    `quality-${o.quick ? 'quick-' : ''}${started.toISOString().replace(/[:.]/g, '-')}.json`,
  );
  writeFileSync(runFile, `${JSON.stringify(run, null, 2)}\n`);
  say(`run written to ${runFile}`);
  published(await reportQualityRun(run, { runFile, benchmarksMd, plotDir, sectionId }));
  say(`quality bench took ${elapsed()} (estimated ${(estimated / 60).toFixed(1)} min)`);
  // After the line: what did run is reported, and the exit status still says the comparison is short.
  if (failedRuns > 0) throw new Error(`${failedRuns} of ${plan.length} labs failed (see above)`);
}

/** What the labs measured so far, in run order. */
interface Results {
  readonly steps: StepResult[];
  readonly drops: DropResult[];
  readonly settle: SettleResult[];
}

/** One planned lab: a policy's ladder on a scenario's pool (its settle phase first), or its drop run; results appended. */
async function runPlanned(
  o: QualityOptions,
  r: PlannedRun,
  pools: readonly ScenarioPool[],
  labDir: (what: string) => string,
  results: Results,
  position: string,
): Promise<void> {
  const scenario = r.kind === 'ladder' ? r.scenario : 'known';
  const pool = poolFor(o, pools, scenario);
  const learns = sipweighLearns(o, r);
  const name = `${r.kind === 'ladder' ? scenario : 'drop'}-${r.policy}-r${r.rep}`;
  say(
    `[${elapsed()}] ${position} ${r.kind === 'ladder' ? `${scenario} ladder` : 'capacity drop'}: ${r.policy}${learns ? ' learning capacities' : ''} (rep ${r.rep})`,
  );
  await withStopped(
    (whileStarting) =>
      startPolicyLab(o, r.policy, pool, learns, labDir(name), (g) => whileStarting(() => g.stopAll())),
    (pl) => pl.close(),
    async (pl) => {
      if (r.kind === 'drop') {
        const d = await runDrop(pl, o, r.policy, r.rep);
        results.drops.push(d);
        say(
          `  capacity drop (${d.backend} ${d.capacity_before_cps}→${d.capacity_after_cps} calls/s at ${d.drop_at_s} s, back at ${d.recover_at_s ?? '-'} s, ${d.offered_cps} calls/s offered): ` +
            (SHEDS_WITHOUT_WEIGHTS.includes(r.policy)
              ? 'no weights to follow (alg 64); failed'
              : `follow ${d.follow_s ?? 'never'} s, back ${d.follow_back_s ?? 'never'} s; failed`) +
            ` ${d.before.failed_pct}% → ${d.halved?.failed_pct ?? d.after.failed_pct}% → ${d.recovered?.failed_pct ?? '-'}%, ` +
            `p99 ${d.before.p99_ms ?? '-'} → ${d.halved?.p99_ms ?? d.after.p99_ms ?? '-'} ms`,
        );
        return;
      }
      const settled = await runSettle(pl, o, r.policy, pool, r.rep);
      if (settled) {
        results.settle.push(settled);
        say(formatSettleLine(settled));
      }
      say(formatStepHeader());
      for (const fraction of ladderOf(o, scenario)) {
        const s = await runStep(pl, o, r.policy, fraction, pool, r.rep);
        results.steps.push(s);
        say(formatStepLine(s, CRITERIA));
      }
    },
  );
}
