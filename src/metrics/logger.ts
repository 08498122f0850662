/**
 * The logging surface the metrics and agent modules use: a structural subset of pino's Logger, so the
 * CLI passes its pino instance and tests pass `silentLogger` or a recording one.
 */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

const noop = (): void => undefined;
export const silentLogger: Logger = { debug: noop, info: noop, warn: noop, error: noop };
