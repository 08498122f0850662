/**
 * The cluster benchmark's figures for BENCHMARKS.md (pure): the run's conditions, the median (range)
 * table and the issue's goals, written between this benchmark's markers by the runner.
 */
import { partitionMarkdown, type PartitionSummary } from './partition-figures.js';
import { formatSummary, type ClusterSummary, type SummaryContext } from './summary.js';

export interface RunConditions {
  readonly started_at: string;
  readonly command: string;
  readonly cpus: number;
  readonly loadavg_start: number;
  /** The run's JSON, relative to BENCHMARKS.md. */
  readonly run_file: string;
}

const zero = (v: number | undefined) =>
  v === undefined ? 'not measured' : `${v} (median): ${v === 0 ? 'met' : 'not met'}`;

export function clusterMarkdown(
  s: ClusterSummary,
  c: SummaryContext,
  r: RunConditions,
  partition: PartitionSummary | null = null,
): string {
  const pool = c.capacities_cps.reduce((a, b) => a + b, 0);
  return [
    `Figures of \`${r.command}\`, ${r.started_at.slice(0, 16).replace('T', ' ')} UTC, on ${r.cpus} CPUs (load average ${r.loadavg_start} at the start).`,
    `${c.repetitions} repetition(s), each on fresh labs; ${c.calls} calls per crossing part, ${c.lag_writes} lag writes; ` +
      `pool ${c.capacities_cps.join('/')} = ${pool} calls/s, overload ${c.overload_load}× for ${c.overload_s} s.` +
      `${c.failed_repetitions > 0 ? ` ${c.failed_repetitions} repetition(s) had a part fail; its figures are left out.` : ''}`,
    '',
    'Median (range) over the repetitions:',
    '',
    formatSummary(s),
    '',
    `Goals (issue 16): no CANCEL misrouted: ${zero(s.cancel_misrouted?.median)}; no retransmission forked: ${zero(s.retransmission_forked?.median)}; ` +
      `no admitted call failed under overload: ${zero(s.overload_admitted_failed?.median)}.`,
    '',
    partitionMarkdown(partition),
    '',
    `The run: [${r.run_file}](${r.run_file}).`,
  ].join('\n');
}
