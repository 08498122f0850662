/**
 * The quality benchmark's measurement, pure: what one sipp run's trace files say about a window of
 * it. The runner starts one sipp UAC per step; its `-trace_counts` rows (cumulative, one a second with
 * `-fd 1`) say how many INVITEs it sent when, and `-trace_rtt` holds one INVITE->200 time per answered
 * call. Every call started in the window is judged by its own fate, however late: sipp exits only when
 * each call has ended (answered, refused, or failed at the receive timeout).
 */
import { countsOfRow, type SippRtt } from '../../../src/lab/sipp.js';
import type { LatencyMs, PolicyId, ScenarioId, SettleResult } from './types.js';

/** sipp's elapsed-time cells: `00:00:07` (statistics) or `00:00:07:004000` (counts). */
export function elapsedSeconds(cell: string | undefined): number {
  const parts = (cell ?? '').split(':').map(Number);
  if (parts.length < 3 || parts.some((p) => !Number.isFinite(p))) return Number.NaN;
  const [h = 0, m = 0, s = 0, us = 0] = parts;
  return h * 3600 + m * 60 + s + us / 1e6;
}

/**
 * The first row written at or after `atS` seconds into the run: the window's baseline. sipp writes
 * its rows a few milliseconds late each second (1.008, 2.011 ...), so "the last row before" would
 * open the window a whole second early.
 */
function rowFrom(
  rows: readonly Readonly<Record<string, string>>[],
  column: string,
  atS: number,
): Readonly<Record<string, string>> | undefined {
  return rows.find((row) => elapsedSeconds(row[column]) >= atS - 1e-6);
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
  /**
   * 200s received between the window's start and `toS` (the end of sending), whatever call they
   * answer: the pool's throughput. Unlike `ok`, it cannot count a backlog served after the window.
   */
  readonly answered_in_window: number;
}

/** Message indexes of scripts/sipp/uac-admission.xml: 0 = INVITE, 3 = the 503, 4 = the 200. */
export const ADMISSION_UAC = {
  invite: '0_INVITE_Sent',
  refused: '3_503_Recv',
  answered: '4_200_Recv',
} as const;

/** When each answered call started, ms into the run: the 200 arrived `ms` after its INVITE. */
function answeredStarts(t: SippTraces): { startMs: number; ms: number }[] {
  return t.rtt.filter((r) => r.rtd === 1).map((r) => ({ startMs: r.atMs - r.ms, ms: r.ms }));
}

/**
 * The calls started from `fromS` seconds into the run to its end, by their own fate: INVITEs sent
 * after the baseline row (cumulative counter), of which answered = the per-call INVITE->200 records
 * of calls that started after it, refused = the 503s, failed = every call not answered (timeouts,
 * refusals, and calls sipp never finished). Counting by start time keeps a warm-up call that times
 * out inside the window from counting against it.
 */
export function measureWindow(t: SippTraces, fromS: number, toS = Number.POSITIVE_INFINITY): WindowCounts {
  const base = rowFrom(t.counts, 'ElapsedTime', fromS);
  const from = base ? elapsedSeconds(base.ElapsedTime) : Number.POSITIVE_INFINITY;
  const c0 = countsOfRow(base ?? {});
  const c1 = countsOfRow(t.counts.at(-1) ?? {});
  const delta = (k: string) => Math.max(0, (c1[k] ?? 0) - (c0[k] ?? 0));
  const calls = base ? delta(ADMISSION_UAC.invite) : 0;
  const answered = answeredStarts(t).filter((r) => r.startMs >= from * 1000);
  const ok = Math.min(calls, answered.length);
  return {
    fromS: Number.isFinite(from) ? from : fromS,
    calls,
    ok,
    failed: calls - ok,
    refused_503: base ? delta(ADMISSION_UAC.refused) : 0,
    setup_ms: latencyOf(answered.map((r) => r.ms)),
    answered_in_window: t.rtt.filter((r) => r.rtd === 1 && r.atMs >= from * 1000 && r.atMs < toS * 1000)
      .length,
  };
}

/** Seconds calls were offered in a window: from its real start to the end of sending (at least 1). */
export function windowSeconds(w: Pick<WindowCounts, 'fromS'>, sendS: number): number {
  return Math.max(1, sendS - w.fromS);
}

/** failed / calls × 100, three decimals; 0 without calls. */
export function failedPct(w: Pick<WindowCounts, 'calls' | 'failed'>): number {
  return w.calls > 0 ? Number(((100 * w.failed) / w.calls).toFixed(3)) : 0;
}

/**
 * A settle phase's record: its window is the whole run (opened at 0 s, so from sipp's first row),
 * every call it started judged by its own fate, like a step's.
 */
export function settleResult(
  of: {
    readonly policy: PolicyId;
    readonly scenario: ScenarioId;
    readonly rep: number;
    readonly load_fraction: number;
    readonly offered_cps: number;
  },
  w: WindowCounts,
  sendS: number,
  after: { readonly shares: Readonly<Record<string, number>>; readonly drain_s: number },
): SettleResult {
  return {
    ...of,
    duration_s: Number(windowSeconds(w, sendS).toFixed(2)),
    calls: w.calls,
    failed: w.failed,
    refused_503: w.refused_503,
    failed_pct: failedPct(w),
    p99_ms: w.setup_ms?.p99 ?? null,
    shares: after.shares,
    drain_s: after.drain_s,
  };
}

/**
 * After a settle phase: true when no backend set up a new dialog between two reads of the backends'
 * dialog counters. A backend that could not be read in either (NaN) is not waited on: nothing says
 * whether it is still busy, and waiting the whole limit for it would say nothing more.
 */
export function backlogCleared(before: readonly number[], after: readonly number[]): boolean {
  return after.every((n, i) => {
    const b = before[i];
    return !Number.isFinite(n) || b === undefined || !Number.isFinite(b) || n === b;
  });
}

/**
 * Each backend's share of the dialogs set up between two reads of their counters (sums to 1, or 0
 * each when none was). A backend unreadable in either read (NaN) is left out rather than written as
 * a share: JSON would store NaN as null, and the run file could no longer be re-reported.
 */
export function dialogShares(
  ids: readonly string[],
  before: readonly number[],
  after: readonly number[],
): Record<string, number> {
  const d = ids.map((_, i) => Math.max(0, (after[i] ?? Number.NaN) - (before[i] ?? Number.NaN)));
  const sum = d.reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);
  return Object.fromEntries(
    ids.flatMap((id, i) =>
      Number.isFinite(d[i]) ? [[id, sum > 0 ? Number((d[i]! / sum).toFixed(4)) : 0] as const] : [],
    ),
  );
}

/** Per second of the run, by the calls started in it: answered, not answered, and their p99 setup. */
export interface SecondCounts {
  readonly second: number;
  readonly ok: number;
  readonly failed: number;
  readonly p99_ms: number | null;
}

export function perSecond(t: SippTraces): SecondCounts[] {
  const rows = t.counts
    .map((row) => ({
      at: elapsedSeconds(row.ElapsedTime),
      sent: countsOfRow(row)[ADMISSION_UAC.invite] ?? 0,
    }))
    .filter((r) => Number.isFinite(r.at));
  // Each answered call belongs to the row whose interval holds its start: sipp writes its rows a
  // little later every second, so whole seconds drift away from the rows' own times.
  const setups: number[][] = rows.map(() => []);
  for (const r of answeredStarts(t)) {
    const k = rows.findIndex((row) => row.at * 1000 >= r.startMs);
    if (k >= 0) setups[k]!.push(r.ms);
  }
  let prevSent = 0;
  return rows.map((row, k) => {
    const started = Math.max(0, row.sent - prevSent);
    prevSent = row.sent;
    const mine = setups[k]!;
    const ok = Math.min(started, mine.length);
    return { second: Math.round(row.at), ok, failed: started - ok, p99_ms: latencyOf(mine)?.p99 ?? null };
  });
}
