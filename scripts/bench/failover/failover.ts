/**
 * Failover benchmark: a backend dies (SIGKILL to the process groups of its Kamailio and, where one
 * runs, its agent) under steady sipp load through the LB. Three ways of noticing it, side by side in
 * one run, each on its own lab on 127.9.x.x:
 *   - kamailio_probe: Kamailio's own OPTIONS probing at its fastest sane settings, no sipweigh
 *     process at all (no controller, no agents): ds_ping_interval 1 s (the smallest: the timer takes
 *     whole seconds), ds_probing_mode 1 (every destination pinged every interval, so the list needs
 *     no probing flag 8), ds_probing_threshold 1 (the default: the first failed ping takes it out),
 *     and a 1 s timeout per ping (t_set_fr in event_route[tm:local-request]: the OPTIONS is sent,
 *     resent after T1 = 500 ms, then fails; tm's global 32 s would otherwise apply). On loopback no
 *     ICMP error shortens that: only the timeout detects the dead backend. See SW_DS_* in
 *     src/lab/kamailio/lb.cfg. The LB runs the same snippet as in the other modes, so it
 *     re-dispatches the calls of a destination the probing took out just the same.
 *   - sipweigh: the lab with an agent per backend and `sipweigh controller` running (heartbeats,
 *     scoring, push of the dispatcher list), admission control off (see
 *     startControllerWithoutAdmission); the LB does not ping while the controller's lease holds,
 *     and each kill waits (bounded) for the controller to hold it: a fresh LB probes on its own.
 *   - controller_down: the same lab, but before each kill the controller is SIGKILLed (a crash: it
 *     cannot hand over, its lease at the LB has to lapse); once the LB reports its backstop on
 *     (htable sipweigh_lease, key backstop = 1: the LB's own OPTIONS probing), the backend is killed.
 *     The controller is started again after each kill, with the restarted backend.
 * Per kill: (a) the time from the kill to the first reply of the LB's `dispatcher.list` that shows
 * the destination inactive or disabled (what ds_select_dst skips; "trying" is still selected), by
 * one poller for every mode, every 10 ms over JSON-RPC, so the resolution is the same; (b) the calls
 * sipp counts as failed, split by sipp's per-message counts into calls that failed in setup (before
 * their ACK: INVITE never answered, or an unexpected reply such as a 503 that would mean the pool ran
 * out, not a failover) and established calls that lost their BYE; (c) the requests the LB moved off
 * the dead destination (its sipweigh_redispatched statistic: each a call saved).
 *
 * Why calls fail: the LB is transparent (no Via) and keeps a Call-ID table so that INVITE
 * retransmissions stick to the first backend chosen. A call established on the dead backend loses
 * its BYE (its dialog died with it: no transparent LB can save it), which depends only on the load
 * and the hold time: reported, not judged. A call whose INVITE went to the dead backend is saved once
 * the backend is out of rotation: the client retransmits the INVITE (no 100 Trying came back) and the
 * LB re-dispatches a retransmission whose entry points to a destination out of rotation. Such a call
 * fails in setup only if it gives up before that (sipp gives up after 2 s here), so what fails in
 * setup grows with the detection time.
 *
 * Set-up: 3 backends of equal emulated capacity (100 calls/s each), sipp at half the pool's
 * capacity (after a kill the other two run at 75 %, below the collapse point), short calls (200 ms
 * hold), each call given up after 2 s without the reply it waits for. Each kill has its own sipp run:
 * the kill comes once the pool is at rest (every backend in rotation at 80 % or more of an equal
 * share, and the list unchanged for 0.8 s: a restarted backend in slow start is still being pushed
 * up) and the warm-up has passed, plus a stratified random delay that spreads the kills over the 1 s
 * ping cycle (killJitterMs); new calls go on until 2-3 s after the kill and 1 s after detection, so
 * every call that could reach the dead backend is counted. Between kills the killed backend is
 * restarted. Each row also names any live backend seen out of rotation around its kill (a false
 * alarm: aggressive probing on a starved machine), and the share of new calls the victim had.
 *
 *   npm run bench -- failover [--quick] [--kills N] [--modes kamailio_probe,sipweigh,controller_down]
 *                             [--capacity CPS] [--rate CPS] [--hold-ms MS] [--ping-timeout-ms MS]
 *
 * 10 kills per mode (--quick: 2, with shorter warm-ups: a few minutes for the three modes). Prints
 * one row per kill, min / median / max per mode, and as its last line one JSON object.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import type { Defines } from '../../../src/lab/kamailio.js';
import {
  LAB_SCENARIOS,
  startLab,
  startLabAgent,
  startLabBackend,
  startLabController,
  type RunningLab,
} from '../../../src/lab/lab.js';
import type { ManagedProcess, ProcessGroup } from '../../../src/lab/processes.js';
import { startSipp } from '../../../src/lab/sipp.js';
import { labClient, type BackendPlan } from '../../../src/lab/topology.js';
import { killMember } from '../../../src/lab/lab-control.js';
import { splitFailures } from '../../../src/lab/sipp-counts.js';
import { KamailioRpcClient } from '../../../src/kamailio/rpc.js';
import {
  failoverSummaryJson,
  formatFailoverTable,
  isOutOfRotation,
  killJitterMs,
  parseFailoverOptions,
  poolSettled,
  rotationShare,
  type FailoverMode,
  type FailoverOptions,
  type KillResult,
  type ModeOutcome,
} from './report.js';
import { readRedispatched } from '../../../src/lab/lb-failover.js';
import { readTargets, waitForBackstop, waitForTargets, watchOutOfRotation } from './rotation-watch.js';
import { withStopped } from '../common/cleanup.js';
import { sleep } from '../../../src/util/sleep.js';

/** The bench's address block (127.9.0.x LB/backends/client, 127.9.1.x UASes). */
const NET = 9;
const CLIENT_PORT = 5090;

const T0 = performance.now();
const log = (s: string) =>
  process.stderr.write(`failover [${((performance.now() - T0) / 1000).toFixed(1)} s]: ${s}\n`);

/** LB defines for Kamailio's own probing (src/lab/kamailio/lb.cfg); none for sipweigh, whose LB does not ping. */
export function probeDefines(o: FailoverOptions): Defines {
  return {
    SW_DS_PING_INTERVAL: o.pingIntervalS,
    SW_DS_PROBING_MODE: 1,
    SW_DS_PING_TIMEOUT_MS: o.pingTimeoutMs,
  };
}

/** The running process of that name in the lab (the latest one: a restarted backend has a new one). */
function running(lab: RunningLab, name: string): ManagedProcess | undefined {
  return [...lab.group.processes].reverse().find((p) => p.name === name && p.isRunning());
}

/**
 * SIGKILL to the backend's Kamailio and its agent, each to its whole process group (Kamailio's
 * workers hold the SIP socket: killing only the main process would leave them answering).
 * Returns performance.now() just before the first signal.
 */
function killBackend(lab: RunningLab, id: string): number {
  const victims = [running(lab, `backend-${id}`), running(lab, `agent-${id}`)].filter(
    (p): p is ManagedProcess => p !== undefined,
  );
  if (!victims.some((p) => p.name.startsWith('backend-'))) throw new Error(`backend ${id} is not running`);
  const t0 = performance.now();
  for (const p of victims) {
    try {
      process.kill(-p.pid, 'SIGKILL');
    } catch {
      process.kill(p.pid, 'SIGKILL');
    }
  }
  return t0;
}

/** The backend as the lab's dispatcher list names it. */
const backendUri = (be: BackendPlan) => `sip:${be.sip.address}:${be.sip.port}`;

/** Brings a killed backend back: its Kamailio, and its agent when the lab runs agents. */
async function restartBackend(lab: RunningLab, be: BackendPlan, withAgent: boolean): Promise<void> {
  for (const name of [`backend-${be.id}`, `agent-${be.id}`]) {
    const p = lab.group.processes.filter((x) => x.name === name).at(-1);
    if (p) await Promise.race([p.exited, sleep(3000)]);
  }
  await startLabBackend(lab.group, lab.state.plan, be);
  const agentFile = lab.state.configs.agents[be.id];
  if (withAgent && agentFile) await startLabAgent(lab.group, be, agentFile);
}

/** Kamailio's own probing needs no sipweigh process at all: no agents, no controller. */
const runsSipweigh = (mode: FailoverMode) => mode !== 'kamailio_probe';

async function startModeLab(
  mode: FailoverMode,
  o: FailoverOptions,
  onGroup: (group: ProcessGroup) => void,
): Promise<RunningLab> {
  return startLab({
    onGroup,
    backends: o.backends,
    capacities: [o.capacityCps],
    net: NET,
    dir: mkdtempSync(join(tmpdir(), `sipweigh-bench-failover-${mode}-`)),
    agents: runsSipweigh(mode),
    ...(mode === 'kamailio_probe' ? { lbDefines: probeDefines(o) } : {}),
  });
}

/**
 * The lab's controller with admission control off. The offered load stays under what the pool
 * carries even after a kill, so admission has nothing to refuse here; but on a starved machine the
 * backends' OPTIONS round trip swells with CPU contention, the controller reads that as load and
 * sets limits, and the 503s would count as failed calls that have nothing to do with the failover
 * (admission control has its own end-to-end test at 130 % load).
 */
async function startControllerWithoutAdmission(lab: RunningLab): Promise<void> {
  const file = lab.state.configs.controller;
  const cfg = parseYaml(readFileSync(file, 'utf8')) as Record<string, unknown>;
  const admission = typeof cfg.admission === 'object' && cfg.admission !== null ? cfg.admission : {};
  cfg.admission = { ...admission, enabled: false };
  writeFileSync(file, stringifyYaml(cfg), { mode: 0o600 });
  await startLabController(lab.group, lab.state.plan, file);
}

/**
 * One kill under load: sipp starts; once the pool is at rest (bounded), the controller holds the
 * LB's lease (backstop off; sipweigh modes) and the warm-up has passed (controller-down mode: and the
 * controller was killed and the LB reported its backstop on), the backend dies; new calls go on until both `afterKillS` after the kill and `afterOutMs` after it
 * left rotation have passed (so every call that could reach the dead backend is counted); then sipp
 * stops placing calls (SIGUSR1: graceful) and ends once its calls in flight have ended or timed out.
 */
async function killOnce(
  lab: RunningLab,
  rpc: KamailioRpcClient,
  mode: FailoverMode,
  kill: number,
  be: BackendPlan,
  o: FailoverOptions,
): Promise<KillResult> {
  const plan = lab.state.plan;
  const setId = plan.lb.dispatcherSet;
  const uri = backendUri(be);
  const controllerDown = mode === 'controller_down';
  // Only a bound: sipp is told to stop placing calls long before.
  const boundS =
    o.warmupS +
    o.recoverS +
    o.outDeadlineMs / 1000 +
    o.afterKillS +
    o.afterOutMs / 1000 +
    (runsSipweigh(mode) ? o.backstopDeadlineMs / 1000 : 0) +
    (controllerDown ? o.backstopDeadlineMs / 1000 : 0);
  const redispatchedBefore = await readRedispatched(rpc);
  const sipp = await startSipp(lab.group, {
    name: `uac-${mode}-${kill}`,
    scenario: LAB_SCENARIOS.uac,
    ...labClient(plan, CLIENT_PORT),
    rate: o.rateCps,
    maxCalls: Math.ceil(o.rateCps * boundS),
    timeoutS: Math.ceil(boundS) + 30,
    traceCounts: true,
    extraArgs: ['-recv_timeout', String(o.recvTimeoutMs), '-d', String(o.holdMs)],
  });
  const started = performance.now();
  try {
    const settledBefore = await waitForTargets(rpc, setId, poolSettled, {
      timeoutMs: o.recoverS * 1000,
      stableMs: o.stableMs,
    });
    if (!settledBefore) log(`${mode}: pool not back at rest within ${o.recoverS} s; killing anyway`);
    if (runsSipweigh(mode)) {
      // The LB starts probing on its own (no lease yet): the kill comes once the controller holds the
      // lease, so that what takes the backend out is the controller (or, below, the backstop alone).
      const held = await waitForBackstop(rpc, false, {
        sinceMs: performance.now(),
        deadlineMs: o.backstopDeadlineMs,
      });
      if (held === null) log(`${mode}: the LB's backstop is still on with the controller up; killing anyway`);
    }
    let backstopOnMs: number | null | undefined;
    if (controllerDown) {
      // A crash, not a stop: the controller gets no chance to hand over, the lease has to lapse.
      const stoppedAt = performance.now();
      await killMember(lab, 'controller');
      backstopOnMs = await waitForBackstop(rpc, true, {
        sinceMs: stoppedAt,
        deadlineMs: o.backstopDeadlineMs,
      });
      log(
        `${mode}: controller killed; backstop ${backstopOnMs === null ? 'never seen on' : `on after ${backstopOnMs.toFixed(0)} ms`}`,
      );
    }
    const jitter = killJitterMs(kill, o.kills, o.pingIntervalS * 1000, Math.random());
    // With the controller down the kill comes once the backstop is on: jitter from there.
    const warm =
      Math.max(started + o.warmupS * 1000, controllerDown ? performance.now() : 0) +
      jitter -
      performance.now();
    if (warm > 0) await sleep(warm);
    // The victim itself out of rotation now (aggressive probing on a starved machine can take a live
    // backend out): wait, bounded, for it to come back rather than time a kill of nothing.
    let before = await readTargets(rpc, setId);
    for (let i = 0; i < 3 && rotationShare(before, uri) === 0; i++) {
      log(`${mode}: ${be.id} out of rotation before its kill; waiting for it to come back`);
      await waitForTargets(rpc, setId, poolSettled, { timeoutMs: o.recoverS * 1000, stableMs: 0 });
      before = await readTargets(rpc, setId);
    }
    const shareAtKill = rotationShare(before, uri);
    if (shareAtKill === 0) throw new Error(`${be.id} stayed out of rotation: nothing to kill`);
    const t0 = killBackend(lab, be.id);
    const out = await watchOutOfRotation(rpc, setId, uri, {
      sinceMs: t0,
      periodMs: o.pollMs,
      deadlineMs: o.outDeadlineMs,
    });
    const stopAt = Math.max(t0 + o.afterKillS * 1000, t0 + (out.ms ?? o.outDeadlineMs) + o.afterOutMs);
    const wait = stopAt - performance.now();
    if (wait > 0) await sleep(wait);
    if (sipp.process.isRunning()) process.kill(sipp.process.pid, 'SIGUSR1');
    const guard = setTimeout(() => void sipp.process.stop(), o.recvTimeoutMs * 4 + 10000);
    const { stats, counts } = await sipp.done().finally(() => clearTimeout(guard));
    const redispatchedAfter = await readRedispatched(rpc);
    const idOf = (u: string) => plan.backends.find((x) => backendUri(x) === u)?.id ?? u;
    const falseAlarms = new Set([
      ...before.filter((t) => t.uri !== uri && isOutOfRotation(t)).map((t) => t.uri),
      ...out.othersOut,
    ]);
    return {
      mode,
      kill,
      backend: be.id,
      shareAtKill,
      outMs: out.ms,
      calls: stats.created,
      successful: stats.successful,
      failed: stats.failed,
      split: splitFailures(counts),
      redispatched:
        redispatchedBefore === null || redispatchedAfter === null
          ? null
          : redispatchedAfter - redispatchedBefore,
      ...(backstopOnMs === undefined ? {} : { backstopOnMs }),
      settledBefore,
      othersOut: [...falseAlarms].map(idOf),
    };
  } finally {
    await sipp.process.stop();
  }
}

async function runMode(mode: FailoverMode, o: FailoverOptions): Promise<ModeOutcome> {
  return withStopped(
    (whileStarting) => startModeLab(mode, o, (g) => whileStarting(() => g.stopAll())),
    (lab) => lab.stop(),
    (lab) => runModeOn(lab, mode, o),
  );
}

/** One mode's kills on its started lab (which the caller stops). */
async function runModeOn(lab: RunningLab, mode: FailoverMode, o: FailoverOptions): Promise<ModeOutcome> {
  if (runsSipweigh(mode)) {
    try {
      await startControllerWithoutAdmission(lab);
    } catch (e) {
      // The controller is the part under test in this mode: report it, do not fail the whole bench.
      const msg = (e as Error).message;
      const reason = msg.split('\n').find((l) => /not part of this version|error|exited/i.test(l)) ?? msg;
      return { mode, runnable: false, reason: `sipweigh controller did not start: ${reason.trim()}` };
    }
  }
  log(`${mode}: lab up`);
  const plan = lab.state.plan;
  const rpc = new KamailioRpcClient({
    url: lab.state.lb_rpc_url,
    username: plan.lb.rpc.username,
    password: plan.lb.rpc.password,
    deadlineMs: 1000,
  });
  const kills: KillResult[] = [];
  try {
    for (let k = 1; k <= o.kills; k++) {
      const be = plan.backends[(k - 1) % plan.backends.length]!;
      log(`${mode}: kill ${k}/${o.kills} (${be.id})`);
      const r = await killOnce(lab, rpc, mode, k, be, o);
      kills.push(r);
      log(
        `${mode}: kill ${k}: out of rotation after ${r.outMs === null ? 'never' : `${r.outMs.toFixed(0)} ms`}, ` +
          `${r.failed} of ${r.calls} calls failed` +
          (r.split ? ` (${r.split.failedInSetup} in setup, ${r.split.byeLost} lost their BYE)` : '') +
          (r.redispatched === null ? '' : `, ${r.redispatched} re-dispatched`),
      );
      if (k < o.kills) {
        await restartBackend(lab, be, runsSipweigh(mode));
        // It takes over from the LB's probing; the next kill waits for the pool to be at rest.
        if (mode === 'controller_down')
          await startLabController(lab.group, plan, lab.state.configs.controller);
      }
    }
  } finally {
    rpc.close();
  }
  return { mode, runnable: true, kills };
}

export async function runFailoverBench(args: string[]): Promise<void> {
  const o = parseFailoverOptions(args);
  const t0 = performance.now();
  const outcomes: ModeOutcome[] = [];
  for (const mode of o.modes) {
    log(
      `${mode}: ${o.kills} kills, ${o.backends} backends × ${o.capacityCps} calls/s, ${o.rateCps} calls/s offered`,
    );
    outcomes.push(await runMode(mode, o));
  }
  process.stdout.write(`${formatFailoverTable(outcomes)}\n`);
  const seconds = (performance.now() - t0) / 1000;
  process.stdout.write(`${JSON.stringify(failoverSummaryJson(outcomes, { options: o, seconds }))}\n`);
}
