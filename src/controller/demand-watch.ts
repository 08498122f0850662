/**
 * Every LB node's recent demand, for the admission split (scoring/admission-split.ts): the nodes this
 * controller pushes to and the peers it only reads (admission.split.peers, a controller per LB node).
 * Each node's offered-calls counter is read every READ_PERIOD_MS, all nodes in parallel, a node
 * still answering the previous read skipped; a failed read is counted and leaves the node's demand
 * at what the last readings say until it goes stale (scoring/node-demand.ts). Only with admission
 * on and the split by demand: otherwise nothing is read.
 */
import type { AdmissionSplitConfig } from '../config/types.js';
import { countersReader, type CountersReader } from '../push/admission-counters.js';
import {
  splitFractions,
  SPLIT_HYSTERESIS,
  stickySplit,
  withPeerMargin,
  type NodeDemand,
  type SplitParams,
} from '../scoring/admission-split.js';
import {
  demandRate,
  EMPTY_DEMAND,
  recordReading,
  type DemandParams,
  type DemandState,
} from '../scoring/node-demand.js';
import type { ControllerEvent } from './events.js';

export const READ_PERIOD_MS = 500;
/** Step of the split: whole percents of the pool (admission-split.ts). */
export const SPLIT_STEP = 0.01;
/** What a controller with peers holds its own part below its split (withPeerMargin). */
export const PEER_MARGIN = SPLIT_HYSTERESIS + SPLIT_STEP;

export interface DemandNode {
  readonly name: string;
  readonly kind: 'kamailio' | 'opensips';
  readonly rpc: AdmissionSplitConfig['peers'][number]['rpc'];
  /** Pushed to by this controller (lb_nodes), or only read (a peer). */
  readonly own: boolean;
}

export interface NodeDemandStatus {
  readonly node: string;
  readonly own: boolean;
  /** Calls/s offered over the window; null: not known. */
  readonly demand_cps: number | null;
  /** This node's fraction of the pool's limit at the last split. */
  readonly fraction: number;
  readonly read_errors: number;
  readonly last_error: string | null;
}

interface Tracked {
  readonly node: DemandNode;
  readonly reader: CountersReader;
  state: DemandState;
  busy: boolean;
  errors: number;
  lastError: string | null;
}

export class DemandWatch {
  private timer: NodeJS.Timeout | null = null;
  private readonly tracked: Tracked[];
  private readonly inFlight = new Set<Promise<void>>();
  /** The split in force before the per-peer margin (stickySplit holds it against jitter). */
  private held: ReadonlyMap<string, number> | null = null;
  private fractions: ReadonlyMap<string, number> = new Map();
  private stopped = false;
  /** Aborts the reads in flight at stop: a peer that hangs must not hold the controller's exit. */
  private readonly abort = new AbortController();

  /** `readerFor`: how a node's counters are read (the real RPC/MI reader unless a test fakes it). */
  constructor(
    nodes: readonly DemandNode[],
    private readonly settings: () => { readonly enabled: boolean; readonly split: AdmissionSplitConfig },
    private readonly emit: (e: ControllerEvent) => void,
    readerFor: (node: DemandNode) => CountersReader = countersReader,
  ) {
    this.tracked = nodes.map((node) => ({
      node,
      reader: readerFor(node),
      state: EMPTY_DEMAND,
      busy: false,
      errors: 0,
      lastError: null,
    }));
  }

  start(): this {
    this.timer ??= setInterval(() => this.tick(), READ_PERIOD_MS);
    return this;
  }

  private params(): { demand: DemandParams; split: SplitParams; reading: boolean } {
    const s = this.settings();
    const windowMs = s.split.window_ms;
    return {
      // A node unread for two windows has no known demand: its part falls back to the even one
      // only if nobody's demand is known, else to the floor (it gets no traffic, or is down).
      demand: { windowMs, staleMs: 2 * windowMs },
      split: { by: s.split.by, floor: s.split.floor, step: SPLIT_STEP },
      reading: s.enabled && s.split.by === 'demand' && this.tracked.length > 1,
    };
  }

  /** One round of reads (never rejects: it runs from a timer); each reading is timed at its reply. */
  tick(): void {
    if (this.stopped || !this.params().reading) return;
    for (const t of this.tracked) {
      if (t.busy) continue;
      t.busy = true;
      const read = this.readOne(t).finally(() => {
        t.busy = false;
        this.inFlight.delete(read);
      });
      this.inFlight.add(read);
    }
  }

  private async readOne(t: Tracked): Promise<void> {
    try {
      const offered = await t.reader.offered(this.abort.signal);
      if (this.stopped) return;
      // The time of the reply, not of the request: a slow reply would otherwise skew the rate.
      t.state = recordReading(t.state, { at: performance.now(), offered }, this.params().demand);
      if (t.lastError !== null) this.emit({ type: 'node_demand_ok', node: t.node.name });
      t.lastError = null;
    } catch (e) {
      if (this.stopped) return;
      t.errors++;
      const error = (e as Error).message;
      if (t.lastError === null) this.emit({ type: 'node_demand_failed', node: t.node.name, error });
      t.lastError = error;
    }
  }

  /** Each node's demand now, in config order (own nodes, then peers). */
  demands(now: number): NodeDemand[] {
    const { demand } = this.params();
    return this.tracked.map((t) => {
      const d = demandRate(t.state, now, demand);
      return { node: t.node.name, demandCps: d.cps, seen: d.seen };
    });
  }

  /** The split now: every node's fraction of the pool's limit (the own ones are what the plan uses). */
  split(now: number): ReadonlyMap<string, number> {
    const own = new Set(this.tracked.filter((t) => t.node.own).map((t) => t.node.name));
    const peers = this.tracked.length - own.size;
    this.held = stickySplit(
      this.held,
      splitFractions(this.demands(now), this.params().split),
      SPLIT_HYSTERESIS,
    );
    this.fractions = withPeerMargin(this.held, own, peers, PEER_MARGIN);
    return this.fractions;
  }

  status(now: number): NodeDemandStatus[] {
    const demands = new Map(this.demands(now).map((d) => [d.node, d.demandCps] as const));
    return this.tracked.map((t) => ({
      node: t.node.name,
      own: t.node.own,
      demand_cps: round2(demands.get(t.node.name) ?? null),
      fraction: this.fractions.get(t.node.name) ?? 1 / this.tracked.length,
      read_errors: t.errors,
      last_error: t.lastError,
    }));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.abort.abort();
    await Promise.all([...this.inFlight]);
    for (const t of this.tracked) t.reader.close();
  }
}

const round2 = (x: number | null): number | null => (x === null ? null : Math.round(x * 100) / 100);
