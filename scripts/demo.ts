/**
 * `npm run demo`: sipweigh's closed loop at work, every part real and on loopback. Three Kamailio
 * backends of unequal emulated capacity behind the transparent Kamailio LB, a sipweigh agent beside
 * each, and `sipweigh controller` pushing dispatcher weights into the LB. sipp offers calls through
 * the LB in rising steps; then one backend is killed (Kamailio and agent, SIGKILL) under load.
 *
 * Every second it prints, per backend: the weight the LB holds (read back from dispatcher.list: the
 * truth of where calls go), the INVITEs the backend received in that second and their share, and the
 * controller's pressure signal (from its event stream, GET /api/v1/events). At the end: calls per
 * phase, the time from the kill to the backend's weight 0 at the LB, the kill phase's failed calls
 * split into those that failed in setup and established calls that lost their BYE, the calls the LB
 * saved by re-dispatching them off the dead backend, the final weights. Everything is stopped by PID at the end
 * (also on Ctrl-C or failure).
 */
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { followEvents, type EventFollower } from '../src/api/event-client.js';
import { targetFromConfig } from '../src/cli/commands/api-client.js';
import { logLineOf } from '../src/controller/event-log.js';
import type { BackendWeight, StampedEvent } from '../src/controller/events.js';
import { fetchEffectiveWeights } from '../src/kamailio/fetch-dispatcher-list.js';
import { KamailioRpcClient } from '../src/kamailio/rpc.js';
import { killMember } from '../src/lab/lab-control.js';
import { startLab, type RunningLab } from '../src/lab/lab.js';
import { LAB_SCENARIOS } from '../src/lab/scenarios.js';
import { findUdpSocket, parseProcNetUdp } from '../src/metrics/proc-net-udp.js';
import { labClient, type SipEndpoint } from '../src/lab/topology.js';
import { readSippStats, startSipp, type SippResult, type SippRun } from '../src/lab/sipp.js';
import { splitFailures } from '../src/lab/sipp-counts.js';
import { readScriptStats, statDelta } from '../src/lab/lb-failover.js';
import { sleep } from '../src/util/sleep.js';
import { OpenSipsMiClient } from '../src/opensips/mi.js';
import { fetchOpenSipsList } from '../src/opensips/pusher.js';
import { effectiveWeight } from '../src/kamailio/dispatcher-list-reply.js';
import { LB_KINDS, type LbKind } from '../src/lab/opensips.js';

/** `npm run demo -- --lb opensips`: the same demo with OpenSIPS 3.6 as the LB (docs/opensips.md). */
function lbKindFromArgs(argv: readonly string[]): LbKind {
  const i = argv.indexOf('--lb');
  if (i < 0) return 'kamailio';
  const v = argv[i + 1];
  if (!LB_KINDS.includes(v as LbKind))
    throw new Error(`--lb takes ${LB_KINDS.join(' or ')}, got ${v ?? 'nothing'}`);
  return v as LbKind;
}
const LB_KIND = lbKindFromArgs(process.argv.slice(2));
const LB_NAME = LB_KIND === 'opensips' ? 'OpenSIPS' : 'Kamailio';
/** How the LB's list is read back: Kamailio's dispatcher.list RPC, OpenSIPS's MI ds_list. */
const LIST_READ = LB_KIND === 'opensips' ? 'ds_list' : 'dispatcher.list';

// ---- the script ------------------------------------------------------------------------------------

/** Emulated capacity of be1, be2, be3 in calls/s: a pool of 350. */
const CAPACITIES = [50, 100, 200] as const;
const VICTIM = 'be2';

interface LoadPhase {
  readonly label: string;
  /** Calls/s offered to the LB. */
  readonly rate: number;
  readonly seconds: number;
  /** Kill the victim this long after the phase starts. */
  readonly killAfterMs?: number;
}

// The last two steps stay under what is left after the kill (250 calls/s), so what the table
// shows is the LB moving calls, not an overloaded pool collapsing (that is admission control's job).
const PHASES: readonly LoadPhase[] = [
  { label: '60/s', rate: 60, seconds: 5 },
  { label: '120/s', rate: 120, seconds: 5 },
  { label: '180/s', rate: 180, seconds: 5 },
  { label: `180/s, ${VICTIM} killed`, rate: 180, seconds: 8, killAfterMs: 1500 },
];
/** Seconds of table after the last call was offered, while the last calls complete. */
const TAIL_S = 2;
/** A call waiting longer than this for a reply fails: bounds the run when a backend dies mid-call. */
const RECV_TIMEOUT_MS = 4000;
/** How long the controller gets to score the set once the lab is up. */
const FIRST_SCORE_DEADLINE_MS = 15000;
/** A kill not seen at the LB within this is reported as not seen (and the demo fails). */
const OUT_DEADLINE_MS = 10000;
const OUT_POLL_MS = 50;
/** A pressure the controller has not logged for this long is marked as old. */
const STALE_MS = 2000;

// ---- what the LB holds: dispatcher.list ----------------------------------------------------------

type Weights = ReadonlyMap<string, number>;

/**
 * What the demo reads of the LB, Kamailio (JSON-RPC) or OpenSIPS (MI over HTTP): the weights it
 * holds, the requests it received, its script statistics (as `script.<name>`).
 */
interface LbView {
  weights(): Promise<Weights | null>;
  invites(): Promise<number | null>;
  scriptStats(): Promise<Record<string, number> | null>;
  close(): void;
}

function kamailioLbView(rpc: KamailioRpcClient): LbView {
  return {
    weights: () => fetchEffectiveWeights(rpc, { deadlineMs: 800 }),
    invites: () => invitesReceived(rpc),
    scriptStats: () => readScriptStats(rpc),
    close: () => rpc.close(),
  };
}

function openSipsLbView(mi: OpenSipsMiClient): LbView {
  const stats = async (names: string[]): Promise<Record<string, number> | null> => {
    try {
      const r = (await mi.call('get_statistics', { statistics: names }, 800)) as Record<string, unknown>;
      const out: Record<string, number> = {};
      for (const [k, v] of Object.entries(r)) {
        const name = k.slice(k.indexOf(':') + 1);
        if (typeof v === 'number') out[name.startsWith('sipweigh_') ? `script.${name}` : name] = v;
      }
      return out;
    } catch {
      return null;
    }
  };
  return {
    weights: async () => {
      const list = await fetchOpenSipsList(mi, 800);
      return list.ok ? new Map(list.targets.map((t) => [t.duid ?? t.uri, effectiveWeight(t)])) : null;
    },
    // OpenSIPS counts no requests per method: every request the LB received (INVITEs, CANCELs, stray
    // ACKs; in-dialog requests bypass it).
    invites: async () => (await stats(['rcv_requests']))?.rcv_requests ?? null,
    scriptStats: () => stats(['all']),
    close: () => mi.close(),
  };
}

/** Backend id (duid) -> rweight while active, 0 otherwise; null when the LB did not answer. */
async function readWeights(lb: LbView): Promise<Weights | null> {
  return lb.weights();
}

/** Polls until `id` has weight 0 at the LB: ms since `since` (a performance.now()), or null. */
async function timeToOut(rpc: LbView, id: string, since: number): Promise<number | null> {
  while (performance.now() - since < OUT_DEADLINE_MS) {
    const w = await readWeights(rpc);
    if (w?.get(id) === 0) return performance.now() - since;
    await sleep(OUT_POLL_MS);
  }
  return null;
}

// ---- what each Kamailio counted: INVITEs received ------------------------------------------------

/** `core.rcv_requests_invite` of one Kamailio, or null when it does not answer (e.g. killed). */
async function invitesReceived(rpc: KamailioRpcClient): Promise<number | null> {
  try {
    const r = (await rpc.call('stats.fetch', ['core:rcv_requests_invite'], { deadlineMs: 500 })) as Record<
      string,
      unknown
    >;
    const v = Number(r['core.rcv_requests_invite']);
    return Number.isFinite(v) ? v : null;
  } catch {
    return null;
  }
}

/**
 * Datagrams the kernel dropped at each SIP socket because its receive buffer was full: requests the
 * backend never saw (so never counted), the last word on overload. Null for a socket not bound.
 */
function socketDrops(sockets: readonly SipEndpoint[]): (number | null)[] {
  let rows: ReturnType<typeof parseProcNetUdp>;
  try {
    rows = parseProcNetUdp(readFileSync('/proc/net/udp', 'utf8'));
  } catch {
    return sockets.map(() => null);
  }
  return sockets.map((s) => findUdpSocket(rows, s.address, s.port)?.drops ?? null);
}

/** Per-interval increase of cumulative counters; null while a counter does not answer. */
class CounterDeltas {
  private readonly last = new Map<string, number>();

  next(id: string, now: number | null): number | null {
    if (now === null) return null;
    const prev = this.last.get(id);
    this.last.set(id, now);
    // A restarted Kamailio starts again from 0: count from there.
    return prev === undefined ? null : now >= prev ? now - prev : now;
  }
}

// ---- what the controller says: its event stream (GET /api/v1/events) ------------------------------

interface HealthChange {
  /** Epoch ms of the event. */
  readonly at: number;
  readonly backend: string;
  readonly from: string;
  readonly to: string;
}

/**
 * Follows the lab controller's events through its API (found as `sipweigh status` finds it): the
 * latest score per backend (told with each change of the weights), health changes, admission
 * limits, panics and verified pushes.
 */
class ControllerEvents {
  readonly scores = new Map<string, BackendWeight>();
  /** Epoch ms of the latest weights; null until the controller first scored the set. */
  scoredAt: number | null = null;
  pushes = 0;
  /** The latest limit on new calls the controller set at the LB (admission control), calls/s. */
  admissionCps: number | null = null;
  private news: (HealthChange | string)[] = [];
  private readonly follower: EventFollower;

  private constructor(url: string, token: string | null) {
    this.follower = followEvents({ url, token, history: true }, (e) => this.take(e));
  }

  /** Connected to the controller's API of a running lab. */
  static async open(controllerConfig: string): Promise<ControllerEvents> {
    const target = targetFromConfig(controllerConfig);
    const token = target.tokenFile === null ? null : readFileSync(target.tokenFile, 'utf8').trim();
    const events = new ControllerEvents(target.url, token);
    try {
      await events.follower.ready;
    } catch (e) {
      throw new Error(`cannot follow the controller's events at ${target.url}: ${(e as Error).message}`, {
        cause: e,
      });
    }
    return events;
  }

  /** What to tell the operator of what arrived since the last call. */
  poll(): (HealthChange | string)[] {
    const out = this.news;
    this.news = [];
    return out;
  }

  close(): void {
    this.follower.close();
  }

  private take(e: StampedEvent): void {
    if (e.type === 'weights_changed') {
      this.scoredAt = e.time;
      for (const b of e.backends) this.scores.set(b.id, b);
    } else if (e.type === 'node_push' && e.outcome === 'applied') {
      this.pushes++;
    } else if (e.type === 'admission_applied') {
      // The lab's LB has one set, so one limit.
      this.admissionCps = e.limits[0]?.limitCps ?? this.admissionCps;
    } else if (e.type === 'backend_health') {
      this.news.push({ at: e.time, backend: e.backend, from: e.from, to: e.to });
    } else if (e.type === 'panic_started') {
      this.news.push(logLineOf(e)?.msg ?? 'PANIC');
    }
  }
}

// ---- layout ------------------------------------------------------------------------------------------

/** Short names of the scorer's signals, for a narrow column. */
const SIGNAL_SHORT: Readonly<Record<string, string>> = {
  options_rtt_ms: 'rtt',
  udp_rx_queue_bytes: 'queue',
  udp_drops_per_s: 'drops',
  err5xx_ratio: '5xx',
  utilisation: 'util',
  tm_per_cps: 'tm',
  dialogs_per_cps: 'dlg',
  cpu_util: 'cpu',
  mem_used_ratio: 'mem',
  load1: 'load',
};

interface Column {
  readonly title: string;
  readonly width: number;
  readonly left?: boolean;
}

/** Columns of the live line before the backends, and of each backend. */
const LEAD: readonly Column[] = [
  { title: 't', width: 4 },
  { title: 'offered', width: 7 },
  { title: 'LB INV/s', width: 8 },
  { title: 'ok/failed', width: 10 },
];
const PER_BACKEND: readonly Column[] = [
  { title: 'wt', width: 3 },
  { title: 'INV/s', width: 5 },
  { title: 'share', width: 5 },
  { title: ' pressure', width: 12, left: true },
];

const cells = (cols: readonly Column[], values: readonly string[], gap: string) =>
  cols
    .map((c, i) => (c.left ? (values[i] ?? '').padEnd(c.width) : (values[i] ?? '').padStart(c.width)))
    .join(gap);
const groupWidth = PER_BACKEND.reduce((a, c) => a + c.width + 1, -1);
const leadWidth = LEAD.reduce((a, c) => a + c.width + 2, -2);
/** The line above the column titles: each backend's name over its columns. */
const groupLine = (titles: readonly string[]) =>
  [' '.repeat(leadWidth), ...titles.map((t) => t.padEnd(groupWidth))].join(' | ').trimEnd();
const liveLine = (lead: readonly string[], groups: readonly (readonly string[])[]) =>
  [cells(LEAD, lead, '  '), ...groups.map((g) => cells(PER_BACKEND, g, ' '))].join(' | ').trimEnd();

const pct = (part: number, whole: number) => (whole > 0 ? `${Math.round((100 * part) / whole)}%` : '-');
const ms = (v: number | null) => (v === null ? 'not seen' : `${Math.round(v)} ms`);
const weightsText = (w: Weights | null) =>
  w === null
    ? '(the LB did not answer)'
    : [...w]
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([id, v]) => `${id}=${v}`)
        .join(' ');

/**
 * " 1.64 queue": the tightest signal's pressure and name, or the phase when not in normal service.
 * In parentheses when `stale`: the controller logs scores only with a change of the weights, so an
 * old value is the last one known, not the current one.
 */
function pressureText(s: BackendWeight | undefined, stale: boolean): string {
  if (s === undefined) return '';
  let text: string;
  if (s.phase !== 'normal') text = s.phase.replace('_', ' ');
  else if (s.pressure === null) text = '-';
  else {
    const p = s.pressure < 10 ? s.pressure.toFixed(2) : s.pressure.toFixed(0);
    text = `${p.padStart(4)} ${SIGNAL_SHORT[s.dominant ?? ''] ?? s.dominant ?? ''}`;
  }
  return stale ? `(${text})` : ` ${text}`;
}

function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) =>
      r
        .map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)))
        .join('   ')
        .trimEnd(),
    )
    .join('\n');
}

// ---- the probes: what is read each second ------------------------------------------------------

const IDS = CAPACITIES.map((_, i) => `be${i + 1}`);
const POOL_CPS = CAPACITIES.reduce((a, b) => a + b, 0);

/** Everything the demo reads, opened on a running lab; `close()` ends the RPC connections. */
class Probes {
  readonly lb: LbView;
  private readonly backends: KamailioRpcClient[];
  private readonly sipSockets: SipEndpoint[];
  private readonly deltas = new CounterDeltas();

  constructor(
    lab: RunningLab,
    readonly told: ControllerEvents,
  ) {
    const { plan } = lab.state;
    this.lb =
      lab.state.lb_kind === 'opensips'
        ? openSipsLbView(new OpenSipsMiClient({ url: lab.state.lb_rpc_url }))
        : kamailioLbView(
            new KamailioRpcClient({
              url: lab.state.lb_rpc_url,
              username: plan.lb.rpc.username,
              password: plan.lb.rpc.password,
            }),
          );
    this.backends = plan.backends.map(
      (b) => new KamailioRpcClient({ url: `http://${b.sip.address}:${b.rpcPort}/RPC` }),
    );
    this.sipSockets = plan.backends.map((b) => b.sip);
  }

  static async open(lab: RunningLab): Promise<Probes> {
    return new Probes(lab, await ControllerEvents.open(lab.state.configs.controller));
  }

  /**
   * One second's worth: the LB's weights, and per counter its increase since the previous call
   * (null on the first call, and for a Kamailio that does not answer).
   */
  async sample(): Promise<Second> {
    const [weights, lb, ...backends] = await Promise.all([
      readWeights(this.lb),
      this.lb.invites(),
      ...this.backends.map(invitesReceived),
    ]);
    const drops = socketDrops(this.sipSockets);
    return {
      weights,
      lbInvites: this.deltas.next('lb', lb ?? null),
      invites: IDS.map((id, i) => this.deltas.next(id, backends[i] ?? null)),
      drops: IDS.map((id, i) => this.deltas.next(`drops-${id}`, drops[i] ?? null)),
    };
  }

  close(): void {
    this.told.close();
    this.lb.close();
    this.backends.forEach((c) => c.close());
  }
}

interface Second {
  readonly weights: Weights | null;
  readonly lbInvites: number | null;
  /** Per backend (IDS order). */
  readonly invites: readonly (number | null)[];
  readonly drops: readonly (number | null)[];
}

// ---- the run -----------------------------------------------------------------------------------------

interface PhaseRun {
  readonly phase: LoadPhase;
  readonly sipp: SippRun;
  /** INVITEs each backend received in the seconds this phase was the newest one offering load. */
  readonly invites: number[];
  /** Datagrams dropped at each backend's SIP socket in those seconds. */
  readonly drops: number[];
}

interface VictimKill {
  /** Epoch ms of the SIGKILL (controller event times are epoch ms). */
  wall: number | null;
  /** SIGKILL to weight 0 at the LB; null if not seen within OUT_DEADLINE_MS. */
  outMs: number | null;
  watch: Promise<void> | null;
}

const say = (s: string) => process.stdout.write(`${s}\n`);

function printBanner(): void {
  const killPhase = PHASES.find((p) => p.killAfterMs !== undefined);
  say(`sipweigh demo: adaptive SIP load balancing for ${LB_NAME}; every part real, all on loopback`);
  say(
    `  ${LB_NAME} LB 127.0.0.10 -> ${IDS.map((id, i) => `${id} ${CAPACITIES[i]} calls/s`).join(', ')} ` +
      `(emulated Kamailio backends; pool ${POOL_CPS} calls/s)`,
  );
  say(
    `  sipp offers ${PHASES.map((p) => p.rate)
      .filter((r, i, all) => r !== all[i - 1])
      .join(' -> ')} calls/s through the LB; ` +
      `${VICTIM} is SIGKILLed (Kamailio + agent) ${(killPhase?.killAfterMs ?? 0) / 1000} s into the last step`,
  );
}

function printLegend(): void {
  say('');
  say(
    'each second: offered = calls/s sipp offers; LB INV/s = INVITEs the LB received (with retransmissions);',
  );
  say(`ok/failed = calls so far. Per backend: wt = its weight at the LB (${LIST_READ}, read back);`);
  say("INV/s, share = INVITEs it received; pressure = the controller's tightest load signal, 1.00 = at the");
  say('edge of capacity (rtt = OPTIONS round trip, queue = SIP socket queue, util = calls/s). The');
  say(
    `controller logs it with each change of the weights; (in parentheses) = logged over ${STALE_MS / 1000} s ago`,
  );
  say('');
  say(groupLine(IDS.map((id, i) => `${id}, capacity ${CAPACITIES[i]} calls/s`)));
  say(
    liveLine(
      LEAD.map((c) => c.title),
      IDS.map(() => PER_BACKEND.map((c) => c.title)),
    ),
  );
}

/** What the controller said since the last second: health changes, panics, a new admission limit. */
function printControllerNews(told: ControllerEvents, kill: VictimKill): void {
  const limitBefore = told.admissionCps;
  for (const e of told.poll()) {
    if (typeof e === 'string') say(`  >> controller: ${e}`);
    else
      say(
        `  >> controller: ${e.backend} ${e.from} -> ${e.to}` +
          (kill.wall === null ? '' : ` (${ms(e.at - kill.wall)} after the SIGKILL)`),
      );
  }
  // Several changes a second are possible: one line from where the second started to where it ended.
  if (told.admissionCps !== limitBefore)
    say(
      `  >> controller: admission limit at the LB ${limitBefore ?? 'none'} -> ${told.admissionCps} calls/s`,
    );
}

function liveRow(
  t: number,
  offeredCps: number,
  s: Second,
  runs: readonly PhaseRun[],
  told: ControllerEvents,
): string {
  const sum = s.invites.reduce<number>((a, v) => a + (v ?? 0), 0);
  const calls = runs.map((r) => readSippStats(r.sipp.statsFile));
  const ok = calls.reduce((a, c) => a + c.successful, 0);
  const failed = calls.reduce((a, c) => a + c.failed, 0);
  const stale = told.scoredAt === null || Date.now() - told.scoredAt >= STALE_MS;
  return liveLine(
    [`${t}s`, `${offeredCps}/s`, s.lbInvites === null ? '?' : String(s.lbInvites), `${ok}/${failed}`],
    IDS.map((id, i) => {
      const got = s.invites[i] ?? null;
      return [
        String(s.weights?.get(id) ?? '?'),
        got === null ? 'down' : String(got),
        got === null ? '' : pct(got, sum),
        pressureText(told.scores.get(id), stale),
      ];
    }),
  );
}

/** SIGKILL of the victim's Kamailio and agent, then a watch of the LB until its weight is 0. */
async function killVictim(lab: RunningLab, probes: Probes, result: VictimKill): Promise<void> {
  say(`  >> SIGKILL ${VICTIM}: its Kamailio and its agent`);
  const wall = Date.now();
  const since = performance.now();
  await Promise.all([killMember(lab, `backend-${VICTIM}`), killMember(lab, `agent-${VICTIM}`)]);
  result.wall = wall;
  result.watch = timeToOut(probes.lb, VICTIM, since).then((v) => {
    result.outMs = v;
    say(
      v === null
        ? `  >> ${VICTIM} still has weight at the LB ${OUT_DEADLINE_MS / 1000} s after the SIGKILL`
        : `  >> ${VICTIM} out of rotation at the LB (weight 0 in ${LIST_READ}) ${ms(v)} after the SIGKILL`,
    );
  });
}

/** The phases, one sipp each, a live line a second, the kill on its timer; returns the phases run. */
async function runLoad(lab: RunningLab, probes: Probes, kill: VictimKill): Promise<PhaseRun[]> {
  const { plan } = lab.state;
  const runs: PhaseRun[] = [];
  const offer = async (p: LoadPhase, i: number) => {
    const sipp = await startSipp(lab.group, {
      name: `uac-${i + 1}`,
      scenario: LAB_SCENARIOS.uac,
      ...labClient(plan, 5060 + i), // a phase's last calls overlap the next phase: one port each
      rate: p.rate,
      maxCalls: p.rate * p.seconds,
      timeoutS: p.seconds + 30,
      traceCounts: true,
      extraArgs: ['-recv_timeout', String(RECV_TIMEOUT_MS)],
    });
    runs.push({ phase: p, sipp, invites: IDS.map(() => 0), drops: IDS.map(() => 0) });
  };

  await probes.sample(); // the counters' baselines
  const loadSeconds = PHASES.reduce((a, p) => a + p.seconds, 0);
  const phaseAt = new Map<number, number>(); // second -> index of the phase starting then
  PHASES.reduce((t, p, i) => (phaseAt.set(t, i), t + p.seconds), 0);
  const start = performance.now();
  let killTimer: NodeJS.Timeout | undefined;
  try {
    for (let t = 0; t <= loadSeconds + TAIL_S; t++) {
      if (t > 0) {
        await sleep(Math.max(0, start + t * 1000 - performance.now()));
        const second = await probes.sample();
        printControllerNews(probes.told, kill);
        const current = runs[runs.length - 1];
        if (current)
          IDS.forEach((_, i) => {
            current.invites[i]! += second.invites[i] ?? 0;
            current.drops[i]! += second.drops[i] ?? 0;
          });
        say(liveRow(t, t <= loadSeconds ? (current?.phase.rate ?? 0) : 0, second, runs, probes.told));
      }
      const pi = phaseAt.get(t);
      const p = pi === undefined ? undefined : PHASES[pi];
      if (p && pi !== undefined) {
        await offer(p, pi);
        if (p.killAfterMs !== undefined)
          killTimer = setTimeout(() => void killVictim(lab, probes, kill), p.killAfterMs);
      }
    }
  } finally {
    if (killTimer) clearTimeout(killTimer);
  }
  await kill.watch;
  return runs;
}

/**
 * Where a phase's failed calls gave up: failed in setup (no answer to the INVITE, or a final reply
 * other than 200) or established and then lost (the BYE unanswered). Null without sipp's counts.
 */
function failureLine(r: PhaseRun, result: SippResult): string | null {
  const split = splitFailures(result.counts);
  if (split === null) return null;
  const killed = r.phase.killAfterMs !== undefined;
  return (
    `failed in "${r.phase.label}": ${split.failedInSetup} in setup (${split.unanswered} INVITEs never answered ` +
    `within ${RECV_TIMEOUT_MS / 1000} s, ${split.failedInSetup - split.unanswered} final replies other than 200), ` +
    `${split.byeLost} established ${split.byeLost === 1 ? 'call' : 'calls'} lost their BYE` +
    (killed ? ` (their dialog died with ${VICTIM})` : '')
  );
}

function printSummary(
  runs: readonly PhaseRun[],
  results: readonly SippResult[],
  kill: VictimKill,
  lbStats: { readonly redispatched: number | null; readonly admission503: number | null },
  final: Weights | null,
  told: ControllerEvents,
): void {
  const stats = results.map((r) => r.stats);
  say('');
  say(
    table([
      [
        'phase',
        'offered',
        'completed',
        'failed',
        ...IDS.map((id) => `INVITEs at ${id}`),
        `dropped at ${IDS.join('/')}`,
      ],
      ...runs.map((r, i) => {
        const total = r.invites.reduce((a, b) => a + b, 0);
        return [
          `${r.phase.label} for ${r.phase.seconds} s`,
          String(stats[i]?.created ?? 0),
          String(stats[i]?.successful ?? 0),
          String(stats[i]?.failed ?? 0),
          ...r.invites.map((n) => `${n} (${pct(n, total)})`),
          r.drops.join('/'),
        ];
      }),
      ['capacity share', '', '', '', ...CAPACITIES.map((c) => pct(c, POOL_CPS)), ''],
    ]),
  );
  say('');
  say(
    `${VICTIM} SIGKILL -> weight 0 at the LB: ${ms(kill.outMs)} (read back from ${LIST_READ} every ${OUT_POLL_MS} ms)`,
  );
  const { redispatched, admission503 } = lbStats;
  say(
    redispatched === null
      ? 'calls saved by re-dispatch: n/a (this LB has no sipweigh_redispatched statistic)'
      : `calls saved by re-dispatch: ${redispatched} (INVITE retransmissions the LB moved off ${VICTIM} ` +
          'once it was out of rotation, to a live backend; its statistic sipweigh_redispatched)',
  );
  // The kill phase always, to show its split even at 0; the others only when something failed.
  runs.forEach((r, i) => {
    const result = results[i];
    if (!result || (result.stats.failed === 0 && r.phase.killAfterMs === undefined)) return;
    say(failureLine(r, result) ?? `failed in "${r.phase.label}": ${result.stats.failed} (no sipp counts)`);
  });
  if (admission503 !== null && admission503 > 0)
    say(
      `the LB's admission control refused ${admission503} calls with 503 over the run (a final reply other than 200)`,
    );
  say(
    redispatched === null
      ? `(this LB keeps a call's INVITE retransmissions on the backend it chose first: a call it sent to ${VICTIM} ` +
          'before it was out cannot complete)'
      : `(a call whose INVITE went to ${VICTIM} is re-dispatched at the client's next retransmission once ` +
          `${VICTIM} is out of rotation; a call established on it loses its BYE: no transparent LB can save that one)`,
  );
  say(`final weights at the LB: ${weightsText(final)}`);
  say(
    `the controller pushed to the LB ${told.pushes} time${told.pushes === 1 ? '' : 's'}, ` +
      `each push verified by reading ${LIST_READ} back`,
  );
}

async function main(): Promise<number> {
  printBanner();
  let lab: RunningLab | undefined;
  let probes: Probes | undefined;
  const stop = async () => {
    probes?.close();
    probes = undefined;
    await lab?.stop();
    lab = undefined;
  };
  process.once('SIGINT', () => void stop().then(() => process.exit(130)));
  const t0 = performance.now();
  try {
    say(
      `starting: ${LB_NAME} LB, 3 Kamailio backends each with a sipp UAS and a sipweigh agent, sipweigh controller`,
    );
    lab = await startLab({
      backends: CAPACITIES.length,
      capacities: [...CAPACITIES],
      controller: true,
      net: 0,
      // A naive list (equal weights), as an operator might start: the controller corrects it.
      initialWeights: 'equal',
      dir: join(tmpdir(), 'sipweigh-demo'),
      lb: LB_KIND,
    });
    probes = await Probes.open(lab);
    say(`the LB starts with a naive list, equal weights: ${weightsText(await readWeights(probes.lb))}`);
    const { told } = probes;

    // The controller trusts an agent after a few answers in a row, then scores the set.
    const scoreBy = performance.now() + FIRST_SCORE_DEADLINE_MS;
    while (told.scoredAt === null && performance.now() < scoreBy) {
      told.poll();
      await sleep(100);
    }
    say(
      `lab up in ${((performance.now() - t0) / 1000).toFixed(1)} s; ` +
        `${told.scoredAt !== null ? 'the controller scores the set' : 'the controller has not scored the set yet'}; ` +
        (told.admissionCps === null ? '' : `admission limit at the LB ${told.admissionCps} calls/s; `) +
        `weights at the LB: ${weightsText(await readWeights(probes.lb))}`,
    );
    printLegend();

    const kill: VictimKill = { wall: null, outMs: null, watch: null };
    const lbBefore = await probes.lb.scriptStats();
    const runs = await runLoad(lab, probes, kill);
    // Each phase's sipp ends by itself once its last call completed or timed out (bounded by timeoutS).
    const results: SippResult[] = [];
    for (const r of runs) results.push(await r.sipp.done());
    const lbAfter = await probes.lb.scriptStats();
    const lbStats = {
      redispatched: statDelta(lbBefore, lbAfter, 'script.sipweigh_redispatched'),
      admission503: statDelta(lbBefore, lbAfter, 'script.sipweigh_admission_503'),
    };
    const final = await readWeights(probes.lb);
    told.poll();
    printSummary(runs, results, kill, lbStats, final, told);
    say(`demo run time ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    const everyPhaseRan = results.length === PHASES.length && results.every((r) => r.stats.created > 0);
    return kill.outMs !== null && everyPhaseRan ? 0 : 1;
  } finally {
    await stop();
    say('lab down');
  }
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`demo failed: ${(e as Error).message}\n`);
    process.exit(1);
  },
);
