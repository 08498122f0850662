/**
 * Replay protection for authenticated heartbeat messages: no I/O, the caller passes the clock.
 *
 * Two independent checks, both needed:
 *  - freshness: the sender's timestamp must be within [now - maxAge, now + maxFuture]. This bounds
 *    how long a captured datagram stays dangerous, and is the only protection right after the
 *    receiver restarts (its windows are empty then).
 *  - a sliding sequence window per peer and boot id (as IPsec/WireGuard do): each sequence number
 *    is accepted once; numbers more than WINDOW_SIZE below the highest seen are refused. Reordering
 *    within the window is tolerated, which UDP needs.
 * A peer that restarts gets a new boot id and a fresh window. The boot ids it left behind are
 * remembered (a few) and refused, so a message captured before the restart cannot be replayed after
 * it; older ones have aged out through the freshness check anyway.
 */
import type { DropReason } from './codec.js';

export interface FreshnessLimits {
  /** Oldest accepted timestamp, ms before now. */
  readonly maxAgeMs: number;
  /** Clock skew tolerated the other way: a timestamp further ahead than this is `future_dated`. */
  readonly maxFutureMs: number;
}

export function checkFreshness(
  ts: number,
  nowWallMs: number,
  limits: FreshnessLimits,
): 'stale' | 'future_dated' | null {
  if (ts > nowWallMs + limits.maxFutureMs) return 'future_dated';
  if (ts < nowWallMs - limits.maxAgeMs) return 'stale';
  return null;
}

/** Number of sequence numbers below the highest seen that can still arrive (reordering tolerance). */
export const WINDOW_SIZE = 128;
const WORDS = WINDOW_SIZE / 32;

/** Sliding window of seen sequence numbers: a 128-bit ring indexed by seq mod 128. */
export class SequenceWindow {
  private top = -1;
  private readonly bits = new Uint32Array(WORDS);

  /** True if `seq` has not been seen and is not below the window. Does not record it. */
  fresh(seq: number): boolean {
    if (seq > this.top) return true;
    if (this.top - seq >= WINDOW_SIZE) return false;
    const i = seq % WINDOW_SIZE;
    return (this.bits[i >>> 5]! & (1 << (i & 31))) === 0;
  }

  /** Records `seq` (call only after `fresh(seq)`). */
  record(seq: number): void {
    if (seq > this.top) {
      if (this.top < 0 || seq - this.top >= WINDOW_SIZE) {
        this.bits.fill(0);
      } else {
        for (let s = this.top + 1; s <= seq; s++) {
          const i = s % WINDOW_SIZE;
          this.bits[i >>> 5]! &= ~(1 << (i & 31));
        }
      }
      this.top = seq;
    }
    const i = seq % WINDOW_SIZE;
    this.bits[i >>> 5]! |= 1 << (i & 31);
  }

  get highest(): number {
    return this.top;
  }
}

/** How many boot ids a peer left behind are remembered (and refused). */
export const RETIRED_BOOTS = 4;

/** Everything a receiver remembers about one peer's message stream. Bounded: one window, four ids. */
export class PeerReplayState {
  private boot: string | null = null;
  private bootFirstTs = 0;
  private window = new SequenceWindow();
  private readonly retired: string[] = [];

  /** The peer's current boot id (null before its first accepted message). */
  get currentBoot(): string | null {
    return this.boot;
  }

  /**
   * Checks an authentic message's (boot, seq, ts) and, if acceptable, records it.
   * Returns null when accepted, else the drop reason. A boot id change is reported through
   * `currentBoot`: the caller compares it before and after to see a restart of the peer.
   */
  admit(
    boot: string,
    seq: number,
    ts: number,
    nowWallMs: number,
    limits: FreshnessLimits,
  ): DropReason | null {
    const f = checkFreshness(ts, nowWallMs, limits);
    if (f !== null) return f;
    if (boot === this.boot) {
      if (!this.window.fresh(seq)) return 'replayed';
      this.window.record(seq);
      return null;
    }
    if (this.retired.includes(boot)) return 'replayed';
    // A new boot cannot have started before the current one did: that would be an old one we no
    // longer remember, replayed.
    if (this.boot !== null && ts < this.bootFirstTs) return 'stale';
    if (this.boot !== null) {
      this.retired.push(this.boot);
      if (this.retired.length > RETIRED_BOOTS) this.retired.shift();
    }
    this.boot = boot;
    this.bootFirstTs = ts;
    this.window = new SequenceWindow();
    this.window.record(seq);
    return null;
  }
}
