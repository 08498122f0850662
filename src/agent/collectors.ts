/**
 * The agent's collectors and their cadences, from its config.
 *
 * The early-warning signals (the SIP socket's receive queue, the OPTIONS round trip) run at the
 * configured `collect_interval_ms`; figures that move slowly or cost more run less often. Every
 * collector has a timeout, so none can hold a stale value in the report for long.
 */
import type { AgentConfig } from '../config/types.js';
import { KamailioRpcClient } from '../kamailio/rpc.js';
import type { Collector } from '../metrics/collector.js';
import {
  cpuCollector,
  loadCollector,
  memoryCollector,
  udpSocketCollector,
} from '../metrics/host-collectors.js';
import { kamailioRpcCollector } from '../metrics/kamailio-collector.js';
import { optionsCollector } from '../metrics/options-collector.js';

/** How long one OPTIONS ping waits; a ping that outlives it is reported as this many ms. */
export const OPTIONS_REPLY_TIMEOUT_MS = 1000;

export function agentCollectors(config: AgentConfig): Collector[] {
  const every = config.collect_interval_ms;
  const collectors: Collector[] = [
    udpSocketCollector(config.sip, { intervalMs: every, timeoutMs: 1000 }),
    optionsCollector({ target: config.sip, intervalMs: every, replyTimeoutMs: OPTIONS_REPLY_TIMEOUT_MS }),
    cpuCollector({ intervalMs: Math.max(every, 1000), timeoutMs: 1500 }),
    memoryCollector({ intervalMs: Math.max(every, 2000), timeoutMs: 1000 }),
    loadCollector({ intervalMs: Math.max(every, 2000), timeoutMs: 1000 }),
  ];
  if (config.kamailio_rpc) {
    const rpcConfig = config.kamailio_rpc;
    const rpc = new KamailioRpcClient({
      url: rpcConfig.url,
      ...(rpcConfig.username !== undefined ? { username: rpcConfig.username } : {}),
      ...(rpcConfig.password !== undefined ? { password: rpcConfig.password } : {}),
      deadlineMs: rpcConfig.timeout_ms,
      maxSockets: 3,
    });
    const collector = kamailioRpcCollector(rpc, {
      intervalMs: Math.max(every, 500),
      timeoutMs: rpcConfig.timeout_ms + 100,
    });
    collectors.push({ ...collector, close: () => rpc.close() });
  }
  return collectors;
}
