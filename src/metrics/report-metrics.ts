/**
 * The latest measurements as a report's metrics, made safe for the wire: whatever a collector
 * produced, the result passes the heartbeat schema (ratios in 0..1, counts as non-negative integers,
 * no NaN or Infinity), so encoding a report can never fail on a measured value.
 */
import type { ReportMetrics } from '../heartbeat/messages.js';
import type { Measurements } from './types.js';

const GAUGE_MAX = 1e12;

function ratio(v: number | null): number | null {
  return v === null || !Number.isFinite(v) ? null : Math.min(1, Math.max(0, v));
}

function gauge(v: number | null): number | null {
  return v === null || !Number.isFinite(v) ? null : Math.min(GAUGE_MAX, Math.max(0, v));
}

function count(v: number | null): number | null {
  return v === null || !Number.isFinite(v)
    ? null
    : Math.min(Number.MAX_SAFE_INTEGER, Math.max(0, Math.round(v)));
}

export function toReportMetrics(m: Measurements, capacity: number, draining: boolean): ReportMetrics {
  return {
    cpu_util: ratio(m.cpu_util),
    mem_used_ratio: ratio(m.mem_used_ratio),
    load1: gauge(m.load1),
    tm_current: count(m.tm_current),
    dialogs_active: count(m.dialogs_active),
    req_rate: gauge(m.req_rate),
    err5xx_rate: gauge(m.err5xx_rate),
    udp_rx_queue_bytes: count(m.udp_rx_queue_bytes),
    udp_drops: count(m.udp_drops),
    options_rtt_ms: gauge(m.options_rtt_ms),
    capacity,
    draining,
  };
}
