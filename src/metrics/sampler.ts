/**
 * Runs collectors, each on its own cadence, and keeps the latest value of every field.
 *
 * `snapshot()` is synchronous and cheap: an agent answers a probe from it at once and never waits for
 * a collector. A collector that throws or overruns its timeout sets its fields to null and is tried
 * again at its next turn; nothing a collector does can stop the others or the sampler.
 */
import type { Collector, Sample } from './collector.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { emptyMeasurements, type Measurements, type PartialMeasurements } from './types.js';

export interface CollectorStatus {
  readonly name: string;
  /** 'ok': last sample measured every field; 'degraded': some fields; 'failed': none; 'pending': no sample yet. */
  readonly state: 'pending' | 'ok' | 'degraded' | 'failed';
  /** Why the last sample was degraded or failed. */
  readonly problems: readonly string[];
  readonly samples: number;
  readonly failures: number;
}

class DeadlineExceeded extends Error {
  constructor(name: string, ms: number) {
    super(`${name}: no sample within ${ms} ms`);
  }
}

interface Slot {
  readonly collector: Collector;
  status: CollectorStatus;
  /** performance.now() when the sample in flight started; undefined when idle. */
  inFlightSince: number | undefined;
  timer: NodeJS.Timeout | undefined;
  running: Promise<void> | undefined;
  /** Ends the sample in flight (on its timeout, or on stop). */
  abort: AbortController | undefined;
}

export class Sampler {
  private readonly slots: Slot[];
  private readonly values: Measurements = emptyMeasurements();
  private started = false;
  private stopped = false;

  constructor(
    collectors: readonly Collector[],
    private readonly logger: Logger = silentLogger,
  ) {
    const owner = new Map<string, string>();
    for (const c of collectors) {
      for (const f of c.fields) {
        const other = owner.get(f);
        if (other) throw new Error(`field ${f} is claimed by both ${other} and ${c.name}`);
        owner.set(f, c.name);
      }
    }
    this.slots = collectors.map((collector) => ({
      collector,
      status: { name: collector.name, state: 'pending', problems: [], samples: 0, failures: 0 },
      inFlightSince: undefined,
      timer: undefined,
      running: undefined,
      abort: undefined,
    }));
  }

  /** Starts every collector at once; each then follows its own interval. */
  start(): void {
    if (this.started) return;
    this.started = true;
    for (const slot of this.slots) this.run(slot);
  }

  /** The latest figures; fields that no collector has measured (or whose collector failed) are null. */
  snapshot(): Measurements {
    const out: Measurements = { ...this.values };
    const now = performance.now();
    for (const slot of this.slots) {
      if (slot.inFlightSince === undefined || !slot.collector.inFlight) continue;
      const better = slot.collector.inFlight(now - slot.inFlightSince);
      if (better) this.merge(out, slot.collector, better, false);
    }
    return out;
  }

  status(): CollectorStatus[] {
    return this.slots.map((s) => s.status);
  }

  /** Stops scheduling, ends samples in flight at once and closes the collectors. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const slot of this.slots) {
      clearTimeout(slot.timer);
      slot.abort?.abort();
    }
    await Promise.all(this.slots.map((s) => s.running));
    await Promise.all(this.slots.map(async (s) => s.collector.close?.()));
  }

  private run(slot: Slot): void {
    if (this.stopped) return;
    const started = performance.now();
    slot.inFlightSince = started;
    slot.running = this.sampleOnce(slot).finally(() => {
      slot.inFlightSince = undefined;
      slot.running = undefined;
      if (this.stopped) return;
      const wait = Math.max(0, slot.collector.intervalMs - (performance.now() - started));
      slot.timer = setTimeout(() => this.run(slot), wait);
      slot.timer.unref();
    });
  }

  private async sampleOnce(slot: Slot): Promise<void> {
    const { collector } = slot;
    const abort = new AbortController();
    slot.abort = abort;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new DeadlineExceeded(collector.name, collector.timeoutMs));
        abort.abort();
      }, collector.timeoutMs);
      // stop() aborts: settle now rather than wait for a collector that ignores its signal.
      abort.signal.addEventListener('abort', () => reject(new Error(`${collector.name}: stopped`)), {
        once: true,
      });
    });
    let sample: Sample | undefined;
    let failure: unknown;
    try {
      // Promise.resolve().then: a collector that throws synchronously is a failed sample too.
      sample = await Promise.race([Promise.resolve().then(() => collector.collect(abort.signal)), deadline]);
    } catch (e) {
      failure = e;
    } finally {
      clearTimeout(timer);
      slot.abort = undefined;
    }
    if (this.stopped) return;
    this.record(slot, sample, failure);
  }

  private record(slot: Slot, sample: Sample | undefined, failure: unknown): void {
    const { collector } = slot;
    const values = sample?.values ?? {};
    this.merge(this.values, collector, values, true);
    const measured = collector.fields.filter((f) => typeof values[f] === 'number').length;
    const problems =
      failure !== undefined
        ? [failure instanceof Error ? failure.message : String(failure)]
        : [
            ...(sample?.problems ?? []),
            ...(measured === 0 && collector.fields.length > 0 ? ['no value measured'] : []),
          ];
    const state =
      failure !== undefined || measured === 0
        ? 'failed'
        : measured < collector.fields.length || problems.length > 0
          ? 'degraded'
          : 'ok';
    const previous = slot.status;
    slot.status = {
      name: collector.name,
      state,
      problems,
      samples: previous.samples + 1,
      failures: previous.failures + (state === 'failed' ? 1 : 0),
    };
    // Log changes, not every sample: a collector failing every 200 ms must not flood the log.
    if (state !== previous.state || problems.join('|') !== previous.problems.join('|')) {
      const entry = { collector: collector.name, state, problems };
      if (state === 'ok') this.logger.info(entry, `collector ${collector.name} ok`);
      else this.logger.warn(entry, `collector ${collector.name} ${state}`);
    }
  }

  /** Writes the collector's fields into `target`; with `nullMissing`, a field it did not give becomes null. */
  private merge(
    target: Measurements,
    collector: Collector,
    values: PartialMeasurements,
    nullMissing: boolean,
  ): void {
    for (const field of collector.fields) {
      const v = values[field];
      if (typeof v === 'number' && Number.isFinite(v)) target[field] = v;
      else if (nullMissing) target[field] = null;
    }
  }
}
