/**
 * Datagrams the agent refused, counted by reason (the codec's closed set). Counting allocates
 * nothing per datagram; a flood of garbage costs a header check and an increment each.
 */
import { DROP_REASONS, type DropReason } from '../heartbeat/codec.js';

export type DropCounts = Readonly<Record<DropReason, number>>;

export class DropCounters {
  private readonly counts = new Map<DropReason, number>(DROP_REASONS.map((r) => [r, 0]));
  private sinceReport = 0;

  count(reason: DropReason): void {
    this.counts.set(reason, (this.counts.get(reason) ?? 0) + 1);
    this.sinceReport++;
  }

  total(): number {
    let n = 0;
    for (const v of this.counts.values()) n += v;
    return n;
  }

  snapshot(): DropCounts {
    return Object.fromEntries(this.counts) as Record<DropReason, number>;
  }

  /** Drops since the last call (for a periodic log line that stays quiet when nothing happens). */
  takeRecent(): number {
    const n = this.sinceReport;
    this.sinceReport = 0;
    return n;
  }
}
