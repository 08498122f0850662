/**
 * Pure interpretation of the Kamailio statistics an agent reads (same shapes over JSON-RPC and, after
 * kamcmd-output.ts, over kamcmd): `tm.stats`, `dlg.stats_active` and
 * `stats.fetchn ["tmx:","dialog:","core:","sl:"]`.
 *
 * Facts verified on Kamailio 5.6.3 that shape these choices:
 * - `core.rcv_requests` also counts HTTP requests to xhttp, so every JSON-RPC call (ours included)
 *   would show up as SIP load; the SIP request rate is the sum of the per-method counters
 *   `core.rcv_requests_<method>` instead (a method Kamailio has no counter for is not seen).
 * - sl counts a stateless 500 in `sl.500_replies` and not in `sl.5xx_replies` (the other 5xx);
 *   replies sent by tm are in `tmx.5xx_transactions`. The 5xx figure is the sum of the three.
 * - sl also counts xhttp's HTTP replies by status code, so a JSON-RPC error (HTTP 500) is a
 *   "500 reply" too; the RPC collector therefore stops calling methods the backend lacks
 *   (kamailio-collector.ts). Other HTTP clients' RPC errors on a backend would still count.
 */
import { MetricsParseError } from './parse-error.js';

export const FETCHN_GROUPS = ['tmx:', 'dialog:', 'core:', 'sl:'] as const;

/** Counters an agent turns into rates, plus gauges that come with them. */
export interface KamailioCounters {
  /** SIP requests received since start (sum of core.rcv_requests_<method>). */
  readonly sipRequests: number;
  /** 5xx replies sent since start (sl.500_replies + sl.5xx_replies + tmx.5xx_transactions). */
  readonly replies5xx: number;
  /** dialog.active_dialogs, when the dialog module is loaded. */
  readonly activeDialogs: number | undefined;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function numberField(result: unknown, field: string, source: string): number {
  if (!isRecord(result)) throw new MetricsParseError(source, 'result is not an object');
  const v = result[field];
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
    throw new MetricsParseError(source, `field "${field}" is ${JSON.stringify(v)}, expected a number >= 0`);
  }
  return v;
}

/** `tm.stats` → transactions currently in memory. */
export function parseTmCurrent(result: unknown): number {
  return numberField(result, 'current', 'tm.stats');
}

/** `dlg.stats_active` → dialogs in any state (starting, connecting, answering, ongoing). */
export function parseDialogsActive(result: unknown): number {
  return numberField(result, 'all', 'dlg.stats_active');
}

/** `stats.fetchn` → name → value, every value a finite number (fetchn's promise; `stats.fetch` gives strings). */
export function parseFetchn(result: unknown): ReadonlyMap<string, number> {
  if (!isRecord(result)) throw new MetricsParseError('stats.fetchn', 'result is not an object');
  const out = new Map<string, number>();
  for (const [name, value] of Object.entries(result)) {
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      throw new MetricsParseError('stats.fetchn', `"${name}" is ${JSON.stringify(value)}, expected a number`);
    }
    out.set(name, value);
  }
  return out;
}

const REQUEST_COUNTER = /^core\.rcv_requests_[a-z]+$/;

export function kamailioCounters(stats: ReadonlyMap<string, number>): KamailioCounters {
  let sipRequests = 0;
  let perMethod = 0;
  for (const [name, value] of stats) {
    if (REQUEST_COUNTER.test(name)) {
      sipRequests += value;
      perMethod++;
    }
  }
  if (perMethod === 0) throw new MetricsParseError('stats.fetchn', 'no core.rcv_requests_<method> counters');
  const need = (name: string): number => {
    const v = stats.get(name);
    if (v === undefined) throw new MetricsParseError('stats.fetchn', `missing ${name} (module not loaded?)`);
    return v;
  };
  return {
    sipRequests,
    replies5xx: need('sl.500_replies') + need('sl.5xx_replies') + need('tmx.5xx_transactions'),
    activeDialogs: stats.get('dialog.active_dialogs'),
  };
}
