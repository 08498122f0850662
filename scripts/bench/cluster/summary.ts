/**
 * The cluster benchmark's figures, pure: what the servers' message traces say about CANCELs and
 * retransmitted INVITEs that crossed LB nodes, the replication lag's percentiles, the admission
 * split's error, one repetition's line, the median (range) table over the repetitions and the last
 * line's JSON.
 */
import { header, isRequest } from '../../../src/lab/sip-peer.js';
import { round, spread, type Spread } from '../fairness/summary.js';
import { percentile } from '../quality/window.js';
import { formatPartition, partitionJson, type PartitionResult } from './partition-figures.js';

/** The Call-IDs of the INVITEs and the CANCELs one server (a backend's sipp UAS) received. */
export interface ServerCalls {
  readonly invites: readonly string[];
  readonly cancels: readonly string[];
}

/** A server's received messages (src/lab/sip-peer.ts sippReceivedMessages) by Call-ID. */
export function serverCalls(messages: readonly string[]): ServerCalls {
  const ids = (method: string) =>
    messages
      .filter(isRequest(method))
      .map((m) => header(m, 'Call-ID') ?? '')
      .filter((id) => id !== '');
  return { invites: ids('INVITE'), cancels: ids('CANCEL') };
}

export interface CancelFigures {
  /** Calls whose INVITE reached a server. */
  readonly calls: number;
  /**
   * Of those, the calls whose CANCEL did not reach a server that has the INVITE: LB 2 answered 481
   * or sent the CANCEL to another backend (which answers 481 itself), or it never arrived.
   */
  readonly misrouted: number;
}

export function cancelFigures(servers: readonly ServerCalls[]): CancelFigures {
  const calls = new Set(servers.flatMap((s) => s.invites));
  let misrouted = 0;
  for (const id of calls) {
    const ok = servers.some((s) => s.invites.includes(id) && s.cancels.includes(id));
    if (!ok) misrouted++;
  }
  return { calls: calls.size, misrouted };
}

export interface ForkFigures {
  /** Distinct calls whose INVITE reached a server. */
  readonly calls: number;
  /** Of those, the calls whose INVITE reached more than one server: the retransmission was forked. */
  readonly forked: number;
}

export function forkFigures(servers: readonly ServerCalls[]): ForkFigures {
  const where = new Map<string, Set<number>>();
  servers.forEach((s, i) => {
    for (const id of s.invites) {
      const set = where.get(id) ?? new Set<number>();
      set.add(i);
      where.set(id, set);
    }
  });
  return { calls: where.size, forked: [...where.values()].filter((s) => s.size > 1).length };
}

export interface LagFigures {
  readonly writes: number;
  /** Entries seen at lb2 (the samples). */
  readonly seen: number;
  /** Entries never seen at lb2 within the poll's bound. */
  readonly missing: number;
  readonly p50_ms: number | null;
  readonly p99_ms: number | null;
  readonly max_ms: number | null;
  /** The poll's own round trip, median: the measurement's resolution. */
  readonly poll_rtt_p50_ms: number | null;
}

export function lagFigures(
  lagsMs: readonly number[],
  writes: number,
  pollRttsMs: readonly number[],
): LagFigures {
  const sorted = [...lagsMs].sort((a, b) => a - b);
  const rtts = [...pollRttsMs].sort((a, b) => a - b);
  const at = (xs: number[], p: number) => (xs.length === 0 ? null : round(percentile(xs, p), 3));
  return {
    writes,
    seen: sorted.length,
    missing: writes - sorted.length,
    p50_ms: at(sorted, 50),
    p99_ms: at(sorted, 99),
    max_ms: sorted.length === 0 ? null : round(sorted[sorted.length - 1]!, 3),
    poll_rtt_p50_ms: at(rtts, 50),
  };
}

/** Both LBs' admission limits at one moment, calls/s. */
export interface SplitReading {
  readonly lb1: number;
  readonly lb2: number;
}

/** |lb1 part − share × (part sum)| / (share × part sum) × 100; null when the parts sum to nothing. */
export function splitErrorPct(r: SplitReading, share = 0.8): number | null {
  const want = share * (r.lb1 + r.lb2);
  if (!(want > 0)) return null;
  return (Math.abs(r.lb1 - want) / want) * 100;
}

/** The split is within `tolerancePct` of `share` (the follow time's condition). */
export function withinSplit(r: SplitReading, share = 0.8, tolerancePct = 10): boolean {
  const e = splitErrorPct(r, share);
  return e !== null && e <= tolerancePct;
}

/** The mean error over the readings (null without a usable one). */
export function meanSplitError(readings: readonly SplitReading[], share = 0.8): number | null {
  const errors = readings.map((r) => splitErrorPct(r, share)).filter((e): e is number => e !== null);
  if (errors.length === 0) return null;
  return round(errors.reduce((a, b) => a + b, 0) / errors.length, 3);
}

/** Calls one overload UAC started and what became of them (sipp's final counters). */
export interface UacOutcome {
  readonly created: number;
  /** Calls that ended as the scenario expects: answered, or refused with a 503. */
  readonly successful: number;
  readonly refused_503: number;
}

/** Calls the LB admitted (no 503) that then failed: started, not answered, not refused. */
export function admittedFailed(outcomes: readonly UacOutcome[]): number {
  return outcomes.reduce((a, o) => a + Math.max(0, o.created - o.successful), 0);
}

export interface CancelResult extends CancelFigures {
  readonly sent: number;
  /** Calls the client's sipp counted failed (no 200 to the CANCEL, no 487...). */
  readonly client_failed: number;
}

export interface RtxResult extends ForkFigures {
  readonly sent: number;
  /** INVITE retransmissions the client sent (to lb2): the part means nothing without them. */
  readonly retransmissions: number;
  readonly client_failed: number;
}

export interface SplitResult {
  /** The sum of both parts with no traffic: the pool's limit. */
  readonly pool_limit_cps: number;
  /** Seconds from the 80/20 start until lb1's part was within 10 % of 0.8 × the sum; null: never. */
  readonly split_follow_s: number | null;
  readonly readings: readonly SplitReading[];
  readonly admission_split_error_pct: number | null;
  /** Seconds from all traffic on lb2 until lb2's limit ≥ 0.9 × the pool's limit; null: never. */
  readonly move_follow_s: number | null;
  readonly after_move: SplitReading | null;
}

export interface OverloadResult {
  readonly capacity_cps: number;
  readonly offered_cps: number;
  /** 200s per second in the window over the pool's capacity. */
  readonly goodput_fraction: number;
  readonly admitted_failed: number;
  readonly calls: number;
  readonly refused_503: number;
  readonly window_s: number;
}

export interface RepResult {
  readonly rep: number;
  readonly cancel: CancelResult | null;
  readonly rtx: RtxResult | null;
  readonly lag: LagFigures | null;
  /** DMQ cut between the LBs while calls flow through lb1, then healed. */
  readonly partition: PartitionResult | null;
  readonly split: SplitResult | null;
  readonly overload: OverloadResult | null;
  /** What failed in this repetition (a part left null), one line each. */
  readonly errors: readonly string[];
}

export interface ClusterSummary {
  readonly cancel_misrouted: Spread | null;
  readonly retransmission_forked: Spread | null;
  readonly lag_p50_ms: Spread | null;
  readonly lag_p99_ms: Spread | null;
  readonly admission_split_error_pct: Spread | null;
  readonly split_follow_s: Spread | null;
  readonly move_follow_s: Spread | null;
  readonly overload_goodput_fraction: Spread | null;
  readonly overload_admitted_failed: Spread | null;
}

export function summarize(reps: readonly RepResult[]): ClusterSummary {
  return {
    cancel_misrouted: spread(reps.map((r) => r.cancel?.misrouted ?? null)),
    retransmission_forked: spread(reps.map((r) => r.rtx?.forked ?? null)),
    lag_p50_ms: spread(reps.map((r) => r.lag?.p50_ms ?? null)),
    lag_p99_ms: spread(reps.map((r) => r.lag?.p99_ms ?? null)),
    admission_split_error_pct: spread(reps.map((r) => r.split?.admission_split_error_pct ?? null)),
    split_follow_s: spread(reps.map((r) => r.split?.split_follow_s ?? null)),
    move_follow_s: spread(reps.map((r) => r.split?.move_follow_s ?? null)),
    overload_goodput_fraction: spread(reps.map((r) => r.overload?.goodput_fraction ?? null)),
    overload_admitted_failed: spread(reps.map((r) => r.overload?.admitted_failed ?? null)),
  };
}

export interface SummaryContext {
  readonly quick: boolean;
  readonly repetitions: number;
  readonly failed_repetitions: number;
  readonly calls: number;
  readonly lag_writes: number;
  readonly capacities_cps: readonly number[];
  readonly overload_load: number;
  readonly overload_s: number;
  readonly seconds: number;
}

const med = (s: Spread | null) => s?.median ?? null;
const range = (s: Spread | null) => (s === null ? null : [s.min, s.max]);
const total = (xs: readonly (number | null | undefined)[]) =>
  xs.every((x) => x === null || x === undefined) ? null : xs.reduce<number>((a, x) => a + (x ?? 0), 0);

/** The last line: the figures (medians), their ranges, totals of the counts over the repetitions. */
export function summaryJson(
  s: ClusterSummary,
  reps: readonly RepResult[],
  c: SummaryContext,
): Record<string, unknown> {
  return {
    bench: 'cluster',
    quick: c.quick,
    cancel_misrouted: med(s.cancel_misrouted),
    retransmission_forked: med(s.retransmission_forked),
    replication_lag_ms: { p50: med(s.lag_p50_ms), p99: med(s.lag_p99_ms) },
    admission_split_error_pct: med(s.admission_split_error_pct),
    split_follow_s: med(s.split_follow_s),
    move_follow_s: med(s.move_follow_s),
    partition: partitionJson(reps.map((r) => r.partition)),
    overload_130: {
      goodput_fraction: med(s.overload_goodput_fraction),
      admitted_failed: med(s.overload_admitted_failed),
    },
    totals: {
      cancel_misrouted: total(reps.map((r) => r.cancel?.misrouted)),
      cancel_calls: total(reps.map((r) => r.cancel?.sent)),
      retransmission_forked: total(reps.map((r) => r.rtx?.forked)),
      retransmission_calls: total(reps.map((r) => r.rtx?.sent)),
      lag_missing: total(reps.map((r) => r.lag?.missing)),
      admitted_failed: total(reps.map((r) => r.overload?.admitted_failed)),
    },
    ranges: {
      cancel_misrouted: range(s.cancel_misrouted),
      retransmission_forked: range(s.retransmission_forked),
      replication_lag_p50_ms: range(s.lag_p50_ms),
      replication_lag_p99_ms: range(s.lag_p99_ms),
      admission_split_error_pct: range(s.admission_split_error_pct),
      split_follow_s: range(s.split_follow_s),
      move_follow_s: range(s.move_follow_s),
      overload_goodput_fraction: range(s.overload_goodput_fraction),
      overload_admitted_failed: range(s.overload_admitted_failed),
    },
    repetitions: c.repetitions,
    failed_repetitions: c.failed_repetitions,
    calls: c.calls,
    lag_writes: c.lag_writes,
    capacities_cps: c.capacities_cps,
    overload_load: c.overload_load,
    overload_s: c.overload_s,
    seconds: round(c.seconds, 1),
  };
}

const fmt = (v: number | null | undefined, digits: number) =>
  v === null || v === undefined ? '-' : v.toFixed(digits);

/** One repetition, one line (stderr, as it ends). */
export function formatRepLine(r: RepResult): string {
  const parts = [
    r.cancel
      ? `CANCEL via lb2 misrouted ${r.cancel.misrouted}/${r.cancel.calls} (client failed ${r.cancel.client_failed})`
      : 'CANCEL -',
    r.rtx
      ? `rtx via lb2 forked ${r.rtx.forked}/${r.rtx.calls} (${r.rtx.retransmissions} retransmissions)`
      : 'rtx -',
    r.lag
      ? `lag p50 ${fmt(r.lag.p50_ms, 2)} p99 ${fmt(r.lag.p99_ms, 2)} ms (${r.lag.seen}/${r.lag.writes})`
      : 'lag -',
    formatPartition(r.partition),
    r.split
      ? `split error ${fmt(r.split.admission_split_error_pct, 1)} %, follow ${fmt(r.split.split_follow_s, 1)} s, move ${fmt(r.split.move_follow_s, 1)} s`
      : 'split -',
    r.overload
      ? `overload goodput ${fmt(r.overload.goodput_fraction, 3)}, admitted failed ${r.overload.admitted_failed}`
      : 'overload -',
  ];
  return `rep ${r.rep}: ${parts.join('; ')}`;
}

/** The median (range) table over the repetitions, Markdown (also what people read on stderr). */
export function formatSummary(s: ClusterSummary): string {
  const cell = (x: Spread | null, digits: number, unit = '') =>
    x === null
      ? '-'
      : `${x.median.toFixed(digits)}${unit} (${x.min.toFixed(digits)}${unit}–${x.max.toFixed(digits)}${unit})`;
  const rows: [string, string][] = [
    ['CANCELs via lb2 not reaching the INVITE backend (calls)', cell(s.cancel_misrouted, 0)],
    ['retransmitted INVITEs via lb2 forked to a second backend (calls)', cell(s.retransmission_forked, 0)],
    ['DMQ replication lag p50', cell(s.lag_p50_ms, 2, ' ms')],
    ['DMQ replication lag p99', cell(s.lag_p99_ms, 2, ' ms')],
    ['admission split error, 80/20 settled', cell(s.admission_split_error_pct, 2, ' %')],
    ['split follow time (within 10 % of 80/20)', cell(s.split_follow_s, 1, ' s')],
    ['move follow time (lb2 ≥ 0.9 × pool limit)', cell(s.move_follow_s, 1, ' s')],
    ['overload goodput / capacity', cell(s.overload_goodput_fraction, 3)],
    ['overload: admitted calls that failed', cell(s.overload_admitted_failed, 0)],
  ];
  return ['| figure | median (range) |', '|---|---:|', ...rows.map(([k, v]) => `| ${k} | ${v} |`)].join('\n');
}
