/**
 * Exponential backoff with jitter, for retries that must not hammer a peer that is down: the agent's
 * unacknowledged hello (quick at first: a controller that starts with us answers within a probe
 * interval) and the SSH collector's reconnects. The jitter keeps a thousand retrying clients from
 * moving in lock-step.
 */
export interface BackoffPolicy {
  readonly initialMs: number;
  readonly maxMs: number;
  readonly factor: number;
  /** 0..1: each delay is spread uniformly over ±jitter of its nominal value. */
  readonly jitter: number;
}

/** Delay before attempt `attempt + 1` (attempt 0 is the first repeat); `random` in [0, 1). */
export function backoffDelayMs(policy: BackoffPolicy, attempt: number, random: number): number {
  const nominal = Math.min(policy.maxMs, policy.initialMs * policy.factor ** Math.max(0, attempt));
  const spread = nominal * policy.jitter * (2 * random - 1);
  return Math.max(1, Math.round(nominal + spread));
}
