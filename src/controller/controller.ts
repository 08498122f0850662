/**
 * The closed loop: discover -> probe -> score -> push, plus the schedules. Every decision is a pure
 * function (plan.ts, node-state.ts, scoring/, push/desired-list.ts, schedules.ts); this class only
 * wires them to the probe endpoint, the LB nodes, the timers and the clock, and tells the world what
 * happened through typed events (events.ts) that the log, telemetry, the API and the demo read.
 *
 * Cadence: a scoring cycle runs every `cycleMs` and at once after any health change, so a backend
 * that dies leaves rotation one push after the failure detector says so, not a cycle later.
 * Fail-static: stopping (or dying) pushes nothing; Kamailio keeps the last weights it was given, and
 * its list file holds them for any reload or restart.
 */
import { performance } from 'node:perf_hooks';
import type { ControllerConfig } from '../config/types.js';
import type { HealthKind } from '../health/state-machine.js';
import { DEFAULT_DISCOVERED_CAPACITY } from '../discovery/merge.js';
import { applyDiscovery } from '../probe/apply-discovery.js';
import { endpointOptionsFromConfig } from '../probe/options.js';
import type { BackendView } from '../probe/probe-core.js';
import { ProbeEndpoint } from '../probe/probe-endpoint.js';
import { NodeSyncFanout } from '../push/fanout.js';
import { NodeLink, readsAfresh, type NodeDesired, type NodeOutcome } from '../push/node-link.js';
import type { SyncOutcome } from '../push/node-sync.js';
import { initialScorerState, scoreCycle, type CycleResult, type ScorerState } from '../scoring/index.js';
import { watchLbs, type LbWatch } from './lb-watch.js';
import type { Logger } from '../util/logger.js';
import { logEvents } from './event-log.js';
import { FairAdmission } from './fair-admission.js';
import { DemandWatch } from './demand-watch.js';
import { EventBus } from './events.js';
import { LbSocketWatch } from './lb-socket-watch.js';
import { afterApply, initialNodeState, notReadyReasons, type LbNodeState } from './node-state.js';
import { EMPTY_MEMORY, discoveryEvents, isSettled, planCycle, planDiscovery } from './plan.js';
import { planRegistryReload, scorerSample, startingScorer, startupGraceMs } from './plan.js';
import type { CycleMemory, Retired } from './plan.js';
import type { ReloadChanges } from './reload-plan.js';
import { cronSchedules, runScheduled, startCalendar } from './schedules.js';
import type { Schedules, SchedulesFactory } from './schedules.js';
import { nodeStatusOf, snapshotOf, statusOf } from './snapshot.js';
import type { ControllerParts, ControllerSnapshot } from './snapshot.js';
import { StatusFileWriter } from './status-file.js';
import type { ControllerStatus } from './status.js';

export interface ControllerOptions {
  readonly logger: Logger;
  /** Scoring cycle period (default: the config's scoring.cycle_ms). */
  readonly cycleMs?: number;
  /** Where the controller's events go (default: a bus of its own); the logger is subscribed here. */
  readonly events?: EventBus;
  /** Makes the calendar of a config (default: node-cron); tests inject one that fails to start. */
  readonly schedules?: SchedulesFactory;
}

export class Controller {
  private scorer: ScorerState = initialScorerState();
  private lastCycle: CycleResult | null = null;
  private memory: CycleMemory = EMPTY_MEMORY;
  private cycleTimer: NodeJS.Timeout | null = null;
  private cycleQueued = false;
  private stopped = false;
  private settled = false;
  /** One record per LB node, in config order. */
  private nodes: LbNodeState[];
  private readonly fanout: NodeSyncFanout<NodeDesired, NodeOutcome>;
  /** Fallback weights of a set in panic before its first score (plan.ts cycleWeights). */
  private listed: ReadonlyMap<string, number> | null = null;
  private retired: Retired = new Map();
  private schedules: Schedules | null = null;
  private cfg: ControllerConfig;
  private cycleMs: number;
  private readonly startedAt = performance.now();
  private readonly startedWall = Date.now();
  private readonly statusFile = new StatusFileWriter((e) => this.events.emit(e));
  private readonly graceMs: number;
  /** Per-source shares of the admission limit, on its own one-second round (fair-admission.ts). */
  private readonly fair: FairAdmission;
  private readonly watch: LbWatch;

  private readonly lbSockets: LbSocketWatch;
  /** Every LB node's demand, for the admission split (own nodes and peers). */
  private readonly demand: DemandWatch;
  /** The split last told (admission_split event), as `node=fraction ...`. */
  private toldSplit = '';

  private constructor(
    config: ControllerConfig,
    private readonly endpoint: ProbeEndpoint,
    private readonly links: readonly NodeLink[],
    readonly events: EventBus,
    private readonly opts: ControllerOptions,
  ) {
    this.cfg = config;
    this.cycleMs = opts.cycleMs ?? config.scoring.cycle_ms;
    this.graceMs = startupGraceMs(config.heartbeat);
    this.nodes = links.map((l) => initialNodeState(l.name));
    // The OpenSIPS snippet has no per-source table, no lease and no evidence counters
    // (docs/opensips.md): its nodes are neither asked for them nor shown failing them every second.
    const kamailioLinks = links.filter((l) => l.config.kind !== 'opensips');
    this.fair = FairAdmission.forNodes(
      kamailioLinks,
      () => this.cfg,
      (e) => this.events.emit(e),
    );
    this.lbSockets = new LbSocketWatch(config.lb_nodes, { onEvents: (e) => events.emitAll(e) }).start();
    this.fanout = new NodeSyncFanout(
      links.map((link) => ({
        name: link.name,
        apply: (desired: NodeDesired, ctx) => link.apply(desired, readsAfresh(ctx)),
      })),
      { onOutcome: (o, status) => this.applied(o, status.consecutiveFailures) },
    );
    this.watch = watchLbs(kamailioLinks, config, endpoint.core, events, () => this.cycle(true));
    this.demand = new DemandWatch(
      [
        ...config.lb_nodes.map((n) => ({ name: n.name, kind: n.kind, rpc: n.rpc, own: true })),
        ...config.admission.split.peers.map((p) => ({ ...p, own: false })),
      ],
      () => this.cfg.admission,
      (e) => this.events.emit(e),
    );
  }

  static async start(config: ControllerConfig, opts: ControllerOptions): Promise<Controller> {
    const managed = new Set(config.sets.map((s) => s.id));
    const links = config.lb_nodes.map((n) => new NodeLink(n, managed));
    const events = opts.events ?? new EventBus();
    logEvents(events, opts.logger);
    // The endpoint's events reach the controller once it exists (it needs the endpoint first).
    const ref: { controller?: Controller } = {};
    const endpoint = await ProbeEndpoint.start(endpointOptionsFromConfig(config), {
      onHealthChange: (b, from, to) => ref.controller?.healthChanged(b, from.kind, to.kind),
      onRegistered: (b) => events.emit({ type: 'backend_registered', backend: b.id, set: b.set, uri: b.uri }),
      onForgotten: (b) => events.emit({ type: 'backend_forgotten', backend: b.id }),
    });
    const controller = new Controller(config, endpoint, links, events, opts);
    ref.controller = controller;
    try {
      for (const id of await controller.discover()) controller.drain(id, true, 'disabled at the LB at start');
      controller.schedules = await controller.startSchedules(config);
    } catch (e) {
      await controller.stop();
      throw e;
    }
    controller.startTimers();
    controller.fair.start();
    controller.demand.start();
    events.emit({
      type: 'controller_started',
      heartbeat: endpoint.address,
      lb_nodes: links.map((l) => l.describe()),
      backends: endpoint.core.size,
      admission: config.admission.enabled,
    });
    return controller;
  }

  /** The probe registry: every backend, its health, its last report. */
  get probe() {
    return this.endpoint.core;
  }

  /** The config in force (the one it started with, or the last reload). */
  get config(): ControllerConfig {
    return this.cfg;
  }

  private startTimers(): void {
    if (this.cycleTimer) clearInterval(this.cycleTimer);
    this.cycleTimer = setInterval(() => this.cycle(false), this.cycleMs);
    this.statusFile.schedule(this.cfg.status_file, () => this.status());
  }

  /** The running calendar of `config`; on failure nothing of it is left running. */
  private startSchedules(config: ControllerConfig): Promise<Schedules> {
    return startCalendar(
      this.opts.schedules ?? cronSchedules,
      config.schedules,
      (action) => runScheduled(action, this),
      this.opts.logger,
      (job, error) => this.events.emit({ type: 'schedule_failed', job, error }),
    );
  }

  /**
   * Puts a new config in force; `changes` is what planReload found live-changeable (it refused
   * anything that needs a restart before this is called). Added backends start as never seen, are
   * probed at once and enter rotation through the usual confirmation and slow start; removed ones
   * leave the probe registry now and the LB lists with the next push.
   *
   * All or nothing: whatever can fail (planning, starting the new calendar) runs first and touches
   * nothing in force, so a refused reload leaves the old config wholly in force. The new calendar
   * starts before the old one stops: for that instant both exist, rather than none if the swap failed.
   */
  async applyConfig(next: ControllerConfig, changes: ReloadChanges): Promise<void> {
    if (this.stopped) throw new Error('the controller is stopping');
    const nodes = this.links.map((l) => l.name);
    const plan = planRegistryReload(next, changes, (id) => this.probe.get(id)?.source, this.retired, nodes);
    const schedules = changes.schedules ? await this.startSchedules(next) : null;
    if (this.stopped) {
      // stop() ran while the calendar started: it must not outlive the controller.
      await schedules?.stop();
      throw new Error('the controller is stopping');
    }
    // Commit: nothing from here on throws.
    const previous = this.cfg;
    this.cfg = next;
    for (const id of plan.remove) this.probe.remove(id);
    for (const spec of plan.upsert) this.probe.upsert(spec);
    this.retired = plan.retired;
    this.endpoint.arm();
    if (next.scoring.cycle_ms !== previous.scoring.cycle_ms) this.cycleMs = next.scoring.cycle_ms;
    if (schedules) {
      const old = this.schedules;
      this.schedules = schedules;
      await old?.stop().catch(() => undefined);
    }
    this.startTimers();
    this.cycle(false);
  }

  /** The controller at this instant, for the API, /metrics and `sipweigh status` (snapshot.ts). */
  private parts(): ControllerParts {
    return {
      now: { mono: performance.now(), wall: Date.now() },
      startedAt: this.startedWall,
      views: this.probe.list(),
      result: this.lastCycle,
      nodes: this.nodes,
      links: this.links,
      syncOf: (node) => this.fanout.statusOf(node),
      schedules: this.schedules?.status() ?? [],
      sources: () => this.fair.report(),
      lbSockets: this.lbSockets.status(),
      watch: this.watch.status,
      split: this.demand.status(performance.now()),
    };
  }

  snapshot = (): ControllerSnapshot => snapshotOf(this.parts());
  status = (): ControllerStatus => statusOf(this.parts());
  nodeStatus = () => nodeStatusOf(this.parts());

  /** Why the controller is not ready to be relied on (empty when it is). */
  notReadyReasons(): string[] {
    return this.stopped ? ['the controller is stopping'] : notReadyReasons(this.nodes);
  }

  /** Backends from the config and every LB's list (an unreachable one skipped); returns those listed disabled. */
  async discover(): Promise<readonly string[]> {
    const reads = await Promise.all(this.links.map(async (l) => ({ node: l.name, ...(await l.readList()) })));
    const plan = planDiscovery({
      sets: this.cfg.sets,
      reads,
      retired: this.retired,
      nodes: this.nodes,
      defaultCapacity: DEFAULT_DISCOVERED_CAPACITY,
    });
    this.nodes = [...plan.nodes];
    if (plan.listed !== null) this.listed = plan.listed;
    this.events.emitAll(plan.events);
    const { added, removed } = applyDiscovery(this.probe, plan.backends, { complete: plan.complete });
    this.endpoint.arm();
    this.events.emitAll(discoveryEvents(added, removed));
    return plan.disabled;
  }

  private healthChanged(b: BackendView, from: HealthKind, to: HealthKind): void {
    this.events.emit({ type: 'backend_health', backend: b.id, set: b.set, from, to });
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
   * watch over the LB. A bug here is told and the LB stays on what it has (fail-static).
   */
  private cycle(force: boolean): void {
    try {
      this.cycleOnce(force);
    } catch (e) {
      this.events.emit({ type: 'cycle_failed', stage: 'cycle', error: (e as Error).message });
    }
  }

  private cycleOnce(force: boolean): void {
    if (this.stopped) return;
    const views = this.probe.list();
    const now = performance.now();
    this.settled = isSettled(this.settled, views, now - this.startedAt, this.graceMs);
    if (!this.settled) return;
    // The first scored cycle takes over from the LB's list (no weight jump at a restart).
    if (this.scorer.at === null)
      this.scorer = startingScorer(views, this.listed, now, this.cfg.scoring.params);
    let result: CycleResult;
    try {
      result = scoreCycle(this.scorer, views.map(scorerSample), now, this.cfg.scoring.params);
    } catch (e) {
      // A bug in scoring must not take the controller (and its fail-static LB) down with it.
      this.events.emit({ type: 'cycle_failed', stage: 'scoring', error: (e as Error).message });
      return;
    }
    this.scorer = result.state;
    this.lastCycle = result;
    const fractions = this.demand.split(now);
    this.tellSplit(fractions);
    const plan = planCycle({
      views,
      result,
      listed: this.listed,
      sets: this.cfg.sets.map((s) => s.id),
      admissionEnabled: this.cfg.admission.enabled,
      nodes: this.nodes,
      fractions,
      memory: this.memory,
    });
    this.memory = plan.memory;
    this.events.emitAll(plan.events);
    if (plan.submit === null) return;
    const even = 1 / Math.max(1, fractions.size);
    this.fair.setLimits(
      new Map(
        plan.submit.map((s) => [
          s.node,
          { admission: s.desired.admission, fraction: fractions.get(s.node) ?? even },
        ]),
      ),
    );
    const desired = new Map(plan.submit.map((s) => [s.node, s.desired] as const));
    for (const node of this.watch.arm([...desired.keys()], this.cycleMs)) {
      const d = desired.get(node);
      if (d) this.fanout.submitTo(node, d, { force });
    }
  }

  private tellSplit(fractions: ReadonlyMap<string, number>): void {
    if (fractions.size < 2 || !this.cfg.admission.enabled) {
      // Told again when admission comes back on, even if the split is the same.
      this.toldSplit = '';
      return;
    }
    const key = [...fractions].map(([n, f]) => `${n}=${f}`).join(' ');
    if (key === this.toldSplit) return;
    this.toldSplit = key;
    this.events.emit({ type: 'admission_split', fractions: Object.fromEntries(fractions) });
  }

  private applied(outcome: SyncOutcome<NodeOutcome>, failures: number): void {
    this.watch.applied(outcome.node, outcome.ok);
    const step = afterApply(this.nodes, this.retired, outcome, failures);
    [this.nodes, this.retired] = [step.nodes, step.retired];
    this.events.emitAll(step.events);
  }

  /** Re-reads every LB and repairs drift (an operator's reload, a restart, an edited list). */
  async reconcile(): Promise<void> {
    await this.discover();
    this.cycle(true);
  }

  /** `reason`: the operator's words, for the log. */
  drain(backend: string, on: boolean, reason?: string): void {
    if (!this.probe.drain(backend, on)) throw new Error(`no backend ${backend}`);
    this.events.emit({ type: 'backend_drained', backend, drained: on, reason: reason ?? null });
    this.cycle(false);
  }

  /** Stops probing, scoring and schedules; pushes nothing (Kamailio stays on its last weights). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.cycleTimer) clearInterval(this.cycleTimer);
    this.statusFile.stop();
    await Promise.all([this.watch.stop(), this.schedules?.stop(), this.fair.stop(), this.demand.stop()]);
    await this.endpoint.close();
    await this.fanout.close();
    await this.lbSockets.stop();
    await Promise.all(this.links.map((l) => l.close()));
    this.events.emit({ type: 'controller_stopped' });
  }
}
