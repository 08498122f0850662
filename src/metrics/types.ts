/**
 * What an agent (or the agentless SSH collector) measures about one backend.
 *
 * Local declaration of the report's metrics, as agreed in HEARTBEAT-INTERFACE.md; the wire codec in
 * src/heartbeat/ carries exactly these fields. Every measured field is `number | null`: null means the
 * collector behind it failed or has no value yet (a degraded report, never a stopped agent).
 */
export interface ReportMetrics {
  /** 0..1, host CPU busy fraction from /proc/stat deltas. */
  cpu_util: number | null;
  /** 0..1, 1 - MemAvailable/MemTotal. */
  mem_used_ratio: number | null;
  /** 1-minute load average. */
  load1: number | null;
  /** Transactions in memory (tm.stats current). */
  tm_current: number | null;
  /** Active dialogs (dlg.stats_active all, or dialog.active_dialogs). */
  dialogs_active: number | null;
  /** SIP requests received per second. */
  req_rate: number | null;
  /** 5xx replies sent per second. */
  err5xx_rate: number | null;
  /** Kernel receive queue of the SIP UDP socket, bytes (work waiting before Kamailio reads it). */
  udp_rx_queue_bytes: number | null;
  /** Drops counter of that socket, cumulative as the kernel gives it. */
  udp_drops: number | null;
  /** Round trip of a SIP OPTIONS sent to the local Kamailio, milliseconds. */
  options_rtt_ms: number | null;
  /** Configured capacity, calls per second (> 0). */
  capacity: number;
  draining: boolean;
}

/** The fields a collector measures (everything except the configured capacity and draining flag). */
export type MeasuredField = Exclude<keyof ReportMetrics, 'capacity' | 'draining'>;

export type Measurements = { [K in MeasuredField]: number | null };

/** A collector's result: values for some of its fields (a field it leaves out becomes null). */
export type PartialMeasurements = Partial<Measurements>;

export const MEASURED_FIELDS: readonly MeasuredField[] = [
  'cpu_util',
  'mem_used_ratio',
  'load1',
  'tm_current',
  'dialogs_active',
  'req_rate',
  'err5xx_rate',
  'udp_rx_queue_bytes',
  'udp_drops',
  'options_rtt_ms',
];

export function emptyMeasurements(): Measurements {
  return {
    cpu_util: null,
    mem_used_ratio: null,
    load1: null,
    tm_current: null,
    dialogs_active: null,
    req_rate: null,
    err5xx_rate: null,
    udp_rx_queue_bytes: null,
    udp_drops: null,
    options_rtt_ms: null,
  };
}
