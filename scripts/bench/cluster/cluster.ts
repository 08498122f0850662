/**
 * `npm run bench -- cluster [--quick]`: a cluster of two LB nodes (issue 16), measured from outside.
 *
 * Each repetition runs two fresh labs of two Kamailio LBs (lb1 127.N.0.10, lb2 127.N.0.30, DMQ
 * Call-ID replication between them) and two backends, one after the other:
 *   1. the data-plane lab (no controller): N calls INVITE via lb1 and CANCEL via lb2, counted from the
 *      servers' message traces (the CANCEL must reach the server that has the INVITE); the replication
 *      lag (an INVITE sent to lb1, lb2's table polled over JSON-RPC until the Call-ID is there); N
 *      INVITEs via lb1 whose retransmissions go to lb2 while the backends hold them 1.2 s before their
 *      transaction exists (a second server getting the INVITE is a fork);
 *   2. the admission lab (backends of emulated capacity, agents, `sipweigh controller` over both
 *      LBs): traffic 80/20 from two source addresses, the split error once settled and the time to
 *      follow; all traffic moved to lb2, the time until lb2 holds 0.9 of the pool's limit; then 130 %
 *      of the pool's capacity spread 60/40 over the LBs: goodput and admitted calls that failed.
 * Prints a line per repetition and a median (range) table; the last line is one JSON object.
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { readLimiters } from '../../../src/kamailio/admission.js';
import { KamailioRpcClient } from '../../../src/kamailio/rpc.js';
import { backendDefines } from '../../../src/lab/defines.js';
import { startKamailio } from '../../../src/lab/kamailio.js';
import {
  backendSettings,
  LAB_CONFIGS,
  LAB_SCENARIOS,
  lbMemberName,
  startLab,
  type RunningLab,
} from '../../../src/lab/lab.js';
import { signalGroup, type ManagedProcess, type ProcessGroup } from '../../../src/lab/processes.js';
import {
  header,
  newBranch,
  sipRequest,
  sippReceivedMessages,
  UdpSipPeer,
} from '../../../src/lab/sip-peer.js';
import {
  parseSippRows,
  parseSippRtt,
  runSippClient,
  startSipp,
  type SippResult,
  type SippRun,
} from '../../../src/lab/sipp.js';
import type { LabPlan } from '../../../src/lab/topology.js';
import { PACKAGE_ROOT } from '../../../src/util/package-root.js';
import { sleep } from '../../../src/util/sleep.js';
import { stopOnInterrupt, withStopped } from '../common/cleanup.js';
import { round } from '../fairness/summary.js';
import { writeBenchmarksSection } from '../quality/report.js';
import { measureWindow, type SippTraces } from '../quality/window.js';
import { parseClusterOptions, type ClusterOptions } from './options.js';
import {
  crossCancel,
  formatPartition,
  partitionJson,
  peerStatus,
  scriptCounter,
  setupLatency,
  type PartitionMethod,
  type PartitionResult,
} from './partition-figures.js';
import { clusterMarkdown } from './report.js';
import { applyCut, cutDropped, removeCut } from './tc.js';
import {
  admittedFailed,
  cancelFigures,
  forkFigures,
  formatRepLine,
  formatSummary,
  lagFigures,
  meanSplitError,
  serverCalls,
  summarize,
  summaryJson,
  withinSplit,
  type CancelResult,
  type LagFigures,
  type OverloadResult,
  type RepResult,
  type RtxResult,
  type SplitReading,
  type SplitResult,
  type SummaryContext,
} from './summary.js';

const T0 = performance.now();
const say = (s: string) =>
  process.stderr.write(`cluster [${((performance.now() - T0) / 1000).toFixed(0)} s]: ${s}\n`);

/** The test suite's scenarios for calls that cross LB nodes (test/scenarios/, read by path). */
const SCENARIOS = join(PACKAGE_ROOT, 'test', 'scenarios');
const UAS_CANCEL = join(SCENARIOS, 'uas-cancel.xml');
const UAC_CANCEL_OTHER_LB = join(SCENARIOS, 'uac-cancel-other-lb.xml');
const UAC_RTX_OTHER_LB = join(SCENARIOS, 'uac-rtx-other-lb.xml');
/** uac-cancel.xml with INVITE→180 as response time 1 (the partition part's setup latency). */
const UAC_CANCEL_RTT = join(PACKAGE_ROOT, 'scripts', 'bench', 'cluster', 'uac-cancel-rtt.xml');
/** How long a slow backend holds a new INVITE before its transaction exists (the client retransmits at 0.5 s). */
const PRE_RELAY_DELAY_US = 1_200_000;
/** Workers of a slow backend: every copy of an INVITE holds one for the delay. */
const SLOW_WORKERS = 16;
/** Bounds on waiting for the controller's even split, on a split to follow, on a poll for an entry. */
const EVEN_DEADLINE_MS = 60_000;
const FOLLOW_DEADLINE_MS = 12_000;
const LAG_POLL_MS = 2_000;
/** The partition's last look at lb2 for the entries written during the cut: after a DMQ ping interval (10 s) more. */
const HEAL_RECHECK_S = 15;

/** The labs' addresses besides the lab's own (127.N.0.x, none used by a lab member). */
const clientIp = (net: number, last: number) => `127.${net}.0.${last}`;

function rpcOf(plan: LabPlan, i: number): KamailioRpcClient {
  const lb = plan.lbs[i]!;
  return new KamailioRpcClient({
    url: `http://${lb.rpc.address}:${lb.rpc.port}/RPC`,
    username: lb.rpc.username,
    password: lb.rpc.password,
    deadlineMs: 1000,
  });
}

interface ClusterLab {
  readonly lab: RunningLab;
  readonly rpc: readonly [KamailioRpcClient, KamailioRpcClient];
}

async function startClusterLab(
  o: ClusterOptions,
  kind: 'dataplane' | 'admission',
  onGroup: (g: ProcessGroup) => void,
): Promise<ClusterLab> {
  const lab = await startLab({
    onGroup,
    lbs: 2,
    backends: o.capacities.length,
    ...(kind === 'admission' ? { capacities: o.capacities, workers: o.workers } : {}),
    net: o.net,
    dir: mkdtempSync(join(tmpdir(), `sipweigh-bench-cluster-${kind}-`)),
    agents: kind === 'admission',
    controller: kind === 'admission',
  });
  const rpc = [rpcOf(lab.state.plan, 0), rpcOf(lab.state.plan, 1)] as const;
  try {
    // Both nodes in each other's DMQ node list before the first call (bounded).
    const deadline = Date.now() + 30_000;
    for (;;) {
      const lists = await Promise.all(rpc.map((r) => r.call('dmq.list_nodes').catch(() => null)));
      if (lists.every((l) => Array.isArray(l) && l.length === 2)) break;
      if (Date.now() > deadline) throw new Error('lb1 and lb2 not in each other DMQ node list within 30 s');
      await sleep(200);
    }
    return { lab, rpc };
  } catch (e) {
    rpc.forEach((r) => r.close());
    await lab.stop();
    throw e;
  }
}

async function stopClusterLab(cl: ClusterLab): Promise<void> {
  cl.rpc.forEach((r) => r.close());
  await cl.lab.stop();
}

/** Runs `body` on a fresh lab, stopped afterwards (by its processes' PIDs), on failure and on Ctrl-C too. */
function withClusterLab<R>(
  o: ClusterOptions,
  kind: 'dataplane' | 'admission',
  body: (cl: ClusterLab) => Promise<R>,
): Promise<R> {
  return withStopped(
    (whileStarting) => startClusterLab(o, kind, (g) => whileStarting(() => g.stopAll())),
    stopClusterLab,
    body,
  );
}

// --- 1. the data-plane lab ------------------------------------------------------------------------

/** Replaces the lab's servers (one sipp UAS per backend) by `scenario`, tracing what they receive. */
async function replaceServers(
  lab: RunningLab,
  current: ManagedProcess[],
  tag: string,
  scenario: string,
): Promise<SippRun[]> {
  await Promise.all(current.splice(0).map((p) => p.stop()));
  const runs = await Promise.all(
    lab.state.plan.backends.map((be) =>
      startSipp(lab.group, {
        name: `${tag}-uas-${be.id}`,
        scenario,
        localIp: be.uas.address,
        localPort: be.uas.port,
        // Outlives the part; stopped by the next replacement or the lab's stop.
        timeoutS: 900,
        traceMessages: true,
      }),
    ),
  );
  current.push(...runs.map((r) => r.process));
  return runs;
}

function serversSeen(runs: readonly SippRun[]) {
  return runs.map((r) => serverCalls(sippReceivedMessages(r.messagesFile ?? '')));
}

async function cancelPart(
  cl: ClusterLab,
  o: ClusterOptions,
  servers: readonly SippRun[],
): Promise<CancelResult> {
  const plan = cl.lab.state.plan;
  const [lb1, lb2] = [plan.lbs[0]!, plan.lbs[1]!];
  const r = await runSippClient(cl.lab.group, {
    name: 'uac-cancel-via-lb2',
    scenario: UAC_CANCEL_OTHER_LB,
    localIp: clientIp(o.net, 7),
    localPort: 5081,
    remote: `${lb1.sip.address}:${lb1.sip.port}`,
    vars: { other_lb_ip: lb2.sip.address, other_lb_port: lb2.sip.port },
    // The CANCEL 200 ms after the 180 (a person hangs up).
    extraArgs: ['-d', '200'],
    rate: o.cancelRate,
    maxCalls: o.calls,
    timeoutS: Math.ceil(o.calls / o.cancelRate) + 30,
  });
  // The last ACKs reach the servers.
  await sleep(500);
  const f = cancelFigures(serversSeen(servers));
  return { ...f, sent: r.stats.created, client_failed: r.stats.failed };
}

/** The value of `key` in an LB's Call-ID table, undefined when absent (or unreadable). */
async function callIdEntry(rpc: KamailioRpcClient, key: string): Promise<string | undefined> {
  try {
    const r = (await rpc.call('htable.get', ['sipweigh_callid', key])) as { item?: { value?: unknown } };
    return typeof r?.item?.value === 'string' ? r.item.value : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The replication lag: an INVITE to lb1 (which writes its Call-ID entry and replicates it), then
 * lb2's table polled until the entry is there; the poll's own round trip is the resolution. Each
 * call is then cancelled through lb1 (the servers ring until cancelled), its 487 ACKed at the end.
 */
/** A response of `callId` with `status` to `method` (the CSeq's method). */
const forCall =
  (callId: string, status: number, method: string) =>
  (m: { status?: number; text: string }): boolean =>
    m.status === status &&
    header(m.text, 'Call-ID') === callId &&
    (header(m.text, 'CSeq') ?? '').endsWith(method);

/** ACKs the 487 of every cancelled call (each waited for 3 s at most), so no server retransmits it. */
async function ackCancelled(
  peer: UdpSipPeer,
  pending: readonly { callId: string; branch: string }[],
  to: { ruri: string; via: string; lb: { address: string; port: number } },
): Promise<void> {
  for (const p of pending) {
    const final = await peer.waitFor(forCall(p.callId, 487, 'INVITE'), 3000);
    if (!final) continue;
    const toTag = /;tag=([^;>\s]+)/.exec(header(final.text, 'To') ?? '')?.[1];
    await peer.send(
      sipRequest({ method: 'ACK', ruri: to.ruri, callId: p.callId, branch: p.branch, via: to.via, toTag }),
      to.lb.address,
      to.lb.port,
    );
  }
}

async function lagPart(cl: ClusterLab, o: ClusterOptions, rep: number): Promise<LagFigures> {
  const plan = cl.lab.state.plan;
  const lb1 = plan.lbs[0]!.sip;
  const peer = await UdpSipPeer.bind(clientIp(o.net, 9));
  const via = `${peer.address}:${peer.port}`;
  const ruri = `sip:lag@${lb1.address}:${lb1.port}`;
  const lags: number[] = [];
  const rtts: number[] = [];
  const pending: { callId: string; branch: string }[] = [];
  // Bounded in count and in time.
  const deadline = performance.now() + o.lagWrites * 100 + 60_000;
  try {
    await callIdEntry(cl.rpc[1], 'warm-up'); // an open connection before the first measurement
    for (let i = 0; i < o.lagWrites && performance.now() < deadline; i++) {
      const callId = `cluster-lag-${process.pid}-${rep}-${i}`;
      const branch = newBranch();
      const t0 = performance.now();
      await peer.send(sipRequest({ method: 'INVITE', ruri, callId, branch, via }), lb1.address, lb1.port);
      let seen: string | undefined;
      for (let k = 0; k < 10_000 && performance.now() - t0 < LAG_POLL_MS; k++) {
        const p0 = performance.now();
        seen = await callIdEntry(cl.rpc[1], callId);
        rtts.push(performance.now() - p0);
        if (seen !== undefined) break;
      }
      if (seen !== undefined) lags.push(performance.now() - t0);
      // CANCEL once the server rings (a CANCEL before the backend's transaction would be lost).
      if (await peer.waitFor(forCall(callId, 180, 'INVITE'), 2000)) {
        await peer.send(sipRequest({ method: 'CANCEL', ruri, callId, branch, via }), lb1.address, lb1.port);
        pending.push({ callId, branch });
      }
    }
    await ackCancelled(peer, pending, { ruri, via, lb: lb1 });
  } finally {
    peer.close();
  }
  return lagFigures(lags, o.lagWrites, rtts);
}

/** Backends that hold each new INVITE 1.2 s before their transaction exists: the client retransmits meanwhile. */
async function slowBackends(lab: RunningLab): Promise<void> {
  const plan = lab.state.plan;
  await Promise.all(
    plan.backends.map(async (be) => {
      await lab.group.processes.find((p) => p.name === `backend-${be.id}`)?.stop();
      await startKamailio(lab.group, {
        name: `backend-${be.id}-slow`,
        cfg: LAB_CONFIGS.backend,
        defines: {
          ...backendDefines(backendSettings(plan, be)),
          SW_PRE_RELAY_DELAY_US: PRE_RELAY_DELAY_US,
          SW_WORKERS: SLOW_WORKERS,
        },
        shmMb: 128,
        waitFor: [
          { transport: 'udp', ...be.sip },
          { transport: 'tcp', address: be.sip.address, port: be.rpcPort },
        ],
      });
    }),
  );
}

async function rtxPart(cl: ClusterLab, o: ClusterOptions, servers: readonly SippRun[]): Promise<RtxResult> {
  const plan = cl.lab.state.plan;
  const [lb1, lb2] = [plan.lbs[0]!, plan.lbs[1]!];
  const r = await runSippClient(cl.lab.group, {
    name: 'uac-rtx-via-lb2',
    scenario: UAC_RTX_OTHER_LB,
    localIp: clientIp(o.net, 8),
    localPort: 5084,
    remote: `${lb1.sip.address}:${lb1.sip.port}`,
    vars: { other_lb_ip: lb2.sip.address, other_lb_port: lb2.sip.port },
    rate: o.rtxRate,
    maxCalls: o.calls,
    timeoutS: Math.ceil(o.calls / o.rtxRate) + 40,
  });
  await sleep(300);
  const f = forkFigures(serversSeen(servers));
  return {
    ...f,
    sent: r.stats.created,
    retransmissions: r.stats.retransmissions,
    client_failed: r.stats.failed,
  };
}

// --- the DMQ partition ----------------------------------------------------------------------------

interface Cut {
  readonly method: PartitionMethod;
  readonly heal: () => Promise<void>;
  readonly dropped: () => Promise<number | null>;
}

/**
 * Cuts DMQ between lb1 and lb2, both ways: tc drops the KDMQ on loopback (tc.ts). Where tc cannot,
 * the closest thing: lb2 frozen (SIGSTOP of its process group), so lb1's KDMQ go unanswered; named
 * `peer-frozen`, not a partition (lb2 serves nothing meanwhile).
 */
async function makeCut(cl: ClusterLab): Promise<Cut> {
  const plan = cl.lab.state.plan;
  const [d1, d2] = [plan.lbs[0]!.dmq, plan.lbs[1]!.dmq];
  if (!d1 || !d2) throw new Error('the lab has no DMQ between its LBs');
  if (d1.sip.port !== d2.sip.port) throw new Error('the LBs DMQ ports differ');
  try {
    await applyCut({ a: d1.sip.address, b: d2.sip.address, port: d2.sip.port });
    return { method: 'tc-drop', heal: removeCut, dropped: cutDropped };
  } catch (e) {
    say(`tc cannot cut DMQ here (${(e as Error).message.split('\n')[0]}): lb2 frozen instead (SIGSTOP)`);
    const lb2 = cl.lab.group.processes.find((p) => p.name === lbMemberName(plan, 1));
    if (!lb2) throw new Error('lb2 process not found', { cause: e });
    signalGroup(lb2.pid, 'SIGSTOP');
    return {
      method: 'peer-frozen',
      heal: () => Promise.resolve(signalGroup(lb2.pid, 'SIGCONT')),
      dropped: () => Promise.resolve(null),
    };
  }
}

/** A sipp run's result, the run stopped (by PID) after `boundS` if it has not ended by then. */
async function bounded(run: SippRun, boundS: number): Promise<SippResult> {
  const guard = setTimeout(() => void run.process.stop(), boundS * 1000);
  try {
    return await run.done();
  } finally {
    clearTimeout(guard);
  }
}

/** Call-IDs of the 180s a client's sipp received: calls whose INVITE lb1 relayed (and wrote). */
function ringingCallIds(run: SippRun): Set<string> {
  return new Set(
    sippReceivedMessages(run.messagesFile ?? '')
      .filter((m) => m.startsWith('SIP/2.0 180'))
      .map((m) => header(m, 'Call-ID') ?? '')
      .filter((id) => id !== ''),
  );
}

async function unknownCancelsAtLb2(cl: ClusterLab): Promise<number | null> {
  const r = await cl.rpc[1].call('stats.fetchn', ['script:']).catch(() => null);
  return scriptCounter(r, 'sipweigh_cancel_unknown_dropped');
}

async function dmqStatus(cl: ClusterLab, i: number): Promise<string | null> {
  const other = cl.lab.state.plan.lbs[1 - i]!.dmq!.sip.address;
  const r = await cl.rpc[i]!.call('dmq.list_nodes').catch(() => null);
  return peerStatus(r, other);
}

/**
 * After healing: a call written at lb1 every 500 ms, lb2 polled for it for 400 ms, until one is
 * there (bounded: `withinS`). Each probe is cancelled through lb1 once it rings, its 487 ACKed.
 */
async function healProbe(
  cl: ClusterLab,
  o: ClusterOptions,
  rep: number,
  tHeal: number,
  withinS: number,
): Promise<{ ok: boolean; s: number | null; probes: number }> {
  const lb1 = cl.lab.state.plan.lbs[0]!.sip;
  const peer = await UdpSipPeer.bind(clientIp(o.net, 4));
  const via = `${peer.address}:${peer.port}`;
  const ruri = `sip:heal@${lb1.address}:${lb1.port}`;
  const pending: { callId: string; branch: string }[] = [];
  let result = { ok: false, s: null as number | null, probes: 0 };
  try {
    for (let i = 0; i < 200 && performance.now() - tHeal < withinS * 1000; i++) {
      const callId = `cluster-heal-${process.pid}-${rep}-${i}`;
      const branch = newBranch();
      const tw = performance.now();
      await peer.send(sipRequest({ method: 'INVITE', ruri, callId, branch, via }), lb1.address, lb1.port);
      let seen = false;
      while (!seen && performance.now() - tw < 400) {
        seen = (await callIdEntry(cl.rpc[1], callId)) !== undefined;
        if (!seen) await sleep(20);
      }
      if (await peer.waitFor(forCall(callId, 180, 'INVITE'), 2000)) {
        await peer.send(sipRequest({ method: 'CANCEL', ruri, callId, branch, via }), lb1.address, lb1.port);
        pending.push({ callId, branch });
      }
      if (seen) {
        result = { ok: true, s: round((tw - tHeal) / 1000, 2), probes: i + 1 };
        break;
      }
      result = { ok: false, s: null, probes: i + 1 };
      await sleep(Math.max(0, 500 - (performance.now() - tw)));
    }
    await ackCancelled(peer, pending, { ruri, via, lb: lb1 });
  } finally {
    peer.close();
  }
  return result;
}

/**
 * DMQ cut between lb1 and lb2 for `partitionS` while calls flow through lb1 (INVITE, 180, CANCEL,
 * 487, ACK; the servers ring until cancelled) and a few calls send their CANCEL to lb2; then healed:
 * when does a new write replicate again, and are the entries written during the cut ever at lb2?
 */
async function partitionPart(
  cl: ClusterLab,
  o: ClusterOptions,
  rep: number,
  servers: readonly SippRun[],
): Promise<PartitionResult> {
  const plan = cl.lab.state.plan;
  const [lb1, lb2] = [plan.lbs[0]!.sip, plan.lbs[1]!.sip];
  const load = (name: string, port: number, seconds: number) =>
    startSipp(cl.lab.group, {
      name,
      scenario: UAC_CANCEL_RTT,
      localIp: clientIp(o.net, 2),
      localPort: port,
      remote: `${lb1.address}:${lb1.port}`,
      rate: o.partitionCps,
      maxCalls: Math.max(1, Math.round(o.partitionCps * seconds)),
      timeoutS: Math.ceil(seconds) + 30,
      traceRtt: true,
      traceMessages: true,
    });
  const latency = (run: SippRun, r: SippResult) =>
    setupLatency(parseSippRtt(readText(run.rttFile)), r.stats.created, r.stats.failed);

  const b = await load('partition-before', 5086, o.partitionBeforeS);
  const before = latency(b, await bounded(b, o.partitionBeforeS + 30));

  const unknownBefore = await unknownCancelsAtLb2(cl);
  const cut = await makeCut(cl);
  // The cut is always lifted: at its end, on failure, on Ctrl-C.
  let tHeal: number | null = null;
  const unregister = stopOnInterrupt(() => cut.heal());
  const heal = async () => {
    if (tHeal !== null) return;
    await cut.heal();
    tHeal = performance.now();
    unregister();
  };
  let during: PartitionResult['during'];
  let duringIds: Set<string>;
  let crossIds: Set<string>;
  let dropped: number | null;
  let status: PartitionResult['peer_status_end_of_cut'];
  let probe: { ok: boolean; s: number | null; probes: number };
  try {
    const t0 = performance.now();
    say(`rep ${rep}: DMQ cut (${cut.method}) for ${o.partitionS} s`);
    // Every call starts within the cut (they last milliseconds).
    const d = await load('partition-during', 5087, Math.max(1, o.partitionS - 1.5));
    await sleep(500);
    const x = await startSipp(cl.lab.group, {
      name: 'partition-cancel-via-lb2',
      scenario: UAC_CANCEL_OTHER_LB,
      localIp: clientIp(o.net, 3),
      localPort: 5088,
      remote: `${lb1.address}:${lb1.port}`,
      vars: { other_lb_ip: lb2.address, other_lb_port: lb2.port },
      // 2 calls/s, each CANCEL sent 3 times at most (0.5 s, 1 s, 2 s): over before the cut ends.
      extraArgs: ['-d', '200', '-max_non_invite_retrans', '2'],
      rate: 2,
      maxCalls: o.partitionCrossCalls,
      timeoutS: o.partitionS + 30,
      traceMessages: true,
    });
    const dRes = await bounded(d, o.partitionS + 30);
    during = latency(d, dRes);
    duringIds = ringingCallIds(d);
    await sleep(Math.max(0, o.partitionS * 1000 - 1000 - (performance.now() - t0)));
    // The last second of the cut: each node's view of the other, the packets dropped.
    status = { lb1: await dmqStatus(cl, 0), lb2: cut.method === 'tc-drop' ? await dmqStatus(cl, 1) : null };
    dropped = await cut.dropped();
    await sleep(Math.max(0, o.partitionS * 1000 - (performance.now() - t0)));
    await heal();
    say(`rep ${rep}: DMQ healed; ${dropped ?? '?'} packets dropped, peers ${JSON.stringify(status)}`);
    // At once: does a new write replicate again, and when?
    probe = await healProbe(cl, o, rep, tHeal as unknown as number, 30);
    await bounded(x, 30);
    crossIds = ringingCallIds(x);
  } finally {
    await heal();
  }
  const healedAt = tHeal as unknown as number;
  const unknownAfter = await unknownCancelsAtLb2(cl);
  await sleep(300);
  const cross = crossCancel(serversSeen(servers), crossIds);
  // The entries written during the cut at lb2: a few seconds after healing, and again after one
  // more DMQ ping interval (10 s): does anything resync a healed peer?
  const missingNow = async () => {
    let written = 0;
    let missing = 0;
    for (const id of duringIds) {
      if ((await callIdEntry(cl.rpc[0], id)) === undefined) continue;
      written++;
      if ((await callIdEntry(cl.rpc[1], id)) === undefined) missing++;
    }
    return { written, missing, after_s: round((performance.now() - healedAt) / 1000, 1) };
  };
  await sleep(Math.max(0, 3000 - (performance.now() - healedAt)));
  const first = await missingNow();
  await sleep(Math.max(0, HEAL_RECHECK_S * 1000 - (performance.now() - healedAt)));
  const last = await missingNow();
  return {
    method: cut.method,
    cut_s: o.partitionS,
    rate_cps: o.partitionCps,
    dropped_packets: dropped,
    peer_status_end_of_cut: status,
    before,
    during,
    cancel_other_lb_during: {
      ...cross,
      unknown_dropped_at_lb2:
        unknownBefore === null || unknownAfter === null ? null : unknownAfter - unknownBefore,
    },
    entries_written_during: last.written,
    entries_missing_soon_after_heal: first.missing,
    entries_missing_after_heal: last.missing,
    checked_after_heal_s: [first.after_s, last.after_s],
    healed_replication_ok: probe.ok,
    healed_replication_s: probe.s,
    heal_probes: probe.probes,
  };
}

interface DataplaneParts {
  cancel: CancelResult | null;
  lag: LagFigures | null;
  rtx: RtxResult | null;
  partition: PartitionResult | null;
}

async function dataplaneParts(o: ClusterOptions, rep: number, errors: string[]): Promise<DataplaneParts> {
  const out: DataplaneParts = { cancel: null, lag: null, rtx: null, partition: null };
  const part = async <T>(name: string, f: () => Promise<T>): Promise<T | null> => {
    try {
      return await f();
    } catch (e) {
      errors.push(`${name}: ${(e as Error).message.split('\n').slice(0, 3).join(' | ')}`);
      return null;
    }
  };
  await part('dataplane lab', () =>
    withClusterLab(o, 'dataplane', async (cl) => {
      const servers: ManagedProcess[] = cl.lab.group.processes.filter((p) => p.name.startsWith('uas-'));
      // The servers ring until cancelled: the CANCEL and lag parts.
      const ringing = await replaceServers(cl.lab, servers, 'cancel', UAS_CANCEL);
      out.cancel = await part('cancel', () => cancelPart(cl, o, ringing));
      say(`rep ${rep}: CANCEL via lb2: ${JSON.stringify(out.cancel)}`);
      out.lag = await part('lag', () => lagPart(cl, o, rep));
      say(`rep ${rep}: replication lag: ${JSON.stringify(out.lag)}`);
      out.partition = await part('partition', () => partitionPart(cl, o, rep, ringing));
      say(`rep ${rep}: ${formatPartition(out.partition)}`);
      out.rtx = await part('retransmission', async () => {
        await slowBackends(cl.lab);
        const answering = await replaceServers(cl.lab, servers, 'rtx', LAB_SCENARIOS.uas);
        return rtxPart(cl, o, answering);
      });
      say(`rep ${rep}: retransmission via lb2: ${JSON.stringify(out.rtx)}`);
    }),
  );
  return out;
}

// --- 2. the admission lab -------------------------------------------------------------------------

async function limitAt(rpc: KamailioRpcClient): Promise<number | null> {
  const l = await readLimiters(rpc).catch(() => null);
  return [...(l?.values() ?? [])][0]?.limitCps ?? null;
}

async function reading(cl: ClusterLab): Promise<SplitReading | null> {
  const [lb1, lb2] = await Promise.all(cl.rpc.map(limitAt));
  return lb1 === null || lb1 === undefined || lb2 === null || lb2 === undefined ? null : { lb1, lb2 };
}

/** Seconds from `t0` until `ok` holds of a reading (polled every 200 ms), or null by the deadline. */
async function followFrom(
  cl: ClusterLab,
  t0: number,
  ok: (r: SplitReading) => boolean,
  withinMs: number,
): Promise<number | null> {
  while (performance.now() - t0 < withinMs) {
    const r = await reading(cl);
    if (r && ok(r)) return round((performance.now() - t0) / 1000, 2);
    await sleep(200);
  }
  return null;
}

function uac(
  cl: ClusterLab,
  name: string,
  from: { ip: string; port: number },
  lb: number,
  rate: number,
  seconds: number,
  trace = false,
): Promise<SippRun> {
  const sip = cl.lab.state.plan.lbs[lb]!.sip;
  return startSipp(cl.lab.group, {
    name,
    scenario: LAB_SCENARIOS.uacAdmission,
    localIp: from.ip,
    localPort: from.port,
    remote: `${sip.address}:${sip.port}`,
    rate,
    maxCalls: Math.max(1, Math.round(rate * seconds)),
    timeoutS: Math.ceil(seconds) + 30,
    traceCounts: true,
    traceRtt: trace,
    extraArgs: ['-recv_timeout', '2000', '-max_recv_loops', '10000'],
  });
}

async function splitPart(cl: ClusterLab, o: ClusterOptions): Promise<SplitResult> {
  // The even split of the idle pool: both parts set, equal; their sum is the pool's limit.
  const t00 = performance.now();
  let idle: SplitReading | null = null;
  while (performance.now() - t00 < EVEN_DEADLINE_MS) {
    idle = await reading(cl);
    if (idle && idle.lb1 > 0 && Math.abs(idle.lb1 - idle.lb2) < 0.02) break;
    idle = null;
    await sleep(200);
  }
  if (!idle) throw new Error(`no even admission split at both LBs within ${EVEN_DEADLINE_MS / 1000} s`);
  const pool = round(idle.lb1 + idle.lb2, 3);
  const ip1 = { ip: clientIp(o.net, 5), port: 5060 };
  const ip2 = { ip: clientIp(o.net, 6), port: 5060 };
  const seconds = FOLLOW_DEADLINE_MS / 1000 + 2 + o.splitReadings + 2;
  const runs: SippRun[] = [];
  const readings: SplitReading[] = [];
  let follow: number | null;
  try {
    const t0 = performance.now();
    runs.push(await uac(cl, 'split-lb1', ip1, 0, Math.max(1, Math.round(0.8 * o.splitCps)), seconds));
    runs.push(await uac(cl, 'split-lb2', ip2, 1, Math.max(1, Math.round(0.2 * o.splitCps)), seconds));
    follow = await followFrom(cl, t0, (r) => withinSplit(r), FOLLOW_DEADLINE_MS);
    await sleep(2000);
    for (let k = 0; k < o.splitReadings; k++) {
      const r = await reading(cl);
      if (r) readings.push(r);
      await sleep(1000);
    }
  } finally {
    await Promise.all(runs.splice(0).map((r) => r.process.stop()));
  }
  let move: number | null;
  let afterMove: SplitReading | null;
  try {
    const t1 = performance.now();
    runs.push(
      await uac(cl, 'move-lb2', { ...ip2, port: 5061 }, 1, o.splitCps, FOLLOW_DEADLINE_MS / 1000 + 3),
    );
    move = await followFrom(cl, t1, (r) => r.lb2 >= 0.9 * pool, FOLLOW_DEADLINE_MS);
    afterMove = await reading(cl);
  } finally {
    await Promise.all(runs.splice(0).map((r) => r.process.stop()));
  }
  return {
    pool_limit_cps: pool,
    split_follow_s: follow,
    readings,
    admission_split_error_pct: meanSplitError(readings),
    move_follow_s: move,
    after_move: afterMove,
  };
}

function readText(file: string | undefined): string {
  try {
    return file ? readFileSync(file, 'utf8') : '';
  } catch {
    return '';
  }
}

const tracesOf = (run: SippRun): SippTraces => ({
  counts: parseSippRows(readText(run.countsFile)),
  rtt: parseSippRtt(readText(run.rttFile)),
});

async function overloadPart(cl: ClusterLab, o: ClusterOptions): Promise<OverloadResult> {
  const capacity = o.capacities.reduce((a, b) => a + b, 0);
  const offered = o.overloadLoad * capacity;
  const rates = [Math.round(0.6 * offered), Math.round(0.4 * offered)];
  const runs: SippRun[] = [];
  let results: SippResult[];
  try {
    runs.push(
      await uac(cl, 'overload-lb1', { ip: clientIp(o.net, 5), port: 5062 }, 0, rates[0]!, o.overloadS, true),
    );
    runs.push(
      await uac(cl, 'overload-lb2', { ip: clientIp(o.net, 6), port: 5062 }, 1, rates[1]!, o.overloadS, true),
    );
    // sipp ends once every call has: the last INVITE, then at most the receive timeout (bounded).
    const guard = setTimeout(() => runs.forEach((r) => void r.process.stop()), (o.overloadS + 35) * 1000);
    try {
      results = await Promise.all(runs.map((r) => r.done()));
    } finally {
      clearTimeout(guard);
    }
  } finally {
    await Promise.all(runs.map((r) => r.process.stop()));
  }
  const windows = runs.map((r) => measureWindow(tracesOf(r), o.overloadWarmupS, o.overloadS));
  const windowS = Math.max(1, o.overloadS - Math.max(...windows.map((w) => w.fromS)));
  const answered = windows.reduce((a, w) => a + w.answered_in_window, 0);
  const outcomes = results.map((r) => ({
    created: r.stats.created,
    successful: r.stats.successful,
    refused_503: r.counts['3_503_Recv'] ?? 0,
  }));
  return {
    capacity_cps: capacity,
    offered_cps: rates[0]! + rates[1]!,
    goodput_fraction: round(answered / windowS / capacity, 4),
    admitted_failed: admittedFailed(outcomes),
    calls: outcomes.reduce((a, x) => a + x.created, 0),
    refused_503: outcomes.reduce((a, x) => a + x.refused_503, 0),
    window_s: round(windowS, 3),
  };
}

async function admissionParts(
  o: ClusterOptions,
  rep: number,
  errors: string[],
): Promise<{ split: SplitResult | null; overload: OverloadResult | null }> {
  const out: { split: SplitResult | null; overload: OverloadResult | null } = { split: null, overload: null };
  const part = async <T>(name: string, f: () => Promise<T>): Promise<T | null> => {
    try {
      return await f();
    } catch (e) {
      errors.push(`${name}: ${(e as Error).message.split('\n').slice(0, 3).join(' | ')}`);
      return null;
    }
  };
  await part('admission lab', () =>
    withClusterLab(o, 'admission', async (cl) => {
      out.split = await part('split', () => splitPart(cl, o));
      say(`rep ${rep}: admission split: ${JSON.stringify(out.split)}`);
      out.overload = await part('overload', () => overloadPart(cl, o));
      say(`rep ${rep}: overload: ${JSON.stringify(out.overload)}`);
    }),
  );
  return out;
}

// --- the run --------------------------------------------------------------------------------------

async function publish(
  o: ClusterOptions,
  args: readonly string[],
  when: { started: Date; loadavgStart: number },
  reps: readonly RepResult[],
  markdown: (runFile: string, command: string) => string,
  line: Record<string, unknown>,
): Promise<string[]> {
  const command = `npm run bench -- cluster${args.length ? ` ${args.join(' ')}` : ''}`;
  const runsDir = join(PACKAGE_ROOT, 'bench-results');
  mkdirSync(runsDir, { recursive: true });
  const name = `cluster-${o.quick ? 'quick-' : ''}${when.started.toISOString().replace(/[:.]/g, '-')}.json`;
  const runFile = join(runsDir, name);
  const run = {
    bench: 'cluster',
    version: 1,
    command,
    started_at: when.started.toISOString(),
    cpus: cpus().length,
    loadavg_start: when.loadavgStart,
    options: o,
    repetitions: reps,
    summary: line,
  };
  writeFileSync(runFile, `${JSON.stringify(run, null, 2)}\n`);
  const benchmarksMd = join(PACKAGE_ROOT, 'BENCHMARKS.md');
  await writeBenchmarksSection(
    benchmarksMd,
    o.quick ? 'cluster-quick' : 'cluster',
    markdown(`bench-results/${name}`, command),
  );
  return [runFile, benchmarksMd];
}

export async function runClusterBench(args: string[]): Promise<void> {
  const o = parseClusterOptions(args);
  const capacity = o.capacities.reduce((a, b) => a + b, 0);
  say(
    `${o.repetitions} repetition(s) on 127.${o.net}.x.x: ${o.calls} calls per crossing part, ${o.lagWrites} lag writes, ` +
      `pool ${o.capacities.join('/')} = ${capacity} calls/s, overload ${o.overloadLoad}× for ${o.overloadS} s`,
  );
  const started = new Date();
  const loadavgStart = Number(loadavg()[0]!.toFixed(2));
  const reps: RepResult[] = [];
  let failed = 0;
  for (let rep = 1; rep <= o.repetitions; rep++) {
    const errors: string[] = [];
    const dp = await dataplaneParts(o, rep, errors);
    const adm = await admissionParts(o, rep, errors);
    const r: RepResult = { rep, ...dp, ...adm, errors };
    reps.push(r);
    if (errors.length > 0) {
      failed++;
      say(`rep ${rep} failed in part: ${errors.join('; ')}`);
    }
    say(formatRepLine(r));
  }
  const summary = summarize(reps);
  process.stderr.write(`\n${formatSummary(summary)}\n\n`);
  const context: SummaryContext = {
    quick: o.quick,
    repetitions: o.repetitions,
    failed_repetitions: failed,
    calls: o.calls,
    lag_writes: o.lagWrites,
    capacities_cps: o.capacities,
    overload_load: o.overloadLoad,
    overload_s: o.overloadS,
    seconds: (performance.now() - T0) / 1000,
  };
  const line = summaryJson(summary, reps, context);
  if (o.write && reps.some((r) => r.cancel ?? r.rtx ?? r.lag ?? r.split ?? r.overload)) {
    const files = await publish(
      o,
      args,
      { started, loadavgStart },
      reps,
      (runFile, command) =>
        clusterMarkdown(
          summary,
          context,
          {
            started_at: started.toISOString(),
            command,
            cpus: cpus().length,
            loadavg_start: loadavgStart,
            run_file: runFile,
          },
          partitionJson(reps.map((r) => r.partition)),
        ),
      line,
    );
    say(`wrote ${files.join(', ')}`);
  }
  process.stdout.write(`${JSON.stringify(line)}\n`);
  // After the line: what did run is reported, and the exit status still says something is missing.
  if (failed > 0) throw new Error(`${failed} of ${o.repetitions} repetitions had a part fail (see above)`);
}
