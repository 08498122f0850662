/**
 * Fair admission across the LB nodes (issue 14; docs/fairness.md): once a second every node's
 * SourceLink reads its source counters and writes the shares; this class feeds them the admission
 * limits the last cycle decided and the config in force, and turns their outcomes into typed events
 * (a failure is told once, until that node works again) and the sources report.
 */
import { backoffDelayMs } from '../util/backoff.js';
import type { ControllerConfig } from '../config/types.js';
import type { LimitCps } from '../kamailio/admission.js';
import { groupKey } from '../kamailio/address-file.js';
import type { AdmissionDesired, NodeLink } from '../push/node-link.js';
import { transportFor } from '../push/node-link.js';
import { SourceLink, type SourceSettings, type SourceStep } from '../push/source-link.js';
import type { ControllerEvent } from './events.js';
import { limitedEvents, sourcesReport, type SourcesReport } from './sources-report.js';

/** Counters are read and shares written this often (the contract asks at least once a second). */
export const SOURCE_PERIOD_MS = 1000;

/**
 * A node whose round failed is asked again after 1, 2, 4, then every 8 s (the lease and the pushes
 * have their own retries): an unreachable LB is not asked by every loop every second. 8 s is well
 * inside the 120 s the LB keeps a share, so shares are rewritten in time once it answers again.
 */
export const SOURCE_RETRY = { initialMs: 1000, maxMs: 8000, factor: 2, jitter: 0 } as const;

/** When a node with `failures` consecutive failed rounds, the last at `lastMs`, is asked again. */
export function sourceRetryAt(failures: number, lastMs: number): number {
  return failures === 0 ? -Infinity : lastMs + backoffDelayMs(SOURCE_RETRY, failures - 1, 0.5);
}

export interface NodeSourceState {
  readonly node: string;
  /** The last tick: ok, missing (no sipweigh_src at the LB), failed, or idle (none yet). */
  readonly state: SourceStep['kind'] | 'idle';
  readonly errors: number;
}

export type SourcesView = SourcesReport & { readonly nodes: readonly NodeSourceState[] };

interface NodeLimits {
  readonly limits: ReadonlyMap<number, LimitCps>;
  readonly fraction: number;
}

export class FairAdmission {
  private timer: NodeJS.Timeout | null = null;
  /** Per node: its limits per set and its fraction of the pool, from the last cycle's plan. */
  private perNode: ReadonlyMap<string, NodeLimits> | null = null;
  private readonly limited = new Map<string, Set<string>>();
  private readonly last = new Map<string, SourceStep>();
  private readonly errors = new Map<string, number>();
  /** Consecutive failed rounds per node and when the last one ended (sourceRetryAt). */
  private readonly failing = new Map<string, { failures: number; lastMs: number }>();
  private stopped = false;
  /** Rounds started by the timer and not finished: stop() waits for them. */
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly links: readonly SourceLink[],
    private readonly config: () => ControllerConfig,
    private readonly emit: (e: ControllerEvent) => void,
  ) {}

  /** One SourceLink per node, on the node's RPC client; the groups file through its list transport. */
  static forNodes(
    nodes: readonly NodeLink[],
    config: () => ControllerConfig,
    emit: (e: ControllerEvent) => void,
  ): FairAdmission {
    const links = nodes.map((n) => {
      const file = n.config.address_file;
      return new SourceLink(n.config, n.rpc, file === undefined ? null : transportFor(n.config, file));
    });
    return new FairAdmission(links, config, emit);
  }

  start(periodMs = SOURCE_PERIOD_MS): void {
    if (this.timer || this.stopped) return;
    // Rates are intervals between readings: a monotonic clock, never the wall clock (which steps).
    this.timer = setInterval(() => this.runTick(), periodMs);
    this.runTick();
  }

  private runTick(): void {
    const t = this.tick(performance.now());
    this.inFlight.add(t);
    void t.finally(() => this.inFlight.delete(t));
  }

  /** The limits of the cycle's plan, per node and set (admission off: none), with each node's fraction. */
  setLimits(perNode: ReadonlyMap<string, { admission: AdmissionDesired; fraction: number }>): void {
    this.perNode = new Map(
      [...perNode].map(([node, { admission, fraction }]) => [
        node,
        { limits: admission.kind === 'limits' ? admission.limits : new Map(), fraction },
      ]),
    );
  }

  private fairness(): SourceSettings['fairness'] {
    const cfg = this.config();
    return { ...cfg.admission.fairness, enabled: cfg.admission.enabled && cfg.admission.fairness.enabled };
  }

  private settings(node: string): SourceSettings {
    const mine = this.perNode?.get(node);
    return {
      fairness: this.fairness(),
      limits: mine?.limits ?? null,
      fraction: mine?.fraction ?? 1 / Math.max(1, this.links.length),
    };
  }

  /** One round at every node, in parallel; never rejects (it runs from a timer). */
  async tick(nowMs: number): Promise<void> {
    await Promise.all(
      this.links.map(async (link) => {
        const settings = this.settings(link.name);
        const f = this.failing.get(link.name);
        if (f && nowMs < sourceRetryAt(f.failures, f.lastMs)) return;
        try {
          const t = await link.tick(settings, nowMs);
          if (t === null || this.stopped) return;
          if (t.groupsLoaded) this.emit({ type: 'source_groups_loaded', node: link.name, ...t.groupsLoaded });
          this.stepped(link.name, t.step);
          this.failing.set(link.name, {
            failures: t.step.kind === 'failed' ? (f?.failures ?? 0) + 1 : 0,
            lastMs: nowMs,
          });
          const l = limitedEvents(link.sources(), this.limited.get(link.name) ?? new Set());
          this.limited.set(link.name, l.now);
          for (const e of l.events) this.emit(e);
        } catch (e) {
          this.stepped(link.name, { kind: 'failed', stage: 'read', error: (e as Error).message });
          this.failing.set(link.name, { failures: (f?.failures ?? 0) + 1, lastMs: nowMs });
        }
      }),
    );
  }

  private stepped(node: string, step: SourceStep): void {
    const before = this.last.get(node);
    this.last.set(node, step);
    if (step.kind === 'failed') {
      this.errors.set(node, (this.errors.get(node) ?? 0) + 1);
      if (before?.kind !== 'failed')
        this.emit({ type: 'source_shares_failed', node, stage: step.stage, error: step.error });
    } else if (step.kind === 'missing' && before?.kind !== 'missing') {
      this.emit({ type: 'source_shares_missing', node });
    } else if (step.kind === 'ok' && (before?.kind === 'failed' || before?.kind === 'missing')) {
      this.emit({ type: 'source_shares_ok', node });
    }
  }

  report(): SourcesView {
    const f = this.config().admission.fairness;
    const groupNames = new Map(f.groups.map((g, i) => [groupKey(i), g.name] as const));
    const report = sourcesReport(
      this.links.map((l) => l.sources()),
      { fairness: this.fairness().enabled, topN: f.top_n, groupNames },
    );
    const nodes = this.links.map((l) => ({
      node: l.name,
      state: this.last.get(l.name)?.kind ?? ('idle' as const),
      errors: this.errors.get(l.name) ?? 0,
    }));
    return { ...report, nodes };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    // A round in flight still uses the nodes' RPC clients, which the caller closes after this.
    await Promise.all([...this.inFlight]);
    await Promise.all(this.links.map((l) => l.close().catch(() => undefined)));
  }
}
