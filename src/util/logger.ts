/**
 * Structured JSON logs (pino). Secrets never reach a log line: the paths that can hold them are
 * redacted here, once, for every logger the program makes.
 */
import { pino } from 'pino';
import type { LogLevel } from '../config/types.js';

/**
 * The logging surface library modules depend on: a structural subset of pino's logger, so the CLI
 * passes its pino instance and tests pass `silentLogger` or a recording one.
 */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

const noop = (): void => undefined;
export const silentLogger: Logger = { debug: noop, info: noop, warn: noop, error: noop };

export const REDACTED_PATHS = [
  'password',
  '*.password',
  '*.*.password',
  'key',
  '*.key',
  'master_key',
  '*.master_key',
  'master_keys',
  '*.master_keys',
  'previous_master_key',
  '*.previous_master_key',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'token',
  '*.token',
];

export function createLogger(
  name: string,
  level: LogLevel = 'info',
  destination?: NodeJS.WritableStream,
): pino.Logger {
  const options = {
    name,
    level: process.env.SIPWEIGH_LOG_LEVEL ?? level,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    base: { pid: process.pid },
  };
  return destination
    ? pino(options, destination as pino.DestinationStream)
    : pino(options, pino.destination(2));
}
