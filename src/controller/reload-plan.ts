/**
 * What a config reload would change, pure: (running config, new config) -> either the changes to
 * apply live or the fields that need a restart. A reload is all or nothing: if any field cannot
 * change while the controller runs, nothing is applied and the reason names those fields, so the
 * running controller never holds half of one file and half of another.
 *
 * Live: backends (added, removed, changed), scoring, admission, schedules, logging level, the status
 * file, the API's token and open reads, and the heartbeat master keys (a rotation's steps: every
 * backend's keys are derived again, each still probed with the key its agent uses). Restart: the
 * rest of the heartbeat section (socket, timing: the endpoint is built from it), the LB nodes (their
 * RPC clients and list transports) and their lease (its timer), the API's address and port, the set ids and their
 * self-registration.
 *
 * The result names fields and backend ids only, never values: it is logged and returned by the API,
 * and values include secrets (keys, RPC passwords, the API token).
 */
import type { BackendConfig, ControllerConfig } from '../config/types.js';

export interface ReloadChanges {
  readonly backends: {
    readonly added: readonly string[];
    readonly removed: readonly string[];
    readonly changed: readonly string[];
  };
  /** Scoring fields that changed (`cycle_ms`, `params.<name>`, `params.signals.<name>`). */
  readonly scoring: readonly string[];
  readonly admission: boolean;
  readonly schedules: boolean;
  readonly logging_level: { readonly from: string; readonly to: string } | null;
  readonly status_file: boolean;
  /** The API's token or its open reads changed. */
  readonly api_auth: boolean;
  /** The heartbeat master keys (current, previous) changed: a key rotation step. */
  readonly heartbeat_keys: boolean;
}

export type ReloadPlan =
  | { readonly ok: true; readonly changes: ReloadChanges }
  | { readonly ok: false; readonly restart: readonly string[] };

/** JSON with sorted keys: equality of config values whatever order the file wrote them in. */
export function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => {
    if (x === null || typeof x !== 'object' || Array.isArray(x)) return x;
    // Buffers (keys) arrive here already as { type, data } through their toJSON.
    return Object.fromEntries(
      Object.entries(x as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)),
    );
  });
}

const same = (a: unknown, b: unknown): boolean => canonical(a) === canonical(b);

/** Keys of two records whose values differ, with `prefix.` in front. */
function changedKeys(a: object | undefined, b: object | undefined, prefix: string): string[] {
  const ra = (a ?? {}) as Record<string, unknown>;
  const rb = (b ?? {}) as Record<string, unknown>;
  const keys = [...new Set([...Object.keys(ra), ...Object.keys(rb)])].sort();
  return keys.filter((k) => !same(ra[k], rb[k])).map((k) => `${prefix}${k}`);
}

/** Heartbeat fields that need a restart: all but the master keys. */
function heartbeatFields(a: ControllerConfig, b: ControllerConfig): string[] {
  return changedKeys(a.heartbeat, b.heartbeat, 'heartbeat.').filter((f) => f !== 'heartbeat.master_keys');
}

function lbNodeFields(a: ControllerConfig, b: ControllerConfig): string[] {
  const before = new Map(a.lb_nodes.map((n) => [n.name, n]));
  const after = new Map(b.lb_nodes.map((n) => [n.name, n]));
  const out: string[] = [];
  for (const [name, n] of after) {
    const old = before.get(name);
    if (!old) out.push(`lb_nodes[${name}] (added)`);
    else for (const f of changedKeys(old, n, `lb_nodes[${name}].`)) out.push(f);
  }
  for (const name of before.keys()) if (!after.has(name)) out.push(`lb_nodes[${name}] (removed)`);
  if (
    out.length === 0 &&
    !same(
      a.lb_nodes.map((n) => n.name),
      b.lb_nodes.map((n) => n.name),
    )
  )
    out.push('lb_nodes (order)');
  return out;
}

function setFields(a: ControllerConfig, b: ControllerConfig): string[] {
  const before = new Map(a.sets.map((s) => [s.id, s]));
  const after = new Map(b.sets.map((s) => [s.id, s]));
  const out: string[] = [];
  for (const id of after.keys()) if (!before.has(id)) out.push(`sets[id=${id}] (added)`);
  for (const id of before.keys()) if (!after.has(id)) out.push(`sets[id=${id}] (removed)`);
  for (const [id, s] of after) {
    const old = before.get(id);
    if (old && old.self_registration !== s.self_registration) out.push(`sets[id=${id}].self_registration`);
  }
  return out;
}

function apiFields(a: ControllerConfig, b: ControllerConfig): string[] {
  if (a.api === undefined && b.api === undefined) return [];
  if (a.api === undefined || b.api === undefined) return [b.api ? 'api (added)' : 'api (removed)'];
  const out: string[] = [];
  if (a.api.listen !== b.api.listen) out.push('api.listen');
  if (a.api.port !== b.api.port) out.push('api.port');
  return out;
}

interface PlacedBackend extends BackendConfig {
  readonly set: number;
}

function backendsOf(c: ControllerConfig): Map<string, PlacedBackend> {
  return new Map(c.sets.flatMap((s) => s.backends.map((b) => [b.id, { ...b, set: s.id }] as const)));
}

function backendChanges(a: ControllerConfig, b: ControllerConfig): ReloadChanges['backends'] {
  const before = backendsOf(a);
  const after = backendsOf(b);
  const added: string[] = [];
  const changed: string[] = [];
  for (const [id, be] of after) {
    const old = before.get(id);
    if (!old) added.push(id);
    else if (!same(old, be)) changed.push(id);
  }
  const removed = [...before.keys()].filter((id) => !after.has(id));
  return { added: added.sort(), removed: removed.sort(), changed: changed.sort() };
}

function scoringFields(a: ControllerConfig, b: ControllerConfig): string[] {
  const out = a.scoring.cycle_ms === b.scoring.cycle_ms ? [] : ['cycle_ms'];
  const { signals: sa, ...pa } = a.scoring.params;
  const { signals: sb, ...pb } = b.scoring.params;
  return [...out, ...changedKeys(pa, pb, 'params.'), ...changedKeys(sa, sb, 'params.signals.')];
}

export function planReload(running: ControllerConfig, next: ControllerConfig): ReloadPlan {
  const restart = [
    ...heartbeatFields(running, next),
    ...lbNodeFields(running, next),
    ...setFields(running, next),
    ...apiFields(running, next),
    ...changedKeys(running.lease, next.lease, 'lease.'),
    // The demand watch reads the peers it started with (demand-watch.ts); by, floor, window are live.
    ...(same(running.admission.split.peers, next.admission.split.peers) ? [] : ['admission.split.peers']),
  ];
  if (restart.length > 0) return { ok: false, restart };
  const level =
    running.logging.level === next.logging.level
      ? null
      : { from: running.logging.level, to: next.logging.level };
  return {
    ok: true,
    changes: {
      backends: backendChanges(running, next),
      scoring: scoringFields(running, next),
      admission: !same(running.admission, next.admission),
      schedules: !same(running.schedules, next.schedules),
      logging_level: level,
      status_file: running.status_file !== next.status_file,
      api_auth:
        running.api !== undefined &&
        next.api !== undefined &&
        (running.api.token !== next.api.token ||
          running.api.read_without_token !== next.api.read_without_token),
      heartbeat_keys: !same(running.heartbeat.master_keys, next.heartbeat.master_keys),
    },
  };
}

/** True when applying `changes` changes nothing at all. */
export function nothingChanged(c: ReloadChanges): boolean {
  return (
    c.backends.added.length + c.backends.removed.length + c.backends.changed.length + c.scoring.length ===
      0 &&
    !c.admission &&
    !c.schedules &&
    c.logging_level === null &&
    !c.status_file &&
    !c.api_auth &&
    !c.heartbeat_keys
  );
}
