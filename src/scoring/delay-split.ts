/**
 * Delay-aware split near the knee (issue 18; docs/controller.md, "Delay-aware split near the knee").
 *
 * Weights proportional to capacity put every backend at the same utilisation ρ. The same ρ is not
 * the same wait: a queue's waiting time is a number of *service times*, so a backend whose workers
 * hold each call 80 ms keeps a caller waiting four times longer at 90 % than one that holds it 20 ms.
 * Near the knee this law moves load from the long-service backends to the short-service ones until
 * their expected waits are equal, and leaves the proportional split alone far below it.
 *
 * The queue model is Kingman's heavy-traffic law for a G/G/1 queue, W = D · ρ / (1 − ρ), with one
 * parameter per backend, its *delay scale* D (for G/G/1, D = S · (Ca² + Cs²) / 2; for c workers
 * the Allen–Cunneen form adds C(c, ρ)/(c ρ) ≈ 1/c near the knee). We do not know S, c or the
 * arrival variability of a backend, and we need not: D is read off the backend itself, from the
 * queueing delay it shows (OPTIONS round trip above its idle value) at the utilisation it serves,
 * D = Wq · (1 − ρ) / ρ. Everything the model does not know (workers, burstiness, the probe's
 * sampling) folds into D. Only the *ratios* of the D's matter: scaling every D by a constant scales
 * the equal wait and changes no load, so a bias common to every backend (the signal being a standing
 * minimum rather than a mean) cancels.
 *
 * Equal waits: ρ_i = w / (D_i + w), with w the common wait (in units of D) solved from
 * Σ κ_i ρ_i = λ, the set's offered load. Every ρ_i < 1 (no backend past its capacity); equal D's give
 * equal ρ's (proportional); a larger D gives a smaller ρ. Blended with proportional by β, 0 below
 * `start_utilisation` of the set, 1 from `full_utilisation`, smoothstep between.
 */
import type { ScoringParams } from './params.js';
import type { SignalValues } from './types.js';

/** The law's tunables (config `scoring.delay_split`; defaults and their reasons in the schema). */
export interface DelaySplitParams {
  readonly enabled: boolean;
  /** Set utilisation (offered / effective capacity) below which the split is proportional. */
  readonly start_utilisation: number;
  /** Set utilisation from which the wait-equalising split applies in full. */
  readonly full_utilisation: number;
  /** A backend's delay scale is estimated only while it serves at least this utilisation. */
  readonly min_estimate_utilisation: number;
  /** OPTIONS round trip of an idle backend (the agent probes its local Kamailio), ms. */
  readonly idle_rtt_ms: number;
  /** Queueing delay below this reads as this (noise floor): an upper bound on a fast backend's D. */
  readonly min_queueing_ms: number;
  /** Largest ratio between two backends' delay scales the law acts on (caps a noisy estimate). */
  readonly max_delay_ratio: number;
}

/** One backend in rotation, as the split sees it. */
export interface SplitBackend {
  /** Effective capacity, calls/s (> 0). */
  readonly capacity: number;
  /** Delay scale D (any unit common to the set), or null when unknown. */
  readonly delayScale: number | null;
}

/** Problems with the params, each starting with its field path (for the config loader). */
export function delaySplitProblems(d: DelaySplitParams | undefined): string[] {
  if (d === undefined) return ['delay_split missing'];
  const problems: string[] = [];
  const fin = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
  if (typeof d.enabled !== 'boolean') problems.push('delay_split.enabled must be a boolean');
  if (!(fin(d.start_utilisation) && d.start_utilisation > 0 && d.start_utilisation < 1))
    problems.push('delay_split.start_utilisation must be in (0, 1)');
  if (!(fin(d.full_utilisation) && d.full_utilisation >= d.start_utilisation && d.full_utilisation <= 1))
    problems.push('delay_split.full_utilisation must be in [start_utilisation, 1]');
  if (!(fin(d.min_estimate_utilisation) && d.min_estimate_utilisation > 0 && d.min_estimate_utilisation < 1))
    problems.push('delay_split.min_estimate_utilisation must be in (0, 1)');
  if (!(fin(d.idle_rtt_ms) && d.idle_rtt_ms >= 0)) problems.push('delay_split.idle_rtt_ms must be >= 0');
  if (!(fin(d.min_queueing_ms) && d.min_queueing_ms > 0))
    problems.push('delay_split.min_queueing_ms must be > 0');
  if (!(fin(d.max_delay_ratio) && d.max_delay_ratio >= 1))
    problems.push('delay_split.max_delay_ratio must be >= 1');
  return problems;
}

/**
 * A backend's delay scale from its queueing delay `queueMs` at utilisation `rho` (Kingman:
 * W = D ρ/(1−ρ), so D = W (1−ρ)/ρ). Null when it says nothing: utilisation unknown, too low for the
 * queue to mean anything, or at/over capacity (the model has no steady state there).
 */
export function delayScale(queueMs: number | null, rho: number | null, d: DelaySplitParams): number | null {
  if (queueMs === null || rho === null || !Number.isFinite(queueMs) || !Number.isFinite(rho)) return null;
  if (rho < d.min_estimate_utilisation || rho >= 1) return null;
  return (Math.max(queueMs, d.min_queueing_ms) * (1 - rho)) / rho;
}

/** β: 0 below start_utilisation, 1 from full_utilisation, smoothstep (C¹, no kink to chase) between. */
export function blendOf(u: number, d: DelaySplitParams): number {
  if (!(u > d.start_utilisation)) return 0;
  if (u >= d.full_utilisation) return 1;
  const t = (u - d.start_utilisation) / (d.full_utilisation - d.start_utilisation);
  return t * t * (3 - 2 * t);
}

/**
 * Loads (calls/s, summing to `offered`, in the order given) that equalise the Kingman wait D_i ρ_i/(1−ρ_i), for
 * 0 < offered < Σ capacity. ρ_i = w/(D_i + w) with w found by bisection (Σ κ_i ρ_i(w) rises from 0 to
 * Σ κ_i as w goes from 0 to ∞).
 */
export function equalWaitLoads(
  backends: readonly { readonly capacity: number; readonly delay: number }[],
  offered: number,
): number[] {
  const total = backends.reduce((s, b) => s + b.capacity, 0);
  if (!(offered > 0) || offered >= total)
    return backends.map((b) => (total > 0 ? (b.capacity * Math.max(0, offered)) / total : 0));
  const dMax = Math.max(...backends.map((b) => b.delay));
  const rel = backends.map((b) => ({ k: b.capacity, d: b.delay / dMax })); // scale-free: only ratios matter
  const load = (w: number) => rel.reduce((s, b) => s + (b.k * w) / (b.d + w), 0);
  let lo = 0;
  let hi = 1;
  while (load(hi) < offered && hi < 1e12) hi *= 2;
  for (let i = 0; i < 200 && hi - lo > 1e-12 * hi; i++) {
    const mid = (lo + hi) / 2;
    if (load(mid) < offered) lo = mid;
    else hi = mid;
  }
  const w = (lo + hi) / 2;
  const raw = rel.map((b) => (b.k * w) / (b.d + w));
  // Rescale the bisection's last residue away so the total is exact.
  const sum = raw.reduce((x, y) => x + y, 0);
  return raw.map((x) => (x * offered) / sum);
}

/**
 * Makes loads non-decreasing in capacity (pool-adjacent violators, equal weights): a backend never
 * gets less than a smaller one, whatever the estimates say. Pooling averages a smaller backend's load
 * down and a larger one's up to a value below the smaller one's, so the total is kept and no backend
 * is pushed past its capacity.
 */
export function monotoneInCapacity(
  items: readonly { readonly capacity: number; readonly load: number }[],
): number[] {
  const order = items.map((it, i) => ({ ...it, i })).sort((a, b) => a.capacity - b.capacity || a.i - b.i);
  const blocks: { sum: number; members: number[] }[] = [];
  for (const it of order) {
    let cur = { sum: it.load, members: [it.i] };
    for (let top = blocks.at(-1); top !== undefined; top = blocks.at(-1)) {
      if (top.sum / top.members.length <= cur.sum / cur.members.length) break;
      blocks.pop();
      cur = { sum: top.sum + cur.sum, members: [...top.members, ...cur.members] };
    }
    blocks.push(cur);
  }
  const out = items.map((it) => it.load);
  for (const b of blocks) for (const i of b.members) out[i] = b.sum / b.members.length;
  return out;
}

/**
 * The split: per backend the calls/s to send it, summing to `offered`. Proportional to capacity
 * unless the set is near the knee (β > 0), every delay scale is known, and 0 < offered < Σ capacity.
 * Returns null for "proportional" (the caller then keeps today's weights exactly).
 */
export function delaySplit(
  backends: ReadonlyMap<string, SplitBackend>,
  offered: number | null,
  d: DelaySplitParams,
): Map<string, number> | null {
  if (!d.enabled || offered === null || !Number.isFinite(offered) || offered <= 0 || backends.size < 2)
    return null;
  const list = [...backends].map(([id, b]) => ({ id, capacity: b.capacity, delay: b.delayScale }));
  const total = list.reduce((s, b) => s + b.capacity, 0);
  if (list.some((b) => !(b.capacity > 0) || !Number.isFinite(b.capacity))) return null;
  const beta = blendOf(offered / total, d);
  if (beta <= 0 || offered >= total) return null;
  const known: { id: string; capacity: number; delay: number }[] = [];
  for (const b of list) {
    if (b.delay === null || !(b.delay > 0) || !Number.isFinite(b.delay)) return null;
    known.push({ id: b.id, capacity: b.capacity, delay: b.delay });
  }
  // Cap the spread around the geometric mean: one noisy estimate cannot starve a backend.
  const geo = Math.exp(known.reduce((s, b) => s + Math.log(b.delay), 0) / known.length);
  const half = Math.sqrt(d.max_delay_ratio);
  const capped = known.map((b) => ({ ...b, delay: Math.min(geo * half, Math.max(geo / half, b.delay)) }));
  const eq = equalWaitLoads(capped, offered);
  const blended = capped.map((b, i) => ({
    capacity: b.capacity,
    load: (b.capacity * offered * (1 - beta)) / total + beta * (eq[i] ?? 0),
  }));
  const loads = monotoneInCapacity(blended);
  return new Map(capped.map((b, i) => [b.id, loads[i] ?? 0]));
}

/** What the hook reads of a scored backend (scorer.ts's per-backend record fits it). */
export interface SplitMember {
  readonly sample: { readonly id: string; readonly capacity: number };
  /** Smoothed signal values in their units (utilisation: served calls/s over `utilisationBasisCps`). */
  readonly values: SignalValues;
  /**
   * The capacity the utilisation signal is measured against: the learned one when learning is on
   * (scoring.capacity), else the configured one (the default).
   */
  readonly utilisationBasisCps?: number;
}

/**
 * The scorer's hook: the split for a set's backends in rotation (`effective`: id -> effective
 * capacity), or null for proportional. Offered load = the sum of the calls/s the backends serve;
 * each backend's queueing delay = its OPTIONS round trip above `idle_rtt_ms`, at the utilisation
 * of its effective capacity it serves.
 */
export function delaySplitFor(
  members: readonly SplitMember[],
  effective: ReadonlyMap<string, number>,
  p: ScoringParams,
): Map<string, number> | null {
  const d = p.delay_split;
  if (!d.enabled || effective.size < 2) return null;
  const backends = new Map<string, SplitBackend>();
  let offered = 0;
  for (const m of members) {
    const capacity = effective.get(m.sample.id);
    if (capacity === undefined) continue;
    const util = m.values.utilisation;
    if (util === null) return null; // offered load unknown: stay proportional
    const served = util * (m.utilisationBasisCps ?? m.sample.capacity);
    offered += served;
    const rtt = m.values.options_rtt_ms;
    const queueMs = rtt === null ? null : Math.max(0, rtt - d.idle_rtt_ms);
    backends.set(m.sample.id, { capacity, delayScale: delayScale(queueMs, served / capacity, d) });
  }
  return delaySplit(backends, offered, d);
}
