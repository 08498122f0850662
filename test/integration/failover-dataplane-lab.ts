/**
 * The failover data-plane tests' topology, on the f-dataplane block 127.40.x.x: the lab's LB
 * (src/lab/kamailio/lb.cfg) at 127.40.0.10 in front of backends (backend.cfg) at 127.40.0.11+i, each
 * relaying to its own sipp UAS at 127.40.1.11+i; clients and the JSON-RPC caller at 127.40.0.100+.
 * No controller: the tests play its part over JSON-RPC (dispatcher.set_state, htable.seti lease).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatDispatcherList, type DestinationState } from '../../src/kamailio/dispatcher-list.js';
import { fetchDispatcherList } from '../../src/kamailio/fetch-dispatcher-list.js';
import type { DispatcherTarget } from '../../src/kamailio/dispatcher-list-reply.js';
import { KamailioRpcClient } from '../../src/kamailio/rpc.js';
import { backendDefines, lbDefines } from '../../src/lab/defines.js';
import { LAB_CONFIGS } from '../../src/lab/lab.js';
import { startKamailio, type Defines, type KamailioInstance } from '../../src/lab/kamailio.js';
import { signalGroup, type ProcessGroup } from '../../src/lab/processes.js';
import { startSipp, type SippRun } from '../../src/lab/sipp.js';
import { fetchStats, type Stats } from './dataplane-helpers.js';

export const FAILOVER_NET = {
  lbIp: '127.40.0.10',
  sipPort: 5060,
  lbRpcPort: 5071,
  backendRpcPort: 5072,
  backendIp: (i: number) => `127.40.0.${11 + i}`,
  uasIp: (i: number) => `127.40.1.${11 + i}`,
  clientIp: (i = 0) => `127.40.0.${100 + i}`,
  rpcUser: 'sipweigh',
  rpcPassword: 'failover-secret',
  dsSet: 1,
} as const;

export interface FailoverBackendSpec {
  readonly weight: number;
  /** State in the initial list file. */
  readonly state?: DestinationState;
  /** Extra backend.cfg defines (SW_PRE_RELAY_DELAY_US...). */
  readonly defines?: Defines;
}

export interface FailoverBackend {
  readonly index: number;
  readonly uri: string;
  readonly kamailio: KamailioInstance;
  readonly rpcUrl: string;
}

export interface FailoverPlane {
  readonly lbTarget: string;
  /** Close it in after(), before the group stops. */
  readonly rpc: KamailioRpcClient;
  readonly backends: readonly FailoverBackend[];
  lbStats(): Promise<Stats>;
  backendStats(i: number): Promise<Stats>;
  /** The LB's dispatcher targets, by URI. */
  targets(): Promise<Map<string, DispatcherTarget>>;
  /** An htable's integer items, by key (htable.dump). */
  htable(name: string): Promise<Map<string, number>>;
  /** SIGKILL to the backend's whole process group (its workers hold the SIP socket). */
  kill(i: number): void;
  /** What the controller would do: dispatcher.set_state (`a`, `i`, `d`) of one destination. */
  setState(i: number, state: 'a' | 'i' | 'd'): Promise<void>;
  /** What the controller does every cycle: the lease, ms. */
  refreshLease(ms: number): Promise<void>;
  startUases(tag: string, scenario: string, timeoutS: number): Promise<SippRun[]>;
}

export async function startFailoverPlane(
  group: ProcessGroup,
  specs: readonly FailoverBackendSpec[],
  lbExtra: Defines = {},
): Promise<FailoverPlane> {
  const net = FAILOVER_NET;
  const list = join(group.runDir, 'dispatcher.list');
  const uris = specs.map((_, i) => `sip:${net.backendIp(i)}:${net.sipPort}`);
  writeFileSync(
    list,
    formatDispatcherList(
      specs.map((s, i) => ({
        setId: net.dsSet,
        uri: uris[i]!,
        state: s.state ?? 'active',
        rweight: s.weight,
        duid: `backend${i}`,
      })),
    ),
  );
  const backends = await Promise.all(
    specs.map(async (s, i): Promise<FailoverBackend> => {
      const kamailio = await startKamailio(group, {
        name: `backend${i}`,
        cfg: LAB_CONFIGS.backend,
        defines: {
          ...backendDefines({
            sip: { address: net.backendIp(i), port: net.sipPort },
            trustedLbs: [net.lbIp],
            uas: { address: net.uasIp(i), port: net.sipPort },
            rpcPort: net.backendRpcPort,
          }),
          ...s.defines,
        },
        waitFor: [
          { transport: 'udp', address: net.backendIp(i), port: net.sipPort },
          { transport: 'tcp', address: net.backendIp(i), port: net.backendRpcPort },
        ],
      });
      return {
        index: i,
        uri: uris[i]!,
        kamailio,
        rpcUrl: `http://${net.backendIp(i)}:${net.backendRpcPort}/RPC`,
      };
    }),
  );
  await startKamailio(group, {
    name: 'lb',
    cfg: LAB_CONFIGS.lb,
    defines: {
      ...lbDefines({
        sip: { address: net.lbIp, port: net.sipPort },
        rpc: { address: net.lbIp, port: net.lbRpcPort, username: net.rpcUser, password: net.rpcPassword },
        rpcAllow: ['127.0.0.1'],
        dispatcherList: list,
        dispatcherSet: net.dsSet,
      }),
      ...lbExtra,
    },
    waitFor: [
      { transport: 'udp', address: net.lbIp, port: net.sipPort },
      { transport: 'tcp', address: net.lbIp, port: net.lbRpcPort },
    ],
  });
  const url = `http://${net.lbIp}:${net.lbRpcPort}/RPC`;
  const rpc = new KamailioRpcClient({
    url,
    username: net.rpcUser,
    password: net.rpcPassword,
    deadlineMs: 5000,
  });
  // The RPC client binds no source: the kernel's default on lo is 127.0.0.1.
  const access = { localAddress: '127.0.0.1', auth: { user: net.rpcUser, password: net.rpcPassword } };
  return {
    lbTarget: `${net.lbIp}:${net.sipPort}`,
    rpc,
    backends,
    lbStats: () => fetchStats(url, access),
    backendStats: (i) => fetchStats(backends[i]!.rpcUrl),
    targets: async () => {
      const r = await fetchDispatcherList(rpc);
      if (!r.ok) throw new Error(r.error);
      return new Map(r.targets.map((t) => [t.uri, t]));
    },
    htable: async (name) => {
      const out = new Map<string, number>();
      let dump: unknown;
      try {
        dump = await rpc.call('htable.dump', [name]);
      } catch {
        return out; // an empty table answers with an error
      }
      // [{ entry: <bucket>, size, slot: [{ name, value, type }] }]
      for (const bucket of Array.isArray(dump) ? dump : []) {
        const slot = (bucket as { slot?: unknown }).slot;
        for (const it of (Array.isArray(slot) ? slot : []) as { name?: unknown; value?: unknown }[]) {
          if (typeof it.name === 'string' && typeof it.value === 'number') out.set(it.name, it.value);
        }
      }
      return out;
    },
    kill: (i) => signalGroup(backends[i]!.kamailio.process.pid, 'SIGKILL'),
    setState: async (i, state) => {
      await rpc.call('dispatcher.set_state', [state, net.dsSet, uris[i]!]);
    },
    refreshLease: async (ms) => {
      await rpc.call('htable.seti', ['sipweigh_lease', 'ms_left', ms]);
    },
    startUases: (tag, scenario, timeoutS) =>
      Promise.all(
        backends.map((b) =>
          startSipp(group, {
            name: `${tag}-uas${b.index}`,
            scenario,
            localIp: net.uasIp(b.index),
            localPort: net.sipPort,
            timeoutS,
            traceMessages: true,
          }),
        ),
      ),
  };
}
