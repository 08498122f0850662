/**
 * Discovery, pure: merges the backends named in the config with the destinations each LB's
 * dispatcher.list reports, into one list of BackendSpec for the probe registry. (The third source,
 * signed hellos, is handled by the registry itself (probe/probe-core.ts), which alone can authenticate them.)
 *
 * Rules:
 * - only sets the controller manages (those in its config) are taken from LBs; others are noted;
 * - the config wins: a dispatcher destination with a configured backend's id or URI is that backend;
 * - a destination's backend id is its `duid` attribute, else its URI's host:port;
 * - its agent address comes from the attribute `sw_agent=IP:PORT`, its capacity from
 *   `sw_capacity=N` (else `defaultCapacity`, in the daemon DEFAULT_DISCOVERED_CAPACITY); without `sw_agent` it is not probed until it says hello;
 * - the same destination on several LBs is one backend.
 */
import type { SetConfig } from '../config/types.js';
import type { BackendSpec } from './backend-spec.js';
import type { UdpAddress } from '../util/udp-address.js';
import { BACKEND_ID_PATTERN } from '../heartbeat/messages.js';
import type { DispatcherTarget } from '../kamailio/dispatcher-list-reply.js';

export interface LbDispatcherList {
  readonly node: string;
  readonly targets: readonly DispatcherTarget[];
}

export type DiscoveryNote =
  | { readonly kind: 'unmanaged_set'; readonly node: string; readonly setId: number; readonly uri: string }
  | { readonly kind: 'bad_id'; readonly node: string; readonly uri: string; readonly detail: string }
  | { readonly kind: 'bad_attr'; readonly node: string; readonly uri: string; readonly detail: string }
  | {
      readonly kind: 'id_conflict';
      readonly node: string;
      readonly id: string;
      readonly uris: readonly [string, string];
    };

export interface DiscoveryResult {
  readonly backends: readonly BackendSpec[];
  readonly notes: readonly DiscoveryNote[];
}

/**
 * Capacity of an LB-discovered destination without `sw_capacity`: a middling figure the scorer
 * starts from and derates as the backend's reports come in (docs/heartbeat-protocol.md, discovery).
 */
export const DEFAULT_DISCOVERED_CAPACITY = 100;

export interface DiscoveryOptions {
  readonly defaultCapacity: number;
}

/** `sip:user@10.0.0.5:5060;transport=udp` -> `10.0.0.5:5060` (brackets of IPv6 dropped); null if no host. */
export function hostPortOf(uri: string): string | null {
  const m = /^sips?:(?:[^@;]*@)?(\[[0-9a-fA-F:.]+\]|[^:;?>]+)(?::(\d+))?/.exec(uri);
  if (!m) return null;
  const host = m[1]!.replace(/^\[|\]$/g, '');
  return m[2] ? `${host}:${m[2]}` : host;
}

export function parseAgentAttr(v: string): UdpAddress | null {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(v);
  if (!m) return null;
  const port = Number(m[2]);
  if (port < 1 || port > 65535 || m[1]!.split('.').some((o) => Number(o) > 255)) return null;
  return { address: m[1]!, port };
}

export function mergeDiscovery(
  sets: readonly SetConfig[],
  lbs: readonly LbDispatcherList[],
  opts: DiscoveryOptions,
): DiscoveryResult {
  const notes: DiscoveryNote[] = [];
  const byId = new Map<string, BackendSpec>();
  const configUris = new Set<string>();
  const managed = new Set(sets.map((s) => s.id));

  for (const set of sets) {
    for (const b of set.backends) {
      byId.set(b.id, {
        id: b.id,
        set: set.id,
        uri: b.sip_uri,
        capacity: b.capacity,
        agent: b.agent,
        ...(b.ssh ? { ssh: b.ssh } : {}),
        source: 'config',
      });
      configUris.add(`${set.id} ${b.sip_uri}`);
    }
  }

  for (const lb of lbs) {
    for (const t of lb.targets) {
      if (!managed.has(t.setId)) {
        notes.push({ kind: 'unmanaged_set', node: lb.node, setId: t.setId, uri: t.uri });
        continue;
      }
      if (configUris.has(`${t.setId} ${t.uri}`)) continue;
      const id = t.duid ?? hostPortOf(t.uri);
      if (id === null || !BACKEND_ID_PATTERN.test(id)) {
        notes.push({
          kind: 'bad_id',
          node: lb.node,
          uri: t.uri,
          detail: `no usable backend id (duid or host:port): ${JSON.stringify(id)}`,
        });
        continue;
      }
      const existing = byId.get(id);
      if (existing) {
        if (existing.source !== 'config' && existing.uri !== t.uri) {
          notes.push({ kind: 'id_conflict', node: lb.node, id, uris: [existing.uri, t.uri] });
        }
        continue;
      }
      let agent: UdpAddress | undefined;
      const agentAttr = t.attrs.sw_agent;
      if (agentAttr !== undefined) {
        agent = parseAgentAttr(agentAttr) ?? undefined;
        if (!agent)
          notes.push({
            kind: 'bad_attr',
            node: lb.node,
            uri: t.uri,
            detail: `sw_agent=${agentAttr} is not IPv4:port`,
          });
      }
      let capacity = opts.defaultCapacity;
      const capAttr = t.attrs.sw_capacity;
      if (capAttr !== undefined) {
        const c = Number(capAttr);
        if (Number.isFinite(c) && c > 0) capacity = c;
        else
          notes.push({
            kind: 'bad_attr',
            node: lb.node,
            uri: t.uri,
            detail: `sw_capacity=${capAttr} is not a positive number`,
          });
      }
      byId.set(id, { id, set: t.setId, uri: t.uri, capacity, agent, source: 'dispatcher' });
    }
  }
  return { backends: [...byId.values()], notes };
}
