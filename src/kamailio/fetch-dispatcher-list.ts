/**
 * Reads one LB's dispatcher.list over JSON-RPC, for discovery and for the pusher's read-back (the
 * thin I/O half; the parsing is in dispatcher-list-reply.ts). Kamailio answers an empty dispatcher with the error "No Destination Sets",
 * which is an empty list here; every other failure comes back as `{ ok: false }`, never thrown.
 */
import { RpcMethodError, type KamailioRpcClient } from './rpc.js';
import { parseDispatcherList, type DispatcherListResult } from './dispatcher-list-reply.js';

/** What the dispatcher readers and the pusher need of an RPC client (a counting wrapper fits too). */
export type RpcCaller = Pick<KamailioRpcClient, 'call' | 'target'>;

export async function fetchDispatcherList(
  client: RpcCaller,
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
