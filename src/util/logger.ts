/**
 * Structured JSON logs (pino). Secrets never reach a log line: the paths that can hold them are
 * redacted here, once, for every logger the program makes.
 */
import { pino } from 'pino';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';

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

/**
 * Secret values this process holds (keys, passwords, the API token), scrubbed from every string of
 * every log line whatever field or message carries them: the paths above catch a secret where a
 * config puts it; this catches one that travels inside an error message, a URL or a diff.
 */
const knownSecrets = new Set<string>();
/** Shorter values would scrub ordinary words; real secrets here are 16+ characters. */
const MIN_SECRET_LENGTH = 6;
export const SCRUBBED = '[redacted]';

export function addLogSecrets(...values: readonly (string | Buffer | null | undefined)[]): void {
  for (const v of values) {
    if (v === null || v === undefined) continue;
    const forms = typeof v === 'string' ? [v] : [v.toString('hex'), v.toString('hex').toUpperCase()];
    for (const f of forms) if (f.length >= MIN_SECRET_LENGTH) knownSecrets.add(f);
  }
}

/** `text` with every known secret replaced. */
export function scrubSecrets(text: string): string {
  let out = text;
  for (const secret of knownSecrets) if (out.includes(secret)) out = out.split(secret).join(SCRUBBED);
  return out;
}

function scrubValue(v: unknown, depth: number): unknown {
  if (typeof v === 'string') return scrubSecrets(v);
  if (v === null || typeof v !== 'object' || depth > 6) return v;
  if (v instanceof Error) return { type: v.name, message: scrubSecrets(v.message) };
  if (Buffer.isBuffer(v)) return SCRUBBED;
  if (Array.isArray(v)) return v.map((x) => scrubValue(x, depth + 1));
  return Object.fromEntries(
    Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, scrubValue(x, depth + 1)]),
  );
}

export function createLogger(
  name: string,
  level: LogLevel = 'info',
  destination?: NodeJS.WritableStream,
): pino.Logger {
  const options: pino.LoggerOptions = {
    name,
    level: process.env.SIPWEIGH_LOG_LEVEL ?? level,
    redact: { paths: REDACTED_PATHS, censor: SCRUBBED },
    base: { pid: process.pid },
    hooks: {
      logMethod(args: unknown[], method: (...a: unknown[]) => void) {
        if (knownSecrets.size === 0) return method.apply(this, args);
        return method.apply(
          this,
          args.map((a) => scrubValue(a, 0)),
        );
      },
    },
  };
  return destination
    ? pino(options, destination as pino.DestinationStream)
    : pino(options, pino.destination(2));
}
