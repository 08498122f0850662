/**
 * The fairness benchmark's figures for BENCHMARKS.md (pure): the run's conditions, the median (range)
 * table and the issue's goals, written between this benchmark's markers by the runner.
 */
import { formatSummary, GOALS, type FairnessSummary, type SummaryContext } from './summary.js';

export interface RunConditions {
  readonly started_at: string;
  readonly command: string;
  readonly cpus: number;
  readonly loadavg_start: number;
  readonly warmup_s: number;
  /** The run's JSON, relative to BENCHMARKS.md. */
  readonly run_file: string;
}

const verdict = (v: number | null, min: number, f: (x: number) => string) =>
  v === null ? 'not measured' : `${f(v)}: ${v >= min ? 'met' : 'not met'}`;

export function fairnessMarkdown(s: FairnessSummary, c: SummaryContext, r: RunConditions): string {
  const pct = (x: number) => `${x.toFixed(1)} %`;
  const f3 = (x: number) => x.toFixed(3);
  const fair = s.modes.fair;
  return [
    `Figures of \`${r.command}\`, ${r.started_at.slice(0, 16).replace('T', ' ')} UTC, on ${r.cpus} CPUs (load average ${r.loadavg_start} at the start).`,
    `Pool ${c.capacities_cps.join('/')} = ${c.pool_cps} calls/s; ${c.legit_sources} legitimate sources, ${c.legit_offered_cps} calls/s together; one flood at ${c.flood_offered_cps} calls/s, ${c.flood_delay_s > 0 ? `starting ${c.flood_delay_s} s after them` : 'starting with them from an idle pool'}` +
      `${c.alone_offered_cps === null ? '' : `; the lone source at ${c.alone_offered_cps} calls/s`}. ` +
      `${c.reps} repetition(s) per mode, interleaved, each on a fresh lab: ${r.warmup_s} s of load (after the flood's start), then a window of ${c.window_s} s.` +
      `${c.failed_runs > 0 ? ` ${c.failed_runs} run(s) failed and are left out.` : ''}`,
    '',
    'Median (range) over the repetitions:',
    '',
    formatSummary(s),
    '',
    `Goals (issue 14): legitimate calls answered under the flood ≥ ${GOALS.legit_success_pct} % (fair mode): ${verdict(fair?.legit_success_pct?.median ?? null, GOALS.legit_success_pct, pct)}; ` +
      `pool goodput ≥ ${GOALS.pool_goodput_fraction} of capacity: ${verdict(fair?.pool_goodput_fraction?.median ?? null, GOALS.pool_goodput_fraction, f3)}; ` +
      `one source alone ≥ ${GOALS.alone_pool_fraction} of the pool: ${verdict(s.alone_pool_fraction?.median ?? null, GOALS.alone_pool_fraction, f3)}.`,
    '',
    `The run: [${r.run_file}](${r.run_file}).`,
  ].join('\n');
}
