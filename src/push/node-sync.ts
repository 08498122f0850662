/**
 * Keeps one node (an LB) converging on the latest desired state, whatever applying it involves
 * (the controller composes a dispatcher push with an admission-limit push into one applier).
 *
 * Rules, and why:
 * - latest wins: the controller produces a new desired state every cycle; while one apply is in
 *   flight only the newest waiting state is applied next (intermediate ones are stale by then);
 * - one apply in flight per node: two concurrent list writes and reloads could finish in either order;
 * - a failed apply is retried with exponential backoff and jitter; a new desired state arriving
 *   meanwhile replaces what the retry applies but does not cut the wait (the node is what failed,
 *   not the state, and an LB that is down must not be hit at the controller's cadence);
 * - nothing is thrown to the caller: outcomes go to `onOutcome` and `status()`;
 * - `force` (a reconcile) survives coalescing: a newer state submitted without it still reads the LB.
 */
import { backoffDelayMs, type BackoffPolicy } from '../util/backoff.js';

/** What an applier reports; `ok: false` gets retried with backoff. */
export type ApplyResult<R> =
  | { readonly ok: true; readonly result: R }
  | { readonly ok: false; readonly result: R | null; readonly reason: string };

export interface ApplyContext {
  /** Skip shortcuts (caches) and check the node itself. */
  readonly force: boolean;
  /** 0 for a fresh submission, n for the n-th retry after consecutive failures. */
  readonly attempt: number;
}

export type Applier<T, R> = (desired: T, context: ApplyContext) => Promise<ApplyResult<R>>;

export type SyncOutcome<R> = ApplyResult<R> & {
  readonly node: string;
  /** When the apply finished (clock of the options, ms). */
  readonly at: number;
  readonly durationMs: number;
};

export type NodeSyncPhase =
  | { readonly phase: 'idle' }
  | { readonly phase: 'applying'; readonly since: number }
  | { readonly phase: 'waiting_retry'; readonly nextRetryAt: number }
  | { readonly phase: 'closed' };

export type NodeSyncStatus<R> = NodeSyncPhase & {
  readonly node: string;
  /** A desired state is waiting for the in-flight apply or the retry timer. */
  readonly pending: boolean;
  readonly lastOutcome: SyncOutcome<R> | null;
  readonly lastSuccessAt: number | null;
  readonly consecutiveFailures: number;
  readonly applies: number;
};

/**
 * Retries of a failed apply: 250 ms doubling to 1 s. An LB that comes back gets its weights within a
 * second (a 10 s cap left it up to 10 s on stale weights after an outage), and a dead one costs one
 * refused connection a second: no spin (measured: 38 attempts and 0.84 s of CPU over a 30 s cut).
 * The one default: the controller's syncs use it, tests pass faster ones.
 */
export const NODE_SYNC_BACKOFF: BackoffPolicy = { initialMs: 250, maxMs: 1000, factor: 2, jitter: 0.2 };

export interface NodeSyncOptions<T, R> {
  readonly node: string;
  readonly apply: Applier<T, R>;
  readonly backoff?: BackoffPolicy;
  readonly onOutcome?: (outcome: SyncOutcome<R>, status: NodeSyncStatus<R>) => void;
  /** Wall clock for status times (default Date.now). */
  readonly now?: () => number;
  /** Jitter source in [0, 1) (default Math.random). */
  readonly random?: () => number;
}

export interface SubmitOptions {
  readonly force?: boolean;
}

interface PendingSubmit<T> {
  readonly desired: T;
  readonly force: boolean;
}

export class NodeSync<T, R> {
  readonly node: string;
  private pending: PendingSubmit<T> | null = null;
  /** The state being retried after a failure, until a newer one replaces it or it succeeds. */
  private failed: PendingSubmit<T> | null = null;
  private inFlight: Promise<void> | null = null;
  private inFlightSince = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private nextRetryAt: number | null = null;
  private closed = false;
  private lastOutcome: SyncOutcome<R> | null = null;
  private lastSuccessAt: number | null = null;
  private failures = 0;
  private applies = 0;
  private readonly now: () => number;
  private readonly random: () => number;

  constructor(private readonly options: NodeSyncOptions<T, R>) {
    this.node = options.node;
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
  }

  /** Queues `desired` to be applied (replacing any waiting state); never throws. */
  submit(desired: T, options: SubmitOptions = {}): void {
    if (this.closed) return;
    const force = (options.force ?? false) || (this.pending?.force ?? false) || (this.failed?.force ?? false);
    this.pending = { desired, force };
    this.failed = null;
    this.kick();
  }

  status(): NodeSyncStatus<R> {
    const common = {
      node: this.node,
      pending: this.pending !== null || this.failed !== null,
      lastOutcome: this.lastOutcome,
      lastSuccessAt: this.lastSuccessAt,
      consecutiveFailures: this.failures,
      applies: this.applies,
    };
    if (this.closed) return { phase: 'closed', ...common };
    if (this.inFlight) return { phase: 'applying', since: this.inFlightSince, ...common };
    if (this.nextRetryAt !== null)
      return { phase: 'waiting_retry', nextRetryAt: this.nextRetryAt, ...common };
    return { phase: 'idle', ...common };
  }

  /** Stops the retry timer, drops waiting states and waits for the apply in flight to finish. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.nextRetryAt = null;
    this.pending = null;
    this.failed = null;
    await this.inFlight;
  }

  private kick(): void {
    if (this.closed || this.inFlight || this.nextRetryAt !== null) return;
    const next = this.pending ?? this.failed;
    if (!next) return;
    this.pending = null;
    this.failed = null;
    this.inFlightSince = this.now();
    this.inFlight = this.run(next).then((outcome) => {
      this.inFlight = null;
      this.notify(outcome);
      this.kick();
    });
  }

  /** Applies one state and records the outcome; never rejects. */
  private async run(job: PendingSubmit<T>): Promise<SyncOutcome<R>> {
    const start = this.now();
    let result: ApplyResult<R>;
    try {
      result = await this.options.apply(job.desired, { force: job.force, attempt: this.failures });
    } catch (e) {
      // An applier should not throw; if it does, it is a failure like any other.
      result = { ok: false, result: null, reason: `applier threw: ${(e as Error)?.message ?? String(e)}` };
    }
    this.applies++;
    const at = this.now();
    const outcome: SyncOutcome<R> = { ...result, node: this.node, at, durationMs: at - start };
    this.lastOutcome = outcome;
    if (result.ok) {
      this.failures = 0;
      this.lastSuccessAt = at;
    } else {
      // Retry this state unless a newer one arrived meanwhile; keep its force for the retry.
      if (!this.pending) this.failed = job;
      this.scheduleRetry();
    }
    return outcome;
  }

  private scheduleRetry(): void {
    if (this.closed) return;
    const policy = this.options.backoff ?? NODE_SYNC_BACKOFF;
    const delay = backoffDelayMs(policy, this.failures, this.random());
    this.failures++;
    this.nextRetryAt = this.now() + delay;
    this.retryTimer = setTimeout(() => {
      this.nextRetryAt = null;
      this.kick();
    }, delay);
    // A pending retry alone must not keep a stopping process alive.
    this.retryTimer.unref();
  }

  private notify(outcome: SyncOutcome<R>): void {
    try {
      this.options.onOutcome?.(outcome, this.status());
    } catch {
      // A faulty listener must not stop the node converging.
    }
  }
}
