/**
 * Reads one LB's dispatcher.list over JSON-RPC, for discovery and for the pusher's read-back (the
 * thin I/O half; the parsing is in dispatcher-list-reply.ts). Kamailio answers an empty dispatcher with the error "No Destination Sets",
 * which is an empty list here; every other failure comes back as `{ ok: false }`, never thrown.
 */
import { RpcMethodError, type KamailioRpcClient } from './rpc.js';
import { effectiveWeight, parseDispatcherList, type DispatcherListResult } from './dispatcher-list-reply.js';

/** What the dispatcher readers and the pusher need of an RPC client (a counting wrapper fits too). */
export type DispatcherListRpc = Pick<KamailioRpcClient, 'call' | 'target'>;

export async function fetchDispatcherList(
  client: DispatcherListRpc,
  opts: { deadlineMs?: number } = {},
): Promise<DispatcherListResult> {
  try {
    const result = await client.call(
      'dispatcher.list',
      [],
      opts.deadlineMs === undefined ? {} : { deadlineMs: opts.deadlineMs },
    );
    return parseDispatcherList({ result });
  } catch (e) {
    if (e instanceof RpcMethodError)
      return parseDispatcherList({ error: { code: e.code, message: e.rpcMessage } });
    return { ok: false, error: `dispatcher.list on ${client.target}: ${(e as Error).message}` };
  }
}

/**
 * What the LB holds, as an operator reads it: backend id (duid, else URI) -> effective weight
 * (0 = out of rotation); null when the LB did not answer. For the demo and the tests.
 */
export async function fetchEffectiveWeights(
  client: DispatcherListRpc,
  opts: { deadlineMs?: number } = {},
): Promise<Map<string, number> | null> {
  const list = await fetchDispatcherList(client, opts);
  if (!list.ok) return null;
  return new Map(list.targets.map((t) => [t.duid ?? t.uri, effectiveWeight(t)]));
}
