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
