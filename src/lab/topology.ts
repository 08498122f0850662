/**
 * The local lab's layout, computed (pure) from its options: who listens where. Every process gets
 * its own loopback address so that packet captures and /proc/net tables tell them apart.
 */
export interface LabOptions {
  readonly backends: number;
  /** Emulated capacity per backend in calls/s (one value for all, or one per backend); none = no emulation. */
  readonly capacities?: readonly number[];
  /** UDP workers of an emulated backend. */
  readonly workers?: number;
  readonly uasScenario?: string;
  /**
   * Second octet of the lab's loopback addresses: 127.N.0.x for the LB, backends and client, 127.N.1.x
   * for the UASes. Lets tests and benchmarks run labs side by side without sharing a port. Default 0.
   */
  readonly net?: number;
}

export interface Emulation {
  readonly workers: number;
  /** Service delay per initial INVITE, microseconds. Capacity ≈ workers / delay. */
  readonly delayUs: number;
  readonly callsPerSecond: number;
}

export interface SipEndpoint {
  readonly address: string;
  readonly port: number;
}

export interface BackendPlan {
  readonly id: string;
  readonly sip: SipEndpoint;
  readonly rpcPort: number;
  readonly uas: SipEndpoint;
  readonly emulation: Emulation | null;
  readonly agent: SipEndpoint;
}

export interface LabPlan {
  readonly lb: {
    readonly sip: SipEndpoint;
    readonly rpc: {
      readonly address: string;
      readonly port: number;
      readonly username: string;
      readonly password: string;
    };
    readonly dispatcherSet: number;
  };
  readonly controller: { readonly heartbeat: SipEndpoint };
  readonly client: { readonly address: string };
  readonly backends: readonly BackendPlan[];
}

export const LAB_LIMITS = { minBackends: 1, maxBackends: 19 } as const;
const DEFAULT_WORKERS = 4;

export function emulationFor(callsPerSecond: number, workers = DEFAULT_WORKERS): Emulation {
  if (!(callsPerSecond > 0)) throw new Error(`capacity must be > 0 calls/s, got ${callsPerSecond}`);
  if (!Number.isInteger(workers) || workers < 1 || workers > 64)
    throw new Error(`workers must be 1..64, got ${workers}`);
  const delayUs = Math.round((workers * 1e6) / callsPerSecond);
  return { workers, delayUs, callsPerSecond };
}

export function planLab(opts: LabOptions): LabPlan {
  const n = opts.backends;
  if (!Number.isInteger(n) || n < LAB_LIMITS.minBackends || n > LAB_LIMITS.maxBackends) {
    throw new Error(`--backends must be ${LAB_LIMITS.minBackends}..${LAB_LIMITS.maxBackends}, got ${n}`);
  }
  const caps = opts.capacities ?? [];
  if (caps.length > 1 && caps.length !== n) {
    throw new Error(
      `--capacity gives ${caps.length} values for ${n} backends (give one, or one per backend)`,
    );
  }
  const net = opts.net ?? 0;
  if (!Number.isInteger(net) || net < 0 || net > 254) throw new Error(`net must be 0..254, got ${net}`);
  const host = (sub: number, last: number): string => `127.${net}.${sub}.${last}`;
  const backends: BackendPlan[] = [];
  for (let i = 0; i < n; i++) {
    const cap = caps.length === 0 ? undefined : caps.length === 1 ? caps[0] : caps[i];
    backends.push({
      id: `be${i + 1}`,
      sip: { address: host(0, 11 + i), port: 5060 },
      rpcPort: 5072,
      uas: { address: host(1, 11 + i), port: 5060 },
      emulation: cap === undefined ? null : emulationFor(cap, opts.workers),
      agent: { address: host(0, 11 + i), port: 7951 },
    });
  }
  return {
    lb: {
      sip: { address: host(0, 10), port: 5060 },
      rpc: { address: host(0, 10), port: 5071, username: 'sipweigh', password: 'lab-secret' },
      dispatcherSet: 1,
    },
    controller: { heartbeat: { address: host(0, 10), port: 7950 } },
    client: { address: host(0, 5) },
    backends,
  };
}

/** Where a lab's sipp UAC sends from and to: the client's address, `port`, and the LB's SIP socket. */
export function labClient(
  plan: LabPlan,
  port = 5060,
): { readonly localIp: string; readonly localPort: number; readonly remote: string } {
  return {
    localIp: plan.client.address,
    localPort: port,
    remote: `${plan.lb.sip.address}:${plan.lb.sip.port}`,
  };
}
