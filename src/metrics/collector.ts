/** The contract between a metric source and the Sampler that runs it. */
import type { MeasuredField, PartialMeasurements } from './types.js';

/** How often a collector samples and how long one sample may take. */
export interface Cadence {
  readonly intervalMs: number;
  readonly timeoutMs: number;
}

export interface Sample {
  /** Values measured this time; a field of the collector left out of it becomes null. */
  readonly values: PartialMeasurements;
  /** Why some fields are missing while others were measured (one line each). */
  readonly problems?: readonly string[];
}

export interface Collector {
  /** Short and stable: it names the collector in logs and in status output. */
  readonly name: string;
  /** Every field this collector owns: all of them become null when it fails. */
  readonly fields: readonly MeasuredField[];
  /** Time from the start of one sample to the start of the next (samples never overlap). */
  readonly intervalMs: number;
  /** A sample not finished by then counts as failed; its late result is thrown away. */
  readonly timeoutMs: number;
  /** Takes one sample; rejects when nothing could be measured. `signal` fires at the timeout. */
  collect(signal: AbortSignal): Promise<Sample>;
  /**
   * While a sample is in flight for `elapsedMs`: values better than the last stored ones, if any.
   * The OPTIONS collector uses it to report "at least elapsedMs" for a ping that has not come back
   * yet, so a probe sees a stalled Kamailio before the ping times out.
   */
  inFlight?(elapsedMs: number): PartialMeasurements | undefined;
  /** Releases sockets and connections. */
  close?(): void | Promise<void>;
}
