/**
 * When to repeat an unacknowledged hello: quickly at first (a controller that starts with us answers
 * within a probe interval), then exponentially slower so a thousand agents waiting for a controller
 * that is down do not hammer it, with jitter so they do not retry in lock-step.
 */
export interface BackoffPolicy {
  readonly initialMs: number;
  readonly maxMs: number;
  readonly factor: number;
  /** 0..1: each delay is spread uniformly over ±jitter of its nominal value. */
  readonly jitter: number;
}

export const HELLO_BACKOFF: BackoffPolicy = { initialMs: 250, maxMs: 30_000, factor: 2, jitter: 0.2 };

/** Delay before attempt `attempt + 1` (attempt 0 is the first repeat); `random` in [0, 1). */
export function backoffDelayMs(policy: BackoffPolicy, attempt: number, random: number): number {
  const nominal = Math.min(policy.maxMs, policy.initialMs * policy.factor ** Math.max(0, attempt));
  const spread = nominal * policy.jitter * (2 * random - 1);
  return Math.max(1, Math.round(nominal + spread));
}
