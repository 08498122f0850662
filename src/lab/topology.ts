/**
 * The local lab's layout, computed (pure) from its options: who listens where. Every process gets
 * its own loopback address so that packet captures and /proc/net tables tell them apart.
 */
export interface LabOptions {
  readonly backends: number;
  /** Emulated capacity per backend in calls/s (one value for all, or one per backend); none = no emulation. */
  readonly capacities?: readonly number[];
  /**
   * What the operator tells sipweigh and the static lists each backend carries, calls/s (one value
   * for all, or one per backend); default: the emulated capacity (or 100 without emulation). Differs
   * from `capacities` to try a wrong datasheet: unknown capacities, a server slower than configured.
   */
  readonly configuredCapacities?: readonly number[];
  /** UDP workers of an emulated backend. */
  readonly workers?: number;
  readonly uasScenario?: string;
  /**
   * Second octet of the lab's loopback addresses: 127.N.0.x for the LB, backends and client, 127.N.1.x
   * for the UASes. Lets tests and benchmarks run labs side by side without sharing a port. Default 0.
   */
  readonly net?: number;
  /**
   * Kamailio LB nodes side by side (default 1), each with its own SIP address, JSON-RPC socket and
   * dispatcher list; with more than one their Call-ID tables are replicated with DMQ (docs/cluster.md).
   */
  readonly lbs?: number;
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
  /** Calls/s the agent, the controller and a capacity-weighted list are told (see LabOptions). */
  readonly configuredCapacity: number;
  readonly agent: SipEndpoint;
}

/** One LB node's DMQ peering: where it listens for KDMQ, whom it asks for the node list, whom it believes. */
export interface DmqPlan {
  readonly sip: SipEndpoint;
  /** The other nodes' DMQ URIs (sip:address:port), every one of them: membership is configuration. */
  readonly notify: readonly string[];
  /** The other nodes' DMQ addresses: KDMQ from anywhere else is dropped. */
  readonly allow: readonly string[];
}

export interface LbPlan {
  /** Its name among the controller's lb_nodes (lb1, lb2, …). */
  readonly name: string;
  readonly sip: SipEndpoint;
  readonly rpc: {
    readonly address: string;
    readonly port: number;
    readonly username: string;
    readonly password: string;
  };
  readonly dispatcherSet: number;
  /** Its dispatcher list's file name in the lab's directory. */
  readonly listFile: string;
  /** null with a single LB: nothing to replicate to. */
  readonly dmq: DmqPlan | null;
}

export interface LabPlan {
  /** LB 0, the one clients are sent to (the same as lbs[0]). */
  readonly lb: LbPlan;
  /** Every LB node, LB 0 first. */
  readonly lbs: readonly LbPlan[];
  readonly controller: { readonly heartbeat: SipEndpoint };
  readonly client: { readonly address: string };
  readonly backends: readonly BackendPlan[];
}

export const LAB_LIMITS = { minBackends: 1, maxBackends: 19, minLbs: 1, maxLbs: 4 } as const;
/** DMQ listens on each LB's own address, on this port (not its SIP port: KDMQ stays apart from calls). */
export const LAB_DMQ_PORT = 5090;
const DEFAULT_WORKERS = 4;
/** What a backend without emulation and without a configured capacity is said to carry, calls/s. */
export const DEFAULT_CONFIGURED_CAPACITY = 100;

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
  const configured = opts.configuredCapacities ?? [];
  if (configured.length > 1 && configured.length !== n) {
    throw new Error(`configured capacities give ${configured.length} values for ${n} backends`);
  }
  if (configured.some((c) => !(c > 0))) throw new Error('configured capacities must be > 0 calls/s');
  const net = opts.net ?? 0;
  if (!Number.isInteger(net) || net < 0 || net > 254) throw new Error(`net must be 0..254, got ${net}`);
  const lbCount = opts.lbs ?? 1;
  if (!Number.isInteger(lbCount) || lbCount < LAB_LIMITS.minLbs || lbCount > LAB_LIMITS.maxLbs) {
    throw new Error(`--lbs must be ${LAB_LIMITS.minLbs}..${LAB_LIMITS.maxLbs}, got ${lbCount}`);
  }
  const host = (sub: number, last: number): string => `127.${net}.${sub}.${last}`;
  const backends: BackendPlan[] = [];
  for (let i = 0; i < n; i++) {
    const cap = caps.length === 0 ? undefined : caps.length === 1 ? caps[0] : caps[i];
    const told =
      configured.length === 0 ? undefined : configured.length === 1 ? configured[0] : configured[i];
    backends.push({
      id: `be${i + 1}`,
      sip: { address: host(0, 11 + i), port: 5060 },
      rpcPort: 5072,
      uas: { address: host(1, 11 + i), port: 5060 },
      emulation: cap === undefined ? null : emulationFor(cap, opts.workers),
      configuredCapacity: told ?? cap ?? DEFAULT_CONFIGURED_CAPACITY,
      agent: { address: host(0, 11 + i), port: 7951 },
    });
  }
  const lbs = planLbs(lbCount, (i) => host(0, lbHostOctet(i)));
  return {
    lb: lbs[0]!,
    lbs,
    controller: { heartbeat: { address: host(0, 10), port: 7950 } },
    client: { address: host(0, 5) },
    backends,
  };
}

/**
 * The last octet of LB `i`'s address (0-based). LB 0 stays at .10, where the lab has always had it;
 * the others follow the highest backend address (.11 up to .10 + maxBackends), so no number of
 * backends ever lands on one, and stay clear of the client (.5) below.
 */
export function lbHostOctet(i: number): number {
  return i === 0 ? 10 : 10 + LAB_LIMITS.maxBackends + i;
}

/**
 * `count` LB nodes at `address(i)`: each its own SIP and JSON-RPC socket and list file; with more
 * than one, a DMQ socket each that notifies and allows exactly the other nodes.
 */
function planLbs(count: number, address: (i: number) => string): LbPlan[] {
  const addresses = Array.from({ length: count }, (_, i) => address(i));
  return addresses.map((a, i) => {
    const others = addresses.filter((_, j) => j !== i);
    const name = `lb${i + 1}`;
    return {
      name,
      sip: { address: a, port: 5060 },
      rpc: { address: a, port: 5071, username: 'sipweigh', password: 'lab-secret' },
      dispatcherSet: 1,
      // LB 0's file keeps the name it has always had (the controller's status file sits beside it).
      listFile: i === 0 ? 'dispatcher.list' : `dispatcher-${name}.list`,
      dmq:
        count === 1
          ? null
          : {
              sip: { address: a, port: LAB_DMQ_PORT },
              notify: others.map((o) => `sip:${o}:${LAB_DMQ_PORT}`),
              allow: others,
            },
    };
  });
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
