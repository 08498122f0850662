/** Turns successive /proc/stat readings into a utilisation figure (the first reading gives none). */
import { cpuUtilisation, type CpuTimes } from './proc-stat.js';

export class CpuTracker {
  private previous: CpuTimes | undefined;

  update(times: CpuTimes): number | null {
    const prev = this.previous;
    this.previous = times;
    return prev ? cpuUtilisation(prev, times) : null;
  }

  reset(): void {
    this.previous = undefined;
  }
}
