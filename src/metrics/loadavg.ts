/** /proc/loadavg: "0.45 0.25 0.11 1/85 4567" — three load averages, runnable/total tasks, last PID. */
import { MetricsParseError } from './parse-error.js';

export interface LoadAverage {
  readonly load1: number;
  readonly load5: number;
  readonly load15: number;
}

const SOURCE = '/proc/loadavg';
const LOADAVG = /^(\d+\.\d+) (\d+\.\d+) (\d+\.\d+) \d+\/\d+ \d+\s*$/;

export function parseLoadavg(text: string): LoadAverage {
  const m = LOADAVG.exec(text);
  if (!m) throw new MetricsParseError(SOURCE, `unexpected content: ${JSON.stringify(text.slice(0, 80))}`);
  return { load1: Number(m[1]), load5: Number(m[2]), load15: Number(m[3]) };
}
