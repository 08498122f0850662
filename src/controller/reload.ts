/**
 * Live reload (SIGHUP, POST /api/v1/reload): re-reads the file the controller started with and puts
 * it in force, or refuses it whole with the reason and leaves the running config as it was. A
 * refused reload pushes nothing and changes nothing. Reloads run one at a time, in order.
 */
import { ConfigError } from '../config/errors.js';
import { loadControllerConfig } from '../config/load.js';
import type { ControllerConfig } from '../config/types.js';
import type { Controller } from './controller.js';
import type { EventBus } from './events.js';
import { nothingChanged, planReload, type ReloadChanges } from './reload-plan.js';

export type ReloadResult =
  | { readonly reloaded: true; readonly changes: ReloadChanges }
  | { readonly reloaded: false; readonly error: string };

type Trigger = 'SIGHUP' | 'api';

export interface ReloaderHooks {
  /** After a config was put in force (the logging level, the API's auth). */
  readonly applied?: (config: ControllerConfig, changes: ReloadChanges) => void;
}

export class ConfigReloader {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly file: string,
    private readonly controller: Controller,
    private readonly events: EventBus,
    private readonly hooks: ReloaderHooks = {},
  ) {}

  /** Never rejects: every failure is a refused reload with its reason. */
  reload(trigger: Trigger): Promise<ReloadResult> {
    const run = this.queue.then(() => this.run(trigger));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async run(trigger: Trigger): Promise<ReloadResult> {
    let next: ControllerConfig;
    try {
      next = loadControllerConfig(this.file);
    } catch (e) {
      const error = e instanceof ConfigError ? e.message : `${this.file}: ${(e as Error).message}`;
      return this.refused(trigger, error);
    }
    const plan = planReload(this.controller.config, next);
    if (!plan.ok) {
      const error = plan.restart
        .map((f) => `${this.file}: ${f}: cannot change while the controller runs (restart it to apply)`)
        .join('\n');
      return this.refused(trigger, error);
    }
    try {
      // Keys first: backends the new config adds get theirs derived from the new masters.
      if (plan.changes.heartbeat_keys) this.controller.probe.setMasterKeys(next.heartbeat.master_keys);
      await this.controller.applyConfig(next, plan.changes);
      this.hooks.applied?.(next, plan.changes);
    } catch (e) {
      return this.refused(trigger, `${this.file}: ${(e as Error).message}`);
    }
    this.events.emit({
      type: 'config_reloaded',
      trigger,
      file: this.file,
      changes: plan.changes,
      unchanged: nothingChanged(plan.changes),
    });
    return { reloaded: true, changes: plan.changes };
  }

  private refused(trigger: Trigger, error: string): ReloadResult {
    this.events.emit({ type: 'config_reload_refused', trigger, file: this.file, error });
    return { reloaded: false, error };
  }
}
