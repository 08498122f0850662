/**
 * The controller's calendar (node-cron): the reconcile that re-reads every LB and repairs drift, and
 * the operators' maintenance windows (drain a named backend, undrain it later). Planning is pure
 * (config -> list of jobs); `CronSchedules` only runs them. A job that is still running when its next
 * turn comes is skipped rather than stacked (`noOverlap`): a slow or unreachable LB must not pile up
 * reconciles.
 */
import { createTask, type ScheduledTask } from 'node-cron';
import type { SchedulesConfig } from '../config/types.js';
import type { Logger } from '../util/logger.js';

export type ScheduledAction =
  | { readonly kind: 'reconcile' }
  | { readonly kind: 'drain'; readonly backend: string }
  | { readonly kind: 'undrain'; readonly backend: string };

export interface PlannedJob {
  readonly name: string;
  readonly expression: string;
  readonly action: ScheduledAction;
}

export function planJobs(cfg: SchedulesConfig): PlannedJob[] {
  const jobs: PlannedJob[] = [
    { name: 'reconcile', expression: cfg.reconcile, action: { kind: 'reconcile' } },
  ];
  for (const m of cfg.maintenance) {
    if (m.drain !== undefined) {
      jobs.push({
        name: `drain ${m.backend}`,
        expression: m.drain,
        action: { kind: 'drain', backend: m.backend },
      });
    }
    if (m.undrain !== undefined) {
      jobs.push({
        name: `undrain ${m.backend}`,
        expression: m.undrain,
        action: { kind: 'undrain', backend: m.backend },
      });
    }
  }
  return jobs;
}

export interface JobStatus {
  readonly name: string;
  readonly expression: string;
  readonly nextRun: string | null;
  readonly lastRun: string | null;
  readonly lastError: string | null;
}

/** A running calendar, as the controller holds it. */
export interface Schedules {
  start(): Promise<void>;
  stop(): Promise<void>;
  status(): JobStatus[];
}

export class CronSchedules implements Schedules {
  private readonly tasks: {
    job: PlannedJob;
    task: ScheduledTask;
    lastRun: Date | null;
    lastError: string | null;
  }[] = [];

  constructor(
    jobs: readonly PlannedJob[],
    run: (action: ScheduledAction) => Promise<void>,
    /** node-cron's own chatter goes to the log; facts about our jobs go to `failed` (an event). */
    logger: Logger,
    failed: (job: string, error: string) => void,
    timezone?: string,
  ) {
    const cronLogger = {
      info: (m: string) => logger.debug({ cron: m }, 'schedule'),
      warn: (m: string) => logger.warn({ cron: m }, 'schedule'),
      error: (m: string | Error) => logger.error({ cron: String(m) }, 'schedule'),
      debug: (m: string | Error) => logger.debug({ cron: String(m) }, 'schedule'),
    };
    for (const job of jobs) {
      const entry = {
        job,
        task: null as unknown as ScheduledTask,
        lastRun: null as Date | null,
        lastError: null as string | null,
      };
      entry.task = createTask(
        job.expression,
        async () => {
          entry.lastRun = new Date();
          try {
            await run(job.action);
            entry.lastError = null;
          } catch (e) {
            // A failing job is reported and tried again at its next turn; it never stops the controller.
            entry.lastError = (e as Error).message;
            failed(job.name, entry.lastError);
          }
        },
        { name: job.name, noOverlap: true, logger: cronLogger, ...(timezone ? { timezone } : {}) },
      );
      this.tasks.push(entry);
    }
  }

  async start(): Promise<void> {
    for (const t of this.tasks) await t.task.start();
  }

  async stop(): Promise<void> {
    for (const t of this.tasks) await t.task.destroy();
  }

  status(): JobStatus[] {
    return this.tasks.map((t) => ({
      name: t.job.name,
      expression: t.job.expression,
      nextRun: t.task.getNextRun()?.toISOString() ?? null,
      lastRun: t.lastRun?.toISOString() ?? null,
      lastError: t.lastError,
    }));
  }
}

/** Makes the calendar of a config (default: node-cron); tests inject one that fails to start. */
export type SchedulesFactory = (
  config: SchedulesConfig,
  run: (action: ScheduledAction) => Promise<void>,
  logger: Logger,
  failed: (job: string, error: string) => void,
) => Schedules;

export const cronSchedules: SchedulesFactory = (config, run, logger, failed) =>
  new CronSchedules(planJobs(config), run, logger, failed, config.timezone);

/** A running calendar made by `make`; on failure nothing of it is left running. */
export async function startCalendar(
  make: SchedulesFactory,
  ...args: Parameters<SchedulesFactory>
): Promise<Schedules> {
  const schedules = make(...args);
  try {
    await schedules.start();
  } catch (e) {
    await schedules.stop().catch(() => undefined);
    throw e;
  }
  return schedules;
}

/** What the controller does for each kind of scheduled job. */
export interface ScheduledOps {
  reconcile(): Promise<void>;
  drain(backend: string, on: boolean): void;
}

export async function runScheduled(action: ScheduledAction, ops: ScheduledOps): Promise<void> {
  switch (action.kind) {
    case 'reconcile':
      return ops.reconcile();
    case 'drain':
      return ops.drain(action.backend, true);
    case 'undrain':
      return ops.drain(action.backend, false);
  }
}
