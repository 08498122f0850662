/** Request and 5xx rates from successive Kamailio counter readings (the first reading gives none). */
import type { KamailioCounters } from './kamailio-stats.js';
import { ratePerSecond } from './rates.js';

export interface KamailioRates {
  readonly req_rate: number | null;
  readonly err5xx_rate: number | null;
}

export class KamailioRateTracker {
  private previous: { atMs: number; counters: KamailioCounters } | undefined;

  /** `atMs` from a monotonic clock (performance.now()). */
  update(counters: KamailioCounters, atMs: number): KamailioRates {
    const prev = this.previous;
    this.previous = { atMs, counters };
    if (!prev) return { req_rate: null, err5xx_rate: null };
    return {
      req_rate: ratePerSecond(
        { atMs: prev.atMs, value: prev.counters.sipRequests },
        { atMs, value: counters.sipRequests },
      ),
      err5xx_rate: ratePerSecond(
        { atMs: prev.atMs, value: prev.counters.replies5xx },
        { atMs, value: counters.replies5xx },
      ),
    };
  }

  /** Forget the last reading (after a failed one, so a rate never spans an unknown gap silently). */
  reset(): void {
    this.previous = undefined;
  }
}
