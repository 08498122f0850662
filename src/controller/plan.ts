/**
 * What the controller decides, pure: when start-up is over, what one scoring result means for every
 * LB node (the list and admission limits to submit, and to which nodes), what an LB's list tells
 * discovery (blocked nodes, the weights a panicking set falls back to), which removed backends stay
 * retired, and which events all of that makes. The Controller class feeds these from the registry,
 * the scorer and the clock, and carries out what they return.
 */
import type { ControllerConfig, SetConfig } from '../config/types.js';
import { mergeDiscovery, type DiscoveryNote } from '../discovery/merge.js';
import { destinationKey } from '../kamailio/dispatcher-list.js';
import { effectiveWeight, type DispatcherTarget } from '../kamailio/dispatcher-list-reply.js';
import type { BackendSpec } from '../discovery/backend-spec.js';
import type { BackendView } from '../probe/probe-core.js';
import { desiredAdmission, desiredDestinations } from '../push/desired-list.js';
import type { AdmissionDesired, NodeDesired } from '../push/node-link.js';
import {
  initialScorerState,
  takeoverState,
  type BackendSample,
  type CycleResult,
  type ScorerState,
  type ScoringParams,
  type TakeoverSeed,
} from '../scoring/index.js';
import type { ReloadChanges } from './reload-plan.js';
import type { BackendWeight, ControllerEvent } from './events.js';
import type { LbNodeState } from './node-state.js';

// ---- start-up grace -----------------------------------------------------------------------------

/** Long enough for a live backend to pass return_after_oks probes, with room for a lost one. */
export function startupGraceMs(hb: ControllerConfig['heartbeat']): number {
  return Math.max(2000, hb.probe_interval_ms * (hb.return_after_oks + 3));
}

/**
 * Start-up grace: no scoring until every backend has had its chance to be confirmed (or the grace
 * ran out). Scoring the first backends while the others are still proving themselves would take
 * those out and slow-start them back: a needless disturbance at every controller restart, when the
 * LB is still serving on the weights the previous run left (fail-static). Once settled, for good.
 */
export function isSettled(
  alreadySettled: boolean,
  views: readonly BackendView[],
  sinceStartMs: number,
  graceMs: number,
): boolean {
  if (alreadySettled) return true;
  const confirming = views.some(
    (v) => v.health.kind === 'returning' || (v.health.kind === 'down' && v.health.cause === 'never_seen'),
  );
  return !confirming || sinceStartMs >= graceMs;
}

/**
 * What the LB holds, as the scorer's takeover seeds (scoring/takeover.ts): each backend with its
 * weight in `listed` (0 when the LB does not list it in rotation: `effectiveWeight`). Null before any LB was read: a plain
 * fresh start.
 */
export function takeoverSeeds(
  views: readonly BackendView[],
  listed: ReadonlyMap<string, number> | null,
): TakeoverSeed[] | null {
  if (listed === null) return null;
  return views.map((v) => ({
    id: v.id,
    set: v.set,
    capacity: v.capacity,
    listedWeight: listed.get(destinationKey({ setId: v.set, uri: v.uri })) ?? 0,
  }));
}

/** The scorer's state at the first scored cycle: taken over from the LB's list when one was read. */
export function startingScorer(
  views: readonly BackendView[],
  listed: ReadonlyMap<string, number> | null,
  now: number,
  p: ScoringParams,
): ScorerState {
  const seeds = takeoverSeeds(views, listed);
  return seeds === null ? initialScorerState() : takeoverState(seeds, now, p);
}

// ---- one scoring cycle --------------------------------------------------------------------------

/** What earlier cycles told the world, so that only changes are told again. */
export interface CycleMemory {
  /** Per set, the weights last told (`id=w ...`). */
  readonly weights: ReadonlyMap<number, string>;
  readonly panicking: ReadonlySet<number>;
  readonly waiting: ReadonlySet<number>;
}

export const EMPTY_MEMORY: CycleMemory = { weights: new Map(), panicking: new Set(), waiting: new Set() };

export interface CycleInput {
  readonly views: readonly BackendView[];
  readonly result: CycleResult;
  /** Effective weight by destination key as the first readable LB listed it; null until one was read. */
  readonly listed: ReadonlyMap<string, number> | null;
  readonly sets: readonly number[];
  readonly admissionEnabled: boolean;
  readonly nodes: readonly LbNodeState[];
  /** Each node's fraction of the pool's admission limit (scoring/admission-split.ts). */
  readonly fractions: ReadonlyMap<string, number>;
  readonly memory: CycleMemory;
}

/** What one node is to hold: the same list everywhere, its own part of the admission limit. */
export interface NodeSubmit {
  readonly node: string;
  readonly desired: NodeDesired;
}

export interface CyclePlan {
  /** What to submit to each unblocked node; null: push nothing this cycle. */
  readonly submit: readonly NodeSubmit[] | null;
  readonly events: readonly ControllerEvent[];
  readonly memory: CycleMemory;
}

const round2 = (x: number): number => Math.round(x * 100) / 100;

export function planCycle(inp: CycleInput): CyclePlan {
  const { result } = inp;
  const events: ControllerEvent[] = result.rejected.map((r) => ({
    type: 'sample_rejected',
    backend: r.id,
    reason: r.reason,
  }));
  const panics = panicEvents(result, inp.memory);
  const told = weightEvents(result, inp.memory.weights);
  events.push(...panics.events, ...told.events);
  const memory: CycleMemory = { weights: told.weights, panicking: panics.panicking, waiting: panics.waiting };

  const weights = cycleWeights(inp.views, result, inp.listed);
  if (weights === null) return { submit: null, events, memory };
  const managed = new Set(inp.sets);
  const destinations = desiredDestinations(
    inp.views.filter((v) => managed.has(v.set)),
    (id) => weights.get(id) ?? 0,
  );
  const evenly = 1 / Math.max(1, inp.nodes.length);
  const submit = inp.nodes
    .filter((n) => n.blocked === null)
    .map((n) => ({
      node: n.name,
      desired: {
        destinations,
        admission: admissionDesired(
          inp.admissionEnabled,
          result,
          inp.sets,
          inp.fractions.get(n.name) ?? evenly,
        ),
      },
    }));
  return { submit, events, memory };
}

/**
 * The weight of every scored backend. A set that panicked before it was ever scored: we know nothing
 * worth writing, so its backends keep what the LB listed at the last discovery (other sets are
 * pushed as usual); one it did not list is not in its rotation, and stays out. Null: push nothing
 * (such a set exists and no LB was read yet).
 */
export function cycleWeights(
  views: readonly BackendView[],
  result: CycleResult,
  listed: ReadonlyMap<string, number> | null,
): Map<string, number> | null {
  if (listed === null && result.sets.some((s) => s.weights === null)) return null;
  const viewOf = new Map(views.map((v) => [v.id, v]));
  const listedWeight = (id: string): number => {
    const v = viewOf.get(id);
    return (v && listed?.get(destinationKey({ setId: v.set, uri: v.uri }))) ?? 0;
  };
  const weights = new Map<string, number>();
  for (const set of result.sets) {
    for (const b of set.backends) {
      weights.set(b.id, set.weights ? (set.weights.get(b.id) ?? 0) : listedWeight(b.id));
    }
  }
  return weights;
}

/**
 * Admission at one node: its `fraction` of the pool's limit (each node's limiter sees only the calls
 * sent to it); when off, no limit on any managed set (lifting one an earlier config set).
 */
export function admissionDesired(
  enabled: boolean,
  result: CycleResult,
  sets: readonly number[],
  fraction: number,
): AdmissionDesired {
  if (!enabled) return { kind: 'off', sets: [...sets].sort((a, b) => a - b) };
  return { kind: 'limits', limits: desiredAdmission(result.sets, fraction) };
}

/** One event per change of a set's weights, with what drove it. */
function weightEvents(
  result: CycleResult,
  before: ReadonlyMap<number, string>,
): { events: ControllerEvent[]; weights: ReadonlyMap<number, string> } {
  const weights = new Map(before);
  const events: ControllerEvent[] = [];
  for (const set of result.sets) {
    if (set.weights === null) continue;
    const key = [...set.weights].map(([id, w]) => `${id}=${w}`).join(' ');
    if (weights.get(set.set) === key) continue;
    weights.set(set.set, key);
    const backends: BackendWeight[] = set.backends.map((b) => ({
      id: b.id,
      weight: set.weights?.get(b.id) ?? 0,
      phase: b.assignment.phase,
      factor: round2(b.factor),
      pressure: b.pressure === null ? null : round2(b.pressure),
      dominant: b.dominant,
    }));
    events.push({
      type: 'weights_changed',
      set: set.set,
      mode: set.mode,
      pool_cps: set.poolCapacityCps === null ? null : Math.round(set.poolCapacityCps),
      backends,
    });
  }
  return { events, weights };
}

function panicEvents(
  result: CycleResult,
  memory: CycleMemory,
): { events: ControllerEvent[]; panicking: ReadonlySet<number>; waiting: ReadonlySet<number> } {
  const panicking = new Set(memory.panicking);
  const waiting = new Set(memory.waiting);
  const events: ControllerEvent[] = [];
  for (const set of result.sets) {
    if (set.mode === 'panic' && set.weights === null) {
      // Start-up: nothing heard yet, nothing pushed yet. Not a partition, just not knowing.
      if (!waiting.has(set.set)) events.push({ type: 'set_waiting', set: set.set });
      waiting.add(set.set);
    } else if (set.mode === 'panic' && !panicking.has(set.set)) {
      panicking.add(set.set);
      events.push({
        type: 'panic_started',
        set: set.set,
        healthy: set.panic.healthy,
        counted: set.panic.counted,
        threshold: set.panic.threshold,
      });
    } else if (set.mode === 'scored' && panicking.delete(set.set)) {
      events.push({ type: 'panic_ended', set: set.set });
    }
  }
  return { events, panicking, waiting };
}

// ---- discovery ------------------------------------------------------------------------------------

/** One LB's `dispatcher.list` as discovery read it. */
export type ListRead =
  | { readonly node: string; readonly ok: true; readonly targets: readonly DispatcherTarget[] }
  | { readonly node: string; readonly ok: false; readonly error: string };

export interface DiscoveryInput {
  readonly sets: readonly SetConfig[];
  readonly reads: readonly ListRead[];
  readonly retired: Retired;
  readonly nodes: readonly LbNodeState[];
  readonly defaultCapacity: number;
}

export interface DiscoveryPlan {
  readonly backends: readonly BackendSpec[];
  /** Every LB was read: a backend none of them lists any more can be forgotten. */
  readonly complete: boolean;
  /** New fallback weights (see cycleWeights); null: keep the previous ones (no LB could be read). */
  readonly listed: ReadonlyMap<string, number> | null;
  readonly nodes: readonly LbNodeState[];
  readonly events: readonly ControllerEvent[];
  /**
   * Backends some LB lists disabled. The controller writes disabled only for a drained backend, so
   * at start-up these are drains of a previous run (or the operator's own) that the new run keeps:
   * its drains live in memory, and bringing a drained backend back would send calls to a server
   * under maintenance. The cause is not in the list: they come back as operator drains.
   */
  readonly disabled: readonly string[];
}

export function planDiscovery(inp: DiscoveryInput): DiscoveryPlan {
  const events: ControllerEvent[] = [];
  const ok: { node: string; targets: DispatcherTarget[] }[] = [];
  for (const r of inp.reads) {
    if (!r.ok) {
      events.push({ type: 'lb_list_unreadable', node: r.node, error: r.error });
      continue;
    }
    // Backends a reload removed are not taken back from the list we wrote them into.
    ok.push({ node: r.node, targets: r.targets.filter((t) => t.duid === null || !inp.retired.has(t.duid)) });
  }
  const first = ok[0];
  const listed = first
    ? new Map(first.targets.map((t) => [destinationKey(t), effectiveWeight(t)] as const))
    : null;
  const { backends, notes } = mergeDiscovery(inp.sets, ok, { defaultCapacity: inp.defaultCapacity });
  const blocking = blockedNodes(notes, new Set(ok.map((l) => l.node)), inp.nodes, events);
  const disabledKeys = new Set(
    ok.flatMap((l) => l.targets.filter((t) => t.state === 'disabled').map((t) => destinationKey(t))),
  );
  const disabled = backends.filter((b) => disabledKeys.has(destinationKey({ setId: b.set, uri: b.uri })));
  return {
    backends,
    complete: ok.length === inp.reads.length,
    listed,
    nodes: blocking,
    events,
    disabled: disabled.map((b) => b.id),
  };
}

/** Nodes blocked or unblocked by what was read; problems other than unmanaged sets become events. */
function blockedNodes(
  notes: readonly DiscoveryNote[],
  read: ReadonlySet<string>,
  nodes: readonly LbNodeState[],
  events: ControllerEvent[],
): LbNodeState[] {
  const unmanaged = new Map<string, Set<number>>();
  for (const n of notes) {
    if (n.kind === 'unmanaged_set') {
      const s = unmanaged.get(n.node) ?? new Set<number>();
      s.add(n.setId);
      unmanaged.set(n.node, s);
    } else {
      events.push({ type: 'discovery_problem', node: n.node, kind: n.kind, detail: noteDetail(n) });
    }
  }
  return nodes.map((node) => {
    if (!read.has(node.name)) return node;
    const sets = unmanaged.get(node.name);
    if (sets) {
      // The controller writes the whole list file: pushing would delete these sets.
      const ids = [...sets];
      const reason = `its dispatcher list has sets not in this config (${ids.join(', ')}): add them to sets[] or move them to another list`;
      if (node.blocked !== reason) events.push({ type: 'node_blocked', node: node.name, sets: ids, reason });
      return { ...node, synced: true, blocked: reason };
    }
    if (node.blocked !== null) events.push({ type: 'node_unblocked', node: node.name });
    return { ...node, synced: true, blocked: null };
  });
}

function noteDetail(n: Exclude<DiscoveryNote, { kind: 'unmanaged_set' }>): string {
  return n.kind === 'id_conflict' ? `id ${n.id} claimed by ${n.uris.join(' and ')}` : `${n.uri}: ${n.detail}`;
}

/** A `discovery` event when discovery changed the registry. */
export function discoveryEvents(added: readonly string[], removed: readonly string[]): ControllerEvent[] {
  return added.length > 0 || removed.length > 0 ? [{ type: 'discovery', added, removed }] : [];
}

// ---- reload --------------------------------------------------------------------------------------

export interface RegistryReload {
  /** Configured backends to take out of the registry (and the LB lists with the next push). */
  readonly remove: readonly string[];
  /** Added or changed backends, to put in as never seen (probed at once, slow-started). */
  readonly upsert: readonly BackendSpec[];
  readonly retired: Retired;
}

/**
 * What a reload does to the registry. Only backends the config brought are removed: one the LB
 * listed or that registered itself stays. Removed ones are retired until every node was pushed a
 * list without them.
 */
export function planRegistryReload(
  next: ControllerConfig,
  changes: ReloadChanges,
  sourceOf: (id: string) => BackendSpec['source'] | undefined,
  retired: Retired,
  nodes: readonly string[],
): RegistryReload {
  const remove = changes.backends.removed.filter((id) => sourceOf(id) === 'config');
  const readded = new Set([...changes.backends.added, ...changes.backends.changed]);
  const upsert = next.sets.flatMap((set) =>
    set.backends
      .filter((b) => readded.has(b.id))
      .map((b): BackendSpec => ({
        id: b.id,
        set: set.id,
        uri: b.sip_uri,
        capacity: b.capacity,
        ...(b.agent ? { agent: b.agent } : {}),
        ...(b.ssh ? { ssh: b.ssh } : {}),
        source: 'config',
      })),
  );
  return { remove, upsert, retired: retire(retired, remove, [...readded], nodes) };
}

/** A registry view as the scorer takes it. */
export function scorerSample(v: BackendView): BackendSample {
  return {
    id: v.id,
    set: v.set,
    capacity: v.capacity,
    health: v.health.kind,
    report: v.metrics && Number.isFinite(v.lastReportAt) ? { metrics: v.metrics, at: v.lastReportAt } : null,
    // An agent's address (configured, listed or learned from its hello) or an SSH section: the
    // controller can observe it, so its health counts in the panic check.
    probed: v.agent !== null || v.via === 'ssh',
    evidenceOnly: v.health.kind === 'suspect' && v.health.misses === 0,
  };
}

// ---- retired backends -----------------------------------------------------------------------------

/**
 * Backends a reload removed, with the LB nodes that have not yet been pushed a list without them.
 * Until then discovery ignores them: the LB still lists them (we wrote them there), and taking
 * that echo for an LB-discovered backend would keep them in rotation for good.
 */
export type Retired = ReadonlyMap<string, ReadonlySet<string>>;

/** After a reload: `removed` leave, `readded` (added or changed again) are no longer retired. */
export function retire(
  retired: Retired,
  removed: readonly string[],
  readded: readonly string[],
  nodes: readonly string[],
): Retired {
  const out = new Map(retired);
  for (const id of removed) out.set(id, new Set(nodes));
  for (const id of readded) out.delete(id);
  return out;
}

/** After `node` converged on a list without them. */
export function retiredAfterPush(retired: Retired, node: string): Retired {
  const out = new Map<string, ReadonlySet<string>>();
  for (const [id, pending] of retired) {
    const left = new Set(pending);
    left.delete(node);
    if (left.size > 0) out.set(id, left);
  }
  return out;
}
