/**
 * The closed loop: discover -> probe -> score -> push, plus the schedules. Everything that decides
 * lives in pure modules (scoring/, desired-list.ts, schedules.ts planning, health/); this class only
 * wires them to the heartbeat endpoint, the LB nodes and the clock.
 *
 * Cadence: a scoring cycle runs every `cycleMs` and at once after any health change, so a backend
 * that dies leaves rotation one push after the failure detector says so, not a cycle later.
 * Fail-static: stopping (or dying) pushes nothing; Kamailio keeps the last weights it was given, and
 * its list file holds them for any reload or restart.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { ControllerConfig } from '../config/types.js';
import { applyDiscovery } from '../probe/apply-discovery.js';
import { mergeDiscovery, type DiscoveryNote } from '../discovery/merge.js';
import { endpointOptionsFromConfig } from '../probe/options.js';
import type { BackendView } from '../probe/probe-core.js';
import { ProbeEndpoint } from '../probe/probe-endpoint.js';
import { destinationKey } from '../kamailio/dispatcher-list.js';
import { effectiveWeight } from '../kamailio/dispatcher-list-reply.js';
import { fetchDispatcherList } from '../kamailio/fetch-dispatcher-list.js';
import { NodeSync, type SyncOutcome } from '../push/node-sync.js';
import {
  initialScorerState,
  scoreCycle,
  type CycleResult,
  type ScorerState,
  type ScoringParams,
} from '../scoring/index.js';
import type { Logger } from '../util/logger.js';
import { desiredAdmission, desiredDestinations } from '../push/desired-list.js';
import { NodeLink, type NodeDesired, type NodeOutcome } from '../push/node-link.js';
import type { ReloadChanges } from './reload-plan.js';
import { CronSchedules, planJobs, type ScheduledAction } from './schedules.js';
import { buildStatus, type ControllerStatus } from './status.js';

export interface ControllerOptions {
  readonly logger: Logger;
  /** Scoring cycle period (default: the config's scoring.cycle_ms). */
  readonly cycleMs?: number;
  /** Told of every apply to an LB node (telemetry: push latency). */
  readonly onNodeApply?: (node: string, record: NodeApplyRecord) => void;
}

/** One apply to an LB node as the API and /metrics report it. */
export interface NodeApplyRecord {
  /** `in_sync` only when the LB was read (a cache hit is no push and is not recorded). */
  readonly outcome: 'applied' | 'in_sync' | 'failed';
  /** Wall-clock ms when it finished. */
  readonly at: number;
  readonly durationMs: number;
  readonly changes: number;
  readonly error: string | null;
  readonly driftRepaired: boolean;
}

/** Per LB node since the controller started. */
export interface NodeCounters {
  readonly pushes: { applied: number; in_sync: number; failed: number };
  driftRepairs: number;
  /** Failed applies of any kind (push or admission limit). */
  errors: number;
}

/** What the status API and /metrics read of the controller, taken at one instant. */
export interface ControllerSnapshot {
  readonly now: { readonly mono: number; readonly wall: number };
  readonly startedAt: number;
  readonly views: readonly BackendView[];
  readonly result: CycleResult | null;
  readonly nodes: readonly NodeSnapshot[];
  readonly status: ControllerStatus;
}

export interface NodeSnapshot {
  readonly name: string;
  readonly target: string;
  readonly blocked: string | null;
  /** Read or pushed successfully at least once. */
  readonly synced: boolean;
  readonly last: NodeApplyRecord | null;
  readonly counters: NodeCounters;
  /** Weight of each backend id as this node holds it since the last good push (0 = inactive). */
  readonly weights: ReadonlyMap<string, number> | null;
  readonly consecutiveFailures: number;
}

/**
 * Retries of a failed push: 250 ms doubling to 1 s. An LB that comes back gets its weights within a
 * second (a 10 s cap left it up to 10 s on stale weights after an outage), and a dead one costs one
 * refused connection a second: no spin (measured: 38 attempts and 0.84 s of CPU over a 30 s cut).
 */
const PUSH_RETRY = { initialMs: 250, maxMs: 1000, factor: 2, jitter: 0.2 } as const;

/** Capacity of LB-discovered destinations without `sw_capacity`. */
const DEFAULT_DISCOVERED_CAPACITY = 100;

export class Controller {
  private scorer: ScorerState = initialScorerState();
  private lastCycle: CycleResult | null = null;
  private cycleTimer: NodeJS.Timeout | null = null;
  private cycleQueued = false;
  private stopped = false;
  private readonly panicking = new Set<number>();
  private readonly waiting = new Set<number>();
  /** Last logged weights per set, so only changes are logged. */
  private readonly loggedWeights = new Map<number, string>();
  /** Whether the last apply per node succeeded (transitions are logged). */
  private readonly nodeOk = new Map<string, boolean>();
  /** Last admission outcome kind per node, so a persistent condition is logged once. */
  private readonly admissionKind = new Map<string, string>();
  /** LB nodes not pushed to, and why (their list holds sets we do not manage). */
  private readonly blocked = new Map<string, string>();
  private readonly syncs = new Map<string, NodeSync<NodeDesired, NodeOutcome>>();
  /**
   * Effective weight (0 = not active) of each destination, by set and URI (how the LB itself tells
   * them apart, duid or not), as the first readable LB listed it at discovery; null until one was read.
   */
  private listedWeights: ReadonlyMap<string, number> | null = null;
  private schedules: CronSchedules | null = null;
  private params: ScoringParams;
  private cfg: ControllerConfig;
  private cycleMs: number;
  /** Per LB node: ever read or pushed, counters, the last apply that reached the LB. */
  private readonly synced = new Set<string>();
  private readonly counters = new Map<string, NodeCounters>();
  private readonly lastApply = new Map<string, NodeApplyRecord>();
  /**
   * Backends a reload removed, with the LB nodes that have not yet been pushed a list without them.
   * Until then discovery ignores them: the LB still lists them (we wrote them there), and taking
   * that echo for an LB-discovered backend would keep them in rotation for good.
   */
  private readonly retired = new Map<string, Set<string>>();
  private readonly onNodeApply: ControllerOptions['onNodeApply'];
  private readonly startedAt = performance.now();
  private readonly startedWall = Date.now();
  private statusTimer: NodeJS.Timeout | null = null;
  private statusFileError: string | null = null;
  private isSettled = false;
  /** Long enough for a live backend to pass return_after_oks probes, with room for a lost one. */
  private readonly graceMs: number;

  private constructor(
    config: ControllerConfig,
    private readonly endpoint: ProbeEndpoint,
    private readonly links: readonly NodeLink[],
    private readonly logger: Logger,
    cycleMs: number,
    onNodeApply: ControllerOptions['onNodeApply'],
  ) {
    this.cfg = config;
    this.cycleMs = cycleMs;
    this.onNodeApply = onNodeApply;
    this.params = config.scoring.params;
    const hb = config.heartbeat;
    this.graceMs = Math.max(2000, hb.probe_interval_ms * (hb.return_after_oks + 3));
    for (const link of links) {
      this.counters.set(link.name, {
        pushes: { applied: 0, in_sync: 0, failed: 0 },
        driftRepairs: 0,
        errors: 0,
      });
      this.syncs.set(
        link.name,
        new NodeSync<NodeDesired, NodeOutcome>({
          node: link.name,
          backoff: PUSH_RETRY,
          // A retry after a failure reads the LB again: the failed attempt may have half-happened.
          apply: (desired, ctx) => link.apply(desired, ctx.force || ctx.attempt > 0),
          onOutcome: (o, status) => this.reportOutcome(link, o, status.consecutiveFailures),
        }),
      );
    }
  }

  static async start(config: ControllerConfig, opts: ControllerOptions): Promise<Controller> {
    const managed = new Set(config.sets.map((s) => s.id));
    const links = config.lb_nodes.map((n) => new NodeLink(n, managed));
    // The endpoint's events reach the controller once it exists (it needs the endpoint first).
    const ref: { controller?: Controller } = {};
    const endpoint = await ProbeEndpoint.start(endpointOptionsFromConfig(config), {
      onHealthChange: (b, from, to) => ref.controller?.healthChanged(b, from.kind, to.kind),
      onRegistered: (b) =>
        opts.logger.info({ backend: b.id, set: b.set, uri: b.uri }, 'backend registered itself'),
      onForgotten: (b) =>
        opts.logger.info({ backend: b.id }, 'self-registered backend forgotten after silence'),
    });
    const controller = new Controller(
      config,
      endpoint,
      links,
      opts.logger,
      opts.cycleMs ?? config.scoring.cycle_ms,
      opts.onNodeApply,
    );
    ref.controller = controller;
    try {
      await controller.discover();
      await controller.startSchedules();
    } catch (e) {
      await controller.stop();
      throw e;
    }
    controller.startTimers();
    opts.logger.info(
      {
        heartbeat: endpoint.address,
        lb_nodes: links.map((l) => l.describe()),
        backends: endpoint.core.size,
        admission: config.admission.enabled,
      },
      'controller started',
    );
    return controller;
  }

  get core() {
    return this.endpoint.core;
  }

  /** The config in force (the one it started with, or the last reload). */
  get config(): ControllerConfig {
    return this.cfg;
  }

  private startTimers(): void {
    if (this.cycleTimer) clearInterval(this.cycleTimer);
    if (this.statusTimer) clearInterval(this.statusTimer);
    this.statusTimer = null;
    this.cycleTimer = setInterval(() => this.cycle(false), this.cycleMs);
    if (this.cfg.status_file !== undefined) {
      this.statusTimer = setInterval(() => this.writeStatusFile(), 1000);
    }
  }

  private async startSchedules(): Promise<void> {
    const schedules = new CronSchedules(
      planJobs(this.cfg.schedules),
      (action) => this.runScheduled(action),
      this.logger,
      this.cfg.schedules.timezone,
    );
    this.schedules = schedules;
    await schedules.start();
  }

  /**
   * Puts a new config in force; `changes` is what planReload found live-changeable (it refused
   * anything that needs a restart before this is called). Added backends start as never seen, are
   * probed at once and enter rotation through the usual confirmation and slow start; removed ones
   * leave the core now and the LB lists with the next push.
   */
  async applyConfig(next: ControllerConfig, changes: ReloadChanges): Promise<void> {
    if (this.stopped) throw new Error('the controller is stopping');
    const previous = this.cfg;
    this.cfg = next;
    this.params = next.scoring.params;
    for (const id of changes.backends.removed) {
      if (this.core.get(id)?.source !== 'config') continue;
      this.core.remove(id);
      this.retired.set(id, new Set(this.links.map((l) => l.name)));
    }
    for (const set of next.sets) {
      for (const b of set.backends) {
        if (!changes.backends.added.includes(b.id) && !changes.backends.changed.includes(b.id)) continue;
        this.retired.delete(b.id);
        this.core.upsert({
          id: b.id,
          set: set.id,
          uri: b.sip_uri,
          capacity: b.capacity,
          ...(b.agent ? { agent: b.agent } : {}),
          source: 'config',
        });
      }
    }
    this.endpoint.arm();
    if (next.scoring.cycle_ms !== previous.scoring.cycle_ms) this.cycleMs = next.scoring.cycle_ms;
    if (changes.schedules) {
      await this.schedules?.stop();
      await this.startSchedules();
    }
    this.startTimers();
    this.cycle(false);
  }

  /** Everything the API and /metrics show, at one instant. */
  snapshot(): ControllerSnapshot {
    const now = { mono: performance.now(), wall: Date.now() };
    return {
      now,
      startedAt: this.startedWall,
      views: this.core.list(),
      result: this.lastCycle,
      status: this.status(),
      nodes: this.links.map((l) => {
        const sync = this.syncs.get(l.name)?.status();
        return {
          name: l.name,
          target: l.describe(),
          blocked: this.blocked.get(l.name) ?? null,
          synced: this.synced.has(l.name),
          last: this.lastApply.get(l.name) ?? null,
          counters: this.counters.get(l.name)!,
          weights: l.pushedWeights,
          consecutiveFailures: sync?.consecutiveFailures ?? 0,
        };
      }),
    };
  }

  /** Why the controller is not ready to be relied on (empty when it is). */
  notReadyReasons(): string[] {
    if (this.stopped) return ['the controller is stopping'];
    return this.links
      .filter((l) => !this.synced.has(l.name))
      .map((l) =>
        this.blocked.has(l.name)
          ? `LB node ${l.name} is not pushed to: ${this.blocked.get(l.name)}`
          : `LB node ${l.name} has not been read or pushed successfully yet`,
      );
  }

  /** What an operator reads: `sipweigh status`, the status file. */
  status(): ControllerStatus {
    return buildStatus({
      now: { mono: performance.now(), wall: Date.now() },
      startedAt: this.startedWall,
      views: this.core.list(),
      result: this.lastCycle,
      nodes: this.nodeStatus(),
      schedules: this.schedules?.status() ?? [],
    });
  }

  private writeStatusFile(): void {
    const file = this.cfg.status_file;
    if (file === undefined) return;
    const tmp = `${file}.${process.pid}.tmp`;
    try {
      writeFileSync(tmp, `${JSON.stringify(this.status(), null, 2)}\n`);
      renameSync(tmp, file);
    } catch (e) {
      // A full disk or a missing directory must not stop the loop; say it once per kind of error.
      const msg = (e as Error).message;
      if (msg !== this.statusFileError) this.logger.warn({ file, err: msg }, 'cannot write the status file');
      this.statusFileError = msg;
    }
  }

  /** The last scoring result (status, demo, tests). */
  get lastResult(): CycleResult | null {
    return this.lastCycle;
  }

  nodeStatus() {
    return this.links.map((l) => ({
      name: l.name,
      target: l.describe(),
      blocked: this.blocked.get(l.name) ?? null,
      sync: this.syncs.get(l.name)?.status() ?? null,
    }));
  }

  // ---- discovery --------------------------------------------------------------------------------

  /** Backends from the config and from every LB's dispatcher.list (an unreachable LB is skipped). */
  async discover(): Promise<void> {
    const lists = await Promise.all(
      this.links.map(async (l) => ({ link: l, result: await fetchDispatcherList(l.rpc) })),
    );
    const ok = lists.flatMap(({ link, result }) => {
      if (result.ok) {
        this.synced.add(link.name);
        // Backends a reload removed are not taken back from the list we wrote them into.
        const targets = result.targets.filter((t) => t.duid === null || !this.retired.has(t.duid));
        return [{ node: link.name, targets }];
      }
      this.logger.warn({ node: link.name, err: result.error }, 'cannot read the LB dispatcher list');
      return [];
    });
    const first = ok[0];
    if (first) {
      this.listedWeights = new Map(
        first.targets.map((t) => [destinationKey(t), effectiveWeight(t)] as const),
      );
    }
    const { backends, notes } = mergeDiscovery(this.cfg.sets, ok, {
      defaultCapacity: DEFAULT_DISCOVERED_CAPACITY,
    });
    this.noteDiscovery(notes, new Set(ok.map((l) => l.node)));
    const { added, removed } = applyDiscovery(this.core, backends, { complete: ok.length === lists.length });
    this.endpoint.arm();
    if (added.length > 0 || removed.length > 0) this.logger.info({ added, removed }, 'discovery');
  }

  private noteDiscovery(notes: readonly DiscoveryNote[], read: ReadonlySet<string>): void {
    const unmanaged = new Map<string, Set<number>>();
    for (const n of notes) {
      if (n.kind === 'unmanaged_set') {
        const s = unmanaged.get(n.node) ?? new Set<number>();
        s.add(n.setId);
        unmanaged.set(n.node, s);
      } else {
        this.logger.warn({ note: n }, 'discovery');
      }
    }
    for (const node of read) {
      const sets = unmanaged.get(node);
      const was = this.blocked.get(node);
      if (sets) {
        // The controller writes the whole list file: pushing would delete these sets.
        const reason = `its dispatcher list has sets not in this config (${[...sets].join(', ')}): add them to sets[] or move them to another list`;
        if (was !== reason) this.logger.error({ node, sets: [...sets] }, `not pushing to ${node}: ${reason}`);
        this.blocked.set(node, reason);
      } else if (was !== undefined) {
        this.logger.info({ node }, 'LB node unblocked');
        this.blocked.delete(node);
      }
    }
  }

  // ---- the cycle --------------------------------------------------------------------------------

  /**
   * Start-up grace: no scoring until every backend has had its chance to be confirmed (or the grace
   * ran out). Scoring the first backends while the others are still proving themselves would take
   * those out and slow-start them back: a needless disturbance at every controller restart, when the
   * LB is still serving on the weights the previous run left (fail-static).
   */
  private settled(views: readonly BackendView[]): boolean {
    if (this.isSettled) return true;
    const confirming = views.some(
      (v) => v.health.kind === 'returning' || (v.health.kind === 'down' && v.health.cause === 'never_seen'),
    );
    if (confirming && performance.now() - this.startedAt < this.graceMs) return false;
    this.isSettled = true;
    return true;
  }

  private healthChanged(b: BackendView, from: string, to: string): void {
    this.logger.info({ backend: b.id, set: b.set, from, to }, 'backend health');
    if (this.cycleQueued || this.stopped) return;
    // Not from inside the core's callback: the cycle reads the core, which is mid-update here.
    this.cycleQueued = true;
    setImmediate(() => {
      this.cycleQueued = false;
      this.cycle(false);
    });
  }

  /**
   * Runs from timers: anything it throws would end the process, and with it the controller's
   * watch over the LB. A bug here is logged and the LB stays on what it has (fail-static).
   */
  private cycle(force: boolean): void {
    try {
      this.cycleOnce(force);
    } catch (e) {
      this.logger.error({ err: (e as Error).message }, 'cycle failed; the LB keeps its last weights');
    }
  }

  private cycleOnce(force: boolean): void {
    if (this.stopped) return;
    let result: CycleResult;
    const views = this.core.list();
    if (!this.settled(views)) return;
    try {
      result = scoreCycle(this.scorer, views.map(toSample), performance.now(), this.params);
    } catch (e) {
      // A bug in scoring must not take the controller (and its fail-static LB) down with it.
      this.logger.error({ err: (e as Error).message }, 'scoring failed; weights left as they are');
      return;
    }
    this.scorer = result.state;
    this.lastCycle = result;
    for (const r of result.rejected)
      this.logger.warn({ backend: r.id, reason: r.reason }, 'sample rejected by scorer');
    this.notePanics(result);

    this.logWeightChanges(result);
    // A set that panicked before it was ever scored: we know nothing worth writing, so its
    // backends keep what the LB listed at the last discovery (other sets are pushed as usual); one
    // it did not list is not in its rotation, and stays out. Until an LB was read, push nothing.
    const listed = this.listedWeights;
    if (listed === null && result.sets.some((s) => s.weights === null)) return;
    const viewOf = new Map(views.map((v) => [v.id, v]));
    const listedWeight = (id: string): number => {
      const v = viewOf.get(id);
      return (v && listed?.get(destinationKey({ setId: v.set, uri: v.uri }))) ?? 0;
    };
    const weights = new Map<string, number>();
    for (const set of result.sets) {
      for (const b of set.backends)
        weights.set(b.id, set.weights ? (set.weights.get(b.id) ?? 0) : listedWeight(b.id));
    }
    const managed = new Set(this.cfg.sets.map((s) => s.id));
    const destinations = desiredDestinations(
      views.filter((v) => managed.has(v.set)),
      (id) => weights.get(id) ?? 0,
    );
    const admission = this.admissionPerNode(result);
    for (const link of this.links) {
      if (this.blocked.has(link.name)) continue;
      this.syncs.get(link.name)?.submit({ destinations, admission }, { force });
    }
  }

  /** The pool's limit split evenly over the LB nodes (each sees its share of the offered calls). */
  private admissionPerNode(result: CycleResult): Map<number, number | null> {
    if (!this.cfg.admission.enabled) return new Map();
    return desiredAdmission(result.sets, this.links.length);
  }

  /** One line per change of a set's weights, with what drove it. */
  private logWeightChanges(result: CycleResult): void {
    for (const set of result.sets) {
      if (set.weights === null) continue;
      const key = [...set.weights].map(([id, w]) => `${id}=${w}`).join(' ');
      if (this.loggedWeights.get(set.set) === key) continue;
      this.loggedWeights.set(set.set, key);
      this.logger.info(
        {
          set: set.set,
          mode: set.mode,
          pool_cps: set.poolCapacityCps === null ? null : Math.round(set.poolCapacityCps),
          backends: set.backends.map((b) => ({
            id: b.id,
            weight: set.weights?.get(b.id) ?? 0,
            phase: b.assignment.phase,
            factor: round2(b.factor),
            pressure: b.pressure === null ? null : round2(b.pressure),
            dominant: b.dominant,
          })),
        },
        'weights',
      );
    }
  }

  private notePanics(result: CycleResult): void {
    for (const set of result.sets) {
      if (set.mode === 'panic' && set.weights === null) {
        // Start-up: nothing heard yet, nothing pushed yet. Not a partition, just not knowing.
        if (!this.waiting.has(set.set))
          this.logger.info({ set: set.set }, 'waiting for the first reports of the set');
        this.waiting.add(set.set);
      } else if (set.mode === 'panic' && !this.panicking.has(set.set)) {
        this.panicking.add(set.set);
        this.logger.error(
          {
            set: set.set,
            healthy: set.panic.healthy,
            counted: set.panic.counted,
            threshold: set.panic.threshold,
          },
          'PANIC: most of the set looks down at once; suspecting the observer, keeping the last weights',
        );
      } else if (set.mode === 'scored' && this.panicking.delete(set.set)) {
        this.logger.warn({ set: set.set }, 'panic over: the set is scored again');
      }
    }
  }

  /** Counters and the last apply of a node (API, /metrics); cache hits are no pushes and are skipped. */
  private recordOutcome(link: NodeLink, outcome: SyncOutcome<NodeOutcome>): void {
    const counters = this.counters.get(link.name);
    if (!counters) return;
    if (!outcome.ok) counters.errors++;
    const push = outcome.result?.push;
    if (push?.kind === 'in_sync' && push.checkedBy === 'cache') return;
    const kind = push?.kind ?? 'failed';
    counters.pushes[kind]++;
    if (outcome.ok) {
      this.synced.add(link.name);
      for (const [id, pending] of this.retired) {
        pending.delete(link.name);
        if (pending.size === 0) this.retired.delete(id);
      }
    }
    const driftRepaired = outcome.result?.driftRepaired ?? false;
    if (driftRepaired) counters.driftRepairs++;
    const record: NodeApplyRecord = {
      outcome: kind,
      at: outcome.at,
      durationMs: push ? push.durations.totalMs : outcome.durationMs,
      changes: push && push.kind !== 'in_sync' ? (push.changes?.length ?? 0) : 0,
      error: outcome.ok ? null : outcome.reason,
      driftRepaired,
    };
    this.lastApply.set(link.name, record);
    try {
      this.onNodeApply?.(link.name, record);
    } catch {
      // Telemetry must never stop the loop.
    }
  }

  private reportOutcome(link: NodeLink, outcome: SyncOutcome<NodeOutcome>, failures: number): void {
    this.recordOutcome(link, outcome);
    const o = outcome.result;
    if (o === null) {
      this.logger.warn(
        { node: link.name, reason: outcome.ok ? '' : outcome.reason, failures },
        'LB node apply failed',
      );
      return;
    }
    const push = o.push;
    const wasOk = this.nodeOk.get(link.name);
    this.nodeOk.set(link.name, outcome.ok);
    if (outcome.ok && wasOk !== true) {
      // First success, or the first after failures: say so once (successes are otherwise quiet).
      this.logger.info(
        { node: link.name, push: push.kind },
        wasOk === false ? 'LB node reachable again, in sync' : 'LB node in sync',
      );
    }
    if (push.kind === 'applied') {
      this.logger.info(
        {
          node: link.name,
          ...(o.driftRepaired ? { drift_repaired: true } : {}),
          changes: push.changes.length,
          ms: Math.round(push.durations.totalMs * 10) / 10,
        },
        'dispatcher list pushed and verified',
      );
    } else if (push.kind === 'failed') {
      this.logger.warn(
        { node: link.name, stage: push.stage, reason: push.reason, failures },
        'push failed; the LB keeps its last good weights',
      );
    }
    const a = o.admission;
    const repeated = this.admissionKind.get(link.name) === a.kind && a.kind !== 'applied';
    this.admissionKind.set(link.name, a.kind);
    if (repeated) return;
    if (a.kind === 'applied') this.logger.info({ node: link.name, pipes: a.pipes }, 'admission limits set');
    else if (a.kind === 'missing')
      this.logger.warn(
        { node: link.name, pipes: a.pipes },
        'admission pipes missing: the LB config lacks SIPWEIGH_ADMISSION_CONTROL',
      );
    else if (a.kind === 'failed' && push.kind !== 'failed')
      this.logger.warn({ node: link.name, reason: a.reason }, 'admission limit not set');
  }

  // ---- schedules and operator actions -----------------------------------------------------------

  /** Re-reads every LB and repairs drift (an operator's reload, a restart, an edited list). */
  async reconcile(): Promise<void> {
    await this.discover();
    this.cycle(true);
  }

  /** `reason`: the operator's words, for the log. */
  drain(backend: string, on: boolean, reason?: string): void {
    if (!this.core.drain(backend, on)) throw new Error(`no backend ${backend}`);
    this.logger.info(
      { backend, ...(reason !== undefined ? { reason } : {}) },
      on ? 'backend drained by operator' : 'backend undrained by operator',
    );
    this.cycle(false);
  }

  private async runScheduled(action: ScheduledAction): Promise<void> {
    switch (action.kind) {
      case 'reconcile':
        return this.reconcile();
      case 'drain':
        return this.drain(action.backend, true);
      case 'undrain':
        return this.drain(action.backend, false);
    }
  }

  /** Stops probing, scoring and schedules; pushes nothing (Kamailio stays on its last weights). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.cycleTimer) clearInterval(this.cycleTimer);
    if (this.statusTimer) clearInterval(this.statusTimer);
    await this.schedules?.stop();
    await this.endpoint.close();
    await Promise.all([...this.syncs.values()].map((s) => s.close()));
    await Promise.all(this.links.map((l) => l.close()));
    this.logger.info({}, 'controller stopped; the LB keeps its last weights');
  }
}

const round2 = (x: number): number => Math.round(x * 100) / 100;

function toSample(v: BackendView) {
  return {
    id: v.id,
    set: v.set,
    capacity: v.capacity,
    health: v.health.kind,
    report: v.metrics && Number.isFinite(v.lastReportAt) ? { metrics: v.metrics, at: v.lastReportAt } : null,
    probed: v.agent !== null,
  };
}
