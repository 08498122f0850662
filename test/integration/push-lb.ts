/**
 * A real LB for the push tests: the shipped src/lab/kamailio/lb.cfg on a 127.0.7.x address, its dispatcher
 * list in the test's run directory, and an RPC client that counts the calls it makes per method (so
 * a test can say "no reload happened" from the client's side as well as from the file's).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lbDefines } from '../../src/lab/defines.js';
import { startKamailio, type KamailioInstance } from '../../src/lab/kamailio.js';
import type { ProcessGroup } from '../../src/lab/processes.js';
import { KamailioRpcClient, type CallOptions, type RpcParam } from '../../src/kamailio/rpc.js';
import { formatDispatcherList, type Destination } from '../../src/kamailio/dispatcher-list.js';
import { fetchDispatcherList } from '../../src/kamailio/fetch-dispatcher-list.js';
import { LAB_KAMAILIO_DIR } from '../support/harness.js';

export const RPC_USER = 'sipweigh';
export const RPC_PASSWORD = 'push-test';

export interface TestLb {
  readonly name: string;
  readonly ip: string;
  readonly listFile: string;
  readonly rpc: CountingRpc;
  start(): Promise<KamailioInstance>;
}

/** The real client, counting calls per method. */
export class CountingRpc {
  readonly counts = new Map<string, number>();
  readonly client: KamailioRpcClient;
  constructor(url: string) {
    this.client = new KamailioRpcClient({
      url,
      username: RPC_USER,
      password: RPC_PASSWORD,
      deadlineMs: 2000,
    });
  }
  get target(): string {
    return this.client.target;
  }
  count(method: string): number {
    return this.counts.get(method) ?? 0;
  }
  call(method: string, params?: readonly RpcParam[], options?: CallOptions): Promise<unknown> {
    this.counts.set(method, this.count(method) + 1);
    return this.client.call(method, params, options);
  }
}

/** Prepares an LB (list file written, not started); `start()` (re)starts it on the same list. */
export function testLb(
  group: ProcessGroup,
  name: string,
  ip: string,
  initial: readonly Destination[],
): TestLb {
  const listFile = join(group.runDir, `${name}.list`);
  writeFileSync(listFile, formatDispatcherList(initial));
  const rpc = new CountingRpc(`http://${ip}:5071/RPC`);
  return {
    name,
    ip,
    listFile,
    rpc,
    start: () =>
      startKamailio(group, {
        name,
        cfg: join(LAB_KAMAILIO_DIR, 'lb.cfg'),
        defines: {
          ...lbDefines({
            sip: { address: ip, port: 5060 },
            rpc: { address: ip, port: 5071, username: RPC_USER, password: RPC_PASSWORD },
            rpcAllow: ['127.0.0.1', ip],
            dispatcherList: listFile,
            dispatcherSet: 1,
          }),
          // No controller refreshes a lease here: without this the LB would probe the (absent)
          // destinations itself and change the states the push tests read back.
          SW_NO_BACKSTOP: true,
        },
        shmMb: 64,
        waitFor: [
          { transport: 'udp', address: ip, port: 5060 },
          { transport: 'tcp', address: ip, port: 5071 },
        ],
      }),
  };
}

/** What the LB lists, as sorted `set uri state rweight` lines (order-free comparisons). */
export async function listedLines(rpc: CountingRpc): Promise<string[]> {
  const r = await fetchDispatcherList(rpc.client);
  if (!r.ok) throw new Error(r.error);
  return r.targets
    .map(
      (t) =>
        `${t.setId} ${t.uri} ${t.state}${t.probing === 'none' ? '' : `+${t.probing}`} ${t.rweight ?? '-'}`,
    )
    .sort();
}

export function linesOf(destinations: readonly Destination[]): string[] {
  return destinations.map((d) => `${d.setId} ${d.uri} ${d.state} ${d.rweight}`).sort();
}

/** `n` destinations in set 1 on 127.0.7.101.. (ports vary past 150 so any n fits). */
export function destinations(n: number, weight: (i: number) => number = () => 50): Destination[] {
  return Array.from({ length: n }, (_, i) => ({
    setId: 1,
    uri: `sip:127.0.7.${101 + (i % 150)}:${5060 + Math.floor(i / 150)}`,
    state: 'active' as const,
    rweight: weight(i),
    duid: `be-${i}`,
  }));
}
