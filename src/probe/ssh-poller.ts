/**
 * The SSH side of the probe shell: one poller per agentless backend (an `ssh:` section, no agent),
 * each with one SSH session pinned to the backend's host key, probing at the backend's own cadence
 * and handing every verdict to the core. What a probe means is decided in agentless.ts; this file
 * only runs the probes, keeps time and reconnects (the session's backoff).
 *
 * Nothing here may throw into the controller: a missing key file, a refused host key, a host that
 * is down are misses with their cause, visible in the backend's `lastError`.
 */
import { readFileSync } from 'node:fs';
import type { SshConfig } from '../config/types.js';
import { sshCollectorOptions } from '../metrics/ssh-config.js';
import { SshProbeCollection } from '../metrics/ssh-collector.js';
import { SshSession, type SshSessionOptions } from '../util/ssh-session.js';
import {
  judgePoll,
  nextPollDelayMs,
  pollCadence,
  sameSsh,
  sipSocketName,
  type PollCadence,
  type PollOutcome,
} from './agentless.js';
import type { ProbeCore } from './probe-core.js';
import { SUSPECT_SPEEDUP } from './options.js';

export interface SshPollerOptions {
  readonly session?: SshSessionOptions;
  /** Reads the private key file (tests pass their own). */
  readonly readKey?: (path: string) => Buffer;
  readonly jitter?: number;
  readonly suspectSpeedup?: number;
  readonly random?: () => number;
}

class SshPoller {
  private readonly cadence: PollCadence;
  private session: SshSession | null = null;
  private collection: SshProbeCollection | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private running: Promise<void> | null = null;
  private readonly abort = new AbortController();

  constructor(
    private readonly id: string,
    private readonly ssh: SshConfig,
    private readonly core: ProbeCore,
    private readonly options: SshPollerOptions,
  ) {
    this.cadence = pollCadence(ssh);
  }

  start(): void {
    // First probe at once: a backend must not wait a whole interval to start being confirmed.
    this.schedule(0);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.abort.abort();
    this.session?.close();
    await this.running;
  }

  private schedule(delayMs: number): void {
    if (this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.running = this.probe().catch(() => {
        this.core.counters.internalErrors++;
        this.schedule(this.cadence.intervalMs);
      });
    }, delayMs);
  }

  /** Builds the session on first use; the key is read then (and again after a failure to read it). */
  private connect(): SshProbeCollection {
    if (this.collection) return this.collection;
    const options = sshCollectorOptions(this.ssh, this.options.readKey ?? ((p) => readFileSync(p)));
    const session = new SshSession(options.ssh, this.options.session);
    session.start();
    this.session = session;
    this.collection = new SshProbeCollection(session, options);
    return this.collection;
  }

  /**
   * Before a timed probe: lets a connection attempt under way finish, and starts the shell of a new
   * connection with the long deadline. Neither is the backend's answer time (the shell's start is the
   * account's login, seconds on some hosts): timing them made every reconnect, and every switch from
   * an agent to SSH at a reload, cost a backend in rotation its place. Bounded by the connect timeout
   * and the command deadline; a failure here is judged by the probe that follows.
   */
  private async prepare(session: SshSession): Promise<void> {
    await session.settled();
    if (this.closed || session.state !== 'ready' || session.shellStarted) return;
    await session.run('true', this.cadence.commandDeadlineMs, this.abort.signal).catch(() => undefined);
  }

  private async probe(): Promise<void> {
    let collection: SshProbeCollection | null = null;
    let unusable: string | null = null;
    try {
      collection = this.connect();
    } catch (e) {
      unusable = e instanceof Error ? e.message : String(e);
    }
    if (this.session) await this.prepare(this.session);
    if (this.closed) return;
    const started = performance.now();
    // Misses while the probe is still out: one at the timeout, one more per interval after, as
    // unanswered heartbeat probes would count; a late answer then changes nothing.
    let missed = 0;
    let overdue: NodeJS.Timeout | null = null;
    const missAfter = (ms: number) => {
      overdue = setTimeout(() => {
        missed++;
        this.verdict({ ok: false, cause: `no answer within ${Math.round(performance.now() - started)} ms` });
        missAfter(this.cadence.intervalMs);
      }, ms);
    };
    missAfter(this.cadence.timeoutMs);
    let outcome: PollOutcome;
    try {
      if (collection === null) throw new Error(unusable ?? 'no SSH session');
      const sample = await collection.collect(this.cadence.commandDeadlineMs, this.abort.signal);
      outcome = { kind: 'answered', rttMs: performance.now() - started, sample };
    } catch (e) {
      outcome = { kind: 'failed', error: e instanceof Error ? e.message : String(e) };
    } finally {
      if (overdue !== null) clearTimeout(overdue);
    }
    if (this.closed) return;
    const view = this.core.get(this.id);
    if (view && missed === 0) {
      this.verdict(judgePoll(outcome, view.capacity, this.cadence, sipSocketName(this.ssh)));
    }
    const after = this.core.get(this.id);
    this.schedule(
      nextPollDelayMs(this.cadence, {
        suspect: after?.health.kind === 'suspect',
        elapsedMs: performance.now() - started,
        jitter: this.options.jitter ?? 0.1,
        suspectSpeedup: this.options.suspectSpeedup ?? SUSPECT_SPEEDUP,
        random: (this.options.random ?? Math.random)(),
      }),
    );
  }

  private verdict(v: Parameters<ProbeCore['recordPoll']>[1]): void {
    if (this.closed) return;
    try {
      this.core.recordPoll(this.id, v);
    } catch {
      this.core.counters.internalErrors++;
    }
  }
}

/** The pollers of every agentless backend of one core, kept in step with its registry. */
export class SshPollers {
  private readonly pollers = new Map<string, { ssh: SshConfig; poller: SshPoller }>();
  private closed = false;

  constructor(
    private readonly core: ProbeCore,
    private readonly options: SshPollerOptions = {},
  ) {}

  get size(): number {
    return this.pollers.size;
  }

  /** Starts, restarts or stops the poller of `id` to match the core (its onAgentlessChange). */
  sync(id: string): void {
    if (this.closed) return;
    const want = this.core.agentlessSpec(id);
    const have = this.pollers.get(id);
    if (have && sameSsh(want, have.ssh)) return;
    if (have) {
      this.pollers.delete(id);
      void have.poller.close();
    }
    if (!want) return;
    const poller = new SshPoller(id, want, this.core, this.options);
    this.pollers.set(id, { ssh: want, poller });
    poller.start();
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.pollers.values()];
    this.pollers.clear();
    await Promise.all(all.map((p) => p.poller.close()));
  }
}
