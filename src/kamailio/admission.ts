/**
 * Admission control at the LB: the limit on new calls per dispatcher set, enforced by a GCRA rate
 * limiter in kamailio/sipweigh-lb.cfg (SIPWEIGH_ADMISSION_CONTROL) and set over JSON-RPC.
 *
 * The limiter of set N lives in the LB's htable `sipweigh_adm` (route SIPWEIGH_ADMISSION_CHECK):
 * - `T_N`: emission interval in µs per call (1e6 / limit); 0 = no limit, negative = refuse every call;
 * - `tau_N`: burst tolerance in µs; `tat_N`: the script's own schedule (not written here).
 * What Kamailio 5.6.3 does that shapes this module (measured on the shipped LB config):
 * - the snippet writes `T_N = 0` at start-up, so everything is admitted until a limit is set (fails
 *   open), and a set without `T_N` is one the LB does no admission control for;
 * - `htable.seti TABLE KEY INT` answers the string "Ok. Key set to new value."; it turns a non-numeric
 *   value into 0 (= no limit) without complaint, so values are validated here before they travel;
 * - `htable.dump TABLE` answers `[{entry, size, slot: [{name, value, type}]}]` (only non-empty slots);
 *   an htable the LB lacks (admission control off) is a 500 "No such htable";
 * - the htable lives in shared memory: a Kamailio restart brings back `T_N = 0`, so the controller
 *   compares (`limiterChanges`) and sets again what differs.
 * A set's limiter is called `sipweigh_set_N` in the controller's plans and logs.
 */
import { RpcMethodError, type KamailioRpcClient } from './rpc.js';

/** The htable holding every set's limiter (SIPWEIGH_ADMISSION_HTABLE in sipweigh-lb.cfg). */
export const ADMISSION_HTABLE = 'sipweigh_adm';

/** The name of a set's limiter in plans and logs. */
export const ADMISSION_LIMITER_PREFIX = 'sipweigh_set_';

/** At or above this many calls/s a limit is no limit (T would be under 1 µs). */
export const MAX_LIMIT_CPS = 1_000_000;

/**
 * Below this many calls/s the door is closed (T < 0): one call per 100 s at most. It also keeps
 * T <= 1e8 µs, which the script's 32-bit arithmetic relies on (now + tau + T < 2^31).
 */
export const MIN_LIMIT_CPS = 0.01;

/**
 * Burst tolerance: tau = 10 calls' worth of time, at least 100 ms, at most 1 s.
 * - Too small refuses calls below the limit when arrivals are uneven. Poisson arrivals at 90 % of
 *   the limit (simulated GCRA): 50 ms of tolerance refuses 5.3 % at 92 calls/s and 1.6 % at 185;
 *   100 ms refuses 1.6 % and 0.2 %. False refusals depend on the tolerance in calls: ~10 calls keeps
 *   them near 1.5 % at any rate, ~18 calls near 0.2 %.
 * - Too large lets a burst through after a quiet spell: at most tau's worth of calls at once, i.e.
 *   at most tau of extra queueing at a pool running at the limit. Under sustained overload GCRA
 *   admits evenly, T apart, whatever tau is: the burst happens once, not every second.
 * - The 1 s ceiling keeps the limiter never burstier than the one-second window it replaced.
 */
export const TOLERANCE_CALLS = 10;
export const MIN_TOLERANCE_US = 100_000;
export const MAX_TOLERANCE_US = 1_000_000;

/** New calls per second a set may admit; `null` = no limit. */
export type LimitCps = number | null;

/** Only `call` is used: tests and the controller may pass anything with that shape. */
export type AdmissionRpc = Pick<KamailioRpcClient, 'call'>;

/** The two numbers the LB's limiter reads (µs, 32-bit signed integers). */
export interface GcraParams {
  /** Emission interval: 0 = no limit, -1 = refuse every call, else 1..1e8 µs per call. */
  readonly emissionUs: number;
  /** Burst tolerance, 0 when there is no limit or the door is closed. */
  readonly toleranceUs: number;
}

export interface LimiterState {
  readonly name: string;
  readonly setId: number;
  readonly params: GcraParams;
  /** The limit in new calls per second (1e6 / T, to 3 decimals), `null` when there is none. */
  readonly limitCps: LimitCps;
}

/** A reply that is not what the htable module answers: the LB runs something else, or a newer format. */
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

/** The LB has no limiter for the set: admission control is not enabled there (SIPWEIGH_ADMISSION_CONTROL) or another set. */
export class AdmissionLimiterMissingError extends Error {
  override readonly name = 'AdmissionLimiterMissingError';
  constructor(
    readonly limiter: string,
    options?: ErrorOptions,
  ) {
    super(`the LB has no admission limiter ${limiter}: is SIPWEIGH_ADMISSION_CONTROL defined for this set?`, options);
  }
}

export function admissionLimiterName(setId: number): string {
  if (!Number.isSafeInteger(setId) || setId < 0) throw new RangeError(`dispatcher set must be an integer >= 0, got ${setId}`);
  return `${ADMISSION_LIMITER_PREFIX}${setId}`;
}

/** The set of a limiter name, or undefined for any other name. */
export function setIdOfLimiter(name: string): number | undefined {
  const m = /^sipweigh_set_(0|[1-9][0-9]*)$/.exec(name);
  if (!m?.[1]) return undefined;
  const id = Number(m[1]);
  return Number.isSafeInteger(id) ? id : undefined;
}

const NO_LIMIT_PARAMS: GcraParams = { emissionUs: 0, toleranceUs: 0 };
const CLOSED_PARAMS: GcraParams = { emissionUs: -1, toleranceUs: 0 };

/**
 * The limiter's parameters for a rate (pure). T is rounded up (never admit faster than asked);
 * `null` or >= MAX_LIMIT_CPS is no limit, under MIN_LIMIT_CPS (0 included) refuses every call.
 */
export function gcraParamsFor(limitCps: LimitCps): GcraParams {
  if (limitCps === null) return NO_LIMIT_PARAMS;
  if (typeof limitCps !== 'number' || Number.isNaN(limitCps) || limitCps < 0) {
    throw new RangeError(`admission limit must be a number >= 0 calls/s or null, got ${String(limitCps)}`);
  }
  if (limitCps >= MAX_LIMIT_CPS) return NO_LIMIT_PARAMS;
  if (limitCps < MIN_LIMIT_CPS) return CLOSED_PARAMS;
  const emissionUs = Math.ceil(1e6 / limitCps);
  const toleranceUs = Math.min(MAX_TOLERANCE_US, Math.max(MIN_TOLERANCE_US, TOLERANCE_CALLS * emissionUs));
  return { emissionUs, toleranceUs };
}

/** The limit the LB enforces with an emission interval (pure): calls/s to 3 decimals, null = none. */
export function limitCpsOf(emissionUs: number): LimitCps {
  if (emissionUs === 0) return null;
  if (emissionUs < 0) return 0;
  return Math.round(1e9 / emissionUs) / 1000;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const DUMP = 'htable.dump';

/** The entries of an `htable.dump` result by name (pure, validated): integers and strings. */
export function dumpEntries(result: unknown): Map<string, number | string> {
  if (!Array.isArray(result)) throw new AdmissionReplyError(DUMP, 'not an array', result);
  const out = new Map<string, number | string>();
  for (const bucket of result) {
    if (!isRecord(bucket) || !Array.isArray(bucket.slot)) {
      throw new AdmissionReplyError(DUMP, 'a bucket without slot list', result);
    }
    for (const item of bucket.slot as unknown[]) {
      if (!isRecord(item) || typeof item.name !== 'string') throw new AdmissionReplyError(DUMP, 'an item without a name', result);
      const { value } = item;
      if (typeof value === 'number' && Number.isSafeInteger(value)) out.set(item.name, value);
      else if (typeof value === 'string') out.set(item.name, value);
      else throw new AdmissionReplyError(DUMP, `item ${item.name} has neither an integer nor a string value`, result);
    }
  }
  return out;
}

/** Validates an `htable.dump sipweigh_adm` result into each set's limiter (pure). */
export function parseLimiterDump(result: unknown): LimiterState[] {
  const entries = dumpEntries(result);
  const states: LimiterState[] = [];
  for (const [key, value] of entries) {
    const m = /^T_(0|[1-9][0-9]*)$/.exec(key);
    if (!m?.[1]) continue;
    const setId = Number(m[1]);
    const tolerance = entries.get(`tau_${setId}`) ?? 0;
    if (typeof value !== 'number' || typeof tolerance !== 'number') {
      throw new AdmissionReplyError(DUMP, `T_${setId} or tau_${setId} is not an integer`, result);
    }
    const params = { emissionUs: value < 0 ? -1 : value, toleranceUs: tolerance };
    states.push({ name: admissionLimiterName(setId), setId, params, limitCps: limitCpsOf(params.emissionUs) });
  }
  return states.sort((a, b) => a.setId - b.setId);
}

export function isNoSuchHtable(e: unknown): boolean {
  return e instanceof RpcMethodError && /no such htable/i.test(e.rpcMessage);
}

async function setInt(rpc: AdmissionRpc, limiter: string, key: string, value: number): Promise<void> {
  let result: unknown;
  try {
    result = await rpc.call('htable.seti', [ADMISSION_HTABLE, key, value]);
  } catch (e) {
    if (isNoSuchHtable(e)) throw new AdmissionLimiterMissingError(limiter, { cause: e });
    throw e;
  }
  if (typeof result !== 'string' || !/^ok/i.test(result)) {
    throw new AdmissionReplyError('htable.seti', 'expected "Ok. Key set to new value."', result);
  }
}

/**
 * Sets a set's limit. tau is written before T: T is the switch (0 = no limit), so the script never
 * combines a new T with the tolerance of a limit that no longer applies. Rejects with
 * AdmissionLimiterMissingError (no admission htable at the LB), AdmissionReplyError, RangeError or RpcError.
 * It does not check that the LB enforces this set (the script checks only SIPWEIGH_DS_SET): plan with
 * `limiterChanges` on what `readLimiters` found.
 */
export async function setLimiter(rpc: AdmissionRpc, limiter: string, limitCps: LimitCps): Promise<void> {
  const setId = setIdOfLimiter(limiter);
  if (setId === undefined) throw new RangeError(`not an admission limiter name: ${limiter}`);
  const { emissionUs, toleranceUs } = gcraParamsFor(limitCps);
  if (emissionUs !== 0) await setInt(rpc, limiter, `tau_${setId}`, toleranceUs);
  await setInt(rpc, limiter, `T_${setId}`, emissionUs);
}

/** Every set's limiter at the LB by name; empty when the LB has no admission htable. */
export async function readLimiters(rpc: AdmissionRpc): Promise<ReadonlyMap<string, LimiterState>> {
  let result: unknown;
  try {
    result = await rpc.call(DUMP, [ADMISSION_HTABLE]);
  } catch (e) {
    if (isNoSuchHtable(e)) return new Map();
    throw e;
  }
  return new Map(parseLimiterDump(result).map((p) => [p.name, p]));
}

export interface LimiterChange {
  readonly limiter: string;
  readonly limitCps: LimitCps;
  /** What will be written. */
  readonly params: GcraParams;
  /** What the LB has now. */
  readonly current: LimiterState;
}

export interface LimiterPlan {
  /** Limiters whose T or tau differ from the desired ones: set these. */
  readonly changes: readonly LimiterChange[];
  /** Desired limiters the LB does not have (admission not enabled there): report, do not set. */
  readonly missing: readonly string[];
}

/**
 * What to set so that the LB matches `desired` (limiter name → calls/s or null), given what it has
 * (pure). In sync means the same T and, when there is a limit, the same tau; names not in `desired`
 * are left alone.
 */
export function limiterChanges(
  desired: ReadonlyMap<string, LimitCps>,
  actual: ReadonlyMap<string, LimiterState>,
): LimiterPlan {
  const changes: LimiterChange[] = [];
  const missing: string[] = [];
  for (const [limiter, limitCps] of desired) {
    const params = gcraParamsFor(limitCps);
    const current = actual.get(limiter);
    if (!current) {
      missing.push(limiter);
      continue;
    }
    const same =
      current.params.emissionUs === params.emissionUs &&
      (params.emissionUs <= 0 || current.params.toleranceUs === params.toleranceUs);
    if (!same) changes.push({ limiter, limitCps, params, current });
  }
  return { changes, missing };
}
