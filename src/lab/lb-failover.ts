/**
 * What the lab's LB tells of its own failover paths over JSON-RPC (the snippet's re-dispatch
 * statistic and its backstop flag), for the failover bench and the demo. Each reader gives null
 * rather than throwing: an LB without these features, or one that does not answer, reads as unknown.
 */
import type { KamailioRpcClient } from '../kamailio/rpc.js';

/**
 * The LB's `sipweigh_redispatched` statistic (requests moved off a destination out of rotation), or
 * null when the LB has no such statistic or does not answer.
 */
export async function readRedispatched(client: KamailioRpcClient): Promise<number | null> {
  try {
    const r = (await client.call('stats.fetchn', ['script:'], { deadlineMs: 1000 })) as Record<
      string,
      unknown
    >;
    const v = r['script.sipweigh_redispatched'];
    return typeof v === 'number' ? v : null;
  } catch {
    return null;
  }
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
