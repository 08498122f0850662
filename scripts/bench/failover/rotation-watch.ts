/**
 * Watches an LB over JSON-RPC: its dispatcher.list, and its backstop flag. The failover bench uses
 * one poller for every mode (Kamailio's own probing, the sipweigh controller, the LB's backstop), so
 * the resolution of the measurement is the same: the poll period plus one RPC round trip (about a
 * millisecond on loopback).
 */
import type { DispatcherTarget } from '../../../src/kamailio/dispatcher-list-reply.js';
import { fetchDispatcherList } from '../../../src/kamailio/fetch-dispatcher-list.js';
import type { KamailioRpcClient } from '../../../src/kamailio/rpc.js';
import { readBackstop } from '../../../src/lab/lb-failover.js';
import { isOutOfRotation } from './report.js';
import { sleep } from '../../../src/util/sleep.js';

export async function readTargets(client: KamailioRpcClient, setId: number): Promise<DispatcherTarget[]> {
  const r = await fetchDispatcherList(client, { deadlineMs: 1000 });
  if (!r.ok) throw new Error(r.error);
  return r.targets.filter((t) => t.setId === setId);
}

export interface OutOfRotation {
  /** ms from `sinceMs` to the reply that showed the destination out; null: not within the deadline. */
  readonly ms: number | null;
  readonly polls: number;
  readonly failedPolls: number;
  /** Other destinations of the set seen out of rotation meanwhile (live backends taken out: false alarms). */
  readonly othersOut: readonly string[];
}

/**
 * Polls every `periodMs` until `uri` is inactive or disabled in set `setId`, or `deadlineMs` after
 * `sinceMs` (a performance.now() value, the kill). A poll that fails (the LB busy, a reload in
 * progress) is counted and retried; it never ends the watch early.
 */
export async function watchOutOfRotation(
  client: KamailioRpcClient,
  setId: number,
  uri: string,
  opts: { readonly sinceMs: number; readonly periodMs: number; readonly deadlineMs: number },
): Promise<OutOfRotation> {
  let polls = 0;
  let failedPolls = 0;
  const othersOut = new Set<string>();
  while (performance.now() - opts.sinceMs < opts.deadlineMs) {
    polls++;
    try {
      const targets = await readTargets(client, setId);
      const at = performance.now();
      for (const x of targets) if (x.uri !== uri && isOutOfRotation(x)) othersOut.add(x.uri);
      const t = targets.find((x) => x.uri === uri);
      // Removed from the list altogether is out of rotation too.
      if (!t || isOutOfRotation(t))
        return { ms: at - opts.sinceMs, polls, failedPolls, othersOut: [...othersOut] };
    } catch {
      failedPolls++;
    }
    await sleep(opts.periodMs);
  }
  return { ms: null, polls, failedPolls, othersOut: [...othersOut] };
}

/** What a destination looks like to ds_select_dst: its state and relative weight. */
function signature(targets: readonly DispatcherTarget[]): string {
  return targets.map((t) => `${t.uri} ${t.state} ${t.rweight ?? ''}`).join('|');
}

/**
 * Polls (every 100 ms) until `ready(targets)` holds and the list has not changed for `stableMs`
 * (no push in flight, e.g. a slow start still ramping), or `timeoutMs` passes; returns whether it held.
 */
export async function waitForTargets(
  client: KamailioRpcClient,
  setId: number,
  ready: (targets: readonly DispatcherTarget[]) => boolean,
  opts: { readonly timeoutMs: number; readonly stableMs: number },
): Promise<boolean> {
  const deadline = performance.now() + opts.timeoutMs;
  let last = '';
  let since = performance.now();
  for (;;) {
    try {
      const targets = await readTargets(client, setId);
      const sig = signature(targets);
      if (sig !== last) {
        last = sig;
        since = performance.now();
      }
      if (ready(targets) && performance.now() - since >= opts.stableMs) return true;
    } catch {
      /* LB busy or reloading: try again */
    }
    if (performance.now() > deadline) return false;
    await sleep(100);
  }
}

/**
 * Polls every 50 ms until the LB's backstop is `on` (1) or off (0): ms since `sinceMs` (a
 * performance.now()), or null when not seen within `deadlineMs`.
 */
export async function waitForBackstop(
  client: KamailioRpcClient,
  on: boolean,
  opts: { readonly sinceMs: number; readonly deadlineMs: number },
): Promise<number | null> {
  const want = on ? 1 : 0;
  while (performance.now() - opts.sinceMs < opts.deadlineMs) {
    if ((await readBackstop(client)) === want) return performance.now() - opts.sinceMs;
    await sleep(50);
  }
  return null;
}
