/**
 * One report -> a pressure per signal (value / knee; 1 = at the edge of capacity). Pure, and total:
 * a null, negative or non-finite field gives a null pressure for that signal, never an exception.
 *
 * Every mapping is non-decreasing in the load fields it reads, so more load can never lower a
 * pressure (the monotonicity the weights inherit). That is why 5xx is measured against configured
 * capacity rather than against req_rate: a ratio over req_rate would fall as traffic rises.
 */
import type { ReportMetrics } from '../heartbeat/messages.js';
import type { PressureRange } from './derating.js';
import type { ScoringParams } from './params.js';
import { SIGNAL_NAMES, type DropsBaseline, type SignalName, type SignalValues } from './types.js';

/** Pressures are clamped here: far past any knee, and keeps sums finite. */
export const PRESSURE_CAP = 1_000;

export interface ReportSignals {
  readonly pressures: SignalValues;
  /** The drops counter to diff the next report against (null if this report has none). */
  readonly drops: DropsBaseline | null;
}

function measured(v: number | null): number | null {
  return v === null || typeof v !== 'number' || !Number.isFinite(v) || v < 0 ? null : v;
}

/**
 * Drop rate from the cumulative counter. Only a *delta* means overload (the counter keeps old
 * drops forever). A counter that went down was reset (agent or kernel socket restart): no rate
 * for this report, and it becomes the new baseline.
 */
export function dropsPerSecond(prev: DropsBaseline | null, count: number, at: number): number | null {
  if (prev === null || count < prev.count || at <= prev.at) return null;
  return (count - prev.count) / ((at - prev.at) / 1000);
}

export function reportSignals(
  metrics: ReportMetrics,
  at: number,
  capacityCps: number,
  prevDrops: DropsBaseline | null,
  p: ScoringParams,
): ReportSignals {
  const dropCount = measured(metrics.udp_drops);
  const reqRate = measured(metrics.req_rate);
  const err = measured(metrics.err5xx_rate);
  const tm = measured(metrics.tm_current);
  const dialogs = measured(metrics.dialogs_active);
  const raw: SignalValues = {
    options_rtt_ms: measured(metrics.options_rtt_ms),
    udp_rx_queue_bytes: measured(metrics.udp_rx_queue_bytes),
    udp_drops_per_s: dropCount === null ? null : dropsPerSecond(prevDrops, dropCount, at),
    err5xx_ratio: err === null ? null : err / capacityCps,
    utilisation: reqRate === null ? null : reqRate / p.requests_per_call / capacityCps,
    tm_per_cps: tm === null ? null : tm / capacityCps,
    dialogs_per_cps: dialogs === null ? null : dialogs / capacityCps,
    cpu_util: measured(metrics.cpu_util),
    mem_used_ratio: measured(metrics.mem_used_ratio),
    load1: measured(metrics.load1),
  };
  const pressures = {} as Record<SignalName, number | null>;
  for (const name of SIGNAL_NAMES) {
    const knee = p.signals[name].knee;
    const v = raw[name];
    pressures[name] = knee === null || v === null ? null : Math.min(PRESSURE_CAP, v / knee);
    if (pressures[name] !== null && !Number.isFinite(pressures[name])) pressures[name] = null;
  }
  return { pressures, drops: dropCount === null ? prevDrops : { count: dropCount, at } };
}

/** The tightest pressure and its signal: the signal closest to (or furthest past) its knee decides. */
export function tightest(pressures: SignalValues): { pressure: number; dominant: SignalName } | null {
  let best: { pressure: number; dominant: SignalName } | null = null;
  for (const name of SIGNAL_NAMES) {
    const v = pressures[name];
    if (v !== null && (best === null || v > best.pressure)) best = { pressure: v, dominant: name };
  }
  return best;
}

/**
 * The range the derating law reads: per signal the lower and the higher of its smoothed and latest
 * pressure (either alone when the other is unknown), then the tightest of each. Null when no signal
 * is known.
 */
export function pressureRange(smoothed: SignalValues, latest: SignalValues): PressureRange | null {
  let low: number | null = null;
  let high: number | null = null;
  for (const name of SIGNAL_NAMES) {
    const a = smoothed[name];
    const b = latest[name];
    if (a === null && b === null) continue;
    const lo = a === null ? (b as number) : b === null ? a : Math.min(a, b);
    const hi = a === null ? (b as number) : b === null ? a : Math.max(a, b);
    low = low === null ? lo : Math.max(low, lo);
    // Utilisation is the load we send, not a symptom: it may cut (a backstop far above capacity)
    // but does not hold back recovery. A backend busy at 90 % with an empty queue and a fast round
    // trip is healthy and gets its capacity back; gating on it kept pools derated for tens of
    // seconds after a transient, crawling at a tenth of the recovery rate.
    if (name !== 'utilisation') high = high === null ? hi : Math.max(high, hi);
  }
  if (low === null) return null;
  return { low, high: high ?? 0 };
}
