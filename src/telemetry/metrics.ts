/**
 * The controller's Prometheus metrics (prom-client), one registry per controller. Most series are
 * read from the controller at scrape time (its snapshot and the probe registry's counters), so a
 * backend that leaves also leaves /metrics; push outcomes and latencies are recorded as they happen.
 * Every name starts with `sipweigh_`; docs/operations.md lists them and
 * scripts/grafana/sipweigh-dashboard.json uses them (a unit test checks it names only these).
 *
 * Not to be confused with src/metrics/, the agent's collection of its host's load.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ControllerSnapshot } from '../controller/snapshot.js';
import type { StampedEvent } from '../controller/events.js';
import { HEALTH_KINDS } from '../health/state-machine.js';
import { DROP_REASONS } from '../heartbeat/codec.js';
import type { ProbeCounters } from '../probe/probe-core.js';
import { CAPACITY_RULES, SIGNAL_NAMES } from '../scoring/index.js';
import { monotonicOther } from '../controller/sources-report.js';
import { lbSocketSeries } from './lb-socket-series.js';

export interface TelemetrySource {
  snapshot(): ControllerSnapshot;
  probeCounters(): ProbeCounters;
}

/** Push latency buckets, seconds: a local push of a small list takes a few ms, an SFTP one 100s of ms. */
const PUSH_BUCKETS = [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

type BackendLabels = 'backend' | 'set';

export class ControllerTelemetry {
  readonly registry = new Registry();
  private source: TelemetrySource | null = null;
  private readonly pushes: Counter<'node' | 'outcome'>;
  private readonly pushSeconds: Histogram<'node' | 'outcome'>;
  private readonly pushErrors: Counter<'node'>;
  private readonly driftRepairs: Counter<'node'>;
  private readonly reloads: Counter<'result'>;
  private readonly evidenceSuspects: Counter<'backend' | 'set'>;

  constructor(opts: { processMetrics?: boolean } = {}) {
    const r = this.registry;
    if (opts.processMetrics ?? true) collectDefaultMetrics({ register: r, prefix: 'sipweigh_' });
    this.pushes = new Counter({
      name: 'sipweigh_lb_pushes_total',
      help: 'Applies to an LB node that reached it: applied (list changed), in_sync (read, nothing to change), failed',
      labelNames: ['node', 'outcome'],
      registers: [r],
    });
    this.pushSeconds = new Histogram({
      name: 'sipweigh_lb_push_duration_seconds',
      help: 'Time of an apply that reached the LB node (read, write, reload, verify)',
      labelNames: ['node', 'outcome'],
      buckets: PUSH_BUCKETS,
      registers: [r],
    });
    this.pushErrors = new Counter({
      name: 'sipweigh_lb_push_errors_total',
      help: 'Failed applies to an LB node (push or admission limit); retried with backoff',
      labelNames: ['node'],
      registers: [r],
    });
    this.driftRepairs = new Counter({
      name: 'sipweigh_lb_drift_repairs_total',
      help: 'Pushes that repaired an LB list changed behind the controller (reload, restart, edit)',
      labelNames: ['node'],
      registers: [r],
    });
    this.reloads = new Counter({
      name: 'sipweigh_config_reloads_total',
      help: 'Config reloads (SIGHUP or API) by result: applied or refused',
      labelNames: ['result'],
      registers: [r],
    });
    this.evidenceSuspects = new Counter({
      name: 'sipweigh_backend_evidence_suspects_total',
      help: 'Times the LB evidence (retransmitted INVITEs, no probe answer since) made the backend suspect',
      labelNames: ['backend', 'set'],
      registers: [r],
    });
    this.scraped(r);
    this.watched(r);
  }

  /** The controller to read at scrape time (it exists after the telemetry, which it reports to). */
  attach(source: TelemetrySource): void {
    this.source = source;
  }

  /** Fed by the controller's events (EventBus.subscribe): pushes, their latency, errors, drift, reloads. */
  observe(e: StampedEvent): void {
    switch (e.type) {
      case 'node_push': {
        const { node, outcome } = e;
        this.pushes.inc({ node, outcome });
        this.pushSeconds.observe({ node, outcome }, Math.max(0, e.ms) / 1000);
        if (outcome === 'failed' || e.error !== null) this.pushErrors.inc({ node });
        if (e.drift_repaired) this.driftRepairs.inc({ node });
        return;
      }
      case 'config_reloaded':
        this.reloads.inc({ result: 'applied' });
        return;
      case 'config_reload_refused':
        this.reloads.inc({ result: 'refused' });
        return;
      case 'evidence_suspect':
        this.evidenceSuspects.inc({ backend: e.backend, set: String(e.set) });
        return;
    }
  }

  async text(): Promise<{ contentType: string; text: string }> {
    return { contentType: this.registry.contentType, text: await this.registry.metrics() };
  }

  /** Lease, backstop and evidence per LB node, read from the controller's watch at each scrape. */
  private watched(r: Registry): void {
    // One snapshot per scrape for these series too (they are collected one after the other).
    let cached: { at: number; watch: ControllerSnapshot['watch'] } | null = null;
    const watch = (): ControllerSnapshot['watch'] => {
      if (!this.source) return [];
      const now = Date.now();
      if (!cached || now - cached.at > 100) cached = { at: now, watch: this.source.snapshot().watch };
      return cached.watch;
    };
    const perNode = <L extends string>(
      name: string,
      help: string,
      labels: readonly L[],
      fill: (add: (labels: Record<'node' | L, string>, v: number) => void) => void,
      kind: 'counter' | 'gauge' = 'counter',
    ): void => {
      const Metric = kind === 'counter' ? Counter : Gauge;
      new Metric<'node' | L>({
        name,
        help,
        labelNames: ['node', ...labels],
        registers: [r],
        collect(this: Counter<'node' | L> | Gauge<'node' | L>) {
          this.reset();
          fill((l, v) => (this instanceof Counter ? this.inc(l, v) : this.set(l, v)));
        },
      });
    };
    let splitCache: { at: number; split: ControllerSnapshot['split'] } | null = null;
    const split = (): ControllerSnapshot['split'] => {
      if (!this.source) return [];
      const now = Date.now();
      if (!splitCache || now - splitCache.at > 100)
        splitCache = { at: now, split: this.source.snapshot().split };
      return splitCache.split;
    };
    perNode(
      'sipweigh_lb_node_demand_cps',
      'New calls/s offered to the LB node (admitted + refused) over the split window; absent when unknown',
      [],
      (add) => {
        for (const n of split()) if (n.demand_cps !== null) add({ node: n.node }, n.demand_cps);
      },
      'gauge',
    );
    perNode(
      'sipweigh_lb_node_admission_fraction',
      "The LB node's fraction of the pool's admission limit at the last split (peers included)",
      [],
      (add) => {
        for (const n of split()) add({ node: n.node }, n.fraction);
      },
      'gauge',
    );
    perNode(
      'sipweigh_lb_lease_refreshes_total',
      'Lease refreshes at the LB node by outcome (ok, failed)',
      ['outcome'],
      (add) => {
        for (const w of watch()) {
          add({ node: w.node, outcome: 'ok' }, w.leaseRefreshes.ok);
          add({ node: w.node, outcome: 'failed' }, w.leaseRefreshes.failed);
        }
      },
    );
    perNode(
      'sipweigh_lb_backstop',
      '1 while the LB node probes on its own (its lease lapsed), 0 when not; absent when unknown',
      [],
      (add) => {
        for (const w of watch()) if (w.backstop !== null) add({ node: w.node }, w.backstop ? 1 : 0);
      },
      'gauge',
    );
    perNode(
      'sipweigh_lb_backstop_switches_total',
      'Backstop switches seen at the LB node (on, off)',
      ['to'],
      (add) => {
        for (const w of watch()) {
          add({ node: w.node, to: 'on' }, w.backstopSwitches.on);
          add({ node: w.node, to: 'off' }, w.backstopSwitches.off);
        }
      },
    );
    perNode(
      'sipweigh_lb_evidence_reads_total',
      'Reads of the LB evidence table by outcome (ok, failed)',
      ['outcome'],
      (add) => {
        for (const w of watch()) {
          add({ node: w.node, outcome: 'ok' }, w.reads.ok);
          add({ node: w.node, outcome: 'failed' }, w.reads.failed);
        }
      },
    );
    perNode(
      'sipweigh_lb_retransmissions_total',
      'Retransmitted INVITEs the LB node counted per destination since the controller started',
      ['destination'],
      (add) => {
        for (const w of watch())
          for (const [uri, c] of w.totals) add({ node: w.node, destination: uri }, c.rtx);
      },
    );
    perNode(
      'sipweigh_lb_redispatched_total',
      'Retransmissions the LB node moved off a destination no longer active, since the controller started',
      ['destination'],
      (add) => {
        for (const w of watch())
          for (const [uri, c] of w.totals) add({ node: w.node, destination: uri }, c.redispatch);
      },
    );
  }

  /** Series computed from the controller's state at each scrape. */
  private scraped(r: Registry): void {
    // One snapshot per scrape, shared by every collector (they run one after the other).
    let cached: { at: number; snap: ControllerSnapshot } | null = null;
    const snap = (): ControllerSnapshot | null => {
      if (!this.source) return null;
      const now = Date.now();
      if (!cached || now - cached.at > 100) cached = { at: now, snap: this.source.snapshot() };
      return cached.snap;
    };
    const perBackend = <L extends string>(
      name: string,
      help: string,
      extra: readonly L[],
      fill: (g: Gauge<BackendLabels | L>, s: ControllerSnapshot) => void,
    ): void => {
      new Gauge<BackendLabels | L>({
        name,
        help,
        labelNames: ['backend', 'set', ...extra],
        registers: [r],
        collect() {
          this.reset();
          const s = snap();
          if (s) fill(this, s);
        },
      });
    };
    const scoreOf = (s: ControllerSnapshot, id: string) => {
      for (const set of s.result?.sets ?? []) {
        const b = set.backends.find((x) => x.id === id);
        if (b) return { set, b };
      }
      return null;
    };

    perBackend(
      'sipweigh_backend_state',
      'Health state, one series per state (1 = current)',
      ['state'],
      (g, s) => {
        for (const v of s.views)
          for (const st of HEALTH_KINDS)
            g.set({ backend: v.id, set: String(v.set), state: st }, v.health.kind === st ? 1 : 0);
      },
    );
    perBackend(
      'sipweigh_backend_drained',
      '1 when drained by an operator (API, CLI, schedule)',
      [],
      (g, s) => {
        for (const v of s.views)
          g.set(
            { backend: v.id, set: String(v.set) },
            v.health.kind === 'draining' && v.health.cause === 'operator' ? 1 : 0,
          );
      },
    );
    perBackend('sipweigh_backend_capacity_cps', 'Configured capacity, calls/s', [], (g, s) => {
      for (const v of s.views) g.set({ backend: v.id, set: String(v.set) }, v.capacity);
    });
    perBackend(
      'sipweigh_backend_derating_factor',
      'Fraction of its capacity the scorer believes the backend has (the score)',
      [],
      (g, s) => {
        for (const v of s.views) {
          const sc = scoreOf(s, v.id);
          if (sc) g.set({ backend: v.id, set: String(v.set) }, sc.b.factor);
        }
      },
    );
    perBackend(
      'sipweigh_backend_pressure',
      'Tightest smoothed signal pressure (1 = at its knee)',
      [],
      (g, s) => {
        for (const v of s.views) {
          const p = scoreOf(s, v.id)?.b.pressure;
          if (p !== undefined && p !== null) g.set({ backend: v.id, set: String(v.set) }, p);
        }
      },
    );
    perBackend(
      'sipweigh_backend_effective_capacity_cps',
      'capacity x factor x slow-start ramp, calls/s (0 out of rotation)',
      [],
      (g, s) => {
        for (const v of s.views) {
          const sc = scoreOf(s, v.id);
          if (sc) g.set({ backend: v.id, set: String(v.set) }, sc.b.effectiveCapacityCps);
        }
      },
    );
    // Scraped from the scorer's state, which counts them: a backend that leaves (or a controller
    // restart) starts again from 0, which Prometheus reads as a counter reset.
    new Counter<BackendLabels | 'rule' | 'direction'>({
      name: 'sipweigh_backend_learned_moves_cps_total',
      help: 'Calls/s each rule of the learned-capacity estimator has moved the backend by, up and down (scoring.capacity.learn; docs/controller.md, Learned capacity)',
      labelNames: ['backend', 'set', 'rule', 'direction'],
      registers: [r],
      collect() {
        this.reset();
        const s = snap();
        if (!s) return;
        for (const v of s.views) {
          const moves = scoreOf(s, v.id)?.b.learnedMoves;
          if (!moves) continue;
          for (const rule of CAPACITY_RULES)
            for (const direction of ['up', 'down'] as const)
              this.inc({ backend: v.id, set: String(v.set), rule, direction }, moves[rule][direction]);
        }
      },
    });
    perBackend(
      'sipweigh_backend_desired_weight',
      'Weight the controller wants at every LB node, on its own scale (largest = weight_max; a Kamailio node holds it as slots of 100; 0 = inactive)',
      [],
      (g, s) => {
        for (const v of s.views) {
          const w = scoreOf(s, v.id)?.set.weights?.get(v.id);
          if (w !== undefined) g.set({ backend: v.id, set: String(v.set) }, w);
        }
      },
    );
    perBackend(
      'sipweigh_backend_weight',
      'Weight the LB node holds since the last good push (0 = inactive)',
      ['node'],
      (g, s) => {
        for (const v of s.views)
          for (const n of s.nodes) {
            const w = n.weights?.get(v.id);
            if (w !== undefined) g.set({ backend: v.id, set: String(v.set), node: n.name }, w);
          }
      },
    );
    perBackend(
      'sipweigh_backend_signal',
      'Smoothed load signal in the unit its name carries (ms, bytes, per s, ratio)',
      ['signal'],
      (g, s) => {
        for (const v of s.views) {
          const sc = scoreOf(s, v.id);
          if (!sc) continue;
          for (const name of SIGNAL_NAMES) {
            const x = sc.b.values[name];
            if (x !== null) g.set({ backend: v.id, set: String(v.set), signal: name }, x);
          }
        }
      },
    );
    perBackend('sipweigh_backend_heartbeat_rtt_seconds', 'Smoothed heartbeat round trip', [], (g, s) => {
      for (const v of s.views)
        if (Number.isFinite(v.srttMs)) g.set({ backend: v.id, set: String(v.set) }, v.srttMs / 1000);
    });
    perBackend('sipweigh_backend_report_age_seconds', 'Age of the last accepted report', [], (g, s) => {
      for (const v of s.views)
        if (Number.isFinite(v.lastReportAt))
          g.set({ backend: v.id, set: String(v.set) }, Math.max(0, s.now.mono - v.lastReportAt) / 1000);
    });
    new Counter<BackendLabels>({
      name: 'sipweigh_backend_heartbeat_misses_total',
      help: 'Probes of the backend that went unanswered',
      labelNames: ['backend', 'set'],
      registers: [r],
      collect() {
        this.reset();
        for (const v of snap()?.views ?? []) this.inc({ backend: v.id, set: String(v.set) }, v.misses);
      },
    });

    new Gauge<'set' | 'mode'>({
      name: 'sipweigh_set_mode',
      help: 'Scoring mode of a dispatcher set, one series per mode (1 = current; panic keeps the last weights)',
      labelNames: ['set', 'mode'],
      registers: [r],
      collect() {
        this.reset();
        for (const set of snap()?.status.sets ?? [])
          for (const mode of ['scored', 'panic', 'waiting'])
            this.set({ set: String(set.id), mode }, set.mode === mode ? 1 : 0);
      },
    });
    new Gauge<'set'>({
      name: 'sipweigh_set_admission_limit_cps',
      help: 'Limit on new calls/s for the set (whole pool, split over the LB nodes)',
      labelNames: ['set'],
      registers: [r],
      collect() {
        this.reset();
        for (const set of snap()?.status.sets ?? [])
          if (set.admission_limit_cps !== null) this.set({ set: String(set.id) }, set.admission_limit_cps);
      },
    });
    // "other" is everything outside the top list, so it shrinks when a source moves into the list:
    // exported as its highest value so far, a counter never goes down (Prometheus would see a reset).
    const otherSoFar = new Map<string, number>();
    new Counter<'set' | 'source' | 'outcome'>({
      name: 'sipweigh_source_calls_total',
      help: 'New calls per source at the LB (offered, admitted, refused): the top_n sources by refused calls per set, the rest as source="other" (never decreasing: it holds while a source that moved into the top list is caught up)',
      labelNames: ['set', 'source', 'outcome'],
      registers: [r],
      collect() {
        this.reset();
        for (const set of snap()?.sources.sets ?? []) {
          for (const outcome of ['offered', 'admitted', 'refused'] as const) {
            for (const row of set.sources)
              this.inc({ set: String(set.set), source: row.source, outcome }, row[outcome]);
            const id = `${set.set}|${outcome}`;
            const other = monotonicOther(otherSoFar.get(id), set.other[outcome]);
            otherSoFar.set(id, other);
            this.inc({ set: String(set.set), source: 'other', outcome }, other);
          }
        }
      },
    });
    new Counter<'node'>({
      name: 'sipweigh_source_share_errors_total',
      help: 'Rounds of fair admission at an LB node that failed (reading counters, writing shares or groups)',
      labelNames: ['node'],
      registers: [r],
      collect() {
        this.reset();
        for (const n of snap()?.sources.nodes ?? []) this.inc({ node: n.node }, n.errors);
      },
    });
    new Gauge<'node'>({
      name: 'sipweigh_lb_node_synced',
      help: '1 once the LB node was read or pushed successfully',
      labelNames: ['node'],
      registers: [r],
      collect() {
        this.reset();
        for (const n of snap()?.nodes ?? []) this.set({ node: n.name }, n.synced ? 1 : 0);
      },
    });
    new Gauge<'node'>({
      name: 'sipweigh_lb_push_consecutive_failures',
      help: 'Failed applies in a row (0 when the last one succeeded)',
      labelNames: ['node'],
      registers: [r],
      collect() {
        this.reset();
        for (const n of snap()?.nodes ?? []) this.set({ node: n.name }, n.consecutiveFailures);
      },
    });
    lbSocketSeries(r, snap);

    const probeCounters = () => this.source?.probeCounters() ?? null;
    new Counter<'reason'>({
      name: 'sipweigh_heartbeat_dropped_total',
      help: 'Heartbeat datagrams dropped, by reason (src/heartbeat/codec.ts DROP_REASONS)',
      labelNames: ['reason'],
      registers: [r],
      collect() {
        this.reset();
        const c = probeCounters();
        for (const reason of DROP_REASONS) this.inc({ reason }, c?.dropped[reason] ?? 0);
      },
    });
    const hbCounter = (name: string, help: string, read: (c: ProbeCounters) => number) =>
      new Counter({
        name,
        help,
        registers: [r],
        collect() {
          this.reset();
          const c = probeCounters();
          this.inc(c ? read(c) : 0);
        },
      });
    hbCounter('sipweigh_heartbeat_received_total', 'Heartbeat datagrams received', (c) => c.received);
    hbCounter('sipweigh_heartbeat_probes_sent_total', 'Probes sent', (c) => c.probesSent);
    hbCounter(
      'sipweigh_heartbeat_send_errors_total',
      'Datagrams the socket failed to send',
      (c) => c.sendErrors,
    );
  }
}
