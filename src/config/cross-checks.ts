/**
 * Rules across fields that a JSON Schema cannot state: unique ids and names, every backend
 * measurable, a lease refreshed at least twice per duration, source groups that do not overlap, cron
 * expressions and time zones that parse, maintenance naming a known backend.
 */
import { validateDetailed } from 'node-cron';
import { formatNetwork, overlaps, parseNetwork, type Network } from '../util/cidr.js';
import { sendTarget } from '../opensips/dispatcher-table.js';
import type { ConfigIssue } from './errors.js';
import type { ControllerSection, SchedulesConfig } from './types.js';

export function checkController(c: ControllerSection, issues: ConfigIssue[]): void {
  const setIds = new Set<number>();
  const backendIds = new Map<string, string>();
  c.sets.forEach((set, i) => {
    if (setIds.has(set.id)) issues.push({ path: `sets[${i}].id`, message: `duplicate set id ${set.id}` });
    setIds.add(set.id);
    set.backends.forEach((b, j) => {
      const at = `sets[${i}].backends[${j}]`;
      const prior = backendIds.get(b.id);
      if (prior)
        issues.push({ path: `${at}.id`, message: `duplicate backend id ${b.id} (also at ${prior})` });
      backendIds.set(b.id, at);
      if (!b.agent && !b.ssh)
        issues.push({ path: at, message: 'needs an agent or an ssh section to be measured' });
    });
  });
  const lbNames = new Set<string>();
  c.lb_nodes.forEach((lb, i) => {
    if (lbNames.has(lb.name))
      issues.push({ path: `lb_nodes[${i}].name`, message: `duplicate LB node ${lb.name}` });
    lbNames.add(lb.name);
    checkOpenSipsNode(lb, `lb_nodes[${i}]`, issues);
  });
  // A peer that is one of this controller's nodes (or another peer) under another name would have
  // its demand counted twice in the admission split: refused, by name or by RPC endpoint.
  const endpoints = new Map<string, string>(
    c.lb_nodes.map((lb, i) => [rpcEndpoint(lb.rpc.url), `lb_nodes[${i}]`]),
  );
  c.admission.split.peers.forEach((peer, i) => {
    const at = `admission.split.peers[${i}]`;
    if (lbNames.has(peer.name))
      issues.push({
        path: `${at}.name`,
        message: `${peer.name} is already an LB node of this controller (lb_nodes) or another peer`,
      });
    lbNames.add(peer.name);
    const endpoint = rpcEndpoint(peer.rpc.url);
    const prior = endpoints.get(endpoint);
    if (prior)
      issues.push({
        path: `${at}.rpc.url`,
        message: `${endpoint} is also ${prior}'s RPC: the same LB node would count twice in the admission split`,
      });
    endpoints.set(endpoint, at);
    checkOpenSipsRpc(peer.kind, peer.rpc, at, issues);
  });
  if (c.lb_nodes.some((lb) => lb.kind === 'opensips')) checkOpenSipsSets(c, issues);
  checkSchedules(c.schedules, backendIds, issues);
  // One lost refresh must not lapse the lease (and turn the LB's own probing on for nothing).
  if (c.lease.refresh_ms * 2 > c.lease.duration_ms) {
    issues.push({
      path: 'lease.refresh_ms',
      message: `must be at most half of lease.duration_ms (${c.lease.duration_ms}), got ${c.lease.refresh_ms}`,
    });
  }
  checkFairness(c, issues);
}

/**
 * Source groups: every network parses, no address is in two groups (the LB would put it in
 * whichever its permissions table matches first), names are unique, the guarantees fit in every
 * set's configured capacity, and every LB node has the address file the groups are written to.
 */
function checkFairness(c: ControllerSection, issues: ConfigIssue[]): void {
  const f = c.admission.fairness;
  const at = 'admission.fairness.groups';
  const names = new Map<string, number>();
  const blocks: { net: Network; path: string; group: number }[] = [];
  f.groups.forEach((g, i) => {
    const prior = names.get(g.name);
    if (prior !== undefined) {
      issues.push({ path: `${at}[${i}].name`, message: `duplicate group ${g.name} (also ${at}[${prior}])` });
    }
    names.set(g.name, i);
    g.networks.forEach((text, j) => {
      const path = `${at}[${i}].networks[${j}]`;
      const parsed = parseNetwork(text);
      if (parsed.ok) blocks.push({ net: parsed.network, path, group: i });
      else issues.push({ path, message: parsed.error });
    });
  });
  for (const [a, b] of overlappingPairs(blocks)) {
    issues.push({
      path: b.path,
      message: `${formatNetwork(b.net)} overlaps ${formatNetwork(a.net)} of group ${f.groups[a.group]?.name} (${a.path}): an address may be in one group only`,
    });
  }
  const guaranteed = f.groups.reduce((s, g) => s + g.guaranteed_cps, 0);
  if (guaranteed > 0) {
    const room = 1 - f.other_reserve;
    c.sets.forEach((set, i) => {
      const capacity = set.backends.reduce((s, b) => s + b.capacity, 0);
      const fits = c.admission.headroom * capacity * room;
      if (set.backends.length > 0 && guaranteed > fits) {
        issues.push({
          path: at,
          message: `guaranteed_cps sum to ${guaranteed} calls/s, more than set ${set.id} (sets[${i}]) can admit beside the reserve for other sources (${Math.floor(fits)} = headroom x capacity x (1 - other_reserve))`,
        });
      }
    });
  }
  if (f.enabled && f.groups.length > 0) {
    c.lb_nodes.forEach((lb, i) => {
      if (lb.address_file === undefined) {
        issues.push({
          path: `lb_nodes[${i}].address_file`,
          message: 'required when admission.fairness.groups are configured: the LB learns the groups from it',
        });
      }
    });
  }
}

/** Pairs of blocks of different groups that share an address (a sweep over sorted blocks). */
function overlappingPairs<T extends { net: Network; group: number }>(blocks: readonly T[]): [T, T][] {
  const sorted = [...blocks].sort(
    (a, b) =>
      a.net.family - b.net.family || (a.net.first < b.net.first ? -1 : a.net.first > b.net.first ? 1 : 0),
  );
  const pairs: [T, T][] = [];
  let widest: T | undefined;
  for (const b of sorted) {
    if (widest && overlaps(widest.net, b.net) && widest.group !== b.group) pairs.push([widest, b]);
    if (!widest || widest.net.family !== b.net.family || b.net.last > widest.net.last) widest = b;
  }
  return pairs;
}

/** Cron expressions are checked here (the schema cannot), and maintenance must name a known backend. */
function checkSchedules(
  schedules: SchedulesConfig,
  backendIds: ReadonlyMap<string, string>,
  issues: ConfigIssue[],
): void {
  const cron = (expr: string | undefined, path: string): void => {
    if (expr === undefined) return;
    const v = validateDetailed(expr);
    if (!v.valid) {
      const why = v.errors.map((e) => `${e.field}: ${e.message}`).join('; ');
      issues.push({ path, message: `not a cron expression (${why || 'unparsable'})` });
    }
  };
  cron(schedules.reconcile, 'schedules.reconcile');
  if (schedules.timezone !== undefined && !isTimeZone(schedules.timezone)) {
    issues.push({ path: 'schedules.timezone', message: `unknown time zone ${schedules.timezone}` });
  }
  schedules.maintenance.forEach((m, i) => {
    const at = `schedules.maintenance[${i}]`;
    cron(m.drain, `${at}.drain`);
    cron(m.undrain, `${at}.undrain`);
    if (!backendIds.has(m.backend)) {
      issues.push({ path: `${at}.backend`, message: `no backend ${m.backend} in sets[].backends` });
    }
  });
}

function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/**
 * An OpenSIPS LB node: its generated destinations file is needed; what OpenSIPS 3.6 cannot take is
 * refused by name rather than ignored (MI over HTTP has no credentials; the source groups file is the
 * Kamailio permissions module's). The opensips section on a Kamailio node would be ignored: refused.
 */
function checkOpenSipsNode(
  lb: ControllerSection['lb_nodes'][number],
  at: string,
  issues: ConfigIssue[],
): void {
  if (lb.kind !== 'opensips') {
    if (lb.opensips !== undefined)
      issues.push({ path: `${at}.opensips`, message: 'only for kind opensips (this node is kamailio)' });
    return;
  }
  if (lb.opensips === undefined)
    issues.push({ path: `${at}.opensips.destinations_path`, message: 'required for kind opensips' });
  checkOpenSipsRpc(lb.kind, lb.rpc, at, issues);
  if (lb.address_file !== undefined)
    issues.push({ path: `${at}.address_file`, message: 'source groups are not supported on an OpenSIPS LB' });
}

/** An OpenSIPS node's MI: plain HTTP without credentials (what OpenSIPS 3.6 offers). */
function checkOpenSipsRpc(
  kind: 'kamailio' | 'opensips',
  rpc: ControllerSection['lb_nodes'][number]['rpc'],
  at: string,
  issues: ConfigIssue[],
): void {
  if (kind !== 'opensips') return;
  for (const f of ['username', 'password', 'password_file'] as const) {
    if (rpc[f] !== undefined)
      issues.push({
        path: `${at}.rpc.${f}`,
        message: 'OpenSIPS 3.6 MI over HTTP takes no credentials: bind it to a management address instead',
      });
  }
  if (!rpc.url.startsWith('http://'))
    issues.push({ path: `${at}.rpc.url`, message: 'OpenSIPS 3.6 MI over HTTP is plain http:// (no TLS)' });
}

/**
 * What an OpenSIPS LB can dispatch: the snippet routes and admits set 1 only, and its generated
 * send() route names each destination as `sip:<host>:<port>` (src/opensips/dispatcher-table.ts).
 * Anything else would load, push nothing and answer every call 503: refused by name instead.
 */
function checkOpenSipsSets(c: ControllerSection, issues: ConfigIssue[]): void {
  c.sets.forEach((set, i) => {
    if (set.id !== 1)
      issues.push({
        path: `sets[${i}].id`,
        message: 'an OpenSIPS LB dispatches set 1 only (opensips/sipweigh-lb.cfg)',
      });
    set.backends.forEach((b, j) => {
      if (sendTarget(b.sip_uri) === null)
        issues.push({
          path: `sets[${i}].backends[${j}].sip_uri`,
          message: `an OpenSIPS LB needs sip:<host>:<port> (explicit port, no parameters), got ${b.sip_uri}`,
        });
    });
  });
}

/** Where an RPC URL reaches (scheme, host, port); the path is not the node (Kamailio ignores it). */
function rpcEndpoint(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return url;
  }
}
