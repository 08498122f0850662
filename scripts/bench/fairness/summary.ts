/**
 * The fairness benchmark's plan and figures, pure: who sends from where at what rate, in which order
 * the runs go, what one run's sipp counts say, and the median and range over the repetitions.
 */
import { median } from '../failover/report.js';
import type { FairnessMode, FairnessOptions } from './options.js';

export type SourceRole = 'legit' | 'flood' | 'alone';

/** One sipp UAC: its own loopback address is its source key at the LB. */
export interface SourcePlan {
  readonly name: string;
  readonly role: SourceRole;
  readonly address: string;
  /** Calls/s (sipp -r takes whole calls per second). */
  readonly rateCps: number;
  /** Seconds it starts before the last source to start (the flood); the window is the same for all. */
  readonly leadS: number;
}

/** What one source's sipp says about the measured window (calls started in it, by their own fate). */
export interface SourceCounts {
  readonly name: string;
  readonly role: SourceRole;
  readonly address: string;
  readonly offered_cps: number;
  /** INVITEs started in the window. */
  readonly calls: number;
  /** Of those, answered 200 (admitted and carried). */
  readonly answered: number;
  /** Of those, refused by the LB with 503. */
  readonly refused_503: number;
  /** 200s received within the window, whatever call they answer: this source's goodput. */
  readonly answered_in_window: number;
  /** The window's real length for this source, seconds (sipp writes its rows about a second apart). */
  readonly window_s: number;
}

export type RunKind = 'competition' | 'alone';

export interface RunFigures {
  /** Legitimate calls answered, % of those started in the window; null without legitimate calls. */
  readonly legit_success_pct: number | null;
  /** The flood's share of the answered calls; null when none was answered. */
  readonly flood_admitted_share: number | null;
  /** Calls answered per second in the window over the pool's capacity. */
  readonly pool_goodput_fraction: number;
}

export interface RunResult extends RunFigures {
  /**
   * The admission limit the controller kept at the LB, mean of the window's once-a-second samples,
   * over the pool's capacity: the ceiling of pool_goodput_fraction (null: never read).
   */
  readonly limit_fraction: number | null;
  /**
   * The busiest second of the whole run, warm-up included (calls started in it and answered, all
   * sources), over the pool's capacity: above 1 the LB let through more than the pool carries, as
   * when load starts before the controller has seen it.
   */
  readonly peak_second_fraction: number | null;
  readonly kind: RunKind;
  readonly mode: FairnessMode;
  readonly rep: number;
  readonly window_s: number;
  readonly sources: readonly SourceCounts[];
}

export interface ScheduledRun {
  readonly kind: RunKind;
  readonly mode: FairnessMode;
  readonly rep: number;
}

export const poolCps = (capacities: readonly number[]): number => capacities.reduce((a, b) => a + b, 0);

/** `127.<net>.<sub>.<last>`: legitimate sources on .2.x, the flood on .3.1, the lone source on .4.1. */
const address = (net: number, sub: number, last: number) => `127.${net}.${sub}.${last}`;

/** The legitimate sources (sharing the legitimate load equally) and the flood, for a competition run. */
export function competitionSources(o: FairnessOptions): SourcePlan[] {
  const pool = poolCps(o.capacities);
  const each = Math.max(1, Math.round((o.legitLoad * pool) / o.legitSources));
  const legit = Array.from({ length: o.legitSources }, (_, i) => ({
    name: `legit${i + 1}`,
    role: 'legit' as const,
    address: address(o.net, 2, i + 1),
    rateCps: each,
    leadS: o.floodDelayS,
  }));
  const flood = {
    name: 'flood',
    role: 'flood' as const,
    address: address(o.net, 3, 1),
    rateCps: Math.max(1, Math.round(o.floodLoad * pool)),
    leadS: 0,
  };
  return [...legit, flood];
}

/** The single source alone, or none when that run is off. */
export function aloneSources(o: FairnessOptions): SourcePlan[] {
  if (o.aloneLoad === null) return [];
  const rateCps = Math.max(1, Math.round(o.aloneLoad * poolCps(o.capacities)));
  return [{ name: 'alone', role: 'alone', address: address(o.net, 4, 1), rateCps, leadS: 0 }];
}

/**
 * The runs in order: each repetition runs every mode in turn (fair, global, fair, global...) so that
 * a machine getting busier or quieter weighs on both alike; the lone source (fair mode, the one that
 * could wrongly hold a source below the pool) closes each repetition.
 */
export function schedule(o: Pick<FairnessOptions, 'reps' | 'modes' | 'aloneLoad'>): ScheduledRun[] {
  const runs: ScheduledRun[] = [];
  for (let rep = 1; rep <= o.reps; rep++) {
    for (const mode of o.modes) runs.push({ kind: 'competition', mode, rep });
    if (o.aloneLoad !== null) runs.push({ kind: 'alone', mode: 'fair', rep });
  }
  return runs;
}

const sum = (xs: readonly SourceCounts[], f: (s: SourceCounts) => number) => xs.reduce((a, s) => a + f(s), 0);

/** One run's figures from its sources' counts over their windows. */
export function runFigures(sources: readonly SourceCounts[], pool: number): RunFigures {
  const legit = sources.filter((s) => s.role === 'legit');
  const legitCalls = sum(legit, (s) => s.calls);
  const answered = sum(sources, (s) => s.answered);
  const floodAnswered = sum(
    sources.filter((s) => s.role === 'flood'),
    (s) => s.answered,
  );
  const cps = sum(sources, (s) => (s.window_s > 0 ? s.answered_in_window / s.window_s : 0));
  const goodput = pool > 0 ? cps / pool : 0;
  return {
    legit_success_pct: legitCalls > 0 ? round((100 * sum(legit, (s) => s.answered)) / legitCalls, 2) : null,
    flood_admitted_share: answered > 0 ? round(floodAnswered / answered, 4) : null,
    pool_goodput_fraction: round(goodput, 4),
  };
}

/** The busiest second over all sources (per-second answered counts by second of the run), over the pool. */
export function peakSecond(
  sources: readonly (readonly { second: number; ok: number }[])[],
  pool: number,
): number | null {
  const bySecond = new Map<number, number>();
  for (const secs of sources)
    for (const s of secs) bySecond.set(s.second, (bySecond.get(s.second) ?? 0) + s.ok);
  if (bySecond.size === 0 || !(pool > 0)) return null;
  return round(Math.max(...bySecond.values()) / pool, 4);
}

/** Mean of the limit samples read (a sample that could not be read is left out); null without any. */
export function meanLimit(samples: readonly (number | null)[]): number | null {
  const xs = samples.filter((x): x is number => x !== null && Number.isFinite(x));
  return xs.length === 0 ? null : xs.reduce((a, b) => a + b, 0) / xs.length;
}

export function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Median and range of one figure over the repetitions (the runs that had it). */
export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly n: number;
}

export function spread(values: readonly (number | null)[], digits = 4): Spread | null {
  const xs = values.filter((v): v is number => v !== null && Number.isFinite(v));
  const m = median(xs);
  if (m === null) return null;
  return { median: round(m, digits), min: Math.min(...xs), max: Math.max(...xs), n: xs.length };
}

export interface ModeSummary {
  readonly legit_success_pct: Spread | null;
  readonly flood_admitted_share: Spread | null;
  readonly pool_goodput_fraction: Spread | null;
  readonly limit_fraction: Spread | null;
  readonly peak_second_fraction: Spread | null;
}

export interface FairnessSummary {
  readonly modes: Partial<Record<FairnessMode, ModeSummary>>;
  /** The lone source's goodput over the pool's capacity (fair mode). */
  readonly alone_pool_fraction: Spread | null;
  readonly alone_limit_fraction: Spread | null;
  readonly alone_peak_second_fraction: Spread | null;
}

export function summarize(runs: readonly RunResult[]): FairnessSummary {
  const modes: Partial<Record<FairnessMode, ModeSummary>> = {};
  const competitions = runs.filter((r) => r.kind === 'competition');
  for (const mode of new Set(competitions.map((r) => r.mode))) {
    const mine = competitions.filter((r) => r.mode === mode);
    modes[mode] = {
      legit_success_pct: spread(
        mine.map((r) => r.legit_success_pct),
        2,
      ),
      flood_admitted_share: spread(mine.map((r) => r.flood_admitted_share)),
      pool_goodput_fraction: spread(mine.map((r) => r.pool_goodput_fraction)),
      limit_fraction: spread(mine.map((r) => r.limit_fraction)),
      peak_second_fraction: spread(mine.map((r) => r.peak_second_fraction)),
    };
  }
  const alone = runs.filter((r) => r.kind === 'alone');
  return {
    modes,
    alone_pool_fraction: spread(alone.map((r) => r.pool_goodput_fraction)),
    alone_limit_fraction: spread(alone.map((r) => r.limit_fraction)),
    alone_peak_second_fraction: spread(alone.map((r) => r.peak_second_fraction)),
  };
}

/** The issue's goals (issue 14, "Done when"). */
export const GOALS = { legit_success_pct: 99, pool_goodput_fraction: 0.9, alone_pool_fraction: 0.9 } as const;

export interface SummaryContext {
  readonly quick: boolean;
  readonly pool_cps: number;
  readonly capacities_cps: readonly number[];
  readonly legit_sources: number;
  readonly legit_offered_cps: number;
  readonly flood_offered_cps: number;
  readonly alone_offered_cps: number | null;
  /** Seconds the legitimate sources ran before the flood started. */
  readonly flood_delay_s: number;
  readonly reps: number;
  readonly window_s: number;
  readonly seconds: number;
  readonly failed_runs: number;
}

const med = (s: Spread | null | undefined) => (s ? s.median : null);
const range = (s: Spread | null | undefined) => (s ? [s.min, s.max] : null);

/**
 * The last line: medians at the top level (`legit_success_pct.{fair,global}`, and fair mode's flood
 * share, pool goodput and lone-source fraction), ranges beside them, every mode in `by_mode`.
 */
export function summaryJson(s: FairnessSummary, c: SummaryContext): Record<string, unknown> {
  const fair = s.modes.fair;
  const global = s.modes.global;
  const goal = (v: number | null, min: number) => (v === null ? null : v >= min);
  return {
    bench: 'fairness',
    quick: c.quick,
    legit_success_pct: { fair: med(fair?.legit_success_pct), global: med(global?.legit_success_pct) },
    legit_success_pct_range: {
      fair: range(fair?.legit_success_pct),
      global: range(global?.legit_success_pct),
    },
    flood_admitted_share: med(fair?.flood_admitted_share),
    flood_admitted_share_global: med(global?.flood_admitted_share),
    pool_goodput_fraction: med(fair?.pool_goodput_fraction),
    pool_goodput_fraction_global: med(global?.pool_goodput_fraction),
    single_source_pool_fraction: med(s.alone_pool_fraction),
    limit_fraction: { fair: med(fair?.limit_fraction), global: med(global?.limit_fraction) },
    peak_second_fraction: {
      fair: med(fair?.peak_second_fraction),
      global: med(global?.peak_second_fraction),
    },
    goals_met: {
      legit_success: goal(med(fair?.legit_success_pct), GOALS.legit_success_pct),
      pool_goodput: goal(med(fair?.pool_goodput_fraction), GOALS.pool_goodput_fraction),
      single_source: goal(med(s.alone_pool_fraction), GOALS.alone_pool_fraction),
    },
    by_mode: {
      ...s.modes,
      alone: {
        pool_goodput_fraction: s.alone_pool_fraction,
        limit_fraction: s.alone_limit_fraction,
        peak_second_fraction: s.alone_peak_second_fraction,
      },
    },
    pool_cps: c.pool_cps,
    capacities_cps: c.capacities_cps,
    legit_sources: c.legit_sources,
    legit_offered_cps: c.legit_offered_cps,
    flood_offered_cps: c.flood_offered_cps,
    alone_offered_cps: c.alone_offered_cps,
    flood_delay_s: c.flood_delay_s,
    reps: c.reps,
    window_s: c.window_s,
    failed_runs: c.failed_runs,
    seconds: Math.round(c.seconds),
  };
}

// ---- for people ----------------------------------------------------------------------------------

const pct = (x: number | null) => (x === null ? '-' : `${x.toFixed(1)} %`);
const frac = (x: number | null) => (x === null ? '-' : x.toFixed(3));

/** One line per run, as it ends. */
export function formatRunLine(r: RunResult): string {
  const who = r.sources.map((s) => `${s.name} ${s.answered}/${s.calls} (503: ${s.refused_503})`).join(', ');
  const head = r.kind === 'alone' ? `alone   ${r.mode.padEnd(6)}` : `rep ${r.rep}   ${r.mode.padEnd(6)}`;
  const figures =
    r.kind === 'alone'
      ? `pool fraction ${frac(r.pool_goodput_fraction)}`
      : `legit ${pct(r.legit_success_pct)}, flood share ${frac(r.flood_admitted_share)}, pool ${frac(r.pool_goodput_fraction)}`;
  const limit = `limit ${frac(r.limit_fraction)}, busiest second ${frac(r.peak_second_fraction)}`;
  return `${head} ${figures} (${limit})   [answered/started: ${who}]`;
}

const cell = (s: Spread | null | undefined, f: (x: number) => string) =>
  s ? `${f(s.median)} (${f(s.min)}–${f(s.max)})` : '-';

/** The table: median (range) per mode. */
export function formatSummary(s: FairnessSummary): string {
  const rows = [
    '| mode | legit calls answered | flood share of answered calls | pool goodput / capacity | admission limit / capacity | busiest second / capacity |',
    '|---|---:|---:|---:|---:|---:|',
  ];
  for (const [mode, m] of Object.entries(s.modes)) {
    rows.push(
      `| ${mode} | ${cell(m.legit_success_pct, (x) => `${x.toFixed(1)} %`)} | ${cell(m.flood_admitted_share, (x) => x.toFixed(3))} | ${cell(m.pool_goodput_fraction, (x) => x.toFixed(3))} | ${cell(m.limit_fraction, (x) => x.toFixed(3))} | ${cell(m.peak_second_fraction, (x) => x.toFixed(2))} |`,
    );
  }
  if (s.alone_pool_fraction) {
    rows.push(
      `| one source alone (fair) | - | - | ${cell(s.alone_pool_fraction, (x) => x.toFixed(3))} | ${cell(s.alone_limit_fraction, (x) => x.toFixed(3))} | ${cell(s.alone_peak_second_fraction, (x) => x.toFixed(2))} |`,
    );
  }
  return rows.join('\n');
}
