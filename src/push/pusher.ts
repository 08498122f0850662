/**
 * Brings one LB node's dispatcher to a desired list: read `dispatcher.list`, diff, and only when
 * something differs write the whole list file and `dispatcher.reload`, then read back and verify.
 *
 * Why the whole file and a reload (DESIGN.md "Weights in Kamailio"): no RPC changes a weight in
 * place; remove+add leaves the destination absent between the calls and reorders sets; a reload
 * builds the new list aside and swaps it in, and it resets runtime states to the file's flags, so
 * states are written into the file and survive an operator's reload or a restart.
 *
 * Failure rules, so that the LB stays on its last good weights:
 * - the file is replaced atomically by the transport; a write that fails leaves the old file, and
 *   then no reload happens;
 * - a refused reload ("Reload Failed", "Ongoing reload" inside reload_delta) leaves Kamailio on its
 *   in-memory list; the file already holds the complete desired list;
 * - Kamailio 5.6.3 accepts a reload that skipped lines it could not load (an unresolvable host),
 *   and an empty result too. Verification catches it, and the pusher puts back what the LB listed
 *   before the push (runtime states included) and reloads that.
 * The pusher never throws; every end is an outcome. Calls are serialised per pusher.
 */
import { performance } from 'node:perf_hooks';
import { describeDifference, diffDispatcher, type DestinationDiff } from './diff.js';
import { formatDispatcherList, formatListedTargets, type Destination } from '../kamailio/dispatcher-list.js';
import type { DispatcherTarget } from '../kamailio/dispatcher-list-reply.js';
import { fetchDispatcherList, type DispatcherListRpc } from '../kamailio/fetch-dispatcher-list.js';
import type { ListFileTransport } from './transports/transport.js';
import type { Applier } from './node-sync.js';

export type PushStage = 'input' | 'read' | 'write' | 'reload' | 'verify';

/** Milliseconds spent per stage that ran; `totalMs` always. */
export interface PushDurations {
  readonly readMs?: number;
  readonly writeMs?: number;
  readonly reloadMs?: number;
  readonly verifyMs?: number;
  readonly rollbackMs?: number;
  readonly totalMs: number;
}

/** What happened after a reload loaded something other than the desired list. */
export type Rollback =
  /** The previous list was written back and reloaded. */
  | { readonly kind: 'reloaded' }
  | { readonly kind: 'failed'; readonly reason: string }
  | { readonly kind: 'impossible'; readonly reason: string };

export type PushOutcome =
  | {
      readonly kind: 'in_sync';
      /** 'cache': equal to the last verified list, not read again; 'read': the LB listed it. */
      readonly checkedBy: 'cache' | 'read';
      readonly durations: PushDurations;
    }
  | {
      readonly kind: 'applied';
      readonly changes: readonly DestinationDiff[];
      readonly durations: PushDurations;
    }
  | {
      readonly kind: 'failed';
      readonly stage: Exclude<PushStage, 'verify'>;
      readonly reason: string;
      /** The differences the push meant to apply, once known. */
      readonly changes: readonly DestinationDiff[] | null;
      readonly durations: PushDurations;
    }
  | {
      readonly kind: 'failed';
      readonly stage: 'verify';
      readonly reason: string;
      readonly changes: readonly DestinationDiff[];
      /** Null when the LB could not be read back (then nothing was rolled back). */
      readonly rollback: Rollback | null;
      readonly durations: PushDurations;
    };

export interface PushOptions {
  /** Read the LB even when the desired list equals the last verified one (reconcile). */
  readonly force?: boolean;
}

export interface DispatcherPusherOptions {
  readonly rpc: DispatcherListRpc;
  readonly transport: ListFileTransport;
  /** Deadline per RPC call (default 2000 ms; a reload of 5,000 destinations takes ~70 ms). */
  readonly rpcDeadlineMs?: number;
  /**
   * The sets this pusher owns. The whole file is rewritten, so an LB that lists any other set is
   * not written to (stage 'read' fails): the rewrite would delete that set. Unset: every set.
   */
  readonly managedSets?: ReadonlySet<number>;
}

export class DispatcherPusher {
  private lastVerified: string | null = null;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: DispatcherPusherOptions) {}

  /** The node as shown in logs: RPC target and list file. */
  describe(): string {
    return `${this.options.rpc.target} (${this.options.transport.describe()})`;
  }

  push(desired: readonly Destination[], options: PushOptions = {}): Promise<PushOutcome> {
    const run = this.queue.then(() => this.run(desired, options));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async run(desired: readonly Destination[], options: PushOptions): Promise<PushOutcome> {
    const t0 = performance.now();
    const durations: { -readonly [K in Exclude<keyof PushDurations, 'totalMs'>]?: number } = {};
    const timed = async <T>(stage: keyof typeof durations, fn: () => Promise<T>): Promise<T> => {
      const start = performance.now();
      try {
        return await fn();
      } finally {
        durations[stage] = performance.now() - start;
      }
    };
    const done = (): PushDurations => ({ ...durations, totalMs: performance.now() - t0 });

    let content: string;
    try {
      content = formatDispatcherList(desired);
    } catch (e) {
      return {
        kind: 'failed',
        stage: 'input',
        reason: (e as Error).message,
        changes: null,
        durations: done(),
      };
    }
    if (!options.force && content === this.lastVerified) {
      return { kind: 'in_sync', checkedBy: 'cache', durations: done() };
    }
    // Whatever happens next, the LB may no longer hold the cached list.
    this.lastVerified = null;

    const before = await timed('readMs', () => this.read());
    if (!before.ok) {
      return { kind: 'failed', stage: 'read', reason: before.error, changes: null, durations: done() };
    }
    const foreign = unmanagedSets(before.targets, this.options.managedSets);
    if (foreign.length > 0) {
      const reason = `the LB lists sets not managed here (${foreign.join(', ')}): rewriting its list would delete them`;
      return { kind: 'failed', stage: 'read', reason, changes: null, durations: done() };
    }
    const { inSync, differences } = diffDispatcher(desired, before.targets);
    if (inSync) {
      this.lastVerified = content;
      return { kind: 'in_sync', checkedBy: 'read', durations: done() };
    }

    const written = await timed('writeMs', () => this.write(content));
    if (written !== null) {
      return { kind: 'failed', stage: 'write', reason: written, changes: differences, durations: done() };
    }
    const reloaded = await timed('reloadMs', () => this.reload());
    if (reloaded !== null) {
      return { kind: 'failed', stage: 'reload', reason: reloaded, changes: differences, durations: done() };
    }

    const after = await timed('verifyMs', () => this.read());
    if (!after.ok) {
      const reason = `read-back failed: ${after.error}`;
      return {
        kind: 'failed',
        stage: 'verify',
        reason,
        changes: differences,
        rollback: null,
        durations: done(),
      };
    }
    const left = diffDispatcher(desired, after.targets);
    if (!left.inSync) {
      const shown = left.differences.slice(0, 3).map(describeDifference).join('; ');
      const more = left.differences.length > 3 ? ` and ${left.differences.length - 3} more` : '';
      const reason = `the LB loaded another list than written: ${shown}${more}`;
      const rollback = await timed('rollbackMs', () => this.restore(before.targets));
      return { kind: 'failed', stage: 'verify', reason, changes: differences, rollback, durations: done() };
    }
    this.lastVerified = content;
    return { kind: 'applied', changes: differences, durations: done() };
  }

  private read() {
    return fetchDispatcherList(this.options.rpc, this.deadline());
  }

  private async write(content: string): Promise<string | null> {
    try {
      await this.options.transport.write(content);
      return null;
    } catch (e) {
      return (e as Error).message;
    }
  }

  private async reload(): Promise<string | null> {
    try {
      await this.options.rpc.call('dispatcher.reload', [], this.deadline());
      return null;
    } catch (e) {
      return (e as Error).message;
    }
  }

  private async restore(previous: readonly DispatcherTarget[]): Promise<Rollback> {
    const content = formatListedTargets(previous);
    if (content === null) {
      return { kind: 'impossible', reason: 'the previous list has attrs that cannot be written back' };
    }
    const written = await this.write(content);
    if (written !== null) return { kind: 'failed', reason: `write: ${written}` };
    const reloaded = await this.reload();
    if (reloaded !== null) return { kind: 'failed', reason: `reload: ${reloaded}` };
    return { kind: 'reloaded' };
  }

  private deadline(): { deadlineMs?: number } {
    const ms = this.options.rpcDeadlineMs;
    return ms === undefined ? {} : { deadlineMs: ms };
  }
}

function unmanagedSets(
  targets: readonly DispatcherTarget[],
  managed: ReadonlySet<number> | undefined,
): number[] {
  if (managed === undefined) return [];
  return [...new Set(targets.map((t) => t.setId).filter((id) => !managed.has(id)))].sort((a, b) => a - b);
}

/**
 * The pusher as a NodeSync applier: a failed outcome is retried with backoff; in sync and applied
 * are successes. The controller may wrap it further (e.g. the admission limit after the list).
 */
export function dispatcherApplier(pusher: DispatcherPusher): Applier<readonly Destination[], PushOutcome> {
  return async (desired, { force }) => {
    const outcome = await pusher.push(desired, { force });
    if (outcome.kind !== 'failed') return { ok: true, result: outcome };
    return { ok: false, result: outcome, reason: `${outcome.stage}: ${outcome.reason}` };
  };
}
