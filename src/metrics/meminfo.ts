/**
 * Memory pressure from /proc/meminfo: 1 - MemAvailable/MemTotal.
 * MemAvailable (kernel 3.14+) is the kernel's own estimate of memory usable without swapping, which
 * counts reclaimable page cache as free; MemFree alone would call a healthy, cache-rich host full.
 */
import { MetricsParseError, parseCounter } from './parse-error.js';

export interface MemInfo {
  readonly totalKb: number;
  readonly availableKb: number;
}

const SOURCE = '/proc/meminfo';

export function parseMeminfo(text: string): MemInfo {
  let totalKb: number | undefined;
  let availableKb: number | undefined;
  for (const line of text.split('\n')) {
    const m = /^(MemTotal|MemAvailable):\s+(\S+)\s+kB\s*$/.exec(line);
    if (!m) continue;
    const value = parseCounter(m[2]);
    if (value === undefined) throw new MetricsParseError(SOURCE, `bad value in "${line.trim()}"`);
    if (m[1] === 'MemTotal') totalKb = value;
    else availableKb = value;
  }
  if (totalKb === undefined) throw new MetricsParseError(SOURCE, 'no MemTotal line');
  if (availableKb === undefined)
    throw new MetricsParseError(SOURCE, 'no MemAvailable line (kernel older than 3.14?)');
  if (totalKb === 0) throw new MetricsParseError(SOURCE, 'MemTotal is 0');
  return { totalKb, availableKb };
}

export function memUsedRatio(mem: MemInfo): number {
  return Math.min(1, Math.max(0, 1 - mem.availableKb / mem.totalKb));
}
