/**
 * The controller's state as an operator reads it: per set its mode (scored, panic, waiting for the
 * first reports), pool capacity and admission limit; per backend its health, weight, phase, derating
 * and the signal behind it; per LB node its last push. Pure: built from what the controller holds,
 * so the same snapshot feeds the status file, `sipweigh status` and (later) the HTTP API.
 */
import type { BackendView } from '../probe/probe-core.js';
import type { NodeSyncStatus } from '../push/node-sync.js';
import type { CycleResult } from '../scoring/index.js';
import type { JobStatus } from './schedules.js';
import type { NodeOutcome } from '../push/node-link.js';
import { lbSocketJson, lbSocketLine, type LbSocketJson, type LbSocketStatus } from './lb-socket.js';

export interface BackendStatus {
  readonly id: string;
  readonly uri: string;
  readonly source: string;
  readonly health: string;
  /** Drained by an operator (API, CLI, schedule); absent in status files of older versions. */
  readonly drained?: boolean;
  readonly weight: number | null;
  readonly phase: string | null;
  readonly factor: number | null;
  readonly pressure: number | null;
  readonly dominant: string | null;
  readonly capacity_cps: number;
  readonly effective_cps: number | null;
  /** Learned capacity (scoring.capacity), null when not learned; absent in status files of older versions. */
  readonly learned_cps?: number | null;
  readonly rtt_ms: number | null;
  /** Probes unanswered since it became known; absent in status files of older versions. */
  readonly misses?: number;
  /** Why its last probe failed (an SSH failure, a refused host key, no SIP server); absent when none. */
  readonly last_error?: string;
  readonly report_age_ms: number | null;
}

export interface SetStatus {
  readonly id: number;
  readonly mode: 'scored' | 'panic' | 'waiting';
  readonly panic: {
    readonly healthy: number;
    readonly counted: number;
    readonly since_ms_ago: number;
  } | null;
  readonly pool_cps: number | null;
  readonly admission_limit_cps: number | null;
  readonly backends: readonly BackendStatus[];
}

export interface NodeStatus {
  readonly name: string;
  readonly target: string;
  readonly blocked: string | null;
  readonly phase: string;
  readonly consecutive_failures: number;
  readonly last_success: string | null;
  readonly last_result: string | null;
  /** The LB's own SIP socket (lb_nodes[].sip_socket); absent when the config names none. */
  readonly sip_socket?: LbSocketJson;
}

export interface ControllerStatus {
  readonly version: 1;
  readonly at: string;
  readonly pid: number;
  readonly started_at: string;
  readonly sets: readonly SetStatus[];
  readonly lb_nodes: readonly NodeStatus[];
  readonly schedules: readonly JobStatus[];
}

export interface StatusInputs {
  readonly now: { readonly mono: number; readonly wall: number };
  readonly startedAt: number;
  readonly views: readonly BackendView[];
  readonly result: CycleResult | null;
  readonly nodes: readonly {
    readonly name: string;
    readonly target: string;
    readonly blocked: string | null;
    readonly sync: NodeSyncStatus<NodeOutcome> | null;
    readonly sipSocket: LbSocketStatus | null;
  }[];
  readonly schedules: readonly JobStatus[];
}

const round = (x: number, digits = 2): number => Math.round(x * 10 ** digits) / 10 ** digits;

function lastResult(sync: NodeSyncStatus<NodeOutcome> | null): string | null {
  const o = sync?.lastOutcome;
  if (!o) return null;
  if (!o.ok) return `failed: ${o.reason}`;
  const push = o.result.push;
  return push.kind === 'applied' ? `applied ${push.changes.length} change(s)` : push.kind;
}

export function buildStatus(inp: StatusInputs): ControllerStatus {
  const viewById = new Map(inp.views.map((v) => [v.id, v]));
  const sets: SetStatus[] = (inp.result?.sets ?? []).map((set) => ({
    id: set.set,
    mode: set.mode === 'panic' && set.weights === null ? 'waiting' : set.mode,
    panic:
      set.mode === 'panic'
        ? {
            healthy: set.panic.healthy,
            counted: set.panic.counted,
            since_ms_ago: Math.round(inp.now.mono - set.panic.since),
          }
        : null,
    pool_cps: set.poolCapacityCps === null ? null : round(set.poolCapacityCps, 1),
    admission_limit_cps: set.admissionLimitCps === null ? null : round(set.admissionLimitCps, 1),
    backends: set.backends.map((b) => {
      const v = viewById.get(b.id);
      return {
        id: b.id,
        uri: v?.uri ?? '',
        source: v?.source ?? '',
        health: b.health,
        drained: v?.health.kind === 'draining' && v.health.cause === 'operator',
        weight: set.weights?.get(b.id) ?? null,
        phase: b.assignment.phase,
        factor: round(b.factor),
        pressure: b.pressure === null ? null : round(b.pressure),
        dominant: b.dominant,
        capacity_cps: b.capacityCps,
        effective_cps: round(b.effectiveCapacityCps, 1),
        learned_cps: b.learnedCapacityCps === null ? null : round(b.learnedCapacityCps, 1),
        rtt_ms: v && Number.isFinite(v.srttMs) ? round(v.srttMs, 1) : null,
        misses: v?.misses ?? 0,
        ...(v?.lastError ? { last_error: v.lastError } : {}),
        report_age_ms:
          v && Number.isFinite(v.lastReportAt) ? Math.round(inp.now.mono - v.lastReportAt) : null,
      };
    }),
  }));
  return {
    version: 1,
    at: new Date(inp.now.wall).toISOString(),
    pid: process.pid,
    started_at: new Date(inp.startedAt).toISOString(),
    sets,
    lb_nodes: inp.nodes.map((n) => ({
      name: n.name,
      target: n.target,
      blocked: n.blocked,
      phase: n.sync?.phase ?? 'idle',
      consecutive_failures: n.sync?.consecutiveFailures ?? 0,
      last_success: n.sync?.lastSuccessAt ? new Date(n.sync.lastSuccessAt).toISOString() : null,
      last_result: lastResult(n.sync),
      ...(n.sipSocket ? { sip_socket: lbSocketJson(n.sipSocket) } : {}),
    })),
    schedules: inp.schedules,
  };
}

/** The status as a table for a terminal (`sipweigh status`). */
export function formatStatus(s: ControllerStatus): string {
  const lines: string[] = [`controller pid ${s.pid}, status at ${s.at}`];
  for (const set of s.sets) {
    const mode =
      set.mode === 'panic' && set.panic
        ? `PANIC (${set.panic.healthy}/${set.panic.counted} answering, for ${(set.panic.since_ms_ago / 1000).toFixed(0)} s): last weights kept`
        : set.mode;
    lines.push(
      '',
      `set ${set.id}: ${mode}; pool ${set.pool_cps ?? '-'} calls/s, admission limit ${set.admission_limit_cps ?? 'none'}`,
    );
    lines.push(
      `  ${'backend'.padEnd(12)} ${'health'.padEnd(10)} ${'weight'.padStart(6)} ${'phase'.padEnd(10)} ${'factor'.padStart(6)} ${'pressure'.padStart(8)} ${'signal'.padEnd(18)} ${'rtt ms'.padStart(7)}`,
    );
    for (const b of set.backends) {
      lines.push(
        `  ${b.id.padEnd(12)} ${(b.drained ? 'DRAINED' : b.health).padEnd(10)} ${String(b.weight ?? '-').padStart(6)} ${(b.phase ?? '-').padEnd(10)} ${String(b.factor ?? '-').padStart(6)} ${String(b.pressure ?? '-').padStart(8)} ${(b.dominant ?? '-').padEnd(18)} ${String(b.rtt_ms ?? '-').padStart(7)}`,
      );
    }
  }
  lines.push('', 'LB nodes:');
  for (const n of s.lb_nodes) {
    lines.push(
      `  ${n.name}: ${n.blocked ? `NOT PUSHED: ${n.blocked}` : n.phase}; last ${n.last_result ?? 'none yet'}; ` +
        `failures in a row ${n.consecutive_failures}; last success ${n.last_success ?? 'never'} (${n.target})`,
    );
    if (n.sip_socket) lines.push(`    ${lbSocketLine(n.sip_socket)}`);
  }
  return `${lines.join('\n')}\n`;
}
