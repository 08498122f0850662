/**
 * Kamailio dispatcher list files (`ds_list_file`): one destination per line,
 * `setid destination flags priority attrs`. Pure formatting; writing the file atomically is the
 * caller's job (temp name + rename), so a reload never reads half a list.
 */
import type { DispatcherTarget } from './dispatcher-list-reply.js';

export type DestinationState = 'active' | 'inactive' | 'disabled';

/**
 * Algorithm 11's relative-weight table: 100 slots, dealt in proportion to the active destinations'
 * rweights (dispatch.c `dp_init_relative_weights`; push/rweight-slots.ts writes them to fill it exactly).
 */
export const RWEIGHT_SLOTS = 100;

/** Flag bits as dispatcher reads them from the file: 1 inactive, 4 disabled (see KAMAILIO-NOTES). */
const STATE_FLAGS: Record<DestinationState, number> = { active: 0, inactive: 1, disabled: 4 };

export interface Destination {
  readonly setId: number;
  readonly uri: string;
  readonly state: DestinationState;
  /** Relative weight for algorithm 11, 1..100; 0 is expressed as state inactive instead. */
  readonly rweight: number;
  readonly priority?: number;
  /** Dispatcher's destination unique id: lets `set_duid_state` and the controller name it. */
  readonly duid: string;
  /**
   * Further attributes kept in the list, e.g. `sw_agent`/`sw_capacity` of a destination an operator
   * added on the LB (discovery reads them back, so rewriting the file must not lose them).
   */
  readonly extraAttrs?: Readonly<Record<string, string>>;
}

function checkDestination(d: Destination): void {
  if (!Number.isInteger(d.setId) || d.setId < 0) throw new Error(`bad set id ${d.setId}`);
  if (!/^sips?:[^\s]+$/.test(d.uri)) throw new Error(`bad destination URI ${JSON.stringify(d.uri)}`);
  if (!Number.isInteger(d.rweight) || d.rweight < 1 || d.rweight > 100) {
    throw new Error(`rweight of ${d.uri} must be an integer 1..100, got ${d.rweight}`);
  }
  // Every backend id (BACKEND_ID_PATTERN) must fit: an LB-discovered destination without a duid is
  // named by its host:port, and refusing it here would fail every push to the node.
  if (!ATTR_VALUE.test(d.duid)) throw new Error(`bad duid ${JSON.stringify(d.duid)}`);
  for (const [k, v] of Object.entries(d.extraAttrs ?? {})) {
    if (k === 'duid' || k === 'rweight' || !ATTR_NAME.test(k) || !ATTR_VALUE.test(v)) {
      throw new Error(`bad attribute ${JSON.stringify(k)}=${JSON.stringify(v)} of ${d.uri}`);
    }
  }
}

/** Attribute names and values Kamailio's `key=value;` attrs parser reads back unchanged. */
const ATTR_NAME = /^[A-Za-z][A-Za-z0-9_]*$/;
const ATTR_VALUE = /^[A-Za-z0-9._:@-]+$/;

/** The attrs body sipweigh writes for a destination (the diff compares against exactly this). */
export function destinationAttrs(d: Destination): string {
  const extra = Object.entries(d.extraAttrs ?? {}).map(([k, v]) => `;${k}=${v}`);
  return `duid=${d.duid};rweight=${d.rweight}${extra.join('')}`;
}

/** Identity of a destination within one LB: the same URI may legitimately sit in several sets. */
export function destinationKey(d: { readonly setId: number; readonly uri: string }): string {
  return `${d.setId} ${d.uri}`;
}

const HEADER = '# written by sipweigh: changes here are overwritten (the controller repairs drift)';

/**
 * Throws on a destination Kamailio would refuse or misread, and on duplicates: two lines for one
 * set and URI (or one duid twice in a set) would load as two destinations sharing one backend's
 * traffic, which no desired state means.
 */
export function formatDispatcherList(destinations: readonly Destination[]): string {
  const lines = [HEADER];
  const keys = new Set<string>();
  const duids = new Set<string>();
  for (const d of destinations) {
    checkDestination(d);
    const key = destinationKey(d);
    if (keys.has(key)) throw new Error(`destination ${d.uri} appears twice in set ${d.setId}`);
    const duid = `${d.setId} ${d.duid}`;
    if (duids.has(duid)) throw new Error(`duid ${d.duid} appears twice in set ${d.setId}`);
    keys.add(key);
    duids.add(duid);
    lines.push(`${d.setId} ${d.uri} ${STATE_FLAGS[d.state]} ${d.priority ?? 0} ${destinationAttrs(d)}`);
  }
  return `${lines.join('\n')}\n`;
}

/** File flag bits of a destination as dispatcher.list reports it (2 = trying, 8 = probing). */
const LISTED_STATE_FLAGS: Record<DispatcherTarget['state'], number> = {
  active: 0,
  inactive: 1,
  trying: 2,
  disabled: 4,
};

/**
 * A list file that reloads into what `dispatcher.list` reported, runtime states included: the
 * pusher's way back to the LB's previous list when a reload was accepted but loaded something else.
 * Null when a target cannot be written back faithfully (an attrs body with whitespace would be cut
 * at the first blank by Kamailio's file parser).
 */
export function formatListedTargets(targets: readonly DispatcherTarget[]): string | null {
  const lines = [`${HEADER} (restored)`];
  for (const t of targets) {
    if (/\s/.test(t.uri) || /\s/.test(t.attrsBody)) return null;
    const flags = LISTED_STATE_FLAGS[t.state] | (t.probing === 'probing' ? 8 : 0);
    lines.push(`${t.setId} ${t.uri} ${flags} ${t.priority}${t.attrsBody === '' ? '' : ` ${t.attrsBody}`}`);
  }
  return `${lines.join('\n')}\n`;
}
