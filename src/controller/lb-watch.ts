/**
 * The controller's watch over each LB node beside the pushes (issue 17; docs/controller.md, Lease
 * and backstop): every `lease.refresh_ms` it refreshes the lease (htable sipweigh_lease, ms_left =
 * `lease.duration_ms`) at every node it pushes to, and reads the node's evidence (htable
 * sipweigh_ev) and backstop flag. `watchStep` (pure) turns one node's reads into events, counters
 * and what was newly counted; `evidenceSuspects` (pure) turns those counts into suspect backends
 * (health/passive-evidence.ts). LbWatch is the thin timer shell around them.
 *
 * Quiet by design: a node whose RPC fails is told once (the first failure, then the recovery) and
 * counted every time, never logged at every refresh; an LB whose snippet has no evidence or lease
 * table is told once as such (it is an older snippet, not a fault).
 */
import { performance } from 'node:perf_hooks';
import type { ControllerConfig, LeaseConfig } from '../config/types.js';
import { evidenceVerdict, foldEvidence, type EvidenceSample } from '../health/passive-evidence.js';
import {
  counterDeltas,
  isNoSuchHtable,
  readEvidence,
  readLease,
  refreshLease,
  type DestinationCounters,
  type EvidenceRpc,
} from '../kamailio/lb-evidence.js';
import type { ControllerEvent } from './events.js';

type Outcome<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly error: string; readonly unsupported: boolean };

/** One round of reads at one node. `lease` null: not refreshed (the node is not ours to drive yet). */
export interface WatchRead {
  readonly at: number;
  readonly lease: Outcome<null> | null;
  readonly evidence: Outcome<ReadonlyMap<string, DestinationCounters>>;
  readonly backstop: Outcome<boolean | null>;
}

export interface NodeWatchState {
  readonly node: string;
  /** What the node's snippet offers: unknown until the first read. */
  readonly evidence: 'unknown' | 'supported' | 'unsupported';
  /** The backstop flag last read (null: unknown, or the LB has no lease table). */
  readonly backstop: boolean | null;
  readonly leaseFailing: boolean;
  /** Evidence reads failing (told once, with the recovery), apart from a node whose lease failed too. */
  readonly readFailing: boolean;
  readonly leaseRefreshes: { readonly ok: number; readonly failed: number };
  readonly reads: { readonly ok: number; readonly failed: number };
  readonly backstopSwitches: { readonly on: number; readonly off: number };
  /** Counters at the last good read, and when it was. */
  readonly last: ReadonlyMap<string, DestinationCounters> | null;
  readonly lastAt: number | null;
  /** Per destination URI, what this controller saw counted since it started. */
  readonly totals: ReadonlyMap<string, DestinationCounters>;
}

export function initialWatchState(node: string): NodeWatchState {
  return {
    node,
    evidence: 'unknown',
    backstop: null,
    leaseFailing: false,
    readFailing: false,
    leaseRefreshes: { ok: 0, failed: 0 },
    reads: { ok: 0, failed: 0 },
    backstopSwitches: { on: 0, off: 0 },
    last: null,
    lastAt: null,
    totals: new Map(),
  };
}

export interface WatchStep {
  readonly state: NodeWatchState;
  readonly events: ControllerEvent[];
  /** Newly counted per URI, over [since, at]; empty on the first read or a failed one. */
  readonly deltas: ReadonlyMap<string, DestinationCounters>;
  readonly since: number | null;
  /** The backstop went off: the LB probed on its own until now, its list may have moved. */
  readonly backstopOff: boolean;
}

export function watchStep(s: NodeWatchState, r: WatchRead): WatchStep {
  const node = s.node;
  const events: ControllerEvent[] = [];
  let { leaseFailing, readFailing, leaseRefreshes, reads, backstopSwitches, evidence, backstop } = s;
  if (r.lease !== null) {
    if (r.lease.ok) {
      if (leaseFailing) events.push({ type: 'lease_refresh_recovered', node });
      leaseFailing = false;
      leaseRefreshes = { ...leaseRefreshes, ok: leaseRefreshes.ok + 1 };
    } else {
      if (!leaseFailing) events.push({ type: 'lease_refresh_failed', node, error: r.lease.error });
      leaseFailing = true;
      leaseRefreshes = { ...leaseRefreshes, failed: leaseRefreshes.failed + 1 };
    }
  }
  let deltas: ReadonlyMap<string, DestinationCounters> = new Map();
  let last = s.last;
  let lastAt = s.lastAt;
  let totals = s.totals;
  const since = s.lastAt;
  if (r.evidence.ok) {
    evidence = 'supported';
    if (readFailing) events.push({ type: 'lb_evidence_read_recovered', node });
    readFailing = false;
    reads = { ...reads, ok: reads.ok + 1 };
    deltas = counterDeltas(s.last, r.evidence.value);
    last = r.evidence.value;
    lastAt = r.at;
    if (deltas.size > 0) totals = addTotals(totals, deltas);
  } else if (r.evidence.unsupported) {
    if (evidence !== 'unsupported')
      events.push({ type: 'lb_evidence_unsupported', node, error: r.evidence.error });
    evidence = 'unsupported';
  } else {
    reads = { ...reads, failed: reads.failed + 1 };
    // A node that did not take the lease either is told by lease_refresh_failed already.
    const told = r.lease !== null && !r.lease.ok;
    if (!readFailing && !told) {
      events.push({ type: 'lb_evidence_read_failed', node, error: r.evidence.error });
      readFailing = true;
    }
  }
  let backstopOff = false;
  if (r.backstop.ok && r.backstop.value !== null && r.backstop.value !== backstop) {
    // The first read tells only an LB probing on its own (the controller starting while it does):
    // told, but a state found, not a switch seen, so not counted.
    if (r.backstop.value) {
      events.push({ type: 'lb_backstop_on', node });
      if (backstop !== null) backstopSwitches = { ...backstopSwitches, on: backstopSwitches.on + 1 };
    } else if (backstop !== null) {
      events.push({ type: 'lb_backstop_off', node });
      backstopSwitches = { ...backstopSwitches, off: backstopSwitches.off + 1 };
      backstopOff = true;
    }
    backstop = r.backstop.value;
  } else if (!r.backstop.ok && r.backstop.unsupported) {
    backstop = null;
  }
  const state = {
    ...s,
    evidence,
    backstop,
    leaseFailing,
    readFailing,
    leaseRefreshes,
    reads,
    backstopSwitches,
    last,
    lastAt,
    totals,
  };
  return { state, events, deltas, since, backstopOff };
}

function addTotals(
  totals: ReadonlyMap<string, DestinationCounters>,
  deltas: ReadonlyMap<string, DestinationCounters>,
): Map<string, DestinationCounters> {
  const out = new Map(totals);
  for (const [uri, d] of deltas) {
    const t = out.get(uri) ?? { rtx: 0, redispatch: 0 };
    out.set(uri, { rtx: t.rtx + d.rtx, redispatch: t.redispatch + d.redispatch });
  }
  return out;
}

/**
 * How long after its lease was first refreshed a node whose backstop is still on is not pushed to:
 * the LB's own pings go on until its timer (200 ms) sees the lease, and a reply that lands between a
 * push's reload and its read-back sets a probing flag that fails the verify (a needless retry at every
 * takeover). The switch is seen at the next read and repaired at once (onBackstopOff); past this
 * bound (a backstop that does not go off) the node is pushed to anyway.
 */
export const HANDOVER_MS = 2000;

/** Whether to push to a node now (pure): not while its backstop is on, for HANDOVER_MS after arming. */
export function handedOver(backstop: boolean | null, armedAt: number | undefined, now: number): boolean {
  return backstop !== true || armedAt === undefined || now - armedAt >= HANDOVER_MS;
}

/** Why the lease is withheld from an armed node: what the controller cannot do there any more. */
export type LeaseWithheld = 'not_scored' | 'apply_failing';

/**
 * Whether to refresh the lease at a node the controller pushes to (pure): a lease promises the LB
 * that the controller acts on it, so the backstop stays off only while that holds. Null: refresh.
 * `not_scored`: no cycle scored for longer than the lease, or than two cycles when a cycle is longer
 * (a slow cycle_ms is not a stuck controller; scoring that throws, or a stuck one, is);
 * `apply_failing`: every apply at the node has failed for longer than the lease (list transport,
 * reload or verification broken while JSON-RPC answers). Either way the lease lapses and the LB's
 * own probing takes dead backends out; the first good apply or scored cycle brings the lease back.
 */
export function leaseWithheld(
  now: number,
  scoredAt: number | null,
  failingSince: number | undefined,
  durationMs: number,
  cycleMs: number,
): LeaseWithheld | null {
  if (scoredAt === null || now - scoredAt > Math.max(durationMs, 2 * cycleMs)) return 'not_scored';
  if (failingSince !== undefined && now - failingSince > durationMs) return 'apply_failing';
  return null;
}

/** Longest pause between visits of a node that does not answer. */
export const MAX_WATCH_BACKOFF_MS = 8000;

/**
 * How long to leave a node alone after `failures` rounds in a row that did not reach it (pure): not
 * at all while it answers (every refresh), then doubling from 2 refreshes up to MAX_WATCH_BACKOFF_MS. An unreachable LB is not
 * hammered (its lease lapses anyway), and one that returns is refreshed again within 8 s (its pushes retry on their own schedule).
 */
export function watchDelayMs(failures: number, refreshMs: number): number {
  if (failures <= 0) return 0;
  return Math.min(MAX_WATCH_BACKOFF_MS, refreshMs * 2 ** failures);
}

/** Retransmission samples per destination URI, every LB node's together. */
export type EvidenceWindows = ReadonlyMap<string, readonly EvidenceSample[]>;

export interface EvidenceBackend {
  readonly id: string;
  readonly uri: string;
  /** Monotonic ms of its last probe answer, NaN if none. */
  readonly lastReportAt: number;
}

/**
 * Folds one node's new counts into the windows and names the backends the rule makes suspect
 * (health/passive-evidence.ts), with the retransmissions that did it.
 */
export function evidenceSuspects(
  windows: EvidenceWindows,
  step: { readonly deltas: ReadonlyMap<string, DestinationCounters>; readonly since: number | null },
  at: number,
  backends: readonly EvidenceBackend[],
  quietMs: number,
): { windows: EvidenceWindows; suspects: { id: string; rtx: number }[] } {
  const next = new Map<string, readonly EvidenceSample[]>();
  const uris = new Set([...windows.keys(), ...step.deltas.keys()]);
  for (const uri of uris) {
    const rtx = step.since === null ? 0 : (step.deltas.get(uri)?.rtx ?? 0);
    const w = foldEvidence(windows.get(uri) ?? [], { since: step.since ?? at, at, rtx }, at);
    if (w.length > 0) next.set(uri, w);
  }
  const suspects: { id: string; rtx: number }[] = [];
  for (const b of backends) {
    const w = next.get(b.uri);
    if (!w) continue;
    const v = evidenceVerdict(w, b.lastReportAt, at, quietMs);
    if (v.suspect) suspects.push({ id: b.id, rtx: v.rtx });
  }
  return { windows: next, suspects };
}

const outcome = async <T>(p: Promise<T>): Promise<Outcome<T>> => {
  try {
    return { ok: true, value: await p };
  } catch (e) {
    return { ok: false, error: (e as Error).message, unsupported: isNoSuchHtable(e) };
  }
};

export interface WatchedNode {
  readonly name: string;
  readonly rpc: EvidenceRpc;
}

/** What the watch needs of the probe registry: the backends, and the way to make one suspect. */
export interface EvidenceTarget {
  list(): readonly (EvidenceBackend & { readonly set: number })[];
  /** True when it made the backend suspect (it was up). */
  retransmitted(id: string): boolean;
}

export interface LbWatchOptions {
  readonly lease: LeaseConfig;
  /** How long an answering backend may stay quiet: probe interval + probe timeout (evidenceVerdict). */
  readonly quietMs: number;
  /** Monotonic ms, the probe registry's clock (its lastReportAt). */
  readonly clock: () => number;
  readonly target: EvidenceTarget;
  readonly emit: (events: readonly ControllerEvent[]) => void;
  /** An LB's backstop went off: its own probing may have moved its list (repair it now). */
  readonly onBackstopOff: (node: string) => void;
}

/** The timer shell: one round per node every refresh_ms, a node still busy with the last round skipped. */
export class LbWatch {
  private states: NodeWatchState[];
  private windows: EvidenceWindows = new Map();
  private timer: NodeJS.Timeout | null = null;
  private readonly busy = new Set<string>();
  /** Per node: rounds in a row that did not reach it, and when to visit it next. */
  private readonly unreached = new Map<string, { failures: number; nextAt: number }>();
  private readonly inFlight = new Set<Promise<void>>();
  /** The nodes whose lease is refreshed (those the controller pushes to, once it pushes), since when. */
  private armed: ReadonlyMap<string, number> = new Map();
  /** When a cycle was last scored (arm) and the cycle period then, per node since when every apply has failed. */
  private scoredAt: number | null = null;
  private cycleMs = 0;
  private readonly failingSince = new Map<string, number>();
  private readonly withheld = new Map<string, LeaseWithheld>();

  constructor(
    private readonly nodes: readonly WatchedNode[],
    private readonly opts: LbWatchOptions,
  ) {
    this.states = nodes.map((n) => initialWatchState(n.name));
  }

  get status(): readonly NodeWatchState[] {
    return this.states;
  }

  start(): void {
    this.timer ??= setInterval(() => this.round(), this.opts.lease.refresh_ms);
    this.round();
  }

  /**
   * Which nodes get the lease from now on (a node new to it is refreshed at once); returns those of
   * them to push to now (handedOver). Called once per scored cycle, `cycleMs` its period.
   */
  arm(nodes: readonly string[], cycleMs: number): string[] {
    const now = this.opts.clock();
    this.scoredAt = now;
    this.cycleMs = cycleMs;
    const fresh = nodes.some((n) => !this.armed.has(n));
    this.armed = new Map(nodes.map((n) => [n, this.armed.get(n) ?? now]));
    if (fresh) this.round();
    const backstop = new Map(this.states.map((s) => [s.node, s.backstop]));
    return nodes.filter((n) => handedOver(backstop.get(n) ?? null, this.armed.get(n), now));
  }

  /** One apply outcome at a node (a cache hit counts as good: it follows a good apply). */
  applied(node: string, ok: boolean): void {
    if (ok) this.failingSince.delete(node);
    else if (!this.failingSince.has(node)) this.failingSince.set(node, this.opts.clock());
  }

  /** Whether to refresh the node's lease in this round; tells a change of mind once. */
  private leaseDue(node: string): boolean {
    if (!this.armed.has(node)) return false;
    const why = leaseWithheld(
      this.opts.clock(),
      this.scoredAt,
      this.failingSince.get(node),
      this.opts.lease.duration_ms,
      this.cycleMs,
    );
    const was = this.withheld.get(node);
    if (why !== null && why !== was) this.opts.emit([{ type: 'lease_withheld', node, reason: why }]);
    if (why === null && was !== undefined) this.opts.emit([{ type: 'lease_resumed', node }]);
    if (why === null) this.withheld.delete(node);
    else this.withheld.set(node, why);
    return why === null;
  }

  private round(): void {
    if (this.timer === null) return;
    const now = this.opts.clock();
    this.nodes.forEach((n, i) => {
      if (this.busy.has(n.name) || now < (this.unreached.get(n.name)?.nextAt ?? 0)) return;
      this.busy.add(n.name);
      const p = this.visit(n, i)
        .catch((e: Error) =>
          this.opts.emit([{ type: 'cycle_failed', stage: 'cycle', error: `LB watch: ${e.message}` }]),
        )
        .finally(() => {
          this.busy.delete(n.name);
          this.inFlight.delete(p);
        });
      this.inFlight.add(p);
    });
  }

  private async visit(n: WatchedNode, i: number): Promise<void> {
    const ms = this.opts.lease.duration_ms;
    const lease = this.leaseDue(n.name) ? await outcome(refreshLease(n.rpc, ms).then(() => null)) : null;
    // A node that did not answer the first call is not asked twice more in the same round.
    const down = lease !== null && !lease.ok && !lease.unsupported ? lease : null;
    const evidence = down ?? (await outcome(readEvidence(n.rpc)));
    const unreached = down ?? (!evidence.ok && !evidence.unsupported ? evidence : null);
    const backstop = unreached ?? (await outcome(readLease(n.rpc).then((l) => l.backstop)));
    if (this.timer === null) return;
    const at = this.opts.clock();
    const failures =
      !evidence.ok && !evidence.unsupported ? (this.unreached.get(n.name)?.failures ?? 0) + 1 : 0;
    this.unreached.set(n.name, {
      failures,
      nextAt: failures === 0 ? 0 : at + watchDelayMs(failures, this.opts.lease.refresh_ms),
    });
    const step = watchStep(this.states[i]!, { at, lease, evidence, backstop });
    this.states[i] = step.state;
    this.opts.emit(step.events);
    const backends = this.opts.target.list();
    const found = evidenceSuspects(this.windows, step, at, backends, this.opts.quietMs);
    this.windows = found.windows;
    for (const s of found.suspects) {
      if (!this.opts.target.retransmitted(s.id)) continue;
      const set = backends.find((b) => b.id === s.id)?.set ?? -1;
      this.opts.emit([{ type: 'evidence_suspect', backend: s.id, set, retransmissions: s.rtx }]);
    }
    if (step.backstopOff) this.opts.onBackstopOff(n.name);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await Promise.allSettled([...this.inFlight]);
  }
}

/**
 * The controller's watch, started: lease, evidence (into the probe registry) and backstop at every
 * LB node. `onBackstopOff`: an LB whose own probing ran until now may have moved its list (states,
 * probing flags), so the controller reads and repairs it at once rather than at the next reconcile.
 */
export function watchLbs(
  nodes: readonly WatchedNode[],
  { lease, heartbeat }: Pick<ControllerConfig, 'lease' | 'heartbeat'>,
  target: EvidenceTarget,
  events: { emitAll(e: readonly ControllerEvent[]): void },
  onBackstopOff: (node: string) => void,
): LbWatch {
  const emit = (e: readonly ControllerEvent[]) => events.emitAll(e);
  const quietMs = heartbeat.probe_interval_ms + heartbeat.probe_timeout_ms;
  const clock = () => performance.now();
  const watch = new LbWatch(nodes, { lease, quietMs, clock, target, emit, onBackstopOff });
  watch.start();
  return watch;
}
