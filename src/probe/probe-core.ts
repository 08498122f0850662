/**
 * The controller's side of the heartbeat, without sockets or timers: it is handed datagrams and
 * clock ticks and hands back datagrams to send (through `send`) and events. probe-endpoint.ts
 * binds it to a UDP socket and a timer; tests can drive it directly.
 *
 * What it does per backend: schedule probes (with jitter), match reports to probes (RTT, misses),
 * run the health state machine, keep the latest metrics, answer hellos, register self-announcing
 * backends where their set allows it, and drain on bye.
 *
 * What it refuses to do for input: remember anything about a backend id it does not know (unknown
 * ids are dropped after a constant amount of work and never stored), or do more than a few HMACs
 * per datagram. Every dropped datagram is counted by reason.
 */
import { randomBytes } from 'node:crypto';
import {
  emptyHeader,
  openDatagram,
  readHeaderInto,
  typeMask,
  encodeMessage,
  encodeJson,
  DROP_REASONS,
  type DropReason,
  type DatagramHeader,
} from '../heartbeat/codec.js';
import { backendKeys, deriveBackendKey, heartbeatKey, type HeartbeatKey } from '../heartbeat/keys.js';
import {
  AGENT_SENDS,
  BOOT_ID_PATTERN,
  type ByeMessage,
  type HelloMessage,
  type ReportMessage,
  type ReportMetrics,
} from '../heartbeat/messages.js';
import { PeerReplayState, type FreshnessLimits } from '../heartbeat/replay.js';
import {
  DEFAULT_HEALTH_PARAMS,
  HEARTBEAT_DEFAULTS,
  SUSPECT_SPEEDUP,
  freshnessOf,
  timingOf,
} from './options.js';
import { DueHeap, type DueItem } from './due-heap.js';
import type { SshConfig } from '../config/types.js';
import type { BackendSource, BackendSpec } from '../discovery/backend-spec.js';
import type { UdpAddress } from '../util/udp-address.js';
import {
  agentlessSsh,
  probedBy,
  sameSsh,
  sshTargetName,
  type PollVerdict,
  type ProbeVia,
} from './agentless.js';
import { ProbeTracker } from '../health/probe-tracker.js';
import {
  initialHealth,
  transition,
  type BackendHealth,
  type HealthEvent,
  type HealthParams,
  type HealthState,
} from '../health/state-machine.js';

export interface HeartbeatTiming {
  /** Probe interval while up/down/returning/draining. */
  readonly probeIntervalMs: number;
  /** A probe unanswered this long is a miss. Must leave room for the agent's answer. */
  readonly probeTimeoutMs: number;
  /** Each interval is multiplied by a uniform factor in [1 - jitter, 1 + jitter]. */
  readonly jitter: number;
  /** While suspect, probe this many times faster (confirm or clear the suspicion sooner). */
  readonly suspectSpeedup: number;
  /**
   * Probe budget of this controller. When backends × (1000 / interval) would exceed it, every
   * backend's interval is stretched to fit: detection gets slower for all, instead of the controller
   * falling behind, answers queueing in its own socket and every backend looking dead at once.
   */
  readonly maxProbesPerSecond: number;
}

/** The schema's defaults (max_probes_per_s: about half of what one core sustained in the heartbeat bench). */
export const DEFAULT_TIMING: HeartbeatTiming = {
  ...timingOf(HEARTBEAT_DEFAULTS),
  suspectSpeedup: SUSPECT_SPEEDUP,
};

export interface ProbeCoreOptions {
  /** Master keys, current first (a second one during rotation). */
  readonly masterKeys: readonly Buffer[];
  readonly timing?: Partial<HeartbeatTiming>;
  readonly health?: Partial<HealthParams>;
  readonly freshness?: FreshnessLimits;
  /** Sets into which a backend may register itself with a signed hello. */
  readonly selfRegistrationSets?: ReadonlySet<number>;
  /** Cap on self-registered backends (bounds memory against a leaked key being used to register many ids). */
  readonly maxSelfRegistered?: number;
  /**
   * A self-registered backend not heard from (no authentic message) this long is forgotten. Without
   * this, every id that ever said hello stays probed forever: churned instances eat the probe budget
   * (stretching every live backend's interval) and, at the cap, lock new registrations out. Its agent
   * announces itself again if it comes back. Default 10 minutes.
   */
  readonly forgetSelfRegisteredAfterMs?: number;
  /** The controller's boot id (random by default). */
  readonly bootId?: string;
  /** Monotonic ms (probe deadlines, RTT) and wall-clock ms (timestamps on the wire). */
  readonly clock?: { mono(): number; wall(): number };
  /** Uniform [0,1) source for jitter (tests pass a seeded one). */
  readonly random?: () => number;
}

/** What the controller loop gets told. All optional; called synchronously from receive()/tick(). */
export interface ProbeEvents {
  onReport?(b: BackendView, metrics: ReportMetrics, rttMs: number | null): void;
  onHealthChange?(b: BackendView, from: HealthState, to: HealthState): void;
  onRegistered?(b: BackendView): void;
  /** A self-registered backend was forgotten after long silence (forgetSelfRegisteredAfterMs). */
  onForgotten?(b: BackendView): void;
}

/** Read-only view of one backend for the controller loop, status API and tests. */
export interface BackendView {
  readonly id: string;
  readonly set: number;
  readonly uri: string;
  readonly capacity: number;
  readonly source: BackendSource;
  readonly agent: UdpAddress | null;
  /** How it is probed (agentless.ts). */
  readonly via: ProbeVia;
  /** `user@host:port` of an agentless backend's SSH probe, else null. */
  readonly sshTarget: string | null;
  /** Why its last probe failed (SSH down, a refused host key, no SIP server); null after a good one. */
  readonly lastError: string | null;
  readonly health: HealthState;
  readonly flapPenalty: number;
  readonly srttMs: number;
  readonly lastRttMs: number;
  /** Probes of this backend that went unanswered, since it became known (status API, /metrics). */
  readonly misses: number;
  readonly metrics: ReportMetrics | null;
  /** Monotonic ms of the last accepted report, NaN if none. */
  readonly lastReportAt: number;
  readonly agentBoot: string | null;
}

export interface ProbeCounters {
  received: number;
  accepted: { report: number; hello: number; bye: number };
  dropped: Record<DropReason, number>;
  probesSent: number;
  helloAcksSent: number;
  sendErrors: number;
  misses: number;
  lateReports: number;
  /** Authentic reports echoing no probe we remember (duplicates or very late). */
  unmatchedReports: number;
  registered: number;
  /** Self-registered backends forgotten after long silence. */
  forgotten: number;
  /** Exceptions caught at the socket boundary (a bug if ever non-zero; the endpoint keeps running). */
  internalErrors: number;
  /** Times the overload cap on the probe rate changed (overload.ts). */
  probeCapChanges: number;
  /** Agentless probes over SSH, by verdict (their misses are also in `misses`). */
  sshProbes: { ok: number; missed: number };
}

class Backend implements DueItem, BackendView {
  due = Infinity;
  heapIndex = -1;
  keys: HeartbeatKey[];
  /** Index in `keys` of the key the agent last signed with; probes are signed with the same one. */
  signKey = 0;
  replay: PeerReplayState;
  readonly tracker = new ProbeTracker();
  healthRec: BackendHealth;
  agent: UdpAddress | null;
  /**
   * Starts at a random point, not 0: a report captured shortly before a controller restart (still
   * fresh, and the new controller's replay windows are empty) then echoes no sequence the new
   * controller will use, instead of answering its first probes.
   */
  probeSeq = randomBytes(4).readUInt32BE(0);
  nextProbeAt = Infinity;
  lastProbeAt = -Infinity;
  misses = 0;
  metrics: ReportMetrics | null = null;
  lastReportAt = NaN;
  /** Monotonic ms of the last authentic message (or of registration). */
  lastHeardAt: number;
  reportedDraining = false;
  lastError: string | null = null;

  constructor(
    public spec: BackendSpec,
    keys: HeartbeatKey[],
    now: number,
    replay = new PeerReplayState(),
  ) {
    this.keys = keys;
    this.replay = replay;
    this.agent = spec.agent ?? null;
    this.healthRec = initialHealth(now);
    this.lastHeardAt = now;
  }
  get id() {
    return this.spec.id;
  }
  get set() {
    return this.spec.set;
  }
  get uri() {
    return this.spec.uri;
  }
  get capacity() {
    return this.spec.capacity;
  }
  get source() {
    return this.spec.source;
  }
  get health() {
    return this.healthRec.state;
  }
  get flapPenalty() {
    return this.healthRec.penalty;
  }
  get srttMs() {
    return this.tracker.srttMs;
  }
  get lastRttMs() {
    return this.tracker.lastRttMs;
  }
  get agentBoot() {
    return this.replay.currentBoot;
  }
  get via() {
    return probedBy(this.spec);
  }
  get sshTarget() {
    const ssh = agentlessSsh(this.spec);
    return ssh ? sshTargetName(ssh) : null;
  }
}

const ACCEPT = typeMask(AGENT_SENDS);

function checkedMasters(masters: readonly Buffer[]): readonly Buffer[] {
  if (masters.length < 1 || masters.length > 2) throw new RangeError('one or two master keys');
  return masters;
}

export class ProbeCore {
  readonly bootId: string;
  readonly counters: ProbeCounters;
  private readonly backends = new Map<string, Backend>();
  private readonly heap = new DueHeap<Backend>();
  private readonly timing: HeartbeatTiming;
  private readonly healthParams: HealthParams;
  private readonly freshness: FreshnessLimits;
  private masters: readonly Buffer[];
  private readonly selfRegSets: ReadonlySet<number>;
  private readonly maxSelfRegistered: number;
  private readonly forgetAfterMs: number;
  private selfRegistered = 0;
  /** Reused for every datagram's header (nothing keeps a reference past receive()). */
  private readonly header = emptyHeader();
  /** Backends currently suspect (for the fast-probing guard). */
  private suspects = 0;
  private probeCap = Infinity;
  private readonly mono: () => number;
  private readonly wall: () => number;
  private readonly random: () => number;
  /**
   * Called when a backend starts being probed (added, or re-addressed), so a socket shell can
   * re-arm its timer: otherwise a backend added while nothing was scheduled (discovery after start)
   * would wait for the next datagram to be probed at all.
   */
  onScheduleChange: (() => void) | null = null;
  /**
   * Called when a backend starts or stops being probed over SSH, or its SSH settings change, so the
   * SSH shell can start, restart or stop that backend's poller (agentlessSpec tells which).
   */
  onAgentlessChange: ((id: string) => void) | null = null;

  constructor(
    opts: ProbeCoreOptions,
    /** Sends one datagram; must not throw (count failures itself or via `sendFailed`). */
    private readonly send: (buf: Buffer, to: UdpAddress) => void,
    private readonly events: ProbeEvents = {},
  ) {
    this.masters = checkedMasters(opts.masterKeys);
    this.timing = { ...DEFAULT_TIMING, ...opts.timing };
    if (!(this.timing.probeTimeoutMs > 0 && this.timing.probeIntervalMs > 0))
      throw new RangeError('probe interval and timeout must be > 0');
    if (!(this.timing.maxProbesPerSecond > 0)) throw new RangeError('maxProbesPerSecond must be > 0');
    if (!(this.timing.jitter >= 0 && this.timing.jitter < 1))
      throw new RangeError('jitter must be in [0, 1)');
    this.healthParams = { ...DEFAULT_HEALTH_PARAMS, ...opts.health };
    this.freshness = opts.freshness ?? freshnessOf(HEARTBEAT_DEFAULTS);
    this.selfRegSets = opts.selfRegistrationSets ?? new Set();
    this.maxSelfRegistered = opts.maxSelfRegistered ?? HEARTBEAT_DEFAULTS.max_self_registered;
    this.forgetAfterMs = opts.forgetSelfRegisteredAfterMs ?? 600_000;
    if (!(this.forgetAfterMs > 0)) throw new RangeError('forgetSelfRegisteredAfterMs must be > 0');
    this.bootId = opts.bootId ?? randomBytes(12).toString('base64url');
    if (!BOOT_ID_PATTERN.test(this.bootId))
      throw new RangeError(`invalid boot id ${JSON.stringify(this.bootId)}`);
    this.mono = opts.clock?.mono ?? (() => performance.now());
    this.wall = opts.clock?.wall ?? (() => Date.now());
    this.random = opts.random ?? Math.random;
    this.counters = {
      received: 0,
      accepted: { report: 0, hello: 0, bye: 0 },
      dropped: Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>,
      probesSent: 0,
      helloAcksSent: 0,
      sendErrors: 0,
      misses: 0,
      lateReports: 0,
      unmatchedReports: 0,
      registered: 0,
      forgotten: 0,
      internalErrors: 0,
      probeCapChanges: 0,
      sshProbes: { ok: 0, missed: 0 },
    };
  }

  // ---- registry -------------------------------------------------------------------------------

  get size(): number {
    return this.backends.size;
  }

  get(id: string): BackendView | undefined {
    return this.backends.get(id);
  }

  list(): BackendView[] {
    return [...this.backends.values()];
  }

  /**
   * Adds (or updates the address/capacity of) a backend from config or an LB's list. The spec's
   * `agent` is the configured address: one that a reload removed or changed is probed no more.
   * An address learned from the agent's hello is the core's own and outlives re-upserts (every
   * reconcile upserts each backend again) until the next hello moves it.
   */
  upsert(spec: BackendSpec): BackendView {
    const now = this.mono();
    const old = this.backends.get(spec.id);
    if (old) {
      // A hello-registered backend that later appears in config/dispatcher is adopted by them.
      if (old.source === 'hello' && spec.source !== 'hello') this.selfRegistered--;
      const before = old.spec;
      old.spec = spec;
      if (spec.agent) this.setAgent(old, spec.agent, now);
      else if (before.agent || spec.ssh) this.stopProbing(old);
      if (!sameSsh(agentlessSsh(before), agentlessSsh(spec))) {
        if (probedBy(before) !== probedBy(spec)) old.lastError = null;
        this.onAgentlessChange?.(spec.id);
      }
      return old;
    }
    const b = new Backend(spec, backendKeys(spec.id, this.masters), now);
    this.backends.set(spec.id, b);
    if (b.agent) this.startProbing(b, now);
    if (agentlessSsh(spec)) this.onAgentlessChange?.(spec.id);
    return b;
  }

  /**
   * Puts new master keys in force (a rotation's steps, by config reload). Each backend keeps being
   * probed with the key its agent last signed with if that key is still held, so an agent that has
   * not moved yet misses nothing; a backend whose key was dropped is probed with the new current one.
   */
  setMasterKeys(masters: readonly Buffer[]): void {
    this.masters = checkedMasters(masters);
    for (const b of this.backends.values()) {
      const signing = b.keys[b.signKey]!;
      b.keys = backendKeys(b.id, this.masters);
      b.signKey = Math.max(
        0,
        b.keys.findIndex((k) => k.secret.equals(signing.secret)),
      );
    }
  }

  remove(id: string): boolean {
    const b = this.backends.get(id);
    if (!b) return false;
    this.heap.remove(b);
    this.backends.delete(id);
    if (b.health.kind === 'suspect') this.suspects--;
    if (b.source === 'hello') this.selfRegistered--;
    if (agentlessSsh(b.spec)) this.onAgentlessChange?.(id);
    return true;
  }

  /** The SSH settings of a backend probed over SSH; undefined for any other (or unknown) id. */
  agentlessSpec(id: string): SshConfig | undefined {
    const b = this.backends.get(id);
    return (b && agentlessSsh(b.spec)) ?? undefined;
  }

  /** Ids of the backends probed over SSH. */
  agentlessIds(): string[] {
    return [...this.backends.values()].filter((b) => agentlessSsh(b.spec) !== null).map((b) => b.id);
  }

  /**
   * One SSH probe's verdict (agentless.ts judgePoll), fed like a probe and its report: an ok
   * answers with its round trip and its metrics become the latest report; a miss is a miss.
   * Ignored for a backend no longer probed over SSH (a verdict that raced a reload).
   */
  recordPoll(id: string, verdict: PollVerdict): void {
    const b = this.backends.get(id);
    if (!b || agentlessSsh(b.spec) === null) return;
    const now = this.mono();
    b.lastHeardAt = now;
    if (!verdict.ok) {
      b.lastError = verdict.cause;
      this.counters.sshProbes.missed++;
      this.counters.misses++;
      b.misses++;
      this.apply(b, { type: 'probe_missed', at: now });
      return;
    }
    b.lastError = null;
    this.counters.sshProbes.ok++;
    b.tracker.sample(verdict.rttMs);
    b.metrics = verdict.metrics;
    b.lastReportAt = now;
    this.apply(b, { type: 'probe_ok', at: now });
    this.events.onReport?.(b, verdict.metrics, verdict.rttMs);
  }

  /** Operator drain / undrain. */
  drain(id: string, on: boolean): boolean {
    const b = this.backends.get(id);
    if (!b) return false;
    this.apply(b, on ? { type: 'drain', at: this.mono() } : { type: 'undrain', at: this.mono() });
    return true;
  }

  /**
   * Passive evidence (health/passive-evidence.ts decided it): an up backend becomes suspect and is
   * probed sooner. True when it did; any other state is left as it is.
   */
  retransmitted(id: string): boolean {
    const b = this.backends.get(id);
    if (!b || b.healthRec.state.kind !== 'up') return false;
    this.apply(b, { type: 'retransmitted', at: this.mono() });
    return (b.healthRec.state as HealthState).kind === 'suspect';
  }

  // ---- receive ---------------------------------------------------------------------------------

  /** Handles one datagram from `from`. Never throws on any input. */
  receive(buf: Buffer, from: UdpAddress): void {
    this.counters.received++;
    const hdr = this.header;
    const bad = readHeaderInto(buf, ACCEPT, hdr);
    if (bad !== null) return this.dropped(bad);
    const b = this.backends.get(hdr.backendId);
    if (b === undefined) return this.receiveUnknown(buf, hdr, from);

    const d = openDatagram(buf, hdr, b.keys);
    if (!d.ok) return this.dropped(d.reason);
    const msg = d.msg;
    const bootBefore = b.replay.currentBoot;
    const r = b.replay.admit(msg.boot, msg.seq, msg.ts, this.wall(), this.freshness);
    if (r !== null) return this.dropped(r);
    // Answer in the key the agent uses: during a rotation agents move over one by one.
    if (b.keys[b.signKey]!.id !== d.keyId)
      b.signKey = Math.max(
        0,
        b.keys.findIndex((k) => k.id === d.keyId),
      );
    const now = this.mono();
    b.lastHeardAt = now;
    const restarted = bootBefore !== null && bootBefore !== msg.boot;
    switch (msg.type) {
      case 'report':
        // A restart is news whichever message brings it: if the new run's hello was lost, its
        // reports come first, and its later hellos carry a boot we already know.
        if (restarted) this.apply(b, { type: 'hello', at: now, newBoot: true });
        return this.onReport(b, msg, now);
      case 'hello':
        return this.onHello(b, msg, from, now, restarted);
      case 'bye':
        return this.onBye(b, msg, now);
      default:
        // Unreachable: readHeader admitted agent types only.
        return this.dropped('unexpected_type');
    }
  }

  /**
   * A datagram for a backend we do not know. Only a hello can make it known, and only into a set
   * that allows self-registration; everything else is dropped without storing anything.
   */
  private receiveUnknown(buf: Buffer, hdr: DatagramHeader, from: UdpAddress): void {
    if (hdr.type !== 'hello' || this.selfRegSets.size === 0) return this.dropped('unknown_backend');
    // One derivation per master (at most two), a MAC check per matching key id: bounded work, nothing stored.
    const keys: HeartbeatKey[] = [];
    for (const m of this.masters) {
      const k = heartbeatKey(deriveBackendKey(m, hdr.backendId));
      if (k.id === hdr.keyId) keys.push(k);
    }
    if (keys.length === 0) return this.dropped('unknown_key');
    const d = openDatagram(buf, hdr, keys);
    if (!d.ok) return this.dropped(d.reason);
    const hello = d.msg as HelloMessage;
    if (!this.selfRegSets.has(hello.set) || this.selfRegistered >= this.maxSelfRegistered) {
      return this.dropped('not_allowed');
    }
    const replay = new PeerReplayState();
    const r = replay.admit(hello.boot, hello.seq, hello.ts, this.wall(), this.freshness);
    if (r !== null) return this.dropped(r);
    const now = this.mono();
    const b = new Backend(
      // No `agent` in the spec: a self-registered backend's address is whatever its latest hello came from.
      { id: hello.backendId, set: hello.set, uri: hello.uri, capacity: hello.capacity, source: 'hello' },
      backendKeys(hello.backendId, this.masters),
      now,
      replay,
    );
    b.signKey = Math.max(
      0,
      b.keys.findIndex((k) => k.id === d.keyId),
    );
    this.backends.set(b.id, b);
    this.selfRegistered++;
    this.counters.registered++;
    this.events.onRegistered?.(b);
    this.onHello(b, hello, from, now, false);
  }

  private onReport(b: Backend, msg: ReportMessage, now: number): void {
    this.counters.accepted.report++;
    const a = b.tracker.answer(msg.echoSeq, now);
    if (a.kind === 'unmatched') {
      this.counters.unmatchedReports++;
      return;
    }
    b.metrics = msg.metrics;
    b.lastReportAt = now;
    if (a.kind === 'late') this.counters.lateReports++;
    else this.apply(b, { type: 'probe_ok', at: now });
    // The flag is a level, not an edge: while the agent says draining, a backend whose stronger drain
    // (operator, bye) just ended must drain again, or it would return to rotation against the agent's word.
    const flag = msg.metrics.draining;
    if (flag !== b.reportedDraining || (flag && b.healthRec.state.kind !== 'draining')) {
      b.reportedDraining = flag;
      this.apply(b, { type: 'report_draining', at: now, draining: msg.metrics.draining });
    }
    this.events.onReport?.(b, msg.metrics, a.rttMs);
  }

  private onHello(b: Backend, msg: HelloMessage, from: UdpAddress, now: number, newBoot: boolean): void {
    this.counters.accepted.hello++;
    // A configured agent address wins, and so does a configured SSH probe (one measurement per
    // backend); otherwise the hello's source is where probes go.
    if (probedBy(b.spec) === 'hello') this.setAgent(b, from, now);
    this.apply(b, { type: 'hello', at: now, newBoot });
    const ack = encodeMessage(
      {
        type: 'hello_ack',
        backendId: b.id,
        seq: b.probeSeq++,
        ts: Math.floor(this.wall()),
        boot: this.bootId,
        echoSeq: msg.seq,
        echoTs: msg.ts,
        // Within the schema's range whatever the budget stretched it to.
        intervalMs: Math.min(600_000, Math.max(10, Math.round(this.baseIntervalMs()))),
      },
      b.keys[b.signKey]!,
      { validate: false },
    );
    this.counters.helloAcksSent++;
    this.send(ack, from);
  }

  private onBye(b: Backend, _msg: ByeMessage, now: number): void {
    this.counters.accepted.bye++;
    this.apply(b, { type: 'bye', at: now });
  }

  private dropped(reason: DropReason): void {
    this.counters.dropped[reason]++;
  }

  /** For the socket shell: a send failed (counted, never thrown). */
  sendFailed(): void {
    this.counters.sendErrors++;
  }

  // ---- probing ---------------------------------------------------------------------------------

  private setAgent(b: Backend, to: UdpAddress, now: number): void {
    const changed = !b.agent || b.agent.address !== to.address || b.agent.port !== to.port;
    b.agent = { address: to.address, port: to.port };
    if (changed || b.heapIndex < 0) this.startProbing(b, now);
  }

  /** Its address was withdrawn (a reload): no more probes until a hello brings one. */
  private stopProbing(b: Backend): void {
    b.agent = null;
    b.nextProbeAt = Infinity;
    this.heap.remove(b);
  }

  private startProbing(b: Backend, now: number): void {
    // A random phase spreads thousands of backends evenly over the interval.
    b.nextProbeAt = now + this.random() * this.baseIntervalMs();
    this.reschedule(b);
    this.onScheduleChange?.();
  }

  /**
   * Faster probing of suspects is for the odd backend in trouble. When many are suspect at once the
   * cause is more likely on our side (overload, a partition): probing faster would only add load
   * and turn a slowdown into a collapse, so it is off while more than 10 % are suspect.
   */
  private fastProbing(): boolean {
    return this.suspects * 10 <= this.heap.size;
  }

  /** The configured interval, stretched if the probe budget or the overload cap requires it. */
  baseIntervalMs(): number {
    const budget = Math.min(this.timing.maxProbesPerSecond, this.probeCap);
    return Math.max(this.timing.probeIntervalMs, (1000 * this.heap.size) / budget);
  }

  /** Probes per second the schedule wants (every probed backend at the configured interval). */
  get wantedProbesPerSecond(): number {
    return Math.min(this.timing.maxProbesPerSecond, (1000 * this.heap.size) / this.timing.probeIntervalMs);
  }

  /** Current overload cap on probes per second (Infinity when none); set by the endpoint (overload.ts). */
  get probeCapPerSecond(): number {
    return this.probeCap;
  }

  setProbeCap(perSecond: number): void {
    if (!(perSecond > 0)) throw new RangeError('probe cap must be > 0');
    this.probeCap = perSecond;
  }

  private intervalFor(b: Backend): number {
    const base =
      b.health.kind === 'suspect' && this.fastProbing()
        ? this.baseIntervalMs() / this.timing.suspectSpeedup
        : this.baseIntervalMs();
    return base * (1 - this.timing.jitter + 2 * this.timing.jitter * this.random());
  }

  private reschedule(b: Backend): void {
    b.due = Math.min(b.nextProbeAt, b.tracker.nextDeadline);
    if (b.heapIndex < 0) this.heap.push(b);
    else this.heap.update(b);
  }

  /** When tick() next has work (monotonic ms), Infinity if nothing is scheduled. */
  get nextDue(): number {
    return this.heap.peek()?.due ?? Infinity;
  }

  /** Expires deadlines and sends due probes. Returns the next due time. */
  tick(now = this.mono()): number {
    for (;;) {
      const b = this.heap.peek();
      if (b === undefined || b.due > now) break;
      if (b.source === 'hello' && now - b.lastHeardAt >= this.forgetAfterMs) {
        this.remove(b.id);
        this.counters.forgotten++;
        this.events.onForgotten?.(b);
        continue;
      }
      const missed = b.tracker.expire(now);
      for (let i = 0; i < missed; i++) this.missed(b, now);
      if (b.nextProbeAt <= now) this.probe(b, now);
      this.reschedule(b);
    }
    return this.nextDue;
  }

  private missed(b: Backend, now: number): void {
    this.counters.misses++;
    b.misses++;
    // During a key rotation an agent may hold either key and cannot tell us which until it can
    // verify a probe: after each miss, sign the next probe with the other key. Once the agent
    // answers, receive() pins the key it used. Costs at most one miss per backend per rotation.
    if (b.keys.length > 1) b.signKey = (b.signKey + 1) % b.keys.length;
    this.apply(b, { type: 'probe_missed', at: now });
  }

  private probe(b: Backend, now: number): void {
    const seq = b.probeSeq++;
    // The hottest send path: the payload is built by hand (integers and a boot id checked against
    // BOOT_ID_PATTERN at construction, so nothing needs escaping); the codec test checks the result
    // decodes as the probe encodeMessage would make.
    const json = '{"seq":' + seq + ',"ts":' + Math.floor(this.wall()) + ',"boot":"' + this.bootId + '"}';
    const buf = encodeJson('probe', b.id, b.keys[b.signKey]!, json);
    const evicted = b.tracker.sent(seq, now, this.timing.probeTimeoutMs);
    for (let i = 0; i < evicted; i++) this.missed(b, now);
    b.lastProbeAt = now;
    b.nextProbeAt = now + this.intervalFor(b);
    this.counters.probesSent++;
    this.send(buf, b.agent!);
  }

  private apply(b: Backend, ev: HealthEvent): void {
    const before = b.healthRec.state;
    b.healthRec = transition(b.healthRec, ev, this.healthParams);
    const after = b.healthRec.state;
    if (after.kind === before.kind) return;
    if (before.kind === 'suspect') this.suspects--;
    if (after.kind === 'suspect') this.suspects++;
    if (after.kind === 'suspect' && b.heapIndex >= 0 && this.fastProbing()) {
      // Confirm or clear the suspicion sooner: pull the next probe in.
      const sooner = b.lastProbeAt + this.baseIntervalMs() / this.timing.suspectSpeedup;
      if (sooner < b.nextProbeAt) {
        b.nextProbeAt = sooner;
        this.reschedule(b);
      }
    }
    this.events.onHealthChange?.(b, before, after);
  }
}
