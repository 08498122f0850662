/**
 * What an LB node was offered: the admission counters its snippet keeps (kamailio/sipweigh-lb.cfg and
 * opensips/sipweigh-lb.cfg, both with admission control), read-only. `sipweigh_admitted` counts every
 * new call let through, `sipweigh_admission_503` every INVITE refused (once, not per retransmission).
 * - Kamailio: `stats.fetchn ["script:"]` → `{"script.sipweigh_admitted": n, ...}` (numbers);
 * - OpenSIPS: MI `get_statistics {statistics: [names]}` → `{"<group>:sipweigh_admitted": n, ...}`.
 * A node without admission control has neither counter: that is an error here (its demand is not
 * known), not a zero.
 */
import type { PeerNodeConfig } from '../config/types.js';
import { KamailioRpcClient } from '../kamailio/rpc.js';
import { OpenSipsMiClient } from '../opensips/mi.js';

export const ADMITTED = 'sipweigh_admitted';
export const REFUSED = 'sipweigh_admission_503';

export class CountersReplyError extends Error {
  override readonly name = 'CountersReplyError';
}

/** admitted + refused from a reply whose keys end in the counter names (pure). */
export function offeredFrom(reply: unknown, separator: '.' | ':'): number {
  if (typeof reply !== 'object' || reply === null || Array.isArray(reply))
    throw new CountersReplyError('statistics: the reply is not an object');
  const byName = new Map<string, number>();
  for (const [key, value] of Object.entries(reply as Record<string, unknown>)) {
    const name = key.slice(key.indexOf(separator) + 1);
    const n = typeof value === 'number' ? value : typeof value === 'string' ? Number(value) : NaN;
    if (Number.isFinite(n) && n >= 0) byName.set(name, n);
  }
  const admitted = byName.get(ADMITTED);
  const refused = byName.get(REFUSED);
  if (admitted === undefined || refused === undefined)
    throw new CountersReplyError(
      `no ${ADMITTED}/${REFUSED} counters: is admission control on at this LB (SIPWEIGH_ADMISSION_CONTROL)?`,
    );
  return admitted + refused;
}

/** Reads one node's offered-calls counter. */
export interface CountersReader {
  readonly node: string;
  /** `signal` abandons the read (the controller is stopping). */
  offered(signal?: AbortSignal): Promise<number>;
  close(): void;
}

export function countersReader(node: Pick<PeerNodeConfig, 'name' | 'kind' | 'rpc'>): CountersReader {
  if (node.kind === 'opensips') {
    const mi = new OpenSipsMiClient({ url: node.rpc.url, deadlineMs: node.rpc.timeout_ms });
    return {
      node: node.name,
      offered: async () =>
        offeredFrom(await mi.call('get_statistics', { statistics: [ADMITTED, REFUSED] }), ':'),
      close: () => undefined,
    };
  }
  const rpc = new KamailioRpcClient({
    url: node.rpc.url,
    ...(node.rpc.username !== undefined ? { username: node.rpc.username } : {}),
    ...(node.rpc.password !== undefined ? { password: node.rpc.password } : {}),
    deadlineMs: node.rpc.timeout_ms,
  });
  return {
    node: node.name,
    offered: async (signal) =>
      offeredFrom(await rpc.call('stats.fetchn', ['script:'], signal ? { signal } : {}), '.'),
    close: () => rpc.close(),
  };
}
