/**
 * Desired dispatcher list, pure: the controller's view of every backend plus the scorer's weights ->
 * the whole list an LB node should hold. The controller writes the whole file (it is the one source
 * of truth), so everything that must survive a rewrite is here: the state of every destination (an
 * inactive one is written inactive, so an operator's reload or a Kamailio restart cannot put a dead
 * backend back into rotation) and the attributes discovery reads back. A draining backend is written
 * disabled, not inactive: the LB's own probing (its backstop while no controller refreshes the lease,
 * kamailio/sipweigh-lb.cfg) skips disabled destinations, so it never pings a drained backend back into
 * rotation; a down one stays inactive, which that probing may bring back (its job when we are gone).
 * Sets the controller does not
 * manage are not written: a node whose list has such sets is not pushed to at all (controller.ts), so
 * a rewrite never deletes an operator's other sets.
 */
import type { Destination, DestinationState } from '../kamailio/dispatcher-list.js';
import type { SetResult } from '../scoring/index.js';

export interface ListedBackend {
  readonly id: string;
  readonly set: number;
  readonly uri: string;
  readonly capacity: number;
  readonly agent: { readonly address: string; readonly port: number } | null;
  /** Where it came from: LB-discovered ones keep their sw_* attributes in the list. */
  readonly source: 'config' | 'dispatcher' | 'hello';
  /** Its health; only `draining` matters here (written disabled). Absent: not draining. */
  readonly health?: { readonly kind: string };
}

/** Kamailio's rweight range; 0 is written as state inactive. */
export const MAX_RWEIGHT = 100;

/** Who keeps a set and URI two backends claim: the operator's config, then the LB's own list. */
const CLAIM_ORDER: Readonly<Record<ListedBackend['source'], number>> = { config: 0, dispatcher: 1, hello: 2 };

export function desiredDestinations(
  backends: readonly ListedBackend[],
  weightOf: (id: string) => number,
): Destination[] {
  // One line per set and URI: a list file with two is refused whole (formatDispatcherList), which
  // would fail every push to every node for as long as, say, a self-registered agent announces a
  // configured backend's URI under another id. The later claim is left out of the list.
  const claimed = new Set<string>();
  const unique = [...backends]
    .sort((a, b) => CLAIM_ORDER[a.source] - CLAIM_ORDER[b.source] || cmp(a.id, b.id))
    .filter((b) => {
      const key = `${b.set} ${b.uri}`;
      if (claimed.has(key)) return false;
      claimed.add(key);
      return true;
    });
  const managed: Destination[] = unique.map((b) => {
    const w = weightOf(b.id);
    if (!Number.isInteger(w) || w < 0 || w > MAX_RWEIGHT) {
      throw new Error(`weight of ${b.id} must be an integer 0..${MAX_RWEIGHT}, got ${w}`);
    }
    const extraAttrs: Record<string, string> =
      b.source === 'config'
        ? {}
        : {
            ...(b.agent ? { sw_agent: `${b.agent.address}:${b.agent.port}` } : {}),
            sw_capacity: String(b.capacity),
          };
    return {
      setId: b.set,
      uri: b.uri,
      state: destinationState(b, w),
      rweight: Math.max(1, w),
      duid: b.id,
      ...(Object.keys(extraAttrs).length > 0 ? { extraAttrs } : {}),
    };
  });
  // A stable order: the same desired state always produces the same file, and the LB's
  // internal order (which algorithm 11 walks) does not churn between pushes.
  return managed.sort((a, b) => a.setId - b.setId || cmp(a.duid, b.duid) || cmp(a.uri, b.uri));
}

/** Drained (any cause: operator, bye, agent report) -> disabled; otherwise weight 0 -> inactive. */
export function destinationState(b: Pick<ListedBackend, 'health'>, weight: number): DestinationState {
  if (b.health?.kind === 'draining') return 'disabled';
  return weight === 0 ? 'inactive' : 'active';
}

/**
 * The admission limit per set at one LB node: the pool's limit times the node's `fraction` of it
 * (scoring/admission-split.ts), to 0.01 call/s and at least 1. A set in panic that never had a limit
 * is left out, so the LB keeps whatever it enforces (a previous run's limit): a null would lift it,
 * at the moment the controller trusts its own view least.
 */
export function desiredAdmission(sets: readonly SetResult[], fraction: number): Map<number, number | null> {
  const out = new Map<number, number | null>();
  for (const set of sets) {
    const limit = set.admissionLimitCps;
    if (set.mode === 'panic' && limit === null) continue;
    out.set(set.set, limit === null ? null : Math.max(1, Math.round(limit * fraction * 100) / 100));
  }
  return out;
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
