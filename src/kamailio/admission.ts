/**
 * Admission control at the LB: the limit on new calls per dispatcher set, held by Kamailio's
 * pipelimit module (kamailio/sipweigh-lb.cfg with SIPWEIGH_ADMISSION_CONTROL) and changed over JSON-RPC.
 *
 * What Kamailio 5.6.3 does that shapes this module (measured on the shipped LB config):
 * - the snippet creates one TAILDROP pipe per set, `sipweigh_set_<SET>`, at start-up with the limit
 *   NO_LIMIT, so everything is admitted until a limit is set (admission fails open);
 * - `pl.set_pipe NAME ALGORITHM LIMIT` answers `{}`; an unknown pipe or algorithm is a 400 RPC error.
 *   It accepts any integer, also negative ones (TAILDROP then refuses every call), so limits are
 *   validated here before they travel;
 * - the limit counts per `timer_interval`, which the snippet sets to 1 s: limit = new calls per second;
 * - `pl.list` answers `[{name, algorithm, limit, counter, last_counter, unused_intervals}]`, where
 *   `counter` is the INVITEs checked in the current one-second window (admitted and refused) and
 *   `last_counter` those of the previous window: the offered rate of new calls;
 * - pipes live in shared memory: a Kamailio restart brings back the start-up pipe without limit, so
 *   the controller compares (`pipeLimitChanges`) and sets again what differs.
 */
import { RpcMethodError, type KamailioRpcClient } from './rpc.js';

/** The pipe of a dispatcher set, as sipweigh-lb.cfg names it (route SIPWEIGH_ADMISSION_CHECK). */
export const ADMISSION_PIPE_PREFIX = 'sipweigh_set_';

/** "No limit": SIPWEIGH_ADMISSION_NO_LIMIT in sipweigh-lb.cfg (a billion calls/s). */
export const NO_LIMIT = 1_000_000_000;

/**
 * The algorithm every admission pipe uses. pipelimit's RED admits one request in
 * floor(last count / limit): below twice the limit that is 1, i.e. no limiting at all.
 */
export const ADMISSION_ALGORITHM = 'TAILDROP';

/** New calls per second a set may admit; `null` = no limit. */
export type LimitCps = number | null;

/** Only `call` is used: tests and the controller may pass anything with that shape. */
export type RpcCaller = Pick<KamailioRpcClient, 'call'>;

export interface PipeState {
  readonly name: string;
  /** As reported: TAILDROP, RED, FEEDBACK, NETWORK (NOP pipes are not listed by Kamailio). */
  readonly algorithm: string;
  /** The raw pipelimit limit (per one-second window). */
  readonly limit: number;
  /** The limit in new calls per second, `null` when it is NO_LIMIT or more. */
  readonly limitCps: LimitCps;
  /** INVITEs checked (admitted + refused) in the current window and in the previous one. */
  readonly counter: number;
  readonly lastCounter: number;
}

/** A reply that is not what pipelimit answers: the LB runs something else, or a newer format. */
export class AdmissionReplyError extends Error {
  override readonly name = 'AdmissionReplyError';
  constructor(
    readonly method: string,
    detail: string,
    readonly reply: unknown,
  ) {
    super(`${method}: unexpected reply (${detail}): ${JSON.stringify(reply)?.slice(0, 200) ?? String(reply)}`);
  }
}

/** The LB has no such pipe: admission control is not enabled there (SIPWEIGH_ADMISSION_CONTROL) or another set. */
export class AdmissionPipeMissingError extends Error {
  override readonly name = 'AdmissionPipeMissingError';
  constructor(
    readonly pipe: string,
    options?: ErrorOptions,
  ) {
    super(`the LB has no admission pipe ${pipe}: is SIPWEIGH_ADMISSION_CONTROL defined for this set?`, options);
  }
}

export function admissionPipeName(setId: number): string {
  if (!Number.isSafeInteger(setId) || setId < 0) throw new RangeError(`dispatcher set must be an integer >= 0, got ${setId}`);
  return `${ADMISSION_PIPE_PREFIX}${setId}`;
}

/** The set of an admission pipe name, or undefined for any other pipe (an operator's own). */
export function setIdOfPipe(name: string): number | undefined {
  const m = /^sipweigh_set_(0|[1-9][0-9]*)$/.exec(name);
  if (!m?.[1]) return undefined;
  const id = Number(m[1]);
  return Number.isSafeInteger(id) ? id : undefined;
}

/**
 * The pipelimit limit for a rate: whole calls per second, rounded down (never admit more than the
 * pool was said to carry), NO_LIMIT for `null` or anything at least as large. 0 refuses every call.
 */
export function pipeLimitFor(limitCps: LimitCps): number {
  if (limitCps === null) return NO_LIMIT;
  if (typeof limitCps !== 'number' || Number.isNaN(limitCps) || limitCps < 0) {
    throw new RangeError(`admission limit must be a number >= 0 calls/s or null, got ${String(limitCps)}`);
  }
  return limitCps >= NO_LIMIT ? NO_LIMIT : Math.floor(limitCps);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function intField(method: string, entry: Record<string, unknown>, key: string, reply: unknown): number {
  const v = entry[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) {
    throw new AdmissionReplyError(method, `pipe field ${key} is not an integer`, reply);
  }
  return v;
}

/** Validates a `pl.list` result (pure). */
export function parsePipeList(result: unknown): PipeState[] {
  const method = 'pl.list';
  if (!Array.isArray(result)) throw new AdmissionReplyError(method, 'not an array', result);
  return result.map((entry: unknown): PipeState => {
    if (!isRecord(entry)) throw new AdmissionReplyError(method, 'an entry is not an object', result);
    const { name, algorithm } = entry;
    if (typeof name !== 'string' || name === '') throw new AdmissionReplyError(method, 'pipe without a name', result);
    if (typeof algorithm !== 'string' || algorithm === '') {
      throw new AdmissionReplyError(method, `pipe ${name} without an algorithm`, result);
    }
    const limit = intField(method, entry, 'limit', result);
    return {
      name,
      algorithm,
      limit,
      limitCps: limit >= NO_LIMIT ? null : limit,
      counter: intField(method, entry, 'counter', result),
      lastCounter: intField(method, entry, 'last_counter', result),
    };
  });
}

function isUnknownPipe(e: unknown): boolean {
  return e instanceof RpcMethodError && e.code === 400 && /unknown pipe/i.test(e.rpcMessage);
}

/** Sets a pipe's limit (TAILDROP). Rejects with AdmissionPipeMissingError, AdmissionReplyError or RpcError. */
export async function setPipeLimit(rpc: RpcCaller, pipe: string, limitCps: LimitCps): Promise<void> {
  const limit = pipeLimitFor(limitCps);
  let result: unknown;
  try {
    result = await rpc.call('pl.set_pipe', [pipe, ADMISSION_ALGORITHM, limit]);
  } catch (e) {
    if (isUnknownPipe(e)) throw new AdmissionPipeMissingError(pipe, { cause: e });
    throw e;
  }
  // 5.6.3 answers an empty structure; anything with content is not the pipelimit we know.
  const empty = result === null || (isRecord(result) && Object.keys(result).length === 0);
  if (!empty) throw new AdmissionReplyError('pl.set_pipe', 'expected an empty result', result);
}

/** Every pipe of the LB by name (admission pipes and any of the operator's own). */
export async function readPipeLimits(rpc: RpcCaller): Promise<ReadonlyMap<string, PipeState>> {
  const pipes = parsePipeList(await rpc.call('pl.list'));
  return new Map(pipes.map((p) => [p.name, p]));
}

export interface PipeLimitChange {
  readonly pipe: string;
  readonly limitCps: LimitCps;
  /** The raw limit that will be written. */
  readonly limit: number;
  /** What the LB has now. */
  readonly current: PipeState;
}

export interface PipeLimitPlan {
  /** Pipes whose limit or algorithm differ from the desired ones: set these. */
  readonly changes: readonly PipeLimitChange[];
  /** Desired pipes the LB does not have (admission not enabled there): report, do not set. */
  readonly missing: readonly string[];
}

/**
 * What to set so that the LB matches `desired` (pipe → calls/s or null), given what it has (pure).
 * In sync means the same algorithm (TAILDROP) and the same integer limit; pipes not in `desired`
 * are left alone.
 */
export function pipeLimitChanges(
  desired: ReadonlyMap<string, LimitCps>,
  actual: ReadonlyMap<string, PipeState>,
): PipeLimitPlan {
  const changes: PipeLimitChange[] = [];
  const missing: string[] = [];
  for (const [pipe, limitCps] of desired) {
    const limit = pipeLimitFor(limitCps);
    const current = actual.get(pipe);
    if (!current) {
      missing.push(pipe);
      continue;
    }
    const sameLimit = current.limit === limit || (limit === NO_LIMIT && current.limitCps === null);
    if (current.algorithm !== ADMISSION_ALGORITHM || !sameLimit) changes.push({ pipe, limitCps, limit, current });
  }
  return { changes, missing };
}
