/**
 * What the lab's LB tells of its own failover paths over JSON-RPC (the snippet's re-dispatch
 * statistic and its backstop flag), for the failover bench and the demo. Each reader gives null
 * rather than throwing: an LB without these features, or one that does not answer, reads as unknown.
 */
import type { KamailioRpcClient } from '../kamailio/rpc.js';

/** The LB's script statistics (`script.sipweigh_redispatched`...), or null when it does not answer. */
export async function readScriptStats(client: KamailioRpcClient): Promise<Record<string, number> | null> {
  try {
    const r = (await client.call('stats.fetchn', ['script:'], { deadlineMs: 1000 })) as Record<
      string,
      unknown
    >;
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(r)) if (typeof v === 'number') out[k] = v;
    return out;
  } catch {
    return null;
  }
}

/** Increase of statistic `name` from `before` to `after`; null when either read lacks it. */
export function statDelta(
  before: Readonly<Record<string, number>> | null,
  after: Readonly<Record<string, number>> | null,
  name: string,
): number | null {
  const a = before?.[name];
  const b = after?.[name];
  return a === undefined || b === undefined ? null : b - a;
}

/**
 * The LB's `sipweigh_redispatched` statistic (requests moved off a destination out of rotation), or
 * null when the LB has no such statistic or does not answer.
 */
export async function readRedispatched(client: KamailioRpcClient): Promise<number | null> {
  return (await readScriptStats(client))?.['script.sipweigh_redispatched'] ?? null;
}

/**
 * The LB's backstop flag (htable sipweigh_lease, key backstop: 1 while the LB probes on its own), or
 * null when the key is missing or the LB does not answer.
 */
export async function readBackstop(client: KamailioRpcClient): Promise<number | null> {
  try {
    const r = (await client.call('htable.get', ['sipweigh_lease', 'backstop'], { deadlineMs: 1000 })) as {
      item?: { value?: unknown };
    };
    const v = r.item?.value;
    return typeof v === 'number' ? v : null;
  } catch {
    return null;
  }
}
