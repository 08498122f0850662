/**
 * One record per LB node: everything the controller remembers of it (blocked or not, ever synced,
 * reachable, the last admission outcome, the last apply, counters), and the pure step that folds one
 * apply outcome into it and says which events that makes. The controller holds one of these per
 * node and nothing else per node besides the NodeLink (its connections) and the NodeSync (its retries).
 */
import type { SyncOutcome } from '../push/node-sync.js';
import type { AdmissionOutcome, NodeOutcome } from '../push/node-link.js';
import type { ControllerEvent, PushOutcomeKind } from './events.js';
import { retiredAfterPush, type Retired } from './plan.js';

/** One apply to an LB node as the API and /metrics report it. */
export interface NodeApplyRecord {
  /** `in_sync` only when the LB was read (a cache hit is no push and is not recorded). */
  readonly outcome: PushOutcomeKind;
  /** Wall-clock ms when it finished. */
  readonly at: number;
  readonly durationMs: number;
  readonly changes: number;
  readonly error: string | null;
  readonly driftRepaired: boolean;
}

/** Per LB node since the controller started. */
export interface NodeCounters {
  readonly pushes: { readonly applied: number; readonly in_sync: number; readonly failed: number };
  readonly driftRepairs: number;
  /** Failed applies of any kind (push or admission limit). */
  readonly errors: number;
}

export interface LbNodeState {
  readonly name: string;
  /** Why the controller does not push to it (its list has sets we do not manage), or null. */
  readonly blocked: string | null;
  /** Read or pushed successfully at least once. */
  readonly synced: boolean;
  /** Whether the last apply succeeded; null before the first (transitions are events). */
  readonly reachable: boolean | null;
  /** The kind of the last admission outcome, so a lasting condition is told once. */
  readonly admission: AdmissionOutcome['kind'] | null;
  readonly last: NodeApplyRecord | null;
  readonly counters: NodeCounters;
}

export function initialNodeState(name: string): LbNodeState {
  return {
    name,
    blocked: null,
    synced: false,
    reachable: null,
    admission: null,
    last: null,
    counters: { pushes: { applied: 0, in_sync: 0, failed: 0 }, driftRepairs: 0, errors: 0 },
  };
}

export interface AfterApply {
  readonly state: LbNodeState;
  readonly events: readonly ControllerEvent[];
  /** The node now holds what was last asked of it (retired backends are gone from its list). */
  readonly converged: boolean;
}

const round1 = (x: number): number => Math.round(x * 10) / 10;

/** Folds one apply outcome of node `s` into its record (pure). `failures`: consecutive, after it. */
export function nodeAfterApply(
  s: LbNodeState,
  outcome: SyncOutcome<NodeOutcome>,
  failures: number,
): AfterApply {
  const o = outcome.result;
  const push = o?.push ?? null;
  const events: ControllerEvent[] = [];
  let counters = outcome.ok ? s.counters : { ...s.counters, errors: s.counters.errors + 1 };
  let last = s.last;
  // A cache hit read nothing and pushed nothing: not a push, not recorded.
  if (!(push?.kind === 'in_sync' && push.checkedBy === 'cache')) {
    const kind: PushOutcomeKind = push?.kind ?? 'failed';
    const driftRepaired = o?.driftRepaired ?? false;
    counters = {
      pushes: { ...counters.pushes, [kind]: counters.pushes[kind] + 1 },
      driftRepairs: counters.driftRepairs + (driftRepaired ? 1 : 0),
      errors: counters.errors,
    };
    last = {
      outcome: kind,
      at: outcome.at,
      durationMs: push ? push.durations.totalMs : outcome.durationMs,
      changes: push && push.kind !== 'in_sync' ? (push.changes?.length ?? 0) : 0,
      error: outcome.ok ? null : outcome.reason,
      driftRepaired,
    };
    events.push({
      type: 'node_push',
      node: s.name,
      outcome: kind,
      changes: last.changes,
      ms: round1(last.durationMs),
      drift_repaired: driftRepaired,
      stage: push === null ? 'apply' : push.kind === 'failed' ? push.stage : null,
      error: push?.kind === 'failed' ? push.reason : outcome.ok ? null : outcome.reason,
      failures,
    });
  }
  if (outcome.ok && s.reachable !== true) {
    // First success, or the first after failures: said once (successes are otherwise quiet).
    events.push({ type: 'node_reachable', node: s.name, again: s.reachable === false });
  } else if (!outcome.ok && s.reachable === true) {
    events.push({ type: 'node_unreachable', node: s.name, error: outcome.reason });
  }
  const admission = o ? admissionStep(s, o, events) : s.admission;
  return {
    state: {
      ...s,
      synced: s.synced || outcome.ok,
      reachable: outcome.ok,
      admission,
      last,
      counters,
    },
    events,
    converged: outcome.ok,
  };
}

/** The admission events of one outcome; a lasting condition (missing, failing) is told once. */
function admissionStep(s: LbNodeState, o: NodeOutcome, events: ControllerEvent[]): AdmissionOutcome['kind'] {
  const a = o.admission;
  if (s.admission === a.kind && a.kind !== 'applied' && a.kind !== 'cleared') return a.kind;
  if (a.kind === 'applied') events.push({ type: 'admission_applied', node: s.name, limits: a.limits });
  else if (a.kind === 'cleared') events.push({ type: 'admission_cleared', node: s.name, sets: a.sets });
  else if (a.kind === 'missing') events.push({ type: 'admission_missing', node: s.name, sets: a.sets });
  // A failed push already said why; the admission was not even tried.
  else if (a.kind === 'failed' && o.push.kind !== 'failed')
    events.push({ type: 'admission_failed', node: s.name, error: a.reason });
  return a.kind;
}

/**
 * Why the controller is not ready to be relied on, per node (empty when it is): a node is ready once
 * it was read or pushed successfully and is not blocked. A blocked node is never pushed to, so it is
 * not ready even though discovery read it.
 */
export function notReadyReasons(nodes: readonly LbNodeState[]): string[] {
  return nodes.flatMap((n) => {
    if (n.blocked !== null) return [`LB node ${n.name} is not pushed to: ${n.blocked}`];
    if (!n.synced) return [`LB node ${n.name} has not been read or pushed successfully yet`];
    return [];
  });
}

/**
 * One apply outcome folded into every node's record and the retired backends (pure): the node it
 * was for (none: an outcome of a node no longer configured, ignored), and the retired backends it
 * no longer lists once it converged.
 */
export function afterApply(
  nodes: readonly LbNodeState[],
  retired: Retired,
  outcome: SyncOutcome<NodeOutcome>,
  failures: number,
): { nodes: LbNodeState[]; retired: Retired; events: readonly ControllerEvent[] } {
  const i = nodes.findIndex((n) => n.name === outcome.node);
  if (i < 0) return { nodes: [...nodes], retired, events: [] };
  const step = nodeAfterApply(nodes[i]!, outcome, failures);
  const next = nodes.map((n, j) => (j === i ? step.state : n));
  return {
    nodes: next,
    retired: step.converged ? retiredAfterPush(retired, outcome.node) : retired,
    events: step.events,
  };
}
