/**
 * Kamailio dispatcher list files (`ds_list_file`): one destination per line,
 * `setid destination flags priority attrs`. Pure formatting; writing the file atomically is the
 * caller's job (temp name + rename), so a reload never reads half a list.
 */
export type DestinationState = 'active' | 'inactive' | 'disabled';

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
  if (!/^[A-Za-z0-9._-]+$/.test(d.duid)) throw new Error(`bad duid ${JSON.stringify(d.duid)}`);
  for (const [k, v] of Object.entries(d.extraAttrs ?? {})) {
    if (k === 'duid' || k === 'rweight' || !ATTR_NAME.test(k) || !ATTR_VALUE.test(v)) {
      throw new Error(`bad attribute ${JSON.stringify(k)}=${JSON.stringify(v)} of ${d.uri}`);
    }
  }
}

/** Attribute names and values Kamailio's `key=value;` attrs parser reads back unchanged. */
const ATTR_NAME = /^[A-Za-z][A-Za-z0-9_]*$/;
const ATTR_VALUE = /^[A-Za-z0-9._:@-]+$/;

export function formatDispatcherList(destinations: readonly Destination[]): string {
  const lines = ['# written by sipweigh: changes here are overwritten (the controller repairs drift)'];
  for (const d of destinations) {
    checkDestination(d);
    const extra = Object.entries(d.extraAttrs ?? {}).map(([k, v]) => `;${k}=${v}`);
    const attrs = `duid=${d.duid};rweight=${d.rweight}${extra.join('')}`;
    lines.push(`${d.setId} ${d.uri} ${STATE_FLAGS[d.state]} ${d.priority ?? 0} ${attrs}`);
  }
  return `${lines.join('\n')}\n`;
}
