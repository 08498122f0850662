/**
 * Learned capacity: per backend, an online estimate of the calls/s it can serve, folded once per
 * report. Pure. The configured capacity is only the prior the estimate starts from.
 *
 * The law (docs/controller.md, Scoring, "Learned capacity"):
 * - While the queue says the backend is offered more than it serves (so it serves exactly its
 *   capacity), the estimate moves to the served rate. Two kinds of evidence: a surge (the queue at or
 *   above queue_surge_bytes in two reports in a row: the report's served rate, with a short
 *   half-life, or at once when far below the estimate: a capacity that fell), or a standing queue
 *   (over queue_standing_bytes in every report for standing_window_ms: the smoothed served rate, up
 *   or down). This is a measurement, not a control law: it does not overshoot however long the
 *   queue takes to drain, because it aims at a number rather than cutting at a rate.
 * - Retransmissions: once requests wait about T1 (the standing round trip at or above
 *   retransmit_rtt_ms) or the socket drops, the request counters also count retransmitted
 *   INVITEs and BYEs (up to 1.5 x the real throughput under heavy loss). Then a served rate above
 *   the estimate is not believed: the estimate aims at served / retransmit_max_inflation (the
 *   low end of what the backend may really serve) and never rises; the probe below finds the
 *   rest once the backlog has drained. Those counts, the next served_half_life_ms of them (the
 *   backlog draining, its retransmissions absorbed) and the report right after a suspect one are
 *   tainted: not fed to the served average below, and nothing rises on that average until the
 *   floor's warm-up after the taint.
 * - Without a standing queue, the backend carries what it serves: the estimate is at least what it
 *   demonstrably serves, the served rate smoothed over served_half_life_ms (so one burst does not
 *   lift it) less two standard deviations of its counting noise (servedFloor), once the average has
 *   been fed for FLOOR_WARM_HALF_LIVES half-lives (before that it is a few reports, far noisier).
 * - And when it serves at least probe_above_ratio of the estimate (the weights or the admission
 *   limit bind), its queue has not stood for probe_delay_ms and is quiet now (smoothed below
 *   quiet_queue_bytes: no queue forming, so there is headroom to find; and the OPTIONS round trip,
 *   smoothed, below quiet_wait_ms: requests are not waiting), the estimate probes upward
 *   by probe_per_s of itself per second: a prior set too low is discovered, and a capacity that
 *   comes back is found again. The probe ends where a queue starts to form (about 87 % of the real
 *   capacity on the emulated backend), or where the backend no longer serves probe_above_ratio of
 *   the estimate. Without the quiet gate it ran on until the queue stood and snapped the estimate
 *   back: a correctly configured pool held at its limit probed and snapped for ever, moving its
 *   weights 87-99 times in 30 s in the closed-loop simulation.
 * - A fall is retried. When queue evidence lowers an estimate that had held TRUST_HOLD_MS under
 *   load (the backend serving at least TRUST_LOAD_RATIO of it without a queue lowering it), the
 *   estimate before the fall is kept, and once the queue is quiet again the estimate climbs back to
 *   it at the probe's speed, however little of it the backend serves (at least TRUST_LOAD_RATIO). The probe alone cannot find a capacity that
 *   came back below the pool's limit: the backend's share grows more slowly than its estimate (at
 *   60 % offered a halved backend served 0.8 of its estimate at 56 of 100, and the probe stopped
 *   there for good). The quiet gate keeps the climb off a backend still short of capacity (its
 *   queue forms first); a climb that a queue knocks back waits twice as long before the next, up
 *   to RETRY_MAX_MS. Only a real fall is retried (below FELL_RATIO of the estimate it fell from),
 *   and the climb only under load (serving TRUST_LOAD_RATIO of the estimate): a knee's correction of
 *   a probe's overshoot stays corrected, and a queue quiet for want of calls proves nothing. A prior
 *   never held (contradicted by a queue within its first seconds under load: a wrong datasheet) is
 *   not retried.
 * - The estimate stays within [min_ratio, max_ratio] x the prior.
 *
 * Monotone: more served calls never lower the estimate. A queue raises it no further than the smoothed
 * served rate: a saturated backend serves its capacity, and a tracked average (up or down) has no
 * ratchet to guard against, so it is not held to the floor's margin below it.
 */
import { ewmaAlpha, ewmaFold } from '../smoothing.js';
import type { Smoothed } from '../types.js';
import type { CapacityParams } from './params.js';

export interface LearnedCapacity {
  /** The estimate, calls/s. */
  readonly cps: number;
  /** Served calls/s, smoothed (null before the first report that carried req_rate). */
  readonly served: Smoothed | null;
  /**
   * Since when that average has been fed without a restart or a taint (null: not yet, or tainted
   * since): the floor waits until it is warm.
   */
  readonly servedSince: number | null;
  /** When the queue last stood (null: never seen). */
  readonly queueAt: number | null;
  /** When the request counts were last suspect of counting retransmissions (null: never). */
  readonly suspectAt: number | null;
  /**
   * Since when every report's queue has been at or above queue_standing_bytes (null: not now). A
   * report without a queue figure ends the run: nothing says the queue stood through it.
   */
  readonly aboveSince: number | null;
  /** How many reports in a row that has been (0: not now). */
  readonly aboveReports: number;
  /** Raw receive-queue bytes of the last report (null: unknown). */
  readonly lastQueueBytes: number | null;
  /** Receive-queue bytes, smoothed over served_half_life_ms (null: unknown): decides a probe. */
  readonly queueAvg: Smoothed | null;
  /** OPTIONS round trip (each report's, not the standing minimum), smoothed likewise: decides a probe. */
  readonly waitAvg: Smoothed | null;
  /** Time of the last report folded. */
  readonly at: number | null;
  /**
   * Since when the estimate has held: not lowered by queue evidence, the backend serving at least
   * TRUST_LOAD_RATIO of it (null before the first report).
   */
  readonly heldSince: number | null;
  /** A fall from an estimate that had held, to be climbed back to (null: none pending). */
  readonly retry: Retry | null;
  /** How far each rule has moved the estimate, up and down, since the backend was first seen. */
  readonly moved: CapacityMoves;
}

/**
 * The rules that move an estimate (the law above): a surge's served rate (`surge`), taken at once
 * when the capacity fell (`fall`); a standing queue's smoothed served rate (`standing`); counts
 * suspected of retransmissions (`suspect`); the served floor (`floor`); the probe (`probe`); the
 * climb back after a fall (`climb`); the [min_ratio, max_ratio] bounds (`bound`).
 */
export const CAPACITY_RULES = [
  'surge',
  'fall',
  'standing',
  'suspect',
  'floor',
  'probe',
  'climb',
  'bound',
] as const;
export type CapacityRule = (typeof CAPACITY_RULES)[number];

/** Calls/s a rule has moved an estimate by, in all, up and down (never decreasing). */
export type CapacityMoves = Readonly<Record<CapacityRule, { readonly up: number; readonly down: number }>>;

const NO_MOVES: CapacityMoves = Object.fromEntries(
  CAPACITY_RULES.map((r) => [r, { up: 0, down: 0 }]),
) as unknown as CapacityMoves;

/** `moved` with a move of `delta` calls/s by `rule` added (unchanged for no move). */
function addMove(moved: CapacityMoves, rule: CapacityRule, delta: number): CapacityMoves {
  if (!(delta !== 0 && Number.isFinite(delta))) return moved;
  const m = moved[rule];
  return { ...moved, [rule]: delta > 0 ? { ...m, up: m.up + delta } : { ...m, down: m.down - delta } };
}

/** A fall being retried: the estimate climbs back to `to` once the queue is quiet, from `after`. */
export interface Retry {
  /** The estimate before the fall, calls/s. */
  readonly to: number;
  /** No climb before this time. */
  readonly after: number;
  /** The wait after the next knock-back is twice this. */
  readonly backoffMs: number;
  /** A climb has started (a queue that lowers the estimate now knocks it back). */
  readonly climbing: boolean;
  /**
   * The estimate has fallen below FELL_RATIO of `to` since: a capacity that fell, not a knee's own
   * correction of a probe's overshoot, which is never climbed back (it would undo the correction).
   */
  readonly deep: boolean;
}

/** One report's worth of evidence. */
export interface CapacityEvidence {
  readonly at: number;
  /** Served calls/s in this report (req_rate / requests_per_call); null when unknown. */
  readonly servedCps: number | null;
  /** Receive-queue bytes in this report (raw); null when unknown. */
  readonly queueBytes: number | null;
  /** Standing OPTIONS round trip, ms; null when unknown. */
  readonly rttMs: number | null;
  /**
   * This report's OPTIONS round trip, ms, as measured (not the standing minimum, which reads a
   * queue that empties now and then as none); null when unknown.
   */
  readonly waitMs: number | null;
  /** Socket drops per second since the previous report; null when unknown. */
  readonly dropsPerS: number | null;
}

export function freshLearned(prior: number): LearnedCapacity {
  return {
    cps: prior,
    served: null,
    servedSince: null,
    queueAt: null,
    suspectAt: null,
    aboveSince: null,
    aboveReports: 0,
    lastQueueBytes: null,
    queueAvg: null,
    waitAvg: null,
    at: null,
    heldSince: null,
    retry: null,
    moved: NO_MOVES,
  };
}

/** A surge serving less than this fraction of the estimate is a capacity that fell, taken at once. */
const FELL_RATIO = 0.8;
/** ... and its smoothed served rate below this: one noisy report of a backend at its knee is not a fall. */
const FELL_SMOOTHED_RATIO = 0.85;

/**
 * A fall from an estimate that held this long under load is retried. Long enough that a prior a
 * queue contradicts in the first seconds of load (a wrong datasheet) is never retried; the sweep in
 * scoring-learned-sweep.ts gave the same figures for 5 and 10 s.
 */
const TRUST_HOLD_MS = 10_000;
/** Held "under load": serving at least this fraction of the estimate (an idle prior proves nothing). */
const TRUST_LOAD_RATIO = 0.5;
/** The wait before the first climb after a fall; doubled at each knock-back, up to RETRY_MAX_MS. */
const RETRY_FIRST_MS = 4000;
const RETRY_MAX_MS = 60_000;

/** Reports over queue_standing_bytes in a row, at least, for a standing queue (besides its window). */
const STANDING_MIN_REPORTS = 3;

/**
 * Longest silence a run of reports (a standing queue, a surge) spans. Not MAX_GAP_MS: an SSH-polled
 * backend reports every 2 s +-10 %, so half its gaps would break every run and the queue would
 * never be seen. 10 s is the longest scoring cycle the schema allows (only one report is folded per
 * cycle); a silence past it is a backend gone quiet, not a cadence.
 */
export const JOIN_GAP_MS = 10_000;

/** Longest report gap the law integrates over (a silence must not make one report jump far). */
const MAX_GAP_MS = 2000;

/** How many standard deviations of the counting noise the floor stays under the smoothed served rate. */
const FLOOR_SIGMAS = 2;
/**
 * The floor waits until the served average has been fed this many half-lives without a restart (a
 * backend's first reports, or after a silence over MAX_GAP_MS): until then it holds a few reports,
 * whose noise is several times the steady one (one 250 ms report: 4 x rate, against 0.35 x rate).
 */
const FLOOR_WARM_HALF_LIVES = 3;

/**
 * What the backend demonstrably serves: the smoothed served rate less FLOOR_SIGMAS of its counting
 * noise. The floor only ever raises the estimate, so it ratchets on the noise of what it is fed: a
 * Poisson count smoothed over half-life h has a standard deviation of sqrt(rate x ln 2 / (2 h)), 2.8
 * calls/s for a backend at 23 calls/s and h = 1 s (12 %), and the upper envelope of that is where
 * a raw floor settles. The margin slows that ratchet rather than ending it (the probe and a long
 * enough run of high windows still lift it), and it is the steady average's: see FLOOR_WARM_HALF_LIVES.
 */
export function servedFloor(smoothed: number, halfLifeMs: number): number {
  if (!(halfLifeMs > 0)) return smoothed;
  const sigma = Math.sqrt((Math.max(0, smoothed) * Math.LN2) / (2 * (halfLifeMs / 1000)));
  return Math.max(0, smoothed - FLOOR_SIGMAS * sigma);
}

export function foldCapacity(
  s: LearnedCapacity,
  e: CapacityEvidence,
  prior: number,
  c: CapacityParams,
): LearnedCapacity {
  if (s.at !== null && e.at <= s.at) return s;
  const dtMs = s.at === null ? 0 : Math.min(MAX_GAP_MS, e.at - s.at);
  const clamp = (v: number) => Math.min(c.max_ratio * prior, Math.max(c.min_ratio * prior, v));
  // Retransmissions: once requests wait about T1 (the standing round trip at or above
  // retransmit_rtt_ms) or the socket drops, the request counters also count retransmitted requests,
  // and for a while after, as the backlog drains (each retransmission a datagram a worker absorbs at
  // once). In the lab the 25 calls/s backend, its settle-phase backlog gone, reported 89 calls/s once
  // and the floor took it (12 -> 26 in one report; in the learned-capacity test the floor lifted it
  // 16 calls/s in all, to 30.6 for a real 25). So while the counts are suspect, for one half-life
  // after, and for the report right after a suspect one (whatever the cadence: an SSH poll every
  // 2 s), the report is *tainted*: the served average is not fed, and nothing raises the estimate
  // from it (no floor, probe or climb) nor counts the time as a hold. A backend whose counts stay
  // suspect is only ever lowered: its served rate cannot be read.
  const suspect = (e.rttMs !== null && e.rttMs >= c.retransmit_rtt_ms) || (e.dropsPerS ?? 0) > 0;
  const suspectAt = suspect ? e.at : s.suspectAt;
  const tainted =
    suspect || (s.suspectAt !== null && (e.at - s.suspectAt < c.served_half_life_ms || s.suspectAt === s.at));
  // A tainted report leaves the average's value as it was (the queue rules may lower to it) but
  // moves its time on, so the next clean report weighs what one report weighs, not the whole taint.
  // The average is warm again (for the floor, the probe, the climb) only once fed FLOOR_WARM_HALF_LIVES
  // after the taint: what it held may be from before a capacity that fell.
  const fed = e.servedCps !== null && !tainted;
  const held = tainted && s.served !== null;
  const served = fed
    ? ewmaFold(s.served, e.servedCps, e.at, c.served_half_life_ms, MAX_GAP_MS)
    : held
      ? { value: s.served!.value, at: e.at }
      : s.served;
  const smoothedServed = served === null || e.servedCps === null ? null : served.value;
  // Since when the served average has been fed without a restart (ewmaFold restarts it after
  // MAX_GAP_MS) or a taint.
  const servedSince = held
    ? null
    : !fed
      ? s.servedSince
      : s.served === null || e.at - s.served.at > MAX_GAP_MS
        ? e.at
        : (s.servedSince ?? e.at);
  const floor =
    smoothedServed === null ||
    servedSince === null ||
    e.at - servedSince < FLOOR_WARM_HALF_LIVES * c.served_half_life_ms
      ? null
      : servedFloor(smoothedServed, c.served_half_life_ms);
  const queueAvg =
    e.queueBytes === null
      ? s.queueAvg
      : ewmaFold(s.queueAvg, e.queueBytes, e.at, c.served_half_life_ms, MAX_GAP_MS);
  const waitAvg =
    e.waitMs === null ? s.waitAvg : ewmaFold(s.waitAvg, e.waitMs, e.at, c.served_half_life_ms, MAX_GAP_MS);
  // A long silence breaks a run of reports: a queue before it and one after it are not one standing
  // queue, nor two reports of one surge. (A backend down and back breaks it whatever the silence:
  // breakRun, called by the scorer.)
  const joined = s.at !== null && e.at - s.at <= JOIN_GAP_MS;
  const above = e.queueBytes !== null && e.queueBytes >= c.queue_standing_bytes;
  const aboveSince = above ? ((joined ? s.aboveSince : null) ?? e.at) : null;
  const aboveReports = above ? (joined ? s.aboveReports : 0) + 1 : 0;
  const lastQueueBytes = joined ? s.lastQueueBytes : null;
  // Two kinds of evidence that the backend is offered more than it serves (so it serves its capacity):
  // - a surge: the queue far past what a backend below its capacity shows (queue_surge_bytes in two
  //   reports in a row). A halved backend shows it within a few hundred ms; the estimate moves to the
  //   report's served rate over track_half_life_ms, or at once when it fell (below).
  // - a standing queue: over queue_standing_bytes in every report for standing_window_ms. A backend of
  //   few workers near its knee (the lab's 2-worker emulation at 85-92 %) queues 5-20 KB, exponentially
  //   distributed from report to report, so two reports over 8 KB happened every few seconds below its
  //   capacity and the estimate, moved to what it served then, sat at the knee's rate rather than the
  //   capacity (the admission limit 0.92 of that: 0.82 of the real pool). A queue that stands a whole
  //   window is not that noise; even so the estimate aims at the smoothed served rate, up or down.
  const surge =
    e.queueBytes !== null &&
    lastQueueBytes !== null &&
    Math.min(e.queueBytes, lastQueueBytes) >= c.queue_surge_bytes;
  // The window, and at least STANDING_MIN_REPORTS reports in it: at an SSH-polled backend's 2 s
  // cadence a 1.5 s window alone would be two reports, the rule the window replaced.
  const standing =
    aboveSince !== null && e.at - aboveSince >= c.standing_window_ms && aboveReports >= STANDING_MIN_REPORTS;
  const queue = surge || standing;
  let cps = s.cps;
  let moved = s.moved;
  // Attributes the move from the estimate so far to `next` to `rule`.
  const move = (rule: CapacityRule, next: number) => {
    moved = addMove(moved, rule, next - cps);
    cps = next;
  };
  let queueAt = s.queueAt;
  let retry = s.retry;
  let climbed = false;
  // The served average is trusted again once a taint is washed out of it (its half-life, then the
  // floor's warm-up): until then it may hold a rate from before a capacity that fell, and nothing
  // rises on it (the queue rules, the probe, the climb).
  const settled =
    s.suspectAt === null || e.at - s.suspectAt >= (1 + FLOOR_WARM_HALF_LIVES) * c.served_half_life_ms;
  if (queue) {
    queueAt = e.at;
    if (e.servedCps !== null) {
      // Suspect counts: the real rate is between served / max inflation and served. Aim at the low
      // end (never above the estimate): the backlog drains, and the probe finds the rest within
      // a few seconds. Holding the estimate instead left the cut to the derating law, which in the
      // simulation overshot to 0.2 of the backend's share and took 15 s to come back.
      // A rise is taken no further than the smoothed served rate: one report's count is not believed
      // above the average.
      const rise = Math.max(cps, Math.min(e.servedCps, smoothedServed ?? e.servedCps));
      // How much the counts may be inflated: from none at T1 to the most at 2 T1 (a request that
      // waited 2 T1 has been sent twice or more); the most at once with drops (a lost request is
      // retransmitted whatever the wait). An assumption of the shape, not a measurement.
      const waited = e.rttMs === null ? 0 : (e.rttMs - c.retransmit_rtt_ms) / c.retransmit_rtt_ms;
      const inflation =
        (e.dropsPerS ?? 0) > 0
          ? c.retransmit_max_inflation
          : 1 + (c.retransmit_max_inflation - 1) * Math.min(1, Math.max(0, waited));
      const target = suspect
        ? Math.min(e.servedCps / inflation, cps)
        : tainted || !settled
          ? Math.min(!surge ? (smoothedServed ?? e.servedCps) : e.servedCps, cps)
          : !surge
            ? (smoothedServed ?? e.servedCps)
            : e.servedCps <= cps
              ? e.servedCps
              : rise;
      // The first report of a backend has no dt: take it as it is (it is a measurement). So is a
      // surge whose served rate is far below the estimate (a capacity that fell): a halved backend
      // fed its old share for another half-life queues requests toward T1.
      const fell =
        surge &&
        !suspect &&
        e.servedCps < FELL_RATIO * cps &&
        (smoothedServed ?? e.servedCps) < FELL_SMOOTHED_RATIO * cps;
      const a = s.at === null || fell ? 1 : ewmaAlpha(dtMs, c.track_half_life_ms);
      move(suspect ? 'suspect' : fell ? 'fall' : surge ? 'surge' : 'standing', cps + a * (target - cps));
    }
  } else if (smoothedServed !== null && !tainted) {
    move('floor', Math.max(cps, floor ?? cps));
    const quiet = queueAt === null || e.at - queueAt >= c.probe_delay_ms;
    // Headroom: no queue forming. A backend near its knee (the emulated one: a few KB from ~85 %)
    // has none to find, and probing it only pushes it into a standing queue that snaps the
    // estimate back (a correctly configured pool held at 92 % moved its weights 7 times in 30 s).
    // Headroom in time as well as in bytes: the same bytes are a few calls whatever the backend, but
    // a wait of that many service times, so a slow backend's requests wait long behind a queue the
    // bytes gate calls quiet (the lab's 25 calls/s backend: 4 KB, 27 ms on average, while its
    // estimate probed 13 % past its capacity at 70 % offered; 6 ms for the 100 one at 0.7).
    const headroom =
      (queueAvg === null || e.queueBytes === null || queueAvg.value < c.quiet_queue_bytes) &&
      (waitAvg === null || e.waitMs === null || waitAvg.value < c.quiet_wait_ms);
    const grown = cps * (1 + (c.probe_per_s * dtMs) / 1000);
    if (quiet && headroom && settled && smoothedServed >= c.probe_above_ratio * cps) move('probe', grown);
    else if (
      quiet &&
      headroom &&
      settled &&
      // Under load: a queue that is quiet only because little is offered says nothing of the
      // capacity (climbed there, a backend still short of it took 1.18 of it once the load came back).
      smoothedServed >= TRUST_LOAD_RATIO * cps &&
      retry?.deep === true &&
      e.at >= retry.after &&
      cps < retry.to
    ) {
      move('climb', Math.min(retry.to, grown));
      retry = { ...retry, climbing: true };
      climbed = true;
    }
  }
  move('bound', clamp(cps));
  const lowered = queue && cps < s.cps;
  const heldFrom = s.heldSince ?? e.at;
  retry = nextRetry(retry, { at: e.at, from: s.cps, to: cps, lowered, heldMs: e.at - heldFrom, clamp });
  const light = smoothedServed === null || smoothedServed < TRUST_LOAD_RATIO * s.cps;
  return {
    cps,
    served,
    servedSince,
    queueAt,
    suspectAt,
    aboveSince,
    aboveReports,
    lastQueueBytes: e.queueBytes,
    queueAvg,
    waitAvg,
    at: e.at,
    // A climb is not a hold: an estimate climbed back must hold under load again before its next
    // fall is trusted (else a backend short for good would be retried every first wait).
    // A tainted report neither proves a hold nor breaks one (what the backend served is not known):
    // the hold is moved on by its time.
    heldSince:
      lowered || climbed
        ? e.at
        : tainted
          ? s.heldSince === null
            ? null
            : s.heldSince + (e.at - (s.at ?? e.at))
          : light
            ? e.at
            : heldFrom,
    retry,
    moved,
  };
}

/**
 * The retry after one report: what lowering the estimate from `from` to `to` (or not) does to it.
 * A climb knocked back waits twice as long; a fall of a backend still short keeps its target and
 * the wait it earned; a fall after a hold of TRUST_HOLD_MS starts one; it is deep once below
 * FELL_RATIO of its target, and done once the estimate is back at it.
 */
function nextRetry(
  retry: Retry | null,
  r: {
    at: number;
    from: number;
    to: number;
    lowered: boolean;
    heldMs: number;
    clamp: (v: number) => number;
  },
): Retry | null {
  let next = retry;
  if (r.lowered) {
    if (next?.climbing) {
      const backoffMs = Math.min(RETRY_MAX_MS, next.backoffMs * 2);
      next = { ...next, after: r.at + backoffMs, backoffMs, climbing: false };
    } else if (next?.deep) {
      next = { ...next, to: Math.max(next.to, r.from), after: Math.max(next.after, r.at + next.backoffMs) };
    } else if (r.heldMs >= TRUST_HOLD_MS) {
      next = {
        to: r.from,
        after: r.at + RETRY_FIRST_MS,
        backoffMs: RETRY_FIRST_MS,
        climbing: false,
        deep: false,
      };
    }
  }
  if (next !== null && !next.deep && r.to < FELL_RATIO * next.to) next = { ...next, deep: true };
  return next !== null && r.to >= r.clamp(next.to) ? null : next;
}

/**
 * A backend that went down and came back: the estimate and what it served are kept (they describe
 * the host), but not a run of queue reports, which describes the process before it went down.
 */
export function breakRun(s: LearnedCapacity): LearnedCapacity {
  // Nor the hold: time down is not time the estimate held under load.
  return { ...s, aboveSince: null, aboveReports: 0, lastQueueBytes: null, heldSince: null };
}
