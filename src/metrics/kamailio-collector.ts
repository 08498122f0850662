/**
 * The local Kamailio's in-flight work and rates over JSON-RPC: `tm.stats`, `dlg.stats_active` and
 * `stats.fetchn`, called in parallel. Each call fails alone: a backend without the dialog module
 * still reports transactions and rates (and dialogs fall back to `dialog.active_dialogs` when only
 * the RPC is missing).
 */
import { RpcMethodError, type RpcParam } from '../kamailio/rpc.js';
import type { Cadence, Collector } from './collector.js';
import {
  FETCHN_GROUPS,
  kamailioCounters,
  parseDialogsActive,
  parseFetchn,
  parseTmCurrent,
} from './kamailio-stats.js';
import { KamailioRateTracker } from './kamailio-rate-tracker.js';
import type { PartialMeasurements } from './types.js';

/** What the collector needs of an RPC client (KamailioRpcClient fits). */
export interface KamailioStatsRpc {
  call(
    method: string,
    params?: readonly RpcParam[],
    options?: { deadlineMs?: number; signal?: AbortSignal },
  ): Promise<unknown>;
}

/** The three replies, each either a value or the reason it is missing. */
export interface KamailioReplies {
  readonly tmStats: PromiseSettledResult<unknown>;
  readonly dlgStats: PromiseSettledResult<unknown>;
  readonly fetchn: PromiseSettledResult<unknown>;
}

function reason(r: PromiseRejectedResult): string {
  return r.reason instanceof Error ? r.reason.message : String(r.reason);
}

/**
 * Pure step shared by the RPC and kamcmd (SSH) paths: replies → measurements, with the rate tracker
 * advanced (or reset when the counters could not be read, so no rate spans an unseen gap).
 */
export function kamailioMeasurements(
  replies: KamailioReplies,
  rates: KamailioRateTracker,
  atMs: number,
): {
  values: PartialMeasurements;
  problems: string[];
} {
  const values: PartialMeasurements = {};
  const problems: string[] = [];
  const attempt = <T>(
    label: string,
    settled: PromiseSettledResult<unknown>,
    parse: (v: unknown) => T,
  ): T | undefined => {
    if (settled.status === 'rejected') {
      const why = reason(settled);
      problems.push(why.startsWith(label) ? why : `${label}: ${why}`);
      return undefined;
    }
    try {
      return parse(settled.value);
    } catch (e) {
      problems.push(e instanceof Error ? e.message : String(e));
      return undefined;
    }
  };
  const tm = attempt('tm.stats', replies.tmStats, parseTmCurrent);
  if (tm !== undefined) values.tm_current = tm;
  const counters = attempt('stats.fetchn', replies.fetchn, (v) => kamailioCounters(parseFetchn(v)));
  if (counters) {
    const r = rates.update(counters, atMs);
    if (r.req_rate !== null) values.req_rate = r.req_rate;
    if (r.err5xx_rate !== null) values.err5xx_rate = r.err5xx_rate;
    if (r.req_rate === null && r.err5xx_rate === null)
      problems.push('rates: first counter reading (a rate needs two)');
  } else {
    rates.reset();
  }
  const dialogs =
    attempt('dlg.stats_active', replies.dlgStats, parseDialogsActive) ?? counters?.activeDialogs;
  if (dialogs !== undefined) values.dialogs_active = dialogs;
  return { values, problems };
}

/** A method the backend lacks is tried again after this long (a restart may have loaded its module). */
export const UNSUPPORTED_RETRY_MS = 60_000;

function isMethodNotFound(e: unknown): boolean {
  return e instanceof RpcMethodError && /not found/i.test(e.rpcMessage);
}

export function kamailioRpcCollector(rpc: KamailioStatsRpc, cadence: Cadence): Collector {
  const rates = new KamailioRateTracker();
  /** method → performance.now() before which it is not called again. */
  const unsupported = new Map<string, number>();
  const callUnlessUnsupported = async (
    method: string,
    params: readonly RpcParam[],
    signal: AbortSignal,
  ): Promise<unknown> => {
    const until = unsupported.get(method);
    if (until !== undefined && performance.now() < until) {
      throw new Error(
        `${method} not available on this Kamailio (Method Not Found); retried every ${UNSUPPORTED_RETRY_MS / 1000} s`,
      );
    }
    try {
      // The client's own deadline bounds each call; the signal ends it when the sample times out.
      return await rpc.call(method, params, { signal });
    } catch (e) {
      // Kamailio answers an unknown method with HTTP 500, and its sl module counts every HTTP reply
      // like a SIP one: calling a missing method each interval would show up as a 5xx rate.
      if (isMethodNotFound(e)) unsupported.set(method, performance.now() + UNSUPPORTED_RETRY_MS);
      throw e;
    }
  };
  return {
    name: 'kamailio-rpc',
    fields: ['tm_current', 'dialogs_active', 'req_rate', 'err5xx_rate'],
    ...cadence,
    async collect(signal) {
      const [tmStats, dlgStats, fetchn] = await Promise.allSettled([
        callUnlessUnsupported('tm.stats', [], signal),
        callUnlessUnsupported('dlg.stats_active', [], signal),
        callUnlessUnsupported('stats.fetchn', FETCHN_GROUPS, signal),
      ]);
      // Read the clock after the replies: the counters are as of now, not as of the request.
      const { values, problems } = kamailioMeasurements(
        { tmStats, dlgStats, fetchn },
        rates,
        performance.now(),
      );
      if (Object.keys(values).length === 0 && problems.length > 0) throw new Error(problems.join('; '));
      return { values, problems };
    },
  };
}
