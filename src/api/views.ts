/**
 * The API's JSON, built from one controller snapshot by pure functions: the route handlers only pick
 * which one to call. Shapes are those of schemas/api/*.schema.json (the tests hold them to it).
 */
import type { ControllerSnapshot, NodeSnapshot } from '../controller/snapshot.js';
import { lbSocketJson, type LbSocketJson } from '../controller/lb-socket.js';
import type { BackendView } from '../probe/probe-core.js';
import type { BackendScore, SetResult } from '../scoring/index.js';

export interface BackendJson {
  readonly id: string;
  readonly set: number;
  readonly uri: string;
  readonly source: BackendView['source'];
  readonly state: BackendView['health']['kind'];
  readonly drained: boolean;
  readonly drain_cause: 'operator' | 'bye' | 'report' | null;
  readonly capacity_cps: number;
  readonly score: {
    readonly phase: string;
    readonly factor: number;
    readonly pressure: number | null;
    readonly dominant: string | null;
    readonly effective_cps: number;
    /** Learned capacity, calls/s (scoring.capacity); null when learning is off or it is out of rotation. */
    readonly learned_cps: number | null;
    readonly weight: number | null;
  } | null;
  readonly weights: Readonly<Record<string, number | null>>;
  readonly last_report: {
    readonly age_ms: number;
    readonly metrics: object;
    readonly signals: Readonly<Record<string, number | null>>;
  } | null;
  readonly heartbeat: {
    readonly via: BackendView['via'];
    readonly agent: string | null;
    readonly ssh: string | null;
    readonly rtt_ms: number | null;
    readonly last_rtt_ms: number | null;
    readonly misses: number;
    readonly last_error: string | null;
  };
}

export interface LbNodeJson {
  readonly name: string;
  readonly target: string;
  readonly blocked: string | null;
  readonly synced: boolean;
  readonly last_push: {
    readonly result: 'applied' | 'in_sync' | 'failed';
    readonly at: string;
    readonly duration_ms: number;
    readonly changes: number;
    readonly error: string | null;
  } | null;
  readonly drift: boolean | null;
  readonly pushes: { readonly applied: number; readonly in_sync: number; readonly failed: number };
  readonly errors: number;
  readonly drift_repairs: number;
  readonly consecutive_failures: number;
  readonly sip_socket: LbSocketJson | null;
}

const round = (x: number, digits = 3): number => Math.round(x * 10 ** digits) / 10 ** digits;
const finite = (x: number, digits = 3): number | null => (Number.isFinite(x) ? round(x, digits) : null);

function scoreOf(
  result: ControllerSnapshot['result'],
  id: string,
): { set: SetResult; score: BackendScore } | null {
  for (const set of result?.sets ?? []) {
    const score = set.backends.find((b) => b.id === id);
    if (score) return { set, score };
  }
  return null;
}

export function backendJson(snap: ControllerSnapshot, v: BackendView): BackendJson {
  const scored = scoreOf(snap.result, v.id);
  const h = v.health;
  const weights: Record<string, number | null> = {};
  for (const n of snap.nodes) weights[n.name] = n.weights?.get(v.id) ?? null;
  return {
    id: v.id,
    set: v.set,
    uri: v.uri,
    source: v.source,
    state: h.kind,
    drained: h.kind === 'draining' && h.cause === 'operator',
    drain_cause: h.kind === 'draining' ? h.cause : null,
    capacity_cps: v.capacity,
    score: scored && {
      phase: scored.score.assignment.phase,
      factor: round(scored.score.factor),
      pressure: scored.score.pressure === null ? null : round(scored.score.pressure),
      dominant: scored.score.dominant,
      effective_cps: round(scored.score.effectiveCapacityCps, 1),
      learned_cps:
        scored.score.learnedCapacityCps === null ? null : round(scored.score.learnedCapacityCps, 1),
      weight: scored.set.weights?.get(v.id) ?? null,
    },
    weights,
    last_report:
      v.metrics && Number.isFinite(v.lastReportAt)
        ? {
            age_ms: Math.max(0, Math.round(snap.now.mono - v.lastReportAt)),
            metrics: v.metrics,
            signals: scored
              ? Object.fromEntries(
                  Object.entries(scored.score.values).map(([k, x]) => [k, x === null ? null : round(x)]),
                )
              : {},
          }
        : null,
    heartbeat: {
      via: v.via,
      agent: v.agent ? `${v.agent.address}:${v.agent.port}` : null,
      ssh: v.sshTarget,
      rtt_ms: finite(v.srttMs),
      last_rtt_ms: finite(v.lastRttMs),
      misses: v.misses,
      last_error: v.lastError,
    },
  };
}

export function backendsJson(snap: ControllerSnapshot): { backends: BackendJson[] } {
  const views = [...snap.views].sort((a, b) => a.set - b.set || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { backends: views.map((v) => backendJson(snap, v)) };
}

export function lbNodeJson(n: NodeSnapshot): LbNodeJson {
  const last = n.last;
  return {
    name: n.name,
    target: n.target,
    blocked: n.blocked,
    synced: n.synced,
    last_push: last && {
      result: last.outcome,
      at: new Date(last.at).toISOString(),
      duration_ms: round(Math.max(0, last.durationMs), 1),
      changes: last.changes,
      error: last.error,
    },
    drift: last ? last.driftRepaired : null,
    pushes: { ...n.counters.pushes },
    errors: n.counters.errors,
    drift_repairs: n.counters.driftRepairs,
    consecutive_failures: n.consecutiveFailures,
    sip_socket: n.sipSocket && lbSocketJson(n.sipSocket),
  };
}

export function lbNodesJson(snap: ControllerSnapshot): {
  lb_nodes: LbNodeJson[];
  admission_split: ControllerSnapshot['split'];
} {
  return { lb_nodes: snap.nodes.map(lbNodeJson), admission_split: snap.split };
}

export function readyJson(reasons: readonly string[]): { ready: boolean; reasons?: readonly string[] } {
  return reasons.length === 0 ? { ready: true } : { ready: false, reasons };
}
