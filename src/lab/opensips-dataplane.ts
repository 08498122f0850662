/**
 * A small data-plane topology with an OpenSIPS LB (opensips/sipweigh-lb.cfg through the lab's
 * opensips/lab-lb.cfg) in front of Kamailio backends (src/lab/kamailio/backend.cfg), each relaying
 * to its own sipp UAS, on its own loopback block so it never meets the Kamailio topologies:
 *   LB 127.47.0.10 (SIP 5060, MI over HTTP 8888), backend i 127.47.0.(11+i) (SIP 5060, JSON-RPC
 *   5072), its UAS 127.47.1.(11+i):5060, clients 127.47.0.100 and up.
 * Plus the tools the OpenSIPS tests need: MI calls and statistics.
 */
import { join } from 'node:path';
import { LAB_KAMAILIO_CFG_DIR } from '../util/package-root.js';
import { backendDefines } from './defines.js';
import { startKamailio, type Defines, type KamailioInstance } from './kamailio.js';
import { startOpenSipsLb, type OpenSipsInstance } from './opensips.js';
import type { ProcessGroup } from './processes.js';
import { startSipp, type SippRun } from './sipp.js';
import type { Destination } from '../kamailio/dispatcher-list.js';
import { OpenSipsMiClient } from '../opensips/mi.js';

export const OSIPS_NET = {
  lbIp: '127.47.0.10',
  sipPort: 5060,
  miPort: 8888,
  backendRpcPort: 5072,
  backendIp: (i: number) => `127.47.0.${11 + i}`,
  uasIp: (i: number) => `127.47.1.${11 + i}`,
  clientIp: (i = 0) => `127.47.0.${100 + i}`,
  dsSet: 1,
} as const;

export interface OsipsBackend {
  readonly weight: number;
  readonly defines?: Defines;
}

export interface OsipsPlane {
  readonly lb: OpenSipsInstance;
  readonly mi: OpenSipsMiClient;
  readonly backends: readonly {
    readonly index: number;
    readonly ip: string;
    readonly uri: string;
    readonly uasIp: string;
    readonly rpcUrl: string;
    readonly kamailio: KamailioInstance;
  }[];
}

export function planeDestinations(backends: readonly OsipsBackend[]): Destination[] {
  return backends.map((b, i) => ({
    setId: OSIPS_NET.dsSet,
    uri: `sip:${OSIPS_NET.backendIp(i)}:${OSIPS_NET.sipPort}`,
    state: 'active',
    rweight: b.weight,
    duid: `be${i + 1}`,
  }));
}

export async function startOsipsPlane(
  group: ProcessGroup,
  backends: readonly OsipsBackend[],
  lb: {
    readonly pkgMb?: number;
    readonly shmMb?: number;
    readonly workers?: number;
    readonly literalSends?: boolean;
  } = {},
): Promise<OsipsPlane> {
  const net = OSIPS_NET;
  const started = await Promise.all(
    backends.map(async (spec, index) => {
      const ip = net.backendIp(index);
      const kamailio = await startKamailio(group, {
        name: `backend${index}`,
        cfg: join(LAB_KAMAILIO_CFG_DIR, 'backend.cfg'),
        defines: {
          ...backendDefines({
            sip: { address: ip, port: net.sipPort },
            trustedLbs: [net.lbIp],
            uas: { address: net.uasIp(index), port: net.sipPort },
            rpcPort: net.backendRpcPort,
          }),
          ...spec.defines,
        },
        waitFor: [
          { transport: 'udp', address: ip, port: net.sipPort },
          { transport: 'tcp', address: ip, port: net.backendRpcPort },
        ],
      });
      return {
        index,
        ip,
        uri: `sip:${ip}:${net.sipPort}`,
        uasIp: net.uasIp(index),
        rpcUrl: `http://${ip}:${net.backendRpcPort}/RPC`,
        kamailio,
      };
    }),
  );
  const instance = await startOpenSipsLb(group, {
    settings: {
      sip: { address: net.lbIp, port: net.sipPort },
      mi: { address: net.lbIp, port: net.miPort },
      ...(lb.workers !== undefined ? { workers: lb.workers } : {}),
    },
    destinations: planeDestinations(backends),
    ...(lb.pkgMb !== undefined ? { pkgMb: lb.pkgMb } : {}),
    ...(lb.shmMb !== undefined ? { shmMb: lb.shmMb } : {}),
    ...(lb.literalSends !== undefined ? { literalSends: lb.literalSends } : {}),
  });
  return { lb: instance, mi: new OpenSipsMiClient({ url: instance.files.miUrl }), backends: started };
}

/** One sipp UAS per backend, at the address that backend relays to. */
export function startOsipsUases(
  group: ProcessGroup,
  plane: OsipsPlane,
  opts: { scenario: string; tag: string; timeoutS: number; traceMessages?: boolean },
): Promise<SippRun[]> {
  return Promise.all(
    plane.backends.map((b) =>
      startSipp(group, {
        name: `${opts.tag}-uas${b.index}`,
        scenario: opts.scenario,
        localIp: b.uasIp,
        localPort: OSIPS_NET.sipPort,
        timeoutS: opts.timeoutS,
        traceMessages: opts.traceMessages ?? false,
      }),
    ),
  );
}

export type MiStats = Readonly<Record<string, number>>;

/** OpenSIPS statistics by name (`sipweigh_sticky`, `rcv_requests`...), group prefixes dropped. */
export async function miStats(mi: OpenSipsMiClient): Promise<MiStats> {
  const result = (await mi.call('get_statistics', { statistics: ['all'] })) as Record<string, unknown>;
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(result)) {
    const n = typeof v === 'number' ? v : Number(v);
    if (Number.isFinite(n)) out[k.slice(k.indexOf(':') + 1)] = n;
  }
  return out;
}

export function miDelta(before: MiStats, after: MiStats, name: string): number {
  const a = after[name];
  if (a === undefined) throw new Error(`no OpenSIPS statistic ${name}`);
  return a - (before[name] ?? 0);
}
