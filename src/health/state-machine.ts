/**
 * Backend health as a pure state machine: (health, event, params) -> health. No clocks, no I/O:
 * every event carries its own time (monotonic ms), so tests can replay any history exactly.
 *
 * Failure detection is "k consecutive missed probes" (argued in docs/heartbeat-protocol.md §7):
 * our probes are active request/response exchanges with a deadline, so a miss is a crisp event;
 * an accrual (phi) detector models the arrival times of *passive* heartbeats and, with the nearly
 * constant inter-arrival of a fixed probe cadence, degenerates into a threshold on the time since
 * the last answer anyway, only harder to reason about. With k = 3 and suspect-mode probing at twice
 * the rate, a dead backend is down about interval + timeout + 2 × interval/2 after its last answer
 * (≈ 0.6 s with the defaults), while needing three consecutive lost datagrams to be fooled
 * (p³ ≈ 1e-9 per probe at 0.1 % loss).
 *
 * Flapping is damped twice: a backend comes back only after `returnAfterOks` consecutive answers
 * (state `returning`), and every fall to `down` adds 1 to a penalty that halves every
 * `flapHalfLifeMs`; above 1.5 the return is also held for baseHold × 2^(penalty − 1.5), up to
 * maxHold. A backend that dies and recovers once pays nothing extra; one that keeps flapping stays
 * out longer each time instead of oscillating in and out of rotation.
 */

export interface HealthParams {
  /** Consecutive misses that take a backend from up/suspect to down (k). */
  readonly downAfterMisses: number;
  /** Consecutive answers a returning backend needs before it is up again. */
  readonly returnAfterOks: number;
  /** Flap penalty half-life. */
  readonly flapHalfLifeMs: number;
  /** Extra hold in `returning` once the penalty passes 1.5. */
  readonly flapBaseHoldMs: number;
  readonly flapMaxHoldMs: number;
}

/** Why a backend is draining; the stronger cause wins (operator > bye > report flag). */
export type DrainCause = 'operator' | 'bye' | 'report';
const DRAIN_RANK: Record<DrainCause, number> = { report: 0, bye: 1, operator: 2 };

export type HealthState =
  /** Not answering: out of rotation. `never_seen` is where every discovered backend starts. */
  | { readonly kind: 'down'; readonly since: number; readonly cause: 'never_seen' | 'missed' }
  /** Answering again, proving it: still out of rotation (the scorer may slow-start it once up). */
  | { readonly kind: 'returning'; readonly since: number; readonly oks: number; readonly holdUntil: number }
  | { readonly kind: 'up'; readonly since: number }
  /** Missed at least one probe: still in rotation, probed faster. */
  | { readonly kind: 'suspect'; readonly since: number; readonly misses: number }
  /** No new calls; existing dialogs continue. `misses` tells whether it is still reachable. */
  | {
      readonly kind: 'draining';
      readonly since: number;
      readonly cause: DrainCause;
      readonly misses: number;
    };

/** The name of a health state; the one spelling of it (scoring, /metrics and the event schema use it). */
export type HealthKind = HealthState['kind'];

/** Every health state, in the order /metrics lists them (the compiler demands each one, once). */
export const HEALTH_KINDS = Object.keys({
  up: true,
  suspect: true,
  down: true,
  returning: true,
  draining: true,
} satisfies Record<HealthKind, true>) as readonly HealthKind[];

export interface BackendHealth {
  readonly state: HealthState;
  /** Flap penalty, valid at `penaltyAt` (decays from there). */
  readonly penalty: number;
  readonly penaltyAt: number;
}

export type HealthEvent =
  | { readonly type: 'probe_ok'; readonly at: number }
  | { readonly type: 'probe_missed'; readonly at: number }
  /** The agent said bye (shutting down). */
  | { readonly type: 'bye'; readonly at: number }
  /** An authentic hello; `newBoot` when its boot id differs from the last one seen (agent restarted). */
  | { readonly type: 'hello'; readonly at: number; readonly newBoot: boolean }
  /** The draining flag of an authentic report. */
  | { readonly type: 'report_draining'; readonly at: number; readonly draining: boolean }
  /**
   * Passive evidence from the LB: calls sent to it are being retransmitted by their clients, and it
   * has not answered a probe since (health/passive-evidence.ts decides). It only raises suspicion.
   */
  | { readonly type: 'retransmitted'; readonly at: number }
  | { readonly type: 'drain'; readonly at: number }
  | { readonly type: 'undrain'; readonly at: number };

export function initialHealth(at: number): BackendHealth {
  return { state: { kind: 'down', since: at, cause: 'never_seen' }, penalty: 0, penaltyAt: at };
}

export function decayedPenalty(h: BackendHealth, at: number, p: HealthParams): number {
  const dt = Math.max(0, at - h.penaltyAt);
  return h.penalty * Math.pow(0.5, dt / p.flapHalfLifeMs);
}

/** Extra time a returning backend is held out, from its flap penalty. */
export function holdFor(penalty: number, p: HealthParams): number {
  if (penalty <= 1.5) return 0;
  return Math.min(p.flapMaxHoldMs, p.flapBaseHoldMs * Math.pow(2, penalty - 1.5));
}

/** True if the LB may send new calls to a backend in this state. */
export function inRotation(s: HealthState): boolean {
  return s.kind === 'up' || s.kind === 'suspect';
}

/** Penalty beyond which the hold is already at its maximum; capping there lets a backend that stops flapping recover within a few half-lives. */
function maxPenalty(p: HealthParams): number {
  return 1.5 + Math.log2(Math.max(1, p.flapMaxHoldMs / Math.max(1, p.flapBaseHoldMs))) + 1;
}

function goDown(h: BackendHealth, at: number, p: HealthParams): BackendHealth {
  const penalty = Math.min(maxPenalty(p), decayedPenalty(h, at, p) + 1);
  return { state: { kind: 'down', since: at, cause: 'missed' }, penalty, penaltyAt: at };
}

function returning(h: BackendHealth, at: number, oks: number, p: HealthParams): BackendHealth {
  const holdUntil = at + holdFor(decayedPenalty(h, at, p), p);
  return withState(h, { kind: 'returning', since: at, oks, holdUntil });
}

function withState(h: BackendHealth, state: HealthState): BackendHealth {
  return { state, penalty: h.penalty, penaltyAt: h.penaltyAt };
}

function drain(h: BackendHealth, at: number, cause: DrainCause): BackendHealth {
  const s = h.state;
  if (s.kind === 'draining') {
    if (DRAIN_RANK[cause] <= DRAIN_RANK[s.cause]) return h;
    return withState(h, { ...s, cause });
  }
  return withState(h, { kind: 'draining', since: at, cause, misses: 0 });
}

export function transition(
  h: BackendHealth,
  ev: HealthEvent,
  /** The defaults are the config schema's (src/probe/options.ts DEFAULT_HEALTH_PARAMS). */
  p: HealthParams,
): BackendHealth {
  const s = h.state;
  const at = ev.at;
  switch (ev.type) {
    case 'drain':
      return drain(h, at, 'operator');
    case 'bye':
      return drain(h, at, 'bye');
    case 'report_draining':
      if (ev.draining) return drain(h, at, 'report');
      // The agent stopped draining: only its own flag's drain ends this way.
      if (s.kind === 'draining' && s.cause === 'report') return returning(h, at, 0, p);
      return h;
    case 'undrain':
      return s.kind === 'draining' ? returning(h, at, 0, p) : h;
    case 'hello':
      // A restarted agent ends the drain its bye started; an operator's drain outlives restarts.
      if (ev.newBoot && s.kind === 'draining' && s.cause !== 'operator') return returning(h, at, 0, p);
      return h;
    case 'retransmitted':
      // Suspect, never down: a slow but alive backend sees retransmissions too. Being suspect only
      // probes it faster, so the heartbeat confirms (k misses: down) or clears (one answer: up) sooner.
      return s.kind === 'up' ? withState(h, { kind: 'suspect', since: at, misses: 0 }) : h;
    case 'probe_ok':
      switch (s.kind) {
        case 'up':
          return h;
        case 'suspect':
          return withState(h, { kind: 'up', since: at });
        case 'down':
          return p.returnAfterOks <= 1 && holdFor(decayedPenalty(h, at, p), p) === 0
            ? withState(h, { kind: 'up', since: at })
            : returning(h, at, 1, p);
        case 'returning': {
          const oks = s.oks + 1;
          if (oks >= p.returnAfterOks && at >= s.holdUntil) return withState(h, { kind: 'up', since: at });
          return withState(h, { ...s, oks });
        }
        case 'draining':
          return s.misses === 0 ? h : withState(h, { ...s, misses: 0 });
      }
      break;
    case 'probe_missed':
      switch (s.kind) {
        case 'up':
          return p.downAfterMisses <= 1
            ? goDown(h, at, p)
            : withState(h, { kind: 'suspect', since: at, misses: 1 });
        case 'suspect':
          return s.misses + 1 >= p.downAfterMisses
            ? goDown(h, at, p)
            : withState(h, { ...s, misses: s.misses + 1 });
        case 'returning':
          return goDown(h, at, p);
        case 'down':
          return h;
        case 'draining':
          return withState(h, { ...s, misses: s.misses + 1 });
      }
  }
  return h;
}
