/**
 * The failover benchmark's pure half: its options, what "out of rotation" means in a dispatcher.list
 * reply, and the summary (distributions, table, last-line JSON). No I/O, no clock.
 */
import type { DispatcherTarget } from '../../../src/kamailio/dispatcher-list-reply.js';
import type { FailureSplit } from '../../../src/lab/sipp-counts.js';
import { benchCommand, namesOf, numberIn, parseBenchArgs } from '../common/options.js';

/**
 * The ways of taking a dead backend out of rotation that the bench compares: Kamailio's own probing
 * alone, the sipweigh controller, and the LB's backstop probing once the sipweigh controller is gone.
 */
export type FailoverMode = 'kamailio_probe' | 'sipweigh' | 'controller_down';
export const FAILOVER_MODES: readonly FailoverMode[] = ['kamailio_probe', 'sipweigh', 'controller_down'];

export interface FailoverOptions {
  readonly quick: boolean;
  readonly modes: readonly FailoverMode[];
  readonly kills: number;
  readonly backends: number;
  /** Emulated capacity of each backend, calls/s. */
  readonly capacityCps: number;
  /** Offered load through the LB, calls/s. */
  readonly rateCps: number;
  /** How long each call stays up between its ACK and its BYE (sipp -d). */
  readonly holdMs: number;
  /** Load before the kill, seconds: the kill hits a steady pool. */
  readonly warmupS: number;
  /** New calls keep coming for at least this long after the kill, seconds... */
  readonly afterKillS: number;
  /** ...and for this long after the destination left rotation, ms (calls then all go elsewhere). */
  readonly afterOutMs: number;
  /** sipp gives up on a call after this long without the reply it waits for. */
  readonly recvTimeoutMs: number;
  /** Kamailio mode: dispatcher ds_ping_interval, seconds (its smallest value is 1). */
  readonly pingIntervalS: number;
  /** Kamailio mode: timeout of each OPTIONS ping (tm timer F of that transaction), ms. */
  readonly pingTimeoutMs: number;
  /** Poll period of the LB's dispatcher.list, ms; the same poller for both modes. */
  readonly pollMs: number;
  /** Give up waiting for a destination to leave rotation after this long, ms. */
  readonly outDeadlineMs: number;
  /** Bound on waiting for a restarted backend to be back at its full share, seconds. */
  readonly recoverS: number;
  /** The pool counts as at rest once its dispatcher list has not changed for this long, ms. */
  readonly stableMs: number;
  /** Controller-down mode: bound on waiting for the LB's backstop after the controller's kill, ms. */
  readonly backstopDeadlineMs: number;
}

interface FailoverArgs {
  modes?: FailoverMode[];
  kills?: number;
  backends: number;
  capacity: number;
  rate?: number;
  holdMs: number;
  pingTimeoutMs: number;
}

export function parseFailoverOptions(args: readonly string[]): FailoverOptions {
  const o = parseBenchArgs<FailoverArgs>(
    benchCommand('failover', 'backend SIGKILL under load: time to out of rotation and failed calls')
      .option(
        '--modes <list>',
        `comma-separated, of ${FAILOVER_MODES.join(',')} (default all)`,
        namesOf(FAILOVER_MODES),
      )
      .option('--kills <n>', 'kills per mode (default 10; --quick 2)', numberIn(1, 50, true))
      .option('--backends <n>', 'backends in the pool', numberIn(2, 9, true), 3)
      .option('--capacity <cps>', 'emulated capacity of each backend, calls/s', numberIn(10, 1000), 100)
      .option('--rate <cps>', 'offered calls/s (default half the pool)', numberIn(1, 5000))
      .option('--hold-ms <ms>', 'call duration between ACK and BYE', numberIn(0, 10000, true), 200)
      .option(
        '--ping-timeout-ms <ms>',
        "Kamailio mode: each OPTIONS ping's timeout",
        numberIn(100, 32000, true),
        1000,
      ),
    args,
  );
  const quick = o.quick;
  const modes = o.modes ?? FAILOVER_MODES;
  const backends = o.backends;
  const capacityCps = o.capacity;
  // Half the pool: after one of three backends dies the other two run at 75 %, below the collapse.
  const rateCps = o.rate ?? (backends * capacityCps) / 2;
  if (rateCps > (backends - 1) * capacityCps * 0.9) {
    throw new Error(
      `--rate ${rateCps}: the ${backends - 1} backends left after a kill carry ${(backends - 1) * capacityCps} calls/s; ` +
        'stay under 90 % of that or the failed calls measure overload, not failover',
    );
  }
  return {
    quick,
    modes,
    // Each sipweigh kill after the first waits ~6 s for the restarted backend's slow start (5 s) to
    // finish: 2 kills per mode keep --quick under a minute on a busy 2-core machine.
    kills: o.kills ?? (quick ? 2 : 10),
    backends,
    capacityCps,
    rateCps,
    holdMs: o.holdMs,
    warmupS: quick ? 1 : 2,
    afterKillS: quick ? 2 : 3,
    afterOutMs: 1000,
    recvTimeoutMs: 2000,
    pingIntervalS: 1,
    pingTimeoutMs: o.pingTimeoutMs,
    pollMs: 10,
    outDeadlineMs: 15000,
    recoverS: quick ? 10 : 20,
    stableMs: 800,
    // The lease lapses 1.5 s after the controller's last refresh and the LB's timer notices within
    // 250 ms: 10 s is only a bound for an LB without the backstop.
    backstopDeadlineMs: 10000,
  };
}

/**
 * Extra delay before kill `kill` (1-based) of `kills`, so that the kills fall at evenly spread
 * moments of a `periodMs` cycle (Kamailio's ping timer, the controller's probe interval): stratified,
 * one random point in each of `kills` equal slices. Without it every kill lands at the same moment of
 * the ping cycle (each kill's cycle takes about a whole number of seconds) and Kamailio's detection
 * time would come out near one end of its 1-2 s range instead of spread across it.
 * `u` is a uniform random number in [0, 1).
 */
export function killJitterMs(kill: number, kills: number, periodMs: number, u: number): number {
  return (((kill - 1) % kills) + u) * (periodMs / kills);
}

/** Out of the LB's rotation, as the parser of its platform read it (`DispatcherTarget.inRotation`). */
export function isOutOfRotation(t: Pick<DispatcherTarget, 'inRotation'>): boolean {
  return !t.inRotation;
}

/**
 * The share of new calls a destination gets under algorithm 11: its rweight over the sum of the
 * rweights of every destination in rotation (0 when it is out). Destinations without rweight count 1.
 */
export function rotationShare(targets: readonly DispatcherTarget[], uri: string): number {
  const live = targets.filter((t) => !isOutOfRotation(t));
  const w = (t: DispatcherTarget) => t.rweight ?? 1;
  const total = live.reduce((s, t) => s + w(t), 0);
  const me = live.find((t) => t.uri === uri);
  return me && total > 0 ? w(me) / total : 0;
}

/**
 * A pool at rest: every destination in rotation, and none below `fraction` of an equal share
 * (a restarted backend may be in slow start; killing the next one then would overload the rest).
 */
export function poolSettled(targets: readonly DispatcherTarget[], fraction = 0.8): boolean {
  if (targets.length === 0) return false;
  const equal = 1 / targets.length;
  return targets.every((t) => !isOutOfRotation(t) && rotationShare(targets, t.uri) >= fraction * equal);
}

export interface KillResult {
  readonly mode: FailoverMode;
  /** 1-based. */
  readonly kill: number;
  readonly backend: string;
  /** The killed backend's share of new calls just before the kill (equal share = 1/backends). */
  readonly shareAtKill: number;
  /** ms from the SIGKILL to the first dispatcher.list reply showing it out; null: not within the deadline. */
  readonly outMs: number | null;
  readonly calls: number;
  readonly successful: number;
  readonly failed: number;
  /** Failed calls split by where sipp gave up (null without sipp's message counts). */
  readonly split: FailureSplit | null;
  /**
   * Requests the LB moved off a destination no longer in rotation during this kill's load (its
   * `sipweigh_redispatched` statistic): each a call saved. Null for an LB without that statistic.
   */
  readonly redispatched: number | null;
  /**
   * Controller-down mode only: ms from the controller's SIGKILL to the LB's backstop reported on
   * (htable sipweigh_lease, key backstop); null when it was not seen on within the deadline.
   */
  readonly backstopOnMs?: number | null;
  /** The pool was back at rest (restarted backend at its full share) before this kill. */
  readonly settledBefore: boolean;
  /** Live backends seen out of rotation just before the kill or until the victim left: false alarms. */
  readonly othersOut: readonly string[];
}

export type ModeOutcome =
  | { readonly mode: FailoverMode; readonly runnable: true; readonly kills: readonly KillResult[] }
  | { readonly mode: FailoverMode; readonly runnable: false; readonly reason: string };

export interface Distribution {
  readonly n: number;
  readonly min: number;
  readonly median: number;
  readonly max: number;
  readonly values: readonly number[];
}

/** Median of the middle two for an even count. */
export function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * Median of the detection times where a kill never detected counts as later than any detected one:
 * null when those misses reach the middle (a median of the detected ones alone would flatter).
 */
export function medianCountingMisses(values: readonly number[], misses: number): number | null {
  const all = [...values].sort((a, b) => a - b).concat(Array<number>(misses).fill(Infinity));
  const m = median(all);
  return m === null || !Number.isFinite(m) ? null : m;
}

export function distribution(values: readonly number[]): Distribution | null {
  const m = median(values);
  if (m === null) return null;
  return { n: values.length, min: Math.min(...values), median: m, max: Math.max(...values), values };
}

export interface ModeSummary {
  readonly mode: FailoverMode;
  readonly runnable: boolean;
  readonly reason?: string;
  readonly kills: number;
  /** Kills where the destination never left rotation within the deadline. */
  readonly undetected: number;
  /** Over the detected kills only; see `outMsMedian`. */
  readonly outMs: Distribution | null;
  /** The headline: misses counted as later than any detection (null if they are the middle). */
  readonly outMsMedian: number | null;
  readonly failedCalls: Distribution | null;
  /** Calls that failed before their ACK: what re-dispatch and fast detection remove. */
  readonly failedInSetup: Distribution | null;
  readonly unanswered: Distribution | null;
  readonly byeLost: Distribution | null;
  readonly unexpected: Distribution | null;
  readonly redispatched: Distribution | null;
  /** Controller-down mode: controller SIGKILL to backstop on, over the kills where it was seen. */
  readonly backstopOnMs: Distribution | null;
  /** Controller-down mode: kills where the backstop was not seen on within the deadline. */
  readonly backstopMissing: number;
  readonly unsettled: number;
  /** Kills during which a live backend was out of rotation too. */
  readonly falseAlarms: number;
}

const splitOf = (kills: readonly KillResult[], pick: (s: FailureSplit) => number) =>
  distribution(kills.flatMap((k) => (k.split ? [pick(k.split)] : [])));

export function summariseMode(o: ModeOutcome): ModeSummary {
  if (!o.runnable) {
    return {
      mode: o.mode,
      runnable: false,
      reason: o.reason,
      kills: 0,
      undetected: 0,
      outMs: null,
      outMsMedian: null,
      failedCalls: null,
      failedInSetup: null,
      unanswered: null,
      byeLost: null,
      unexpected: null,
      redispatched: null,
      backstopOnMs: null,
      backstopMissing: 0,
      unsettled: 0,
      falseAlarms: 0,
    };
  }
  const detected = o.kills.flatMap((k) => (k.outMs === null ? [] : [k.outMs]));
  const backstop = o.kills.filter((k) => k.backstopOnMs !== undefined);
  return {
    mode: o.mode,
    runnable: true,
    kills: o.kills.length,
    undetected: o.kills.length - detected.length,
    outMs: distribution(detected),
    outMsMedian: medianCountingMisses(detected, o.kills.length - detected.length),
    failedCalls: distribution(o.kills.map((k) => k.failed)),
    failedInSetup: splitOf(o.kills, (s) => s.failedInSetup),
    unanswered: splitOf(o.kills, (s) => s.unanswered),
    byeLost: splitOf(o.kills, (s) => s.byeLost),
    unexpected: splitOf(o.kills, (s) => s.unexpected),
    redispatched: distribution(o.kills.flatMap((k) => (k.redispatched === null ? [] : [k.redispatched]))),
    backstopOnMs: distribution(
      backstop.flatMap((k) => (typeof k.backstopOnMs === 'number' ? [k.backstopOnMs] : [])),
    ),
    backstopMissing: backstop.filter((k) => k.backstopOnMs === null).length,
    unsettled: o.kills.filter((k) => !k.settledBefore).length,
    falseAlarms: o.kills.filter((k) => k.othersOut.length > 0).length,
  };
}

const LABEL: Record<FailoverMode, string> = {
  kamailio_probe: 'Kamailio OPTIONS probing',
  sipweigh: 'sipweigh controller',
  controller_down: 'controller down: LB backstop',
};

const f0 = (n: number) => n.toFixed(0);
const dist = (d: Distribution | null) => (d ? `${f0(d.min)} / ${f0(d.median)} / ${f0(d.max)}` : 'n/a');

function killNotes(k: KillResult): string[] {
  return [
    k.outMs === null ? 'never left rotation' : '',
    k.backstopOnMs === undefined
      ? ''
      : k.backstopOnMs === null
        ? 'backstop never seen on'
        : `backstop on ${f0(k.backstopOnMs)} ms after the controller's kill`,
    k.settledBefore ? '' : 'pool not back at rest before the kill',
    k.othersOut.length > 0 ? `live backend also out: ${k.othersOut.join(', ')}` : '',
  ].filter((s) => s !== '');
}

/** One row per kill, then one per mode with min / median / max. */
export function formatFailoverTable(outcomes: readonly ModeOutcome[]): string {
  const lines = [
    '| mode | kill | backend | share at kill | kill → out of rotation, ms | calls | failed | failed in setup | of which unanswered INVITE | BYE lost | unexpected reply | re-dispatched | note |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const o of outcomes) {
    if (!o.runnable) {
      lines.push(`| ${LABEL[o.mode]} | - | - | - | not runnable | - | - | - | - | - | - | - | ${o.reason} |`);
      continue;
    }
    for (const k of o.kills) {
      const split = k.split
        ? [k.split.failedInSetup, k.split.unanswered, k.split.byeLost, k.split.unexpected]
        : ['n/a', 'n/a', 'n/a', 'n/a'];
      lines.push(
        `| ${LABEL[o.mode]} | ${k.kill} | ${k.backend} | ${(k.shareAtKill * 100).toFixed(0)} % | ` +
          `${k.outMs === null ? 'n/a' : f0(k.outMs)} | ${k.calls} | ${k.failed} | ${split.join(' | ')} | ` +
          `${k.redispatched ?? 'n/a'} | ${killNotes(k).join('; ')} |`,
      );
    }
  }
  lines.push(
    '',
    '| mode | kills | kill → out, ms | failed calls per kill | failed in setup | of which unanswered INVITE | BYE lost | unexpected reply | re-dispatched |',
    '|---|---|---|---|---|---|---|---|---|',
  );
  for (const s of outcomes.map(summariseMode)) {
    if (!s.runnable) {
      lines.push(
        `| ${LABEL[s.mode]} | 0 | not runnable: ${s.reason ?? ''} | n/a | n/a | n/a | n/a | n/a | n/a |`,
      );
      continue;
    }
    const undetected = s.undetected > 0 ? ` (${s.undetected} never out)` : '';
    lines.push(
      `| ${LABEL[s.mode]} | ${s.kills} | ${dist(s.outMs)}${undetected} | ${dist(s.failedCalls)} | ` +
        `${dist(s.failedInSetup)} | ${dist(s.unanswered)} | ${dist(s.byeLost)} | ${dist(s.unexpected)} | ` +
        `${dist(s.redispatched)} |`,
    );
  }
  lines.push('(min / median / max over the kills)');
  return lines.join('\n');
}

export interface FailoverSetup {
  readonly options: FailoverOptions;
  readonly seconds: number;
}

function rounded(d: Distribution | null): Distribution | null {
  if (!d) return null;
  const r = (n: number) => Math.round(n);
  return { n: d.n, min: r(d.min), median: r(d.median), max: r(d.max), values: d.values.map(r) };
}

/**
 * The last line: headline medians first (null when a mode did not run), then the distributions.
 * `failed_per_kill` counts the calls that failed in setup (before their ACK), `lost_bye_per_kill`
 * the established calls that lost their BYE, both medians per kill.
 */
export function failoverSummaryJson(outcomes: readonly ModeOutcome[], setup: FailoverSetup): object {
  const byMode = new Map(outcomes.map((o) => [o.mode, summariseMode(o)]));
  const round = (n: number | null | undefined) => (n === null || n === undefined ? null : Math.round(n));
  const detail = (m: FailoverMode) => {
    const s = byMode.get(m);
    if (!s) return null;
    if (!s.runnable) return { runnable: false, reason: s.reason };
    return {
      runnable: true,
      kills: s.kills,
      undetected: s.undetected,
      out_ms: rounded(s.outMs),
      failed_calls: rounded(s.failedCalls),
      failed_in_setup: rounded(s.failedInSetup),
      unanswered_invites: rounded(s.unanswered),
      bye_lost: rounded(s.byeLost),
      unexpected_replies: rounded(s.unexpected),
      redispatched: rounded(s.redispatched),
      unsettled: s.unsettled,
      false_alarms: s.falseAlarms,
    };
  };
  const setupFailed = (m: FailoverMode) => round(byMode.get(m)?.failedInSetup?.median);
  const byeLost = (m: FailoverMode) => round(byMode.get(m)?.byeLost?.median);
  const down = byMode.get('controller_down');
  const o = setup.options;
  return {
    bench: 'failover',
    sipweigh_ms: round(byMode.get('sipweigh')?.outMsMedian),
    kamailio_probe_ms: round(byMode.get('kamailio_probe')?.outMsMedian),
    failed_per_kill: { sipweigh: setupFailed('sipweigh'), kamailio_probe: setupFailed('kamailio_probe') },
    lost_bye_per_kill: { sipweigh: byeLost('sipweigh'), kamailio_probe: byeLost('kamailio_probe') },
    controller_down: {
      out_ms: round(down?.outMsMedian),
      failed: setupFailed('controller_down'),
      lost_bye: byeLost('controller_down'),
      backstop_on_ms: round(down?.backstopOnMs?.median),
      backstop_missing: down?.backstopMissing ?? null,
      detail: detail('controller_down'),
    },
    sipweigh_failed_calls: round(byMode.get('sipweigh')?.failedCalls?.median),
    kamailio_failed_calls: round(byMode.get('kamailio_probe')?.failedCalls?.median),
    sipweigh: detail('sipweigh'),
    kamailio_probe: detail('kamailio_probe'),
    kills_per_mode: o.kills,
    backends: o.backends,
    capacity_cps: o.capacityCps,
    rate_cps: o.rateCps,
    hold_ms: o.holdMs,
    ping_interval_s: o.pingIntervalS,
    ping_timeout_ms: o.pingTimeoutMs,
    poll_ms: o.pollMs,
    seconds: Math.round(setup.seconds),
    quick: o.quick,
  };
}
