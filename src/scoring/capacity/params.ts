/**
 * Tunables of the learned-capacity estimator (estimator.ts). Defaults live in the controller config
 * schema (`scoring.capacity`, each with its reason in a `$comment`); this module reads no file.
 */
export interface CapacityParams {
  /** Learn each backend's capacity from what it serves; false = the configured capacity is taken as it is. */
  readonly learn: boolean;
  /** The receive queue at or above this in every report for standing_window_ms stands. */
  readonly queue_standing_bytes: number;
  /** A queue at or above this in two reports in a row is a surge: the backend is past its capacity now. */
  readonly queue_surge_bytes: number;
  /** A queue over queue_standing_bytes in every report for this long stands (below it: a knee's noise). */
  readonly standing_window_ms: number;
  /** While the queue stands, half-life of the estimate's move to the served rate. */
  readonly track_half_life_ms: number;
  /**
   * Half-life of the served rate (bounds the estimate from below, less a margin of its counting noise
   * that shrinks as 1/sqrt(h); decides a probe) and of the queue and the round trip (gate a probe);
   * also how long after suspect counts (retransmit_rtt_ms) the served rate is not read.
   */
  readonly served_half_life_ms: number;
  /**
   * Retransmissions: at or above this standing OPTIONS round trip (or with any drop) the request
   * counters may count retransmitted requests, so a served rate above the estimate is not believed.
   */
  readonly retransmit_rtt_ms: number;
  /** The most the request counters may over-count the served rate by retransmissions. */
  readonly retransmit_max_inflation: number;
  /** Probe upward when the backend serves at least this fraction of its estimate with no queue. */
  readonly probe_above_ratio: number;
  /** Probe only while the receive queue, smoothed, is below this (no queue forming: headroom left). */
  readonly quiet_queue_bytes: number;
  /**
   * Probe only while the OPTIONS round trip, smoothed over served_half_life_ms, is below this, ms:
   * requests already wait there (the bytes gate is blind to a slow backend's few queued calls).
   */
  readonly quiet_wait_ms: number;
  /** Probe speed: the estimate grows by this fraction of itself per second. */
  readonly probe_per_s: number;
  /** No probe until this long after the queue last stood (the signals lag the weights). */
  readonly probe_delay_ms: number;
  /** The estimate stays within [min_ratio, max_ratio] × the prior (configured capacity). */
  readonly min_ratio: number;
  readonly max_ratio: number;
}

/** The problems with a CapacityParams, as `capacity.<field> ...` strings (empty: valid). */
export function capacityParamsProblems(c: CapacityParams | undefined): string[] {
  if (c === undefined || c === null || typeof c !== 'object') return ['capacity missing'];
  const problems: string[] = [];
  const fin = (v: number) => typeof v === 'number' && Number.isFinite(v);
  const need = (ok: boolean, what: string) => {
    if (!ok) problems.push(`capacity.${what}`);
  };
  need(typeof c.learn === 'boolean', 'learn must be a boolean');
  need(fin(c.queue_standing_bytes) && c.queue_standing_bytes > 0, 'queue_standing_bytes must be > 0');
  need(
    fin(c.queue_surge_bytes) && c.queue_surge_bytes >= c.queue_standing_bytes,
    'queue_surge_bytes must be >= queue_standing_bytes (raise it with queue_standing_bytes)',
  );
  need(fin(c.standing_window_ms) && c.standing_window_ms >= 0, 'standing_window_ms must be >= 0');
  need(fin(c.track_half_life_ms) && c.track_half_life_ms >= 0, 'track_half_life_ms must be >= 0');
  need(fin(c.served_half_life_ms) && c.served_half_life_ms >= 0, 'served_half_life_ms must be >= 0');
  need(fin(c.retransmit_rtt_ms) && c.retransmit_rtt_ms > 0, 'retransmit_rtt_ms must be > 0');
  need(
    fin(c.retransmit_max_inflation) && c.retransmit_max_inflation >= 1,
    'retransmit_max_inflation must be >= 1',
  );
  need(
    fin(c.probe_above_ratio) && c.probe_above_ratio > 0 && c.probe_above_ratio <= 1,
    'probe_above_ratio must be in (0, 1]',
  );
  need(fin(c.quiet_queue_bytes) && c.quiet_queue_bytes > 0, 'quiet_queue_bytes must be > 0');
  need(fin(c.quiet_wait_ms) && c.quiet_wait_ms > 0, 'quiet_wait_ms must be > 0');
  need(fin(c.probe_per_s) && c.probe_per_s >= 0, 'probe_per_s must be >= 0');
  need(fin(c.probe_delay_ms) && c.probe_delay_ms >= 0, 'probe_delay_ms must be >= 0');
  need(
    fin(c.min_ratio) && fin(c.max_ratio) && c.min_ratio > 0 && c.min_ratio <= 1 && c.max_ratio >= 1,
    'need 0 < min_ratio <= 1 <= max_ratio',
  );
  return problems;
}
