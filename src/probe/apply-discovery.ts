/**
 * Applies a discovery result to the probe registry: adds/updates every backend found, and removes
 * dispatcher-discovered backends that no LB lists any more. Config and hello backends are never
 * removed here (config backends leave through a live reload of the config; hello backends by bye/down).
 *
 * `complete: false` (some LB could not be read) removes nothing: a backend missing from the lists
 * that were read may be on the one that was not, and forgetting it would make the next push delete
 * it from every LB, for good (it would no longer be listed anywhere to be discovered again).
 */
import type { BackendSpec } from '../discovery/backend-spec.js';
import type { ProbeCore } from './probe-core.js';

export interface ApplySummary {
  readonly added: readonly string[];
  readonly removed: readonly string[];
}

export function applyDiscovery(
  core: ProbeCore,
  backends: readonly BackendSpec[],
  opts: { readonly complete: boolean } = { complete: true },
): ApplySummary {
  const wanted = new Set(backends.map((b) => b.id));
  const added: string[] = [];
  const removed: string[] = [];
  for (const b of backends) {
    const known = core.get(b.id);
    // A self-registered backend is in the LB's list because the controller wrote it there: taking
    // that echo as an LB-discovered backend would exempt it for good from being forgotten after
    // silence (and from the self-registration cap). Config still adopts it.
    if (known?.source === 'hello' && b.source === 'dispatcher') continue;
    if (!known) added.push(b.id);
    core.upsert(b);
  }
  for (const v of opts.complete ? core.list() : []) {
    if (v.source === 'dispatcher' && !wanted.has(v.id)) {
      core.remove(v.id);
      removed.push(v.id);
    }
  }
  return { added, removed };
}
