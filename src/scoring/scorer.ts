/**
 * One scoring cycle: (state, samples, now, params) -> (state', per-set results). Pure: no clock,
 * no I/O; `now` is the controller's monotonic ms, the same clock as the reports' `at`.
 *
 * Per backend: fold each new report once (deduplicated by `at`) into per-signal EWMAs, take the
 * tightest smoothed pressure, move the derating factor by the AIMD law (derating.ts), apply the
 * slow-start ramp. Per set: weights proportional to effective capacity (weights.ts) with
 * hysteresis and a bounded step, or - in panic - the last output held. Call it every cycle and on
 * health changes; calling it twice at the same `now` changes nothing the second time.
 *
 * Load knowledge: a backend with no report yet, or whose last report is older than
 * report_stale_ms, counts at its configured capacity times its current factor, and that factor
 * drifts back to 1 at the recovery rate (derating.ts). A backend we cannot measure is assumed to
 * be what its operator configured - the same assumption a static weight makes - but a derated
 * backend that falls silent does not jump back to full weight on the strength of silence.
 */
import type { HealthKind } from '../health/state-machine.js';
import { admissionLimit, poolCapacity } from './admission.js';
import { breakRun, foldCapacity, freshLearned } from './capacity/estimator.js';
import { delaySplitFor } from './delay-split.js';
import { FRESH_DERATING, updateFactor } from './derating.js';
import { panicCheck } from './panic.js';
import type { ScoringParams } from './params.js';
import { dropsPerSecond, pressureRange, reportSignals, tightest } from './signals.js';
import { rampRatio } from './slow-start.js';
import { current, ewmaFold } from './smoothing.js';
import { standingValue } from './standing.js';
import {
  SIGNAL_NAMES,
  type Assignment,
  type BackendMemory,
  type BackendSample,
  type BackendScore,
  type CycleResult,
  type Knowledge,
  type RejectedSample,
  type ScorerState,
  type SetMemory,
  type SetResult,
  type SignalName,
  type SignalValues,
  type Smoothed,
} from './types.js';
import { stepWeight, targetWeights } from './weights.js';

const HEALTH_KINDS: ReadonlySet<string> = new Set(['up', 'suspect', 'down', 'draining', 'returning']);

export function initialScorerState(): ScorerState {
  return { at: null, backends: new Map(), sets: new Map() };
}

function emptySmoothed(): { [K in SignalName]: Smoothed | null } {
  const s = {} as { [K in SignalName]: Smoothed | null };
  for (const name of SIGNAL_NAMES) s[name] = null;
  return s;
}

function emptyRecent(): { [K in SignalName]: readonly Smoothed[] } {
  const r = {} as { [K in SignalName]: readonly Smoothed[] };
  for (const name of SIGNAL_NAMES) r[name] = [];
  return r;
}

/** What the scorer knows of a backend it has never scored (or that went down). */
export const FRESH_MEMORY: BackendMemory = {
  lastFoldedAt: null,
  drops: null,
  smoothed: emptySmoothed(),
  latest: emptySmoothed(),
  recent: emptyRecent(),
  derating: FRESH_DERATING,
  learned: null,
  rotation: { kind: 'out' },
};

const EMPTY_SET: SetMemory = {
  weights: null,
  poolCapacityCps: null,
  admissionLimitCps: null,
  panicSince: null,
  panicEndedAt: null,
};

function inRotation(h: HealthKind): boolean {
  return h === 'up' || h === 'suspect';
}

function sampleProblem(s: BackendSample, seen: ReadonlySet<string>): string | null {
  if (typeof s.id !== 'string' || s.id.length === 0) return 'id must be a non-empty string';
  if (seen.has(s.id)) return 'duplicate id in this cycle';
  if (!Number.isInteger(s.set)) return `set must be an integer, got ${String(s.set)}`;
  if (typeof s.capacity !== 'number' || !Number.isFinite(s.capacity) || s.capacity <= 0)
    return `capacity must be a finite number > 0, got ${String(s.capacity)}`;
  if (!HEALTH_KINDS.has(s.health)) return `unknown health ${String(s.health)}`;
  if (s.report !== null && (typeof s.report.at !== 'number' || !Number.isFinite(s.report.at)))
    return 'report.at must be a finite number';
  if (s.report !== null && (typeof s.report.metrics !== 'object' || s.report.metrics === null))
    return 'report.metrics must be an object';
  return null;
}

/** The capacity per-capacity signals are measured against: the learned one when learning is on. */
function capacityBasis(m: BackendMemory, s: BackendSample, p: ScoringParams): number {
  return p.capacity.learn && m.learned !== null ? m.learned.cps : s.capacity;
}

const finiteOrNull = (v: number | null | undefined): number | null =>
  typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : null;

/** Folds the sample's report if it is new and not stale; returns the updated memory. */
function foldReport(m: BackendMemory, s: BackendSample, now: number, p: ScoringParams): BackendMemory {
  const r = s.report;
  if (r === null || (m.lastFoldedAt !== null && r.at <= m.lastFoldedAt)) return m;
  if (now - r.at > p.report_stale_ms) return m;
  // Utilisation, 5xx, transactions per call/s: measured against what we believe the backend
  // carries. Against a configured capacity that is too low, a backend serving its real capacity
  // would read as over the utilisation backstop and be cut.
  const sig = reportSignals(r.metrics, r.at, capacityBasis(m, s, p), m.drops, p);
  const smoothed = { ...m.smoothed };
  const latest = { ...m.latest };
  const recent = { ...m.recent };
  const standingRaw = {} as Record<SignalName, number | null>;
  for (const name of SIGNAL_NAMES) {
    const raw = sig.pressures[name];
    standingRaw[name] = null;
    if (raw === null) continue;
    const standing = standingValue(m.recent[name], raw, r.at, p.signals[name].standing_window_ms);
    recent[name] = standing.recent;
    const v = standing.value;
    standingRaw[name] = v * (p.signals[name].knee ?? 0);
    smoothed[name] = ewmaFold(smoothed[name], v, r.at, p.signals[name].half_life_ms, p.report_stale_ms);
    latest[name] = { value: v, at: r.at };
  }
  let learned = m.learned;
  if (p.capacity.learn) {
    const reqRate = finiteOrNull(r.metrics.req_rate);
    const dropCount = finiteOrNull(r.metrics.udp_drops);
    learned = foldCapacity(
      m.learned ?? freshLearned(s.capacity),
      {
        at: r.at,
        servedCps: reqRate === null ? null : reqRate / p.requests_per_call,
        queueBytes: finiteOrNull(r.metrics.udp_rx_queue_bytes),
        rttMs: standingRaw.options_rtt_ms,
        waitMs: finiteOrNull(r.metrics.options_rtt_ms),
        dropsPerS: dropCount === null ? null : dropsPerSecond(m.drops, dropCount, r.at),
      },
      s.capacity,
      p.capacity,
    );
  }
  return { ...m, lastFoldedAt: r.at, drops: sig.drops, smoothed, latest, recent, learned };
}

function knowledgeOf(s: BackendSample, now: number, p: ScoringParams): Knowledge {
  if (s.report === null) return 'none';
  return now - s.report.at > p.report_stale_ms ? 'stale' : 'fresh';
}

interface Scored {
  readonly sample: BackendSample;
  readonly memory: BackendMemory;
  readonly knowledge: Knowledge;
  readonly pressures: SignalValues;
  readonly values: SignalValues;
  readonly pressure: number | null;
  readonly dominant: SignalName | null;
}

/** Everything per backend that does not depend on its set: signals, smoothing, derating. */
function scoreBackend(
  s: BackendSample,
  prev: BackendMemory | undefined,
  now: number,
  dtMs: number,
  p: ScoringParams,
): Scored {
  // A backend that went down starts afresh when it comes back: its old load figures and derating
  // describe a process that may no longer exist (and slow start covers its warm-up).
  // The learned capacity is kept: it describes the host's capacity more than the process's state,
  // and a backend that comes back at its prior would be overloaded until it is learned again. Its
  // run of queue reports is not kept (breakRun).
  let m =
    prev === undefined
      ? FRESH_MEMORY
      : s.health === 'down'
        ? { ...FRESH_MEMORY, learned: prev.learned === null ? null : breakRun(prev.learned) }
        : prev;
  if (s.health === 'down') m = { ...m, rotation: { kind: 'out' } };
  else m = foldReport(m, s, now, p);
  const pressures = {} as Record<SignalName, number | null>;
  const latest = {} as Record<SignalName, number | null>;
  const values = {} as Record<SignalName, number | null>;
  for (const name of SIGNAL_NAMES) {
    pressures[name] = current(m.smoothed[name], now, p.report_stale_ms);
    const knee = p.signals[name].knee;
    values[name] = pressures[name] === null || knee === null ? null : (pressures[name] as number) * knee;
    latest[name] = current(m.latest[name], now, p.report_stale_ms);
  }
  const top = tightest(pressures);
  if (inRotation(s.health)) {
    const range = pressureRange(pressures, latest);
    // With learned capacity the floor is the served rate over the estimate now (not the smoothed
    // utilisation, which lags the estimate's move by a half-life and would let the factor cut
    // below a share the estimate already gave up).
    const learnedServed = p.capacity.learn
      ? current(m.learned?.served ?? null, now, p.report_stale_ms)
      : null;
    const served =
      learnedServed !== null && m.learned !== null ? learnedServed / m.learned.cps : values.utilisation;
    const floorRatio = p.capacity.learn ? 1 : p.served_floor_ratio;
    m = { ...m, derating: updateFactor(m.derating, range, now, dtMs, p, served, floorRatio) };
  }
  return {
    sample: s,
    memory: m,
    knowledge: knowledgeOf(s, now, p),
    pressures,
    values,
    pressure: top?.pressure ?? null,
    dominant: top?.dominant ?? null,
  };
}

/** A peer that already carries the set's traffic under a scored output (see slow-start.ts). */
function hasEstablishedPeer(
  prevState: ScorerState,
  members: readonly Scored[],
  setMem: SetMemory,
  now: number,
  p: ScoringParams,
): boolean {
  if (setMem.weights === null || setMem.panicSince !== null) return false;
  return members.some(({ sample }) => {
    const r = prevState.backends.get(sample.id)?.rotation;
    if (r === undefined || r.kind !== 'in' || (setMem.weights?.get(sample.id) ?? 0) <= 0) return false;
    return !r.slowStart || rampRatio(r.since, now, p) >= 1;
  });
}

function scoreSet(
  set: number,
  members: readonly Scored[],
  prevState: ScorerState,
  now: number,
  p: ScoringParams,
): { result: SetResult; memory: SetMemory; backends: Map<string, BackendMemory> } {
  const setMem = prevState.sets.get(set) ?? EMPTY_SET;
  const established = hasEstablishedPeer(prevState, members, setMem, now, p);
  const memories = new Map<string, BackendMemory>();
  const effective = new Map<string, number>();
  const ramps = new Map<string, { ramp: number; until: number } | null>();

  for (const b of members) {
    const { sample } = b;
    let m = b.memory;
    // Answering again after a panic hold, and the LB still has it in rotation: taking it out now,
    // a probe or two before it is confirmed, would move its share for nothing (partition healing).
    const healing =
      setMem.panicSince !== null ||
      (setMem.panicEndedAt !== null && now - setMem.panicEndedAt <= p.panic_heal_grace_ms);
    const keptThroughPanic =
      healing && sample.health === 'returning' && (setMem.weights?.get(sample.id) ?? 0) > 0;
    if (!inRotation(sample.health) && !keptThroughPanic) {
      if (m.rotation.kind !== 'out') m = { ...m, rotation: { kind: 'out' } };
    } else {
      if (m.rotation.kind === 'out') {
        // Slow start only for a backend the LB was really told to skip: one the last output (held
        // through a panic) still had in rotation has been taking calls all along, e.g. after a
        // partition heals, and ramping it would push its share onto the others at once.
        const wasOut = (setMem.weights?.get(sample.id) ?? 0) === 0;
        m = {
          ...m,
          rotation: { kind: 'in', since: now, slowStart: established && wasOut && p.slow_start_ms > 0 },
        };
      }
      const rot = m.rotation;
      let ramp: { ramp: number; until: number } | null = null;
      if (rot.kind === 'in' && rot.slowStart) {
        const r = rampRatio(rot.since, now, p);
        if (r >= 1) m = { ...m, rotation: { ...rot, slowStart: false } };
        else ramp = { ramp: r, until: rot.since + p.slow_start_ms };
      }
      ramps.set(sample.id, ramp);
      effective.set(sample.id, capacityBasis(m, sample, p) * m.derating.factor * (ramp?.ramp ?? 1));
    }
    memories.set(sample.id, m);
  }

  // delaysplit (issue 18): near the knee, the split that equalises queueing delay (delay-split.ts).
  // Served calls/s = utilisation × the capacity it was measured against (learned or configured).
  const splitMembers = members.map((b) => ({
    ...b,
    utilisationBasisCps: capacityBasis(b.memory, b.sample, p),
  }));
  const targets = targetWeights(effective, p, delaySplitFor(splitMembers, effective, p));
  const prevWeights = setMem.weights;
  const weights = new Map<string, number>();
  const scores: BackendScore[] = [];
  for (const b of members) {
    const { sample } = b;
    const m = memories.get(sample.id) ?? b.memory;
    let assignment: Assignment;
    const target = targets.get(sample.id);
    if (target === undefined) {
      assignment = { phase: 'out', weight: 0, reason: sample.health as 'down' | 'draining' | 'returning' };
    } else {
      const weight = stepWeight(
        prevWeights === null ? undefined : (prevWeights.get(sample.id) ?? 0),
        target,
        p,
      );
      const ramp = ramps.get(sample.id) ?? null;
      assignment = ramp ? { phase: 'slow_start', weight, ...ramp } : { phase: 'normal', weight };
    }
    weights.set(sample.id, assignment.weight);
    scores.push({
      id: sample.id,
      set,
      health: sample.health,
      capacityCps: sample.capacity,
      knowledge: b.knowledge,
      pressures: b.pressures,
      values: b.values,
      pressure: b.pressure,
      dominant: b.dominant,
      factor: m.derating.factor,
      learnedCapacityCps: p.capacity.learn && target !== undefined ? capacityBasis(m, sample, p) : null,
      learnedMoves: p.capacity.learn && m.learned !== null ? m.learned.moved : null,
      effectiveCapacityCps: effective.get(sample.id) ?? 0,
      assignment,
    });
  }

  const check = panicCheck(
    members.map((b) => b.sample),
    p.panic_threshold_ratio,
  );
  if (check.panic) {
    const since = setMem.panicSince ?? now;
    // Held as they were; a backend that joined since has no share to keep (0), one removed is gone.
    const held =
      prevWeights === null
        ? null
        : new Map(members.map((b) => [b.sample.id, prevWeights.get(b.sample.id) ?? 0]));
    return {
      result: {
        set,
        mode: 'panic',
        weights: held,
        poolCapacityCps: setMem.poolCapacityCps,
        admissionLimitCps: setMem.admissionLimitCps,
        panic: { healthy: check.healthy, counted: check.counted, threshold: p.panic_threshold_ratio, since },
        backends: scores,
      },
      memory: { ...setMem, weights: held, panicSince: since },
      backends: memories,
    };
  }

  const pool = poolCapacity(effective.values());
  const limit = admissionLimit(pool, p);
  return {
    result: {
      set,
      mode: 'scored',
      weights,
      poolCapacityCps: pool,
      admissionLimitCps: limit,
      panic: null,
      backends: scores,
    },
    memory: {
      weights,
      poolCapacityCps: pool,
      admissionLimitCps: limit,
      panicSince: null,
      panicEndedAt: setMem.panicSince !== null ? now : setMem.panicEndedAt,
    },
    backends: memories,
  };
}

/**
 * Runs one cycle. Samples that cannot be used (bad capacity, duplicate id...) are returned in
 * `rejected` and left out; the rest are scored. Backends and sets absent from `samples` are forgotten.
 */
export function scoreCycle(
  state: ScorerState,
  samples: readonly BackendSample[],
  now: number,
  p: ScoringParams,
): CycleResult {
  const dtMs = state.at === null ? 0 : Math.max(0, now - state.at);
  const rejected: RejectedSample[] = [];
  const seen = new Set<string>();
  const bySet = new Map<number, Scored[]>();
  for (const s of samples) {
    const problem = sampleProblem(s, seen);
    if (problem !== null) {
      rejected.push({ id: String(s.id), reason: problem });
      continue;
    }
    seen.add(s.id);
    const scored = scoreBackend(s, state.backends.get(s.id), now, dtMs, p);
    const list = bySet.get(s.set);
    if (list) list.push(scored);
    else bySet.set(s.set, [scored]);
  }

  const backends = new Map<string, BackendMemory>();
  const sets = new Map<number, SetMemory>();
  const results: SetResult[] = [];
  for (const set of [...bySet.keys()].sort((a, b) => a - b)) {
    const members = (bySet.get(set) ?? []).sort((a, b) => (a.sample.id < b.sample.id ? -1 : 1));
    const { result, memory, backends: mems } = scoreSet(set, members, state, now, p);
    results.push(result);
    sets.set(set, memory);
    for (const [id, m] of mems) backends.set(id, m);
  }
  return { state: { at: Math.max(now, state.at ?? now), backends, sets }, sets: results, rejected };
}
