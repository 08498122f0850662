/**
 * The preprocessor defines that instantiate the shipped example configs (kamailio/lb.cfg and
 * kamailio/backend.cfg) for one lab member. Names are documented in those files' headers.
 * String-valued settings are passed quoted (`NAME="value"`) so the configs can use them where
 * Kamailio expects a string (modparams, comparisons); addresses and ports go bare into listen=.
 */
import type { Defines } from './kamailio.js';
import type { BackendPlan, LabPlan } from './topology.js';

const q = (s: string) => `"${s}"`;

export function lbDefines(plan: LabPlan, dispatcherList: string): Defines {
  return {
    SW_LB_IP: plan.lb.sip.address,
    SW_LB_PORT: plan.lb.sip.port,
    SW_RPC_IP: plan.lb.rpc.address,
    SW_RPC_PORT: plan.lb.rpc.port,
    SW_RPC_USER: q(plan.lb.rpc.username),
    SW_RPC_PASSWORD: q(plan.lb.rpc.password),
    // The controller runs beside the LB in the lab; local tools connect from 127.0.0.1 (the kernel's
    // default source on lo). Any other loopback address is refused (403).
    SW_RPC_ALLOW: q(`127.0.0.1/32,${plan.lb.rpc.address}/32`),
    SW_DS_LIST: q(dispatcherList),
    SW_DS_SET: plan.lb.dispatcherSet,
  };
}

export function backendDefines(plan: LabPlan, be: BackendPlan): Defines {
  return {
    SW_BE_IP: be.sip.address,
    SW_BE_PORT: be.sip.port,
    SW_LB_TRUSTED: q(plan.lb.sip.address),
    SW_UAS_IP: be.uas.address,
    SW_UAS_PORT: be.uas.port,
    SW_BE_RPC_PORT: be.rpcPort,
    SW_WORKERS: be.emulation?.workers ?? 4,
    SW_SERVICE_DELAY_US: be.emulation?.delayUs ?? 0,
  };
}
