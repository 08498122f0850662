/**
 * The preprocessor defines that instantiate the lab's Kamailio configs (src/lab/kamailio/lb.cfg and
 * src/lab/kamailio/backend.cfg); names are documented in those files' headers. One mapping, used by the lab,
 * the data-plane topology of the tests and the benchmarks.
 * String-valued settings are passed quoted (`NAME="value"`) so the configs can use them where
 * Kamailio expects a string (modparams, comparisons); addresses and ports go bare into listen=.
 */
import type { Defines } from './kamailio.js';

export interface Address {
  readonly address: string;
  readonly port: number;
}

export interface LbSettings {
  readonly sip: Address;
  readonly rpc: Address & { readonly username: string; readonly password: string };
  /** Sources allowed to call JSON-RPC: addresses or CIDRs. */
  readonly rpcAllow: readonly string[];
  readonly dispatcherList: string;
  readonly dispatcherSet: number;
}

export interface BackendSettings {
  readonly sip: Address;
  /** LB addresses whose stamped client source the backend believes. */
  readonly trustedLbs: readonly string[];
  /** Where the backend relays calls (the sipp UAS standing for the operator's routing). */
  readonly uas: Address;
  readonly rpcPort: number;
  /** Emulated capacity: UDP workers and the service delay per initial INVITE. */
  readonly workers?: number;
  readonly serviceDelayUs?: number;
}

const q = (s: string) => `"${s}"`;
const cidr = (a: string) => (a.includes('/') ? a : `${a}/32`);

export function lbDefines(lb: LbSettings): Defines {
  return {
    SW_LB_IP: lb.sip.address,
    SW_LB_PORT: lb.sip.port,
    SW_RPC_IP: lb.rpc.address,
    SW_RPC_PORT: lb.rpc.port,
    SW_RPC_USER: q(lb.rpc.username),
    SW_RPC_PASSWORD: q(lb.rpc.password),
    SW_RPC_ALLOW: q(lb.rpcAllow.map(cidr).join(',')),
    SW_DS_LIST: q(lb.dispatcherList),
    SW_DS_SET: lb.dispatcherSet,
  };
}

/** One LB node's DMQ peering (src/lab/topology.ts plans it), as the lab lb.cfg's SW_DMQ settings. */
export interface DmqSettings {
  readonly sip: Address;
  /** The other nodes' DMQ URIs; lb.cfg takes at most four (SW_DMQ_NOTIFY1..4). */
  readonly notify: readonly string[];
  /** The other nodes' DMQ addresses or CIDRs. */
  readonly allow: readonly string[];
}

const MAX_DMQ_NOTIFY = 4;

export function dmqDefines(dmq: DmqSettings): Defines {
  // lb.cfg has no SW_DMQ_NOTIFY5: a fifth peer would be silently left out of the node list.
  if (dmq.notify.length < 1 || dmq.notify.length > MAX_DMQ_NOTIFY) {
    throw new Error(`DMQ needs 1..${MAX_DMQ_NOTIFY} notification peers, got ${dmq.notify.length}`);
  }
  // Without an allowed source every KDMQ would be dropped: the tables would never meet.
  if (dmq.allow.length === 0) throw new Error('DMQ needs the other nodes among its allowed sources');
  const defines: Record<string, string | number | boolean> = {
    SW_DMQ: true,
    SW_DMQ_IP: dmq.sip.address,
    SW_DMQ_PORT: dmq.sip.port,
    SW_DMQ_ADDRESS: q(`sip:${dmq.sip.address}:${dmq.sip.port}`),
    SW_DMQ_ALLOW: q(dmq.allow.map(cidr).join(',')),
  };
  dmq.notify.forEach((uri, k) => (defines[`SW_DMQ_NOTIFY${k + 1}`] = q(uri)));
  return defines;
}

export function backendDefines(be: BackendSettings): Defines {
  return {
    SW_BE_IP: be.sip.address,
    SW_BE_PORT: be.sip.port,
    SW_LB_TRUSTED: q(be.trustedLbs.map(cidr).join(',')),
    SW_UAS_IP: be.uas.address,
    SW_UAS_PORT: be.uas.port,
    SW_BE_RPC_PORT: be.rpcPort,
    SW_WORKERS: be.workers ?? 4,
    SW_SERVICE_DELAY_US: be.serviceDelayUs ?? 0,
  };
}
