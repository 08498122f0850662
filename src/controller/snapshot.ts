/** What the status API and /metrics read of the controller, taken at one instant. */
import type { BackendView } from '../probe/probe-core.js';
import type { CycleResult } from '../scoring/index.js';
import type { LbNodeState, NodeApplyRecord, NodeCounters } from './node-state.js';
import type { JobStatus } from './schedules.js';
import type { LbSocketStatus } from './lb-socket.js';
import type { NodeWatchState } from './lb-watch.js';
import { buildStatus, type ControllerStatus } from './status.js';
import type { NodeOutcome } from '../push/node-link.js';
import type { NodeSyncStatus } from '../push/node-sync.js';
import type { SourcesView } from './fair-admission.js';
import type { NodeDemandStatus } from './demand-watch.js';

export type { NodeApplyRecord, NodeCounters } from './node-state.js';

export interface ControllerSnapshot {
  readonly now: { readonly mono: number; readonly wall: number };
  readonly startedAt: number;
  readonly views: readonly BackendView[];
  readonly result: CycleResult | null;
  readonly nodes: readonly NodeSnapshot[];
  readonly status: ControllerStatus;
  /** Per-source admission figures (GET /api/v1/sources, /metrics). */
  readonly sources: SourcesView;
  readonly watch: readonly NodeWatchState[];
  /** Every LB node's demand and part of the admission limit, peers included (demand-watch.ts). */
  readonly split: readonly NodeDemandStatus[];
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
  /** The LB's SIP socket as this host's kernel shows it; null when the config names none. */
  readonly sipSocket: LbSocketStatus | null;
}

/** A node's record as the API reads it, with what its link holds. */
export function nodeSnapshot(
  n: LbNodeState,
  link: { describe(): string; readonly pushedWeights: ReadonlyMap<string, number> | null },
  consecutiveFailures: number,
  sipSocket: LbSocketStatus | null,
): NodeSnapshot {
  const { name, blocked, synced, last, counters } = n;
  return {
    name,
    target: link.describe(),
    blocked,
    synced,
    last,
    counters,
    weights: link.pushedWeights,
    consecutiveFailures,
    sipSocket,
  };
}

/** What the controller holds at one instant, for the readers below (the API, /metrics, status). */
export interface ControllerParts {
  readonly now: { readonly mono: number; readonly wall: number };
  readonly startedAt: number;
  readonly views: readonly BackendView[];
  readonly result: CycleResult | null;
  readonly nodes: readonly LbNodeState[];
  readonly links: readonly {
    describe(): string;
    readonly pushedWeights: ReadonlyMap<string, number> | null;
  }[];
  readonly syncOf: (node: string) => NodeSyncStatus<NodeOutcome> | undefined;
  readonly schedules: readonly JobStatus[];
  readonly sources: () => SourcesView;
  /** Each LB node's socket status, by node name (lb-socket-watch.ts). */
  readonly lbSockets: ReadonlyMap<string, LbSocketStatus>;
  /** Lease, evidence and backstop per LB node, as the watch last saw them. */
  readonly watch: readonly NodeWatchState[];
  readonly split: readonly NodeDemandStatus[];
}

/** Each LB node as `sipweigh status` shows it: its target, why it is blocked, its sync's state. */
export function nodeStatusOf(p: ControllerParts) {
  return p.nodes.map((n, i) => ({
    name: n.name,
    target: p.links[i]!.describe(),
    blocked: n.blocked,
    sync: p.syncOf(n.name) ?? null,
    sipSocket: p.lbSockets.get(n.name) ?? null,
  }));
}

/** What an operator reads: `sipweigh status`, the status file. */
export function statusOf(p: ControllerParts): ControllerStatus {
  const { now, startedAt, views, result, schedules } = p;
  return buildStatus({ now, startedAt, views, result, nodes: nodeStatusOf(p), schedules });
}

/** Everything the API and /metrics show, at one instant. */
export function snapshotOf(p: ControllerParts): ControllerSnapshot {
  const { now, startedAt, views, result } = p;
  const nodes = p.nodes.map((n, i) =>
    nodeSnapshot(n, p.links[i]!, p.syncOf(n.name)?.consecutiveFailures ?? 0, p.lbSockets.get(n.name) ?? null),
  );
  return {
    now,
    startedAt,
    views,
    result,
    status: statusOf(p),
    nodes,
    sources: p.sources(),
    watch: p.watch,
    split: p.split,
  };
}
