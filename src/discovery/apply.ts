/**
 * Applies a discovery result to the heartbeat core: adds/updates every backend found, and removes
 * dispatcher-discovered backends that no LB lists any more. Config and hello backends are never
 * removed here (config changes restart the controller; hello backends leave by bye/down).
 */
import type { BackendSpec, ControllerCore } from '../heartbeat/controller-core.js';

export interface ApplySummary {
  readonly added: readonly string[];
  readonly removed: readonly string[];
}

export function applyDiscovery(core: ControllerCore, backends: readonly BackendSpec[]): ApplySummary {
  const wanted = new Set(backends.map((b) => b.id));
  const added: string[] = [];
  const removed: string[] = [];
  for (const b of backends) {
    if (!core.get(b.id)) added.push(b.id);
    core.upsert(b);
  }
  for (const v of core.list()) {
    if (v.source === 'dispatcher' && !wanted.has(v.id)) {
      core.remove(v.id);
      removed.push(v.id);
    }
  }
  return { added, removed };
}
