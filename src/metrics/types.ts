/**
 * What an agent (or the agentless SSH collector) measures about one backend. The report's shape is
 * the heartbeat protocol's (src/heartbeat/messages.ts, agreed in HEARTBEAT-INTERFACE.md); one
 * definition, imported here. Every measured field is `number | null`: null means the collector
 * behind it failed or has no value yet (a degraded report, never a stopped agent).
 */
import { METRIC_FIELDS, type ReportMetrics } from '../heartbeat/messages.js';

export type { ReportMetrics };

/** The fields a collector measures (everything except the configured capacity and draining flag). */
export type MeasuredField = Exclude<keyof ReportMetrics, 'capacity' | 'draining'>;

export type Measurements = { [K in MeasuredField]: number | null };

/** A collector's result: values for some of its fields (a field it leaves out becomes null). */
export type PartialMeasurements = Partial<Measurements>;

export const MEASURED_FIELDS: readonly MeasuredField[] = METRIC_FIELDS;

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
