/**
 * `sipweigh controller` as a running service: the controller, its telemetry, its HTTP API and its
 * signals (SIGHUP reloads the config file; SIGTERM/SIGINT stop, leaving the LB on its last weights).
 */
import { ApiServer } from '../../api/server.js';
import type { ApiConfig, ControllerConfig } from '../../config/types.js';
import { Controller } from '../../controller/controller.js';
import { EventBus } from '../../controller/events.js';
import { ConfigReloader, type ReloadResult } from '../../controller/reload.js';
import { ControllerTelemetry } from '../../telemetry/metrics.js';
import { addLogSecrets, scrubSecrets } from '../../util/logger.js';
import type { pino } from 'pino';
import { CliError, EXIT } from '../exit-codes.js';

/** Every secret a controller config holds, so the logs can scrub them wherever they turn up. */
export function registerConfigSecrets(config: ControllerConfig): void {
  addLogSecrets(
    ...config.heartbeat.master_keys,
    ...config.lb_nodes.map((n) => n.rpc.password),
    config.api?.token,
  );
}

const authOf = (api: ApiConfig) => ({ token: api.token, readWithoutToken: api.read_without_token });

export async function runControllerDaemon(
  file: string,
  config: ControllerConfig,
  logger: pino.Logger,
): Promise<void> {
  registerConfigSecrets(config);
  // SIGHUP's default action ends the process: a reload sent while starting must not kill it.
  let reloadNow: (() => void) | null = null;
  const onHup = () => {
    if (reloadNow) reloadNow();
    else logger.warn({}, 'SIGHUP while starting: ignored (send it again once started)');
  };
  process.on('SIGHUP', onHup);
  const telemetry = new ControllerTelemetry();
  const events = new EventBus();
  events.subscribe((e) => telemetry.observe(e));
  let controller: Controller;
  try {
    controller = await Controller.start(config, { logger, events });
  } catch (e) {
    process.off('SIGHUP', onHup);
    throw new CliError(`controller could not start: ${scrubSecrets((e as Error).message)}`, EXIT.failure);
  }
  telemetry.attach({
    snapshot: () => controller.snapshot(),
    probeCounters: () => controller.probe.counters,
  });

  let api: ApiServer | null = null;
  const reloader = new ConfigReloader(file, controller, events, {
    applied: (next) => {
      registerConfigSecrets(next);
      if (process.env.SIPWEIGH_LOG_LEVEL === undefined) logger.level = next.logging.level;
      if (next.api) api?.setAuth(authOf(next.api));
    },
  });
  const reload = async (trigger: 'SIGHUP' | 'api'): Promise<ReloadResult> => {
    const r = await reloader.reload(trigger);
    // The error names files and fields only; scrubbing is a second guard for the API's answer.
    return r.reloaded ? r : { reloaded: false, error: scrubSecrets(r.error) };
  };

  if (config.api) {
    try {
      api = await ApiServer.start(
        { listen: config.api.listen, port: config.api.port, auth: authOf(config.api) },
        {
          snapshot: () => controller.snapshot(),
          notReadyReasons: () => controller.notReadyReasons(),
          drain: (id, on, reason) => {
            if (controller.probe.get(id) === undefined) return false;
            controller.drain(id, on, reason ?? undefined);
            return true;
          },
          reload: () => reload('api'),
          metrics: () => telemetry.text(),
          events,
        },
      );
    } catch (e) {
      process.off('SIGHUP', onHup);
      await controller.stop();
      throw new CliError(
        `controller API could not listen on ${config.api.listen}:${config.api.port}: ${(e as Error).message}`,
        EXIT.failure,
      );
    }
    logger.info({ api: `http://${api.address.address}:${api.address.port}` }, 'HTTP API listening');
  }

  reloadNow = () => void reload('SIGHUP');
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      process.off('SIGHUP', onHup);
      void (async () => {
        await api?.close();
        await controller.stop();
      })().finally(resolve);
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}
