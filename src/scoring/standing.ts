/**
 * Standing queue, not bursts (CoDel's insight, Nichols & Jacobson 2012): a queue that empties
 * within an interval is doing its job of absorbing a burst; one whose *minimum* over the interval
 * stays up is a backend that cannot keep up. So the queue-delay signals (the local OPTIONS round
 * trip, the socket's receive queue) are taken as their minimum over a short window before they
 * are smoothed.
 *
 * Two things this buys, both measured in the closed-loop tests: a busy host's scheduling spikes
 * (one slow OPTIONS among several fast ones) no longer derate a backend at 30-40 % load, and a
 * burst the LB lets through (the admission limiter's burst tolerance; with the per-second pipelimit
 * it first used, a burst every second) no longer reads as overload: without this the controller
 * kept cutting the pool's limit until the bursts were small, down to a fifth of its capacity. Real
 * overload keeps the queue up from one report to the next and still shows within one window.
 */
import type { Smoothed } from './types.js';

/** Recent values of one signal, oldest first, kept for `windowMs` before the newest. */
export type Recent = readonly Smoothed[];

/** Adds `value` at `at` and returns the window's minimum (the value itself when the window is 0). */
export function standingValue(
  recent: Recent,
  value: number,
  at: number,
  windowMs: number,
): { recent: Recent; value: number } {
  if (windowMs <= 0) return { recent: [], value };
  const kept = recent.filter((r) => r.at >= at - windowMs && r.at < at);
  const next = [...kept, { value, at }];
  return { recent: next, value: Math.min(...next.map((r) => r.value)) };
}
