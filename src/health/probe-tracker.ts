/**
 * Per-backend probe bookkeeping: which probes are outstanding, which answers match, which probes
 * missed their deadline, and the round-trip estimate (RFC 6298 smoothing). Pure: times are passed in
 * (monotonic ms). Memory is fixed: a small ring of outstanding probes.
 *
 * A probe is *answered* by a report echoing its sequence number before its deadline, and a report
 * answering a later probe settles every earlier one too (the agent is evidently alive; the earlier
 * probe or its answer was lost or reordered). A probe whose deadline passes unanswered is a *miss*.
 * An answer after the deadline is *late*: the miss stands (a backend that answers slower than the
 * timeout is not healthy), but the RTT sample is kept, so operators see how slow it is.
 */

/** Outstanding probes remembered per backend; older ones fall off as missed. */
export const MAX_OUTSTANDING = 8;

export type AnswerResult =
  | { readonly kind: 'answered'; readonly rttMs: number }
  | { readonly kind: 'late'; readonly rttMs: number }
  /** Echo of no probe we remember (duplicate, or older than the ring). */
  | { readonly kind: 'unmatched' };

export class ProbeTracker {
  private readonly seqs = new Float64Array(MAX_OUTSTANDING);
  private readonly sentAt = new Float64Array(MAX_OUTSTANDING);
  private readonly deadline = new Float64Array(MAX_OUTSTANDING);
  /** Ring: entries [head, head+count) are outstanding, oldest first. */
  private head = 0;
  private count = 0;
  /** Recently expired probes, so a late answer still gives an RTT sample. */
  private readonly lateSeqs = new Float64Array(MAX_OUTSTANDING).fill(-1);
  private readonly lateSentAt = new Float64Array(MAX_OUTSTANDING);
  private lateNext = 0;

  srttMs = NaN;
  rttvarMs = NaN;
  lastRttMs = NaN;

  get outstanding(): number {
    return this.count;
  }

  /** Earliest deadline of an outstanding probe, or Infinity. */
  get nextDeadline(): number {
    return this.count === 0 ? Infinity : this.deadline[this.head]!;
  }

  /** Records a sent probe. Returns the number of probes pushed out of a full ring (counted as missed). */
  sent(seq: number, at: number, timeoutMs: number): number {
    let evicted = 0;
    if (this.count === MAX_OUTSTANDING) {
      this.retireOldest();
      evicted = 1;
    }
    const i = (this.head + this.count) % MAX_OUTSTANDING;
    this.seqs[i] = seq;
    this.sentAt[i] = at;
    this.deadline[i] = at + timeoutMs;
    this.count++;
    return evicted;
  }

  /** Processes an authentic report echoing `echoSeq`, received at `at`. */
  answer(echoSeq: number, at: number): AnswerResult {
    for (let n = 0; n < this.count; n++) {
      const i = (this.head + n) % MAX_OUTSTANDING;
      if (this.seqs[i] !== echoSeq) continue;
      const rtt = at - this.sentAt[i]!;
      // Settle this probe and every older one.
      this.head = (i + 1) % MAX_OUTSTANDING;
      this.count -= n + 1;
      this.sample(rtt);
      return { kind: 'answered', rttMs: rtt };
    }
    for (let i = 0; i < MAX_OUTSTANDING; i++) {
      if (this.lateSeqs[i] === echoSeq) {
        this.lateSeqs[i] = -1;
        const rtt = at - this.lateSentAt[i]!;
        this.lastRttMs = rtt;
        return { kind: 'late', rttMs: rtt };
      }
    }
    return { kind: 'unmatched' };
  }

  /** Expires probes whose deadline is ≤ `at`; returns how many missed. */
  expire(at: number): number {
    let missed = 0;
    while (this.count > 0 && this.deadline[this.head]! <= at) {
      this.retireOldest();
      missed++;
    }
    return missed;
  }

  private retireOldest(): void {
    this.lateSeqs[this.lateNext] = this.seqs[this.head]!;
    this.lateSentAt[this.lateNext] = this.sentAt[this.head]!;
    this.lateNext = (this.lateNext + 1) % MAX_OUTSTANDING;
    this.head = (this.head + 1) % MAX_OUTSTANDING;
    this.count--;
  }

  /** One round-trip sample (also from an agentless probe, which has no probe sequence to match). */
  sample(rtt: number): void {
    this.lastRttMs = rtt;
    if (Number.isNaN(this.srttMs)) {
      this.srttMs = rtt;
      this.rttvarMs = rtt / 2;
    } else {
      this.rttvarMs = 0.75 * this.rttvarMs + 0.25 * Math.abs(this.srttMs - rtt);
      this.srttMs = 0.875 * this.srttMs + 0.125 * rtt;
    }
  }
}
