/**
 * The failover benchmark's pure half: its options, what "out of rotation" means in a dispatcher.list
 * reply, and the summary (distributions, table, last-line JSON). No I/O, no clock.
 */
import type { DispatcherTarget } from '../../../src/kamailio/dispatcher-list-reply.js';
import { benchCommand, namesOf, numberIn, parseBenchArgs } from '../common/options.js';

/** The two ways of taking a dead backend out of rotation that the bench compares. */
export type FailoverMode = 'kamailio_probe' | 'sipweigh';
export const FAILOVER_MODES: readonly FailoverMode[] = ['kamailio_probe', 'sipweigh'];

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
        `comma-separated, of ${FAILOVER_MODES.join(',')} (default both)`,
        namesOf(FAILOVER_MODES),
      )
      .option('--kills <n>', 'kills per mode (default 5; --quick 2)', numberIn(1, 50, true))
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
    kills: o.kills ?? (quick ? 2 : 5),
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

/** ds_skip_dst() in dispatcher 5.6: only inactive and disabled destinations are never selected. */
export function isOutOfRotation(t: Pick<DispatcherTarget, 'state'>): boolean {
  return t.state === 'inactive' || t.state === 'disabled';
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

/**
 * Where failed calls gave up, from sipp's `-trace_counts` file (`;`-separated, one column per
 * scenario step and counter, e.g. `3_200_Timeout`, `7_ACK_Sent`, `10_200_Timeout`; last row
 * cumulative): timeouts before the ACK is sent are calls whose INVITE was never answered (sent to
 * the dead backend), timeouts from the ACK on are established calls that lost their BYE; unexpected
 * replies (a 503 from the LB, say) are counted apart.
 */
export interface FailureSplit {
  readonly unanswered: number;
  readonly byeLost: number;
  /** Calls ended by a reply the scenario did not expect (a 503, a 481): not a failover symptom. */
  readonly unexpected: number;
}

export function splitFailures(countsCsv: string): FailureSplit | null {
  const lines = countsCsv.split('\n').filter((l) => l.trim() !== '');
  if (lines.length < 2) return null;
  const header = lines[0]!.split(';');
  const last = lines[lines.length - 1]!.split(';');
  const step = (col: string) => Number(/^(\d+)_/.exec(col)?.[1] ?? Number.NaN);
  const ackCol = header.find((c) => /^\d+_ACK_Sent$/.test(c));
  if (ackCol === undefined) return null;
  const ackStep = step(ackCol);
  let unanswered = 0;
  let byeLost = 0;
  let unexpected = 0;
  header.forEach((col, i) => {
    const n = Number(last[i]);
    if (!Number.isFinite(n)) return;
    if (/^\d+_.+_Unexp$/.test(col)) unexpected += n;
    if (!/^\d+_.+_Timeout$/.test(col)) return;
    if (step(col) < ackStep) unanswered += n;
    else byeLost += n;
  });
  return { unanswered, byeLost, unexpected };
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
  readonly unanswered: Distribution | null;
  readonly byeLost: Distribution | null;
  readonly unexpected: Distribution | null;
  readonly unsettled: number;
  /** Kills during which a live backend was out of rotation too. */
  readonly falseAlarms: number;
}

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
      unanswered: null,
      byeLost: null,
      unexpected: null,
      unsettled: 0,
      falseAlarms: 0,
    };
  }
  const detected = o.kills.flatMap((k) => (k.outMs === null ? [] : [k.outMs]));
  return {
    mode: o.mode,
    runnable: true,
    kills: o.kills.length,
    undetected: o.kills.length - detected.length,
    outMs: distribution(detected),
    outMsMedian: medianCountingMisses(detected, o.kills.length - detected.length),
    failedCalls: distribution(o.kills.map((k) => k.failed)),
    unanswered: distribution(o.kills.flatMap((k) => (k.split ? [k.split.unanswered] : []))),
    byeLost: distribution(o.kills.flatMap((k) => (k.split ? [k.split.byeLost] : []))),
    unexpected: distribution(o.kills.flatMap((k) => (k.split ? [k.split.unexpected] : []))),
    unsettled: o.kills.filter((k) => !k.settledBefore).length,
    falseAlarms: o.kills.filter((k) => k.othersOut.length > 0).length,
  };
}

const LABEL: Record<FailoverMode, string> = {
  kamailio_probe: 'Kamailio OPTIONS probing',
  sipweigh: 'sipweigh controller',
};

const f0 = (n: number) => n.toFixed(0);
const dist = (d: Distribution | null) => (d ? `${f0(d.min)} / ${f0(d.median)} / ${f0(d.max)}` : 'n/a');

/** One row per kill, then one per mode with min / median / max. */
export function formatFailoverTable(outcomes: readonly ModeOutcome[]): string {
  const lines = [
    '| mode | kill | backend | share at kill | kill → out of rotation, ms | calls | failed | unanswered INVITE | BYE lost | unexpected reply | note |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const o of outcomes) {
    if (!o.runnable) {
      lines.push(`| ${LABEL[o.mode]} | - | - | - | not runnable | - | - | - | - | - | ${o.reason} |`);
      continue;
    }
    for (const k of o.kills) {
      const notes = [
        k.outMs === null ? 'never left rotation' : '',
        k.settledBefore ? '' : 'pool not back at rest before the kill',
        k.othersOut.length > 0 ? `live backend also out: ${k.othersOut.join(', ')}` : '',
      ].filter((s) => s !== '');
      const split = k.split
        ? [k.split.unanswered, k.split.byeLost, k.split.unexpected]
        : ['n/a', 'n/a', 'n/a'];
      lines.push(
        `| ${LABEL[o.mode]} | ${k.kill} | ${k.backend} | ${(k.shareAtKill * 100).toFixed(0)} % | ` +
          `${k.outMs === null ? 'n/a' : f0(k.outMs)} | ${k.calls} | ${k.failed} | ${split.join(' | ')} | ${notes.join('; ')} |`,
      );
    }
  }
  lines.push(
    '',
    '| mode | kills | kill → out, ms | failed calls per kill | of which unanswered INVITE | BYE lost | unexpected reply |',
    '|---|---|---|---|---|---|---|',
  );
  for (const s of outcomes.map(summariseMode)) {
    if (!s.runnable) {
      lines.push(`| ${LABEL[s.mode]} | 0 | not runnable: ${s.reason ?? ''} | n/a | n/a | n/a | n/a |`);
      continue;
    }
    const undetected = s.undetected > 0 ? ` (${s.undetected} never out)` : '';
    lines.push(
      `| ${LABEL[s.mode]} | ${s.kills} | ${dist(s.outMs)}${undetected} | ${dist(s.failedCalls)} | ` +
        `${dist(s.unanswered)} | ${dist(s.byeLost)} | ${dist(s.unexpected)} |`,
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

/** The last line: headline medians first (null when a mode did not run), then the distributions. */
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
      unanswered_invites: rounded(s.unanswered),
      bye_lost: rounded(s.byeLost),
      unexpected_replies: rounded(s.unexpected),
      unsettled: s.unsettled,
      false_alarms: s.falseAlarms,
    };
  };
  const o = setup.options;
  return {
    bench: 'failover',
    sipweigh_ms: round(byMode.get('sipweigh')?.outMsMedian),
    kamailio_probe_ms: round(byMode.get('kamailio_probe')?.outMsMedian),
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
