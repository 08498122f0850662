/**
 * The data-plane bench's LB comparison (`--lb kamailio,opensips`), pure: which LBs a command line
 * names, the order of the runs (repeated, the LBs interleaved and rotated), and what the runs add
 * up to per LB (median and range over the repetitions), as a table and as the JSON last line.
 * The runner (dataplane.ts) starts the labs and measures; everything it decides is here.
 */
import { InvalidArgumentError } from 'commander';
import { rotated } from '../quality/plan.js';

/** The LBs the bench can put in front of the same backends. */
export type LbName = 'kamailio' | 'opensips';
export const LB_NAMES: readonly LbName[] = ['kamailio', 'opensips'];

/**
 * `--lb` parser: comma-separated LB names, or `both`. Duplicates are dropped, the order is kept
 * (it is the first repetition's order; later ones rotate it).
 */
export function parseLbList(raw: string): LbName[] {
  const out: LbName[] = [];
  for (const word of raw.split(',').map((s) => s.trim())) {
    const names = word === 'both' ? LB_NAMES : [word];
    for (const name of names) {
      if (!(LB_NAMES as readonly string[]).includes(name)) {
        throw new InvalidArgumentError(
          `unknown LB ${JSON.stringify(name)} (known: ${LB_NAMES.join(', ')}, or both)`,
        );
      }
      if (!out.includes(name as LbName)) out.push(name as LbName);
    }
  }
  return out;
}

/** One measured run: one LB at one offered rate, on a fresh topology. */
export interface LbRun {
  readonly lb: LbName;
  readonly rep: number;
  readonly offeredCps: number;
  /** Calls sipp was told to make. */
  readonly calls: number;
  /** Calls answered and completed (sipp's successful calls). */
  readonly successful: number;
  readonly failed: number;
  readonly successfulCps: number;
  /** LB CPU per successful call over the load window, the LB's idle use subtracted, µs. */
  readonly usPerCall: number;
  /** The same without subtracting the idle use: the window's LB CPU time ÷ successful calls. */
  readonly rawUsPerCall: number;
  readonly lbProcesses: number;
  /** OpenSIPS only: sends that took the per-call (leaking) form; 0 when the literal route served all. */
  readonly sendDynamic?: number;
}

export interface PlannedLbRun {
  readonly lb: LbName;
  readonly rate: number;
  readonly rep: number;
}

/**
 * Every run in order. Repetition by repetition, each rate runs every LB once; the LBs' order
 * rotates one place per repetition, so a machine that gets busier or quieter during the bench, or a
 * run that inherits another's warm caches, weighs on every LB alike.
 */
export function lbSchedule(lbs: readonly LbName[], rates: readonly number[], reps: number): PlannedLbRun[] {
  const out: PlannedLbRun[] = [];
  for (let rep = 1; rep <= reps; rep++) {
    for (const rate of rates) for (const lb of rotated(lbs, rep)) out.push({ lb, rate, rep });
  }
  return out;
}

/** Median and range of the finite values; null when there are none. */
export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly n: number;
}

export function spread(values: readonly number[]): Spread | null {
  const xs = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (xs.length === 0) return null;
  const mid = Math.floor(xs.length / 2);
  const median = xs.length % 2 === 1 ? xs[mid]! : (xs[mid - 1]! + xs[mid]!) / 2;
  return { median, min: xs[0]!, max: xs[xs.length - 1]!, n: xs.length };
}

/** One LB at one rate, over its repetitions. */
export interface LbSummary {
  readonly lb: LbName;
  readonly offeredCps: number;
  readonly reps: number;
  readonly usPerCall: Spread | null;
  readonly rawUsPerCall: Spread | null;
  readonly successfulCps: Spread | null;
  /** Summed over the repetitions. */
  readonly calls: number;
  readonly successful: number;
  readonly failed: number;
  readonly lbProcesses: number;
  /** OpenSIPS only, summed. */
  readonly sendDynamic?: number;
}

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);

/** Per LB and rate, in the order the LBs were named and the rates given. */
export function summarizeLbRuns(
  runs: readonly LbRun[],
  lbs: readonly LbName[],
  rates: readonly number[],
): LbSummary[] {
  const out: LbSummary[] = [];
  for (const rate of rates) {
    for (const lb of lbs) {
      const mine = runs.filter((r) => r.lb === lb && r.offeredCps === rate);
      if (mine.length === 0) continue;
      const dyn = mine.map((r) => r.sendDynamic).filter((v): v is number => v !== undefined);
      out.push({
        lb,
        offeredCps: rate,
        reps: mine.length,
        usPerCall: spread(mine.map((r) => r.usPerCall)),
        rawUsPerCall: spread(mine.map((r) => r.rawUsPerCall)),
        successfulCps: spread(mine.map((r) => r.successfulCps)),
        calls: sum(mine.map((r) => r.calls)),
        successful: sum(mine.map((r) => r.successful)),
        failed: sum(mine.map((r) => r.failed)),
        lbProcesses: Math.max(...mine.map((r) => r.lbProcesses)),
        ...(dyn.length > 0 ? { sendDynamic: sum(dyn) } : {}),
      });
    }
  }
  return out;
}

/**
 * `of` ÷ `to` CPU per call, repetition by repetition at one rate (the two ran back to back, so each
 * ratio compares the machine with itself): median and range. Null without a pair.
 */
export function pairedRatio(runs: readonly LbRun[], of: LbName, to: LbName, rate: number): Spread | null {
  const ratios: number[] = [];
  const reps = new Set(runs.filter((r) => r.offeredCps === rate).map((r) => r.rep));
  for (const rep of reps) {
    const a = runs.find((r) => r.lb === of && r.rep === rep && r.offeredCps === rate);
    const b = runs.find((r) => r.lb === to && r.rep === rep && r.offeredCps === rate);
    if (a && b && b.usPerCall > 0) ratios.push(a.usPerCall / b.usPerCall);
  }
  return spread(ratios);
}

const fmt = (n: number | undefined, digits = 1) =>
  n !== undefined && Number.isFinite(n) ? n.toFixed(digits) : 'n/a';
const fmtSpread = (s: Spread | null, digits = 1) =>
  s ? `${fmt(s.median, digits)} (${fmt(s.min, digits)}–${fmt(s.max, digits)})` : 'n/a';

/** Per LB and rate: median (range) over the repetitions. */
export function formatLbTable(rows: readonly LbSummary[]): string {
  const head =
    '| LB | offered calls/s | reps | answered | failed | successful calls/s | LB CPU µs/call | (raw, idle included) | LB processes |';
  const sep = '|---|---|---|---|---|---|---|---|---|';
  const lines = rows.map(
    (r) =>
      `| ${r.lb} | ${r.offeredCps} | ${r.reps} | ${r.successful}/${r.calls} | ${r.failed} | ${fmtSpread(r.successfulCps)} | ${fmtSpread(r.usPerCall)} | ${fmtSpread(r.rawUsPerCall)} | ${r.lbProcesses} |`,
  );
  return [head, sep, ...lines].join('\n');
}

/** Every run in the order it ran. */
export function formatLbRuns(runs: readonly LbRun[]): string {
  const head = '| rep | LB | offered calls/s | answered | failed | LB CPU µs/call | (raw) |';
  const sep = '|---|---|---|---|---|---|---|';
  const lines = runs.map(
    (r) =>
      `| ${r.rep} | ${r.lb} | ${r.offeredCps} | ${r.successful}/${r.calls} | ${r.failed} | ${fmt(r.usPerCall)} | ${fmt(r.rawUsPerCall)} |`,
  );
  return [head, sep, ...lines].join('\n');
}

const round = (n: number | undefined | null) =>
  n === undefined || n === null || !Number.isFinite(n) ? null : Math.round(n * 10) / 10;
const round2 = (n: number | undefined | null) =>
  n === undefined || n === null || !Number.isFinite(n) ? null : Math.round(n * 100) / 100;

export interface LbBenchMeta {
  readonly lbs: readonly LbName[];
  readonly rates: readonly number[];
  readonly reps: number;
  readonly seconds: number;
  /** What each LB ran, e.g. { kamailio: 'kamailio 5.6.3', opensips: 'opensips 3.6.8' }. */
  readonly versions: Readonly<Partial<Record<LbName, string>>>;
}

/**
 * The JSON last line of an LB comparison. Headline keys name the LB and hold the figures at the
 * first (reference) rate: medians over the repetitions, ranges beside them; `rows` has every rate,
 * `runs` every run in order.
 */
export function lbSummaryJson(runs: readonly LbRun[], meta: LbBenchMeta): Record<string, unknown> {
  const rows = summarizeLbRuns(runs, meta.lbs, meta.rates);
  const ref = meta.rates[0];
  const at = rows.filter((r) => r.offeredCps === ref);
  const byLb = <T>(f: (r: LbSummary) => T): Record<string, T> =>
    Object.fromEntries(at.map((r) => [r.lb, f(r)]));
  const ratio =
    ref !== undefined && meta.lbs.includes('opensips') && meta.lbs.includes('kamailio')
      ? pairedRatio(runs, 'opensips', 'kamailio', ref)
      : null;
  return {
    bench: 'dataplane',
    compare: 'lb',
    path: 'transparent',
    rate_cps: ref ?? null,
    reps: meta.reps,
    seconds: meta.seconds,
    lbs: meta.lbs,
    versions: meta.versions,
    cpu_us_per_call: byLb((r) => round(r.usPerCall?.median)),
    cpu_us_per_call_range: byLb((r) =>
      r.usPerCall ? [round(r.usPerCall.min), round(r.usPerCall.max)] : null,
    ),
    raw_cpu_us_per_call: byLb((r) => round(r.rawUsPerCall?.median)),
    calls_per_s: byLb((r) => round(r.successfulCps?.median)),
    calls_answered: byLb((r) => r.successful),
    calls_failed: byLb((r) => r.failed),
    calls_offered: byLb((r) => r.calls),
    ...(ratio
      ? {
          opensips_over_kamailio: {
            median: round2(ratio.median),
            min: round2(ratio.min),
            max: round2(ratio.max),
            n: ratio.n,
          },
        }
      : {}),
    ...(at.some((r) => r.sendDynamic !== undefined)
      ? { opensips_send_dynamic: at.find((r) => r.lb === 'opensips')?.sendDynamic ?? null }
      : {}),
    rows: rows.map((r) => ({
      lb: r.lb,
      offered_cps: r.offeredCps,
      reps: r.reps,
      us_per_call: round(r.usPerCall?.median),
      us_per_call_min: round(r.usPerCall?.min),
      us_per_call_max: round(r.usPerCall?.max),
      raw_us_per_call: round(r.rawUsPerCall?.median),
      successful_cps: round(r.successfulCps?.median),
      answered: r.successful,
      failed: r.failed,
      calls: r.calls,
      lb_processes: r.lbProcesses,
    })),
    runs: runs.map((r) => ({
      rep: r.rep,
      lb: r.lb,
      offered_cps: r.offeredCps,
      successful: r.successful,
      failed: r.failed,
      us_per_call: round(r.usPerCall),
      raw_us_per_call: round(r.rawUsPerCall),
    })),
  };
}

/** `opensips -V` output -> "opensips 3.6.8"; null when it names no version. */
export function parseOpenSipsVersion(output: string): string | null {
  const m = /version:\s*opensips\s+(\d+\.\d+\.\d+\S*)/i.exec(output);
  return m ? `opensips ${m[1]}` : null;
}
