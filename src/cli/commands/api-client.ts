/**
 * The CLI's side of the controller API: where the controller is (a URL and a token, from the
 * options, the controller's config file or the running lab) and one request with every failure
 * turned into one line an operator can act on, with its own exit code.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse } from 'yaml';
import { schemaDefaults } from '../../config/schema-registry.js';
import type { ApiSection } from '../../config/types.js';
import { DEFAULT_LAB_DIR, readLabState } from '../../lab/lab.js';
import { pidAlive } from '../../lab/processes.js';
import { CliError, EXIT } from '../exit-codes.js';

/** The api section's defaults, as the controller schema fills them in. */
const API_DEFAULTS = schemaDefaults<Pick<ApiSection, 'listen' | 'port'>>(
  'controller-config',
  '/properties/api',
);

export const DEFAULT_API_URL = `http://${API_DEFAULTS.listen}:${API_DEFAULTS.port}`;

export interface ApiTarget {
  readonly url: string;
  readonly token: string | null;
  /** Where the URL came from, for messages. */
  readonly from: string;
}

export interface TargetOptions {
  readonly api?: string;
  readonly tokenFile?: string;
  readonly config?: string;
}

function readToken(file: string): string {
  try {
    const t = readFileSync(file, 'utf8').trim();
    if (!t) throw new CliError(`token file ${file} is empty`, EXIT.usage);
    return t;
  } catch (e) {
    if (e instanceof CliError) throw e;
    throw new CliError(
      `cannot read token file ${file}: ${(e as NodeJS.ErrnoException).code ?? e}`,
      EXIT.usage,
    );
  }
}

/**
 * The api section of a controller config, read without loading the rest: the operator running
 * `sipweigh status` may not be allowed to read the heartbeat key the full load needs.
 */
export function targetFromConfig(file: string): { url: string; tokenFile: string | null } {
  let raw: unknown;
  try {
    raw = parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new CliError(
      `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      EXIT.usage,
    );
  }
  const api = (raw as { api?: { listen?: unknown; port?: unknown; token_file?: unknown } } | null)?.api;
  if (api === undefined || api === null || typeof api !== 'object') {
    throw new CliError(
      `${file} has no api section: that controller runs without an HTTP API`,
      EXIT.unreachable,
    );
  }
  const listen = typeof api.listen === 'string' ? api.listen : API_DEFAULTS.listen;
  // A wildcard bind is reached on loopback from the controller's own host.
  const host = listen === '0.0.0.0' ? '127.0.0.1' : listen;
  const port = typeof api.port === 'number' ? api.port : API_DEFAULTS.port;
  const tf = typeof api.token_file === 'string' ? api.token_file : null;
  return {
    url: `http://${host}:${port}`,
    tokenFile: tf === null ? null : isAbsolute(tf) ? tf : resolve(dirname(file), tf),
  };
}

/** The lab's controller config, when `sipweigh lab up` left one running. */
function runningLabConfig(): string | null {
  const state = readLabState(DEFAULT_LAB_DIR);
  if (!state) return null;
  const controller = state.members.find((m) => m.role === 'controller');
  if (!controller || !pidAlive(controller.pid) || !existsSync(state.configs.controller)) return null;
  return state.configs.controller;
}

/** --api, else --config's api section, else the running lab's controller, else the default. */
export function resolveTarget(opts: TargetOptions): ApiTarget {
  const explicitToken = opts.tokenFile === undefined ? null : readToken(opts.tokenFile);
  if (opts.api !== undefined) {
    if (!/^https?:\/\/[^/]+/.test(opts.api))
      throw new CliError(`--api must be a URL like ${DEFAULT_API_URL}`, EXIT.usage);
    return { url: opts.api.replace(/\/+$/, ''), token: explicitToken, from: '--api' };
  }
  const config = opts.config ?? runningLabConfig();
  if (config !== null) {
    const t = targetFromConfig(config);
    const token =
      explicitToken ?? (t.tokenFile !== null && existsSync(t.tokenFile) ? readToken(t.tokenFile) : null);
    return { url: t.url, token, from: config };
  }
  return { url: DEFAULT_API_URL, token: explicitToken, from: 'default' };
}

export interface ApiAnswer {
  readonly status: number;
  readonly body: unknown;
}

/**
 * One request. Returns the answer for the statuses the caller handles (2xx, 400, 404, 503);
 * throws a CliError for the rest (unreachable, 401, anything unexpected).
 */
export async function callApi(
  target: ApiTarget,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
  timeoutMs = 15000,
): Promise<ApiAnswer> {
  const url = `${target.url}${path}`;
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      headers: {
        accept: 'application/json',
        ...(target.token !== null ? { authorization: `Bearer ${target.token}` } : {}),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (e) {
    const err = e as Error & { cause?: { code?: string; message?: string } };
    const why =
      err.name === 'TimeoutError'
        ? `no answer within ${timeoutMs / 1000} s`
        : (err.cause?.code ?? err.cause?.message ?? err.message);
    throw new CliError(`cannot reach the controller at ${target.url}: ${why}`, EXIT.unreachable);
  }
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // Not JSON: kept as text for the message below.
  }
  if (res.status === 401) {
    const reason = (parsed as { error?: string })?.error ?? 'unauthorized';
    const hint =
      target.token === null
        ? ' (no token given: pass --token-file, or --config with the controller config that names its token_file)'
        : '';
    throw new CliError(
      `the controller at ${target.url} refused the request: ${reason}${hint}`,
      EXIT.unauthorized,
    );
  }
  if ((res.status >= 200 && res.status < 300) || [400, 404, 503].includes(res.status)) {
    return { status: res.status, body: parsed };
  }
  const reason = (parsed as { error?: string })?.error ?? String(text).slice(0, 200);
  throw new CliError(`the controller at ${target.url} answered ${res.status}: ${reason}`, EXIT.failure);
}
