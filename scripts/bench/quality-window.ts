/**
 * The quality benchmark's measurement, pure: what one sipp run's trace files say about a window of
 * it. The runner starts one sipp UAC per step; its counters are cumulative rows written every second
 * (`-trace_stat`, `-trace_counts`, both with `-fd 1`) and its per-call INVITE→200 times are in
 * `-trace_rtt`. A step's window starts after a warm-up and ends when sipp has finished every call, so
 * a call that times out after the load stopped still counts as failed.
 */
import { countsOfRow, type SippRtt } from '../../src/lab/sipp.js';
import type { LatencyMs } from './quality-types.js';

/** sipp's elapsed-time cells: `00:00:07` (statistics) or `00:00:07:004000` (counts). */
export function elapsedSeconds(cell: string | undefined): number {
  const parts = (cell ?? '').split(':').map(Number);
  if (parts.length < 3 || parts.some((p) => !Number.isFinite(p))) return Number.NaN;
  const [h = 0, m = 0, s = 0, us = 0] = parts;
  return h * 3600 + m * 60 + s + us / 1e6;
}

/** The last row at or before `atS` seconds into the run (the window's baseline); undefined if none. */
function rowAt(
  rows: readonly Readonly<Record<string, string>>[],
  column: string,
  atS: number,
): Readonly<Record<string, string>> | undefined {
  let found: Readonly<Record<string, string>> | undefined;
  for (const row of rows) {
    if (elapsedSeconds(row[column]) <= atS + 1e-6) found = row;
  }
  return found;
}

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

export function latencyOf(samples: readonly number[]): LatencyMs | null {
  if (samples.length === 0) return null;
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    max: sorted[sorted.length - 1]!,
  };
}

export interface SippTraces {
  /** `-trace_stat` rows (columns `ElapsedTime(C)`, `FailedCall(C)`...). */
  readonly stats: readonly Readonly<Record<string, string>>[];
  /** `-trace_counts` rows of the admission UAC (columns `ElapsedTime`, `0_INVITE_Sent`, `3_503_Recv`, `4_200_Recv`). */
  readonly counts: readonly Readonly<Record<string, string>>[];
  readonly rtt: readonly SippRtt[];
}

export interface WindowCounts {
  /**
   * Seconds into the run where the window really opens: the time of the baseline row, the last one
   * written at or before the requested start (sipp writes a row about every second).
   */
  readonly fromS: number;
  /** Calls started in the window. */
  readonly calls: number;
  /** Of those, the calls that did not fail. */
  readonly ok: number;
  readonly failed: number;
  readonly refused_503: number;
  readonly setup_ms: LatencyMs | null;
}

/** Message indexes of scripts/sipp/uac-admission.xml: 0 = INVITE, 3 = the 503, 4 = the 200. */
export const ADMISSION_UAC = {
  invite: '0_INVITE_Sent',
  refused: '3_503_Recv',
  answered: '4_200_Recv',
} as const;

/**
 * Counts from `fromS` seconds into the run to its end: the deltas of the cumulative counters between
 * the baseline row and the last row, and the INVITE→200 times of the 200s received after `fromS`.
 * Failed = sipp's failed calls (timeouts, errors) plus the calls refused with 503, which sipp's
 * admission scenario ends as successful.
 */
export function measureWindow(t: SippTraces, fromS: number): WindowCounts {
  const base = rowAt(t.counts, 'ElapsedTime', fromS);
  const from = base ? elapsedSeconds(base.ElapsedTime) : 0;
  const c0 = countsOfRow(base ?? {});
  const c1 = countsOfRow(t.counts.at(-1) ?? {});
  const s0 = rowAt(t.stats, 'ElapsedTime(C)', from + 0.5) ?? {};
  const s1 = t.stats.at(-1) ?? {};
  const delta = (a: Record<string, number>, b: Record<string, number>, k: string) =>
    (b[k] ?? 0) - (a[k] ?? 0);
  const failedCalls = (Number(s1['FailedCall(C)']) || 0) - (Number(s0['FailedCall(C)']) || 0);
  const refused = delta(c0, c1, ADMISSION_UAC.refused);
  const setups = t.rtt.filter((r) => r.rtd === 1 && r.atMs >= from * 1000).map((r) => r.ms);
  return {
    fromS: from,
    calls: delta(c0, c1, ADMISSION_UAC.invite),
    // Calls started in the window that did not fail. The 200 counter would also count answers, in the
    // window, to calls started before it: near saturation setups take seconds, and that inflates it.
    ok: Math.max(0, delta(c0, c1, ADMISSION_UAC.invite) - failedCalls - refused),
    failed: failedCalls + refused,
    refused_503: refused,
    setup_ms: latencyOf(setups),
  };
}

/** Per second of the run: calls answered, failed (timeouts + 503s), and the p99 of that second's setups. */
export interface SecondCounts {
  readonly second: number;
  readonly ok: number;
  readonly failed: number;
  readonly p99_ms: number | null;
}

export function perSecond(t: SippTraces): SecondCounts[] {
  const out: SecondCounts[] = [];
  const byS = new Map<number, number[]>();
  for (const r of t.rtt) {
    if (r.rtd !== 1) continue;
    const s = Math.floor(r.atMs / 1000);
    const list = byS.get(s) ?? [];
    list.push(r.ms);
    byS.set(s, list);
  }
  let prevCounts: Record<string, number> = {};
  let prevFailed = 0;
  for (const row of t.counts) {
    const second = Math.round(elapsedSeconds(row.ElapsedTime));
    if (!Number.isFinite(second)) continue;
    const counts = countsOfRow(row);
    const statsRow = rowAt(t.stats, 'ElapsedTime(C)', second + 0.5) ?? {};
    const failedCum = Number(statsRow['FailedCall(C)']) || 0;
    const refused = (counts[ADMISSION_UAC.refused] ?? 0) - (prevCounts[ADMISSION_UAC.refused] ?? 0);
    const lat = latencyOf(byS.get(second - 1) ?? []);
    out.push({
      second,
      ok: (counts[ADMISSION_UAC.answered] ?? 0) - (prevCounts[ADMISSION_UAC.answered] ?? 0),
      failed: Math.max(0, failedCum - prevFailed) + refused,
      p99_ms: lat?.p99 ?? null,
    });
    prevCounts = counts;
    prevFailed = failedCum;
  }
  return out;
}
