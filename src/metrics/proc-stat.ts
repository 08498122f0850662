/**
 * Host CPU utilisation from two readings of /proc/stat.
 *
 * The aggregate `cpu` line counts jiffies since boot per state. Busy time is everything except idle
 * and iowait (a CPU waiting on I/O could run other work). guest and guest_nice are already included
 * in user and nice, so they are left out of the total to avoid counting them twice.
 */
import { MetricsParseError, parseCounter } from './parse-error.js';

export interface CpuTimes {
  /** Jiffies spent on anything but idle/iowait since boot. */
  readonly busy: number;
  /** All jiffies since boot (without the guest columns). */
  readonly total: number;
}

const SOURCE = '/proc/stat';

export function parseProcStat(text: string): CpuTimes {
  const line = text.split('\n').find((l) => l.startsWith('cpu '));
  if (line === undefined) throw new MetricsParseError(SOURCE, 'no aggregate "cpu" line');
  const fields = line.trim().split(/\s+/).slice(1);
  // user nice system idle [iowait irq softirq steal guest guest_nice]; kernels since 2.6.33 give 10.
  if (fields.length < 4)
    throw new MetricsParseError(SOURCE, `"cpu" line has ${fields.length} columns, need 4`);
  const values = fields.slice(0, 8).map(parseCounter);
  if (values.some((v) => v === undefined)) {
    throw new MetricsParseError(SOURCE, `"cpu" line has a non-numeric column: ${line.trim()}`);
  }
  const [user, nice, system, idle, iowait = 0, irq = 0, softirq = 0, steal = 0] = values as number[];
  const idleAll = (idle ?? 0) + iowait;
  const total = (user ?? 0) + (nice ?? 0) + (system ?? 0) + idleAll + irq + softirq + steal;
  return { busy: total - idleAll, total };
}

/**
 * Busy fraction (0..1) between two readings; null when no time passed or the counters went back
 * (a reboot between SSH readings, CPU hot-unplug), where no honest figure exists.
 */
export function cpuUtilisation(prev: CpuTimes, cur: CpuTimes): number | null {
  const dTotal = cur.total - prev.total;
  const dBusy = cur.busy - prev.busy;
  if (dTotal <= 0 || dBusy < 0) return null;
  return Math.min(1, dBusy / dTotal);
}
