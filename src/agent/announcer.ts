/**
 * The agent's side of discovery: `hello` until the controller acknowledges, and again when it goes
 * quiet.
 *
 * - Hellos repeat with backoff (HELLO_BACKOFF) until a `hello_ack` echoes the sequence number of one
 *   of them; an authentic ack that echoes none of ours (meant for an earlier run) is refused.
 * - Once acknowledged, probes are expected: after `silenceMs` without one (20 probe intervals as the
 *   ack announced them, at least 5 s) the controller has probably restarted and forgotten a
 *   self-registered backend, so announcing starts over.
 */
import { backoffDelayMs, type BackoffPolicy } from '../util/backoff.js';
import type { Logger } from '../util/logger.js';

/** Hello repeats: 250 ms, 500 ms, 1 s ... up to 30 s, ±20 %. */
export const HELLO_BACKOFF: BackoffPolicy = { initialMs: 250, maxMs: 30_000, factor: 2, jitter: 0.2 };
/** Least silence after which an acknowledged agent announces itself again. */
export const MIN_SILENCE_MS = 5000;
/** Sequence numbers of sent hellos remembered for matching acks (the latest ones). */
const REMEMBERED_HELLOS = 32;

export interface AnnouncerOptions {
  /** Sends one hello and returns its sequence number. */
  readonly sendHello: () => number;
  readonly logger: Logger;
  readonly backoff?: BackoffPolicy;
  /** Fixed silence before announcing again (default: from the ack's probe interval). */
  readonly silenceMs?: number;
  readonly random?: () => number;
}

export class Announcer {
  private sent: number[] = [];
  private attempt = 0;
  private timer: NodeJS.Timeout | undefined;
  private isAcknowledged = false;
  private silenceMs: number;
  private lastProbeAt = 0;
  private stopped = false;
  private hellos = 0;

  constructor(private readonly options: AnnouncerOptions) {
    this.silenceMs = options.silenceMs ?? MIN_SILENCE_MS;
  }

  get acknowledged(): boolean {
    return this.isAcknowledged;
  }

  get hellosSent(): number {
    return this.hellos;
  }

  start(): void {
    this.announce();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** An authentic hello_ack arrived; false when it answers none of our hellos. */
  acknowledge(echoSeq: number, probeIntervalMs: number): boolean {
    if (!this.sent.includes(echoSeq)) return false;
    this.silenceMs = this.options.silenceMs ?? Math.max(MIN_SILENCE_MS, 20 * probeIntervalMs);
    this.lastProbeAt = performance.now();
    if (!this.isAcknowledged) {
      this.isAcknowledged = true;
      clearTimeout(this.timer);
      this.options.logger.info({ probeIntervalMs, hellos: this.attempt }, 'hello acknowledged');
    }
    return true;
  }

  /** An authentic probe arrived: the controller knows us. */
  probed(): void {
    this.lastProbeAt = performance.now();
  }

  /** Called periodically: starts announcing again after a long silence. */
  checkSilence(): void {
    if (this.stopped || !this.isAcknowledged || performance.now() - this.lastProbeAt <= this.silenceMs)
      return;
    this.options.logger.warn(
      { silenceMs: this.silenceMs },
      'no probes from the controller: announcing again',
    );
    this.isAcknowledged = false;
    this.attempt = 0;
    this.announce();
  }

  private announce(): void {
    if (this.stopped || this.isAcknowledged) return;
    this.sent.push(this.options.sendHello());
    if (this.sent.length > REMEMBERED_HELLOS) this.sent = this.sent.slice(-REMEMBERED_HELLOS);
    this.hellos++;
    const delay = backoffDelayMs(
      this.options.backoff ?? HELLO_BACKOFF,
      this.attempt++,
      (this.options.random ?? Math.random)(),
    );
    this.timer = setTimeout(() => this.announce(), delay);
  }
}
