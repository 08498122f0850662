/** What the status API and /metrics read of the controller, taken at one instant. */
import type { BackendView } from '../probe/probe-core.js';
import type { CycleResult } from '../scoring/index.js';
import type { LbNodeState, NodeApplyRecord, NodeCounters } from './node-state.js';
import type { ControllerStatus } from './status.js';

export type { NodeApplyRecord, NodeCounters } from './node-state.js';

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

/** A node's record as the API reads it, with what its link holds. */
export function nodeSnapshot(
  n: LbNodeState,
  link: { describe(): string; readonly pushedWeights: ReadonlyMap<string, number> | null },
  consecutiveFailures: number,
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
  };
}
