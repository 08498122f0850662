/**
 * A small data-plane topology on loopback for the data-plane tests and benchmark: one LB (the
 * lab's src/lab/kamailio/lb.cfg) in front of N backends (src/lab/kamailio/backend.cfg), each backend relaying to
 * its own sipp UAS. Addresses come from the data-plane block 127.0.2.0/24:
 *   LB 127.0.2.10 (SIP 5060, JSON-RPC 5071), backend i 127.0.2.(11+i) (SIP 5060, JSON-RPC 5072),
 *   its UAS 127.0.2.(51+i):5060, clients 127.0.2.100 and up.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LAB_KAMAILIO_CFG_DIR } from '../util/package-root.js';
import { formatDispatcherList } from '../kamailio/dispatcher-list.js';
import { backendDefines, lbDefines } from './defines.js';
import { startKamailio, type Defines, type KamailioInstance } from './kamailio.js';
import type { ProcessGroup } from './processes.js';
import { startSipp, type SippRun, type SippTransport } from './sipp.js';
import type { Endpoint } from './sockets.js';

export const DATAPLANE_NET = {
  lbIp: '127.0.2.10',
  sipPort: 5060,
  lbRpcPort: 5071,
  backendRpcPort: 5072,
  backendIp: (i: number) => `127.0.2.${11 + i}`,
  uasIp: (i: number) => `127.0.2.${51 + i}`,
  clientIp: (i = 0) => `127.0.2.${100 + i}`,
  /** The address allowed to use the LB's JSON-RPC in these topologies. */
  rpcClientIp: '127.0.2.100',
  rpcUser: 'sipweigh',
  rpcPassword: 'dataplane-secret',
  dsSet: 1,
} as const;

export interface DataPlaneBackend {
  /** Relative weight (dispatcher `rweight`, 1..100). */
  readonly weight: number;
  /** Extra backend.cfg defines (SW_PRE_RELAY_DELAY_US, SW_SERVICE_DELAY_US, SW_WORKERS...). */
  readonly defines?: Defines;
}

export interface DataPlaneOptions {
  readonly backends: readonly DataPlaneBackend[];
  /**
   * Extra lb.cfg defines, e.g. `{ SW_STATEFUL: true }`. The topology has no controller: the LB's
   * lease backstop is off (SW_NO_BACKSTOP) unless `{ SW_NO_BACKSTOP: false }`, so that no OPTIONS of
   * the LB's own reach the backends the tests count.
   */
  readonly lbDefines?: Defines;
  readonly lbShmMb?: number;
  /** The Kamailio binary of the LB and the backends (default kamailioBinary()). */
  readonly kamailio?: string;
}

export interface BackendNode {
  readonly index: number;
  readonly ip: string;
  readonly uri: string;
  readonly uasIp: string;
  readonly rpcUrl: string;
  readonly kamailio: KamailioInstance;
}

export interface DataPlane {
  readonly lb: KamailioInstance;
  readonly lbSip: Endpoint;
  readonly lbRpcUrl: string;
  readonly dispatcherList: string;
  readonly backends: readonly BackendNode[];
}

export async function startDataPlane(group: ProcessGroup, opts: DataPlaneOptions): Promise<DataPlane> {
  const net = DATAPLANE_NET;
  const dispatcherList = join(group.runDir, 'dispatcher.list');
  const specs = opts.backends.map((spec, index) => ({
    spec,
    index,
    ip: net.backendIp(index),
    uri: `sip:${net.backendIp(index)}:${net.sipPort}`,
  }));
  writeFileSync(
    dispatcherList,
    formatDispatcherList(
      specs.map((b) => ({
        setId: net.dsSet,
        uri: b.uri,
        state: 'active',
        rweight: b.spec.weight,
        duid: `backend${b.index}`,
      })),
    ),
  );

  const backends = await Promise.all(
    specs.map(async (b): Promise<BackendNode> => {
      const kamailio = await startKamailio(group, {
        name: `backend${b.index}`,
        binary: opts.kamailio,
        cfg: join(LAB_KAMAILIO_CFG_DIR, 'backend.cfg'),
        defines: {
          ...backendDefines({
            sip: { address: b.ip, port: net.sipPort },
            trustedLbs: [net.lbIp],
            uas: { address: net.uasIp(b.index), port: net.sipPort },
            rpcPort: net.backendRpcPort,
          }),
          ...b.spec.defines,
        },
        waitFor: [
          { transport: 'udp', address: b.ip, port: net.sipPort },
          { transport: 'tcp', address: b.ip, port: net.backendRpcPort },
        ],
      });
      return {
        index: b.index,
        ip: b.ip,
        uri: b.uri,
        uasIp: net.uasIp(b.index),
        rpcUrl: `http://${b.ip}:${net.backendRpcPort}/RPC`,
        kamailio,
      };
    }),
  );

  const lb = await startKamailio(group, {
    name: 'lb',
    binary: opts.kamailio,
    cfg: join(LAB_KAMAILIO_CFG_DIR, 'lb.cfg'),
    shmMb: opts.lbShmMb ?? 64,
    defines: {
      ...lbDefines({
        sip: { address: net.lbIp, port: net.sipPort },
        rpc: { address: net.lbIp, port: net.lbRpcPort, username: net.rpcUser, password: net.rpcPassword },
        rpcAllow: [net.rpcClientIp],
        dispatcherList,
        dispatcherSet: net.dsSet,
      }),
      SW_NO_BACKSTOP: true,
      ...opts.lbDefines,
    },
    waitFor: [
      { transport: 'udp', address: net.lbIp, port: net.sipPort },
      { transport: 'tcp', address: net.lbIp, port: net.sipPort },
      { transport: 'tcp', address: net.lbIp, port: net.lbRpcPort },
    ],
  });

  return {
    lb,
    lbSip: { transport: 'udp', address: net.lbIp, port: net.sipPort },
    lbRpcUrl: `http://${net.lbIp}:${net.lbRpcPort}/RPC`,
    dispatcherList,
    backends,
  };
}

export interface UasOptions {
  readonly scenario: string;
  readonly timeoutS: number;
  readonly traceMessages?: boolean;
  readonly transport?: SippTransport;
  /** Name prefix, so successive UAS generations in one run directory keep their own files. */
  readonly tag: string;
}

/** One sipp UAS per backend, at the address that backend relays to. */
export async function startUases(
  group: ProcessGroup,
  plane: DataPlane,
  opts: UasOptions,
): Promise<SippRun[]> {
  return Promise.all(
    plane.backends.map((b) =>
      startSipp(group, {
        name: `${opts.tag}-uas${b.index}`,
        scenario: opts.scenario,
        localIp: b.uasIp,
        localPort: DATAPLANE_NET.sipPort,
        timeoutS: opts.timeoutS,
        traceMessages: opts.traceMessages ?? false,
        transport: opts.transport ?? 'u1',
      }),
    ),
  );
}
