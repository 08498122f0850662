/**
 * The partition part's figures, pure: setup latency from sipp's response times, CANCELs sent to the
 * other LB that reached the INVITE's backend, the entries written during the cut still missing at
 * the other node after healing, and their summary over the repetitions.
 */
import type { SippRtt } from '../../../src/lab/sipp.js';
import { round } from '../fairness/summary.js';
import { percentile } from '../quality/window.js';
import type { ServerCalls } from './summary.js';

export type PartitionMethod = 'tc-drop' | 'peer-frozen';

export interface SetupLatency {
  readonly calls: number;
  readonly failed: number;
  readonly samples: number;
  readonly p50_ms: number | null;
  readonly p99_ms: number | null;
}

/** Response time 1 (INVITE → 180) of every call that got that far, and the calls' outcome. */
export function setupLatency(rtts: readonly SippRtt[], calls: number, failed: number): SetupLatency {
  const ms = rtts
    .filter((r) => r.rtd === 1)
    .map((r) => r.ms)
    .sort((a, b) => a - b);
  const at = (p: number) => (ms.length === 0 ? null : round(percentile(ms, p), 3));
  return { calls, failed, samples: ms.length, p50_ms: at(50), p99_ms: at(99) };
}

export interface CrossCancel {
  /** Calls (of `callIds`) whose INVITE reached a backend. */
  readonly calls: number;
  /** Of those, the calls whose CANCEL reached the backend that has the INVITE. */
  readonly reached: number;
}

/** For the calls `callIds` only: did the CANCEL (sent to the other LB) reach the INVITE's backend? */
export function crossCancel(servers: readonly ServerCalls[], callIds: ReadonlySet<string>): CrossCancel {
  let calls = 0;
  let reached = 0;
  for (const id of callIds) {
    const withInvite = servers.filter((s) => s.invites.includes(id));
    if (withInvite.length === 0) continue;
    calls++;
    if (withInvite.some((s) => s.cancels.includes(id))) reached++;
  }
  return { calls, reached };
}

/** `dmq.list_nodes`' entry for the node at `address` (its status string), null when absent. */
export function peerStatus(listNodes: unknown, address: string): string | null {
  if (!Array.isArray(listNodes)) return null;
  for (const n of listNodes as Record<string, unknown>[]) {
    if (n && typeof n === 'object' && n.host === address && n.local !== 1 && n.local !== '1') {
      return typeof n.status === 'string' ? n.status : JSON.stringify(n.status ?? null);
    }
  }
  return null;
}

/** A counter from `stats.fetchn ["script:"]` by its name (null when absent). */
export function scriptCounter(fetchn: unknown, name: string): number | null {
  if (!fetchn || typeof fetchn !== 'object') return null;
  for (const [k, v] of Object.entries(fetchn as Record<string, unknown>)) {
    if (k === `script.${name}` || k === `script:${name}` || k === name) {
      const n = Number(v);
      return Number.isFinite(n) ? n : null;
    }
  }
  return null;
}

export interface PartitionResult {
  readonly method: PartitionMethod;
  readonly cut_s: number;
  readonly rate_cps: number;
  /** KDMQ packets (both ways) the cut dropped (tc-drop only): the proof that it cut. */
  readonly dropped_packets: number | null;
  /** Each node's view of the other in `dmq.list_nodes` at the end of the cut. */
  readonly peer_status_end_of_cut: { readonly lb1: string | null; readonly lb2: string | null };
  readonly before: SetupLatency;
  readonly during: SetupLatency;
  readonly cancel_other_lb_during: CrossCancel & {
    /** lb2's sipweigh_cancel_unknown_dropped over the cut. */
    readonly unknown_dropped_at_lb2: number | null;
  };
  /** Call-IDs written at lb1 during the cut (present at lb1 after healing). */
  readonly entries_written_during: number;
  /** Of those, present at lb1 but missing at lb2 at the first check after healing (`checked_after_heal_s[0]`). */
  readonly entries_missing_soon_after_heal: number;
  /** The same at the last check (`checked_after_heal_s[1]`, after one more DMQ ping interval). */
  readonly entries_missing_after_heal: number;
  /** Seconds after healing of both checks. */
  readonly checked_after_heal_s: readonly [number, number];
  /** A call written at lb1 after healing was read at lb2 within the probe's bound. */
  readonly healed_replication_ok: boolean;
  /** Seconds from healing until the write of the first probe call that reached lb2 (null: none did); probes start at once. */
  readonly healed_replication_s: number | null;
  /** Probe calls written after healing before the first one replicated (that one included). */
  readonly heal_probes: number;
}

const median = (xs: readonly (number | null | undefined)[]): number | null => {
  const v = xs.filter((x): x is number => typeof x === 'number').sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m]! : round((v[m - 1]! + v[m]!) / 2, 3);
};
const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);

export interface PartitionSummary {
  readonly method: string;
  readonly cut_s: number;
  readonly rate_cps: number;
  readonly calls: number;
  readonly failed: number;
  readonly setup_before_ms: { readonly p50: number | null; readonly p99: number | null };
  readonly setup_during_ms: { readonly p50: number | null; readonly p99: number | null };
  readonly dropped_packets: number | null;
  readonly peer_status_end_of_cut: readonly PartitionResult['peer_status_end_of_cut'][];
  readonly cancel_other_lb_during: {
    readonly calls: number;
    readonly reached: number;
    readonly unknown_dropped_at_lb2: number | null;
  };
  readonly entries_written_during: number;
  readonly entries_missing_soon_after_heal: number;
  readonly entries_missing_after_heal: number;
  readonly checked_after_heal_s: readonly [number | null, number | null];
  readonly healed_replication_ok: boolean;
  readonly healed_replication_s: number | null;
  readonly heal_probes: number | null;
}

/** The JSON line's `partition`: medians over the repetitions that measured it, counts summed. */
export function partitionJson(results: readonly (PartitionResult | null)[]): PartitionSummary | null {
  const rs = results.filter((r): r is PartitionResult => r !== null);
  if (rs.length === 0) return null;
  return {
    method: [...new Set(rs.map((r) => r.method))].join(','),
    cut_s: rs[0]!.cut_s,
    rate_cps: rs[0]!.rate_cps,
    calls: sum(rs.map((r) => r.during.calls)),
    failed: sum(rs.map((r) => r.during.failed)),
    setup_before_ms: {
      p50: median(rs.map((r) => r.before.p50_ms)),
      p99: median(rs.map((r) => r.before.p99_ms)),
    },
    setup_during_ms: {
      p50: median(rs.map((r) => r.during.p50_ms)),
      p99: median(rs.map((r) => r.during.p99_ms)),
    },
    dropped_packets: median(rs.map((r) => r.dropped_packets)),
    peer_status_end_of_cut: rs.map((r) => r.peer_status_end_of_cut),
    cancel_other_lb_during: {
      calls: sum(rs.map((r) => r.cancel_other_lb_during.calls)),
      reached: sum(rs.map((r) => r.cancel_other_lb_during.reached)),
      unknown_dropped_at_lb2: median(rs.map((r) => r.cancel_other_lb_during.unknown_dropped_at_lb2)),
    },
    entries_written_during: sum(rs.map((r) => r.entries_written_during)),
    entries_missing_soon_after_heal: sum(rs.map((r) => r.entries_missing_soon_after_heal)),
    entries_missing_after_heal: sum(rs.map((r) => r.entries_missing_after_heal)),
    checked_after_heal_s: [
      median(rs.map((r) => r.checked_after_heal_s[0])),
      median(rs.map((r) => r.checked_after_heal_s[1])),
    ],
    healed_replication_ok: rs.every((r) => r.healed_replication_ok),
    healed_replication_s: median(rs.map((r) => r.healed_replication_s)),
    heal_probes: median(rs.map((r) => r.heal_probes)),
  };
}

const fmt = (v: number | null, d: number) => (v === null ? '-' : v.toFixed(d));

/** The partition's part of a repetition's line. */
export function formatPartition(p: PartitionResult | null): string {
  if (!p) return 'partition -';
  return (
    `partition (${p.method}, ${p.cut_s} s): ${p.during.failed}/${p.during.calls} failed, ` +
    `setup p50/p99 ${fmt(p.before.p50_ms, 1)}/${fmt(p.before.p99_ms, 1)} → ${fmt(p.during.p50_ms, 1)}/${fmt(p.during.p99_ms, 1)} ms, ` +
    `CANCEL via lb2 reached ${p.cancel_other_lb_during.reached}/${p.cancel_other_lb_during.calls}, ` +
    `missing after heal ${p.entries_missing_soon_after_heal}→${p.entries_missing_after_heal}/${p.entries_written_during}, ` +
    `replicates again ${p.healed_replication_ok ? `after ${fmt(p.healed_replication_s, 1)} s` : 'no'}`
  );
}

/** The partition's paragraph in BENCHMARKS.md. */
export function partitionMarkdown(p: PartitionSummary | null): string {
  if (!p) return 'DMQ partition: not measured.';
  const how =
    p.method === 'tc-drop'
      ? `cut both ways by tc on loopback, ${p.dropped_packets ?? '?'} DMQ packets dropped (median)`
      : "no true partition could be made here: lb2 frozen (SIGSTOP), so lb1's KDMQ went unanswered";
  return [
    `DMQ partition (${how}) for ${p.cut_s} s while ${p.rate_cps} calls/s went through lb1: ` +
      `${p.failed} of ${p.calls} calls failed; setup latency (INVITE → 180, sipp's whole milliseconds) p50/p99 ` +
      `${fmt(p.setup_before_ms.p50, 0)}/${fmt(p.setup_before_ms.p99, 0)} ms before the cut, ` +
      `${fmt(p.setup_during_ms.p50, 0)}/${fmt(p.setup_during_ms.p99, 0)} ms during it. ` +
      `Calls INVITEd via lb1 and CANCELled via lb2 during the cut: ${p.cancel_other_lb_during.reached} of ` +
      `${p.cancel_other_lb_during.calls} CANCELs reached the INVITE's backend ` +
      `(lb2 dropped ${p.cancel_other_lb_during.unknown_dropped_at_lb2 ?? '?'} unknown CANCELs, retransmissions included).`,
    `After healing: of the ${p.entries_written_during} Call-IDs written at lb1 during the cut, ` +
      `${p.entries_missing_soon_after_heal} were missing at lb2 ${fmt(p.checked_after_heal_s[0], 1)} s later and ` +
      `${p.entries_missing_after_heal} ${fmt(p.checked_after_heal_s[1], 1)} s later` +
      (p.entries_written_during > 0 && p.entries_missing_after_heal === p.entries_written_during
        ? ' (nothing resynced the healed peer)'
        : '') +
      '; ' +
      'a call written after healing ' +
      (p.healed_replication_ok
        ? `replicated (the first probe that did was written ${fmt(p.healed_replication_s, 2)} s after the heal, probe ${p.heal_probes ?? '?'}).`
        : 'had not replicated within 30 s.'),
  ].join('\n');
}
