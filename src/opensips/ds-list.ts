/**
 * Pure parser of OpenSIPS's MI `ds_list` reply (`full` = 1) into the controller's dispatcher
 * targets, so that the Kamailio diff, discovery and status read an OpenSIPS LB the same way.
 * Shape (3.6.8, `ds_print_mi_list`):
 *
 *   { "PARTITIONS": [ { "name": "default", "SETS": [ { "id": 1, "Destinations": [
 *       { "URI": "sip:127.0.0.11:5060", "state": "Active", "first_hit_counter": 0,
 *         "weight": 70, "priority": 0, "description": "be1", "attr": "duid=be1;rweight=70" } ] } ] } ] }
 *
 * `attr` appears only when set. OpenSIPS has three states: Active, Inactive, Probing. It has no
 * "disabled": the OpenSIPS adapter sets sipweigh's disabled (a drain) as Inactive (both are out of
 * rotation) and marks the row's attrs with `sw_drained=1` (see `asOpenSips`), so that an Inactive
 * row carrying the mark reads back as disabled: a restarted controller keeps a drain only for a
 * destination it reads as disabled (planDiscovery), as it does from a Kamailio list's state.
 */
import {
  effectiveWeight,
  parseAttrsBody,
  type DispatcherListResult,
  type DispatcherTarget,
} from '../kamailio/dispatcher-list-reply.js';
import type { DestinationState } from '../kamailio/dispatcher-list.js';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

const STATES: Record<string, DispatcherTarget['state']> = {
  active: 'active',
  inactive: 'inactive',
  probing: 'trying',
};

/** The attribute marking a drained (disabled) destination in the OpenSIPS table. */
export const DRAINED_ATTR = 'sw_drained';

/**
 * The controller's state of a listed destination (pure): Inactive with the drain mark is disabled.
 * Active or Probing with the mark stays what OpenSIPS says (e.g. every row loads Active after an
 * OpenSIPS restart): the diff must see that the destination is in rotation.
 */
export function listedState(
  state: DispatcherTarget['state'],
  attrs: Readonly<Record<string, string>>,
): DispatcherTarget['state'] {
  return state === 'inactive' && attrs[DRAINED_ATTR] === '1' ? 'disabled' : state;
}

/** The state an OpenSIPS LB can hold for a desired one. */
export function openSipsState(s: DestinationState): DestinationState {
  return s === 'disabled' ? 'inactive' : s;
}

/** MI ds_set_state's letter for a state. */
export function stateLetter(s: DestinationState): 'a' | 'i' {
  return openSipsState(s) === 'active' ? 'a' : 'i';
}

export function parseDsList(result: unknown, partition = 'default'): DispatcherListResult {
  const fail = (why: string): DispatcherListResult => ({
    ok: false,
    error: `unexpected ds_list reply: ${why}`,
  });
  if (!isObj(result)) return fail('not an object');
  // An empty dispatcher answers without PARTITIONS/SETS.
  if (result.PARTITIONS === undefined) return { ok: true, targets: [] };
  if (!Array.isArray(result.PARTITIONS)) return fail('PARTITIONS is not an array');
  const targets: DispatcherTarget[] = [];
  for (const p of result.PARTITIONS) {
    if (!isObj(p)) return fail('a partition is not an object');
    if (p.name !== undefined && p.name !== partition) continue;
    if (p.SETS === undefined) continue;
    if (!Array.isArray(p.SETS)) return fail('SETS is not an array');
    for (const s of p.SETS) {
      if (!isObj(s) || typeof s.id !== 'number') return fail('a set without a numeric id');
      const dests = s.Destinations ?? [];
      if (!Array.isArray(dests)) return fail(`set ${s.id}: Destinations is not an array`);
      for (const d of dests) {
        if (!isObj(d) || typeof d.URI !== 'string' || typeof d.state !== 'string') {
          return fail(`set ${s.id}: a destination without URI or state`);
        }
        const listed = STATES[d.state.toLowerCase()];
        if (!listed) return fail(`${d.URI}: unknown state ${JSON.stringify(d.state)}`);
        const attrsBody = typeof d.attr === 'string' ? d.attr : '';
        const attrs = parseAttrsBody(attrsBody);
        const state = listedState(listed, attrs);
        const weight =
          typeof d.weight === 'number' ? d.weight : typeof d.weight === 'string' ? Number(d.weight) : null;
        targets.push({
          setId: s.id,
          uri: d.URI,
          state,
          // dst_is_active: Probing, listed as trying, is out of rotation here (see dsListWeights).
          inRotation: state === 'active',
          probing: 'none',
          priority: typeof d.priority === 'number' ? d.priority : 0,
          attrsBody,
          attrs,
          duid:
            attrs.duid ?? (typeof d.description === 'string' && d.description !== '' ? d.description : null),
          weight: weight !== null && Number.isFinite(weight) ? weight : null,
          // The table's weight is the relative weight the controller wrote.
          rweight: weight !== null && Number.isFinite(weight) ? weight : null,
          latency: null,
        });
      }
    }
  }
  return { ok: true, targets };
}

/**
 * What an OpenSIPS LB holds, as an operator reads it (pure): backend id (duid, else URI) ->
 * effective weight, 0 = out of rotation; null when the reply cannot be read. OpenSIPS's dispatcher
 * picks only destinations with neither its INACTIVE nor its PROBING flag (`dst_is_active`,
 * modules/dispatcher/dispatch.c, 3.6.8): a destination listed "Probing" (a dead backend marked by
 * `ds_mark_dst` or failed pings) is out of rotation exactly like an "Inactive" one, whatever weight
 * the table gives it. A Kamailio "T" (also trying) stays in: the parsers set `inRotation` each for
 * its own platform, and `effectiveWeight` reads it.
 */
export function dsListWeights(result: unknown, partition = 'default'): Map<string, number> | null {
  const list = parseDsList(result, partition);
  if (!list.ok) return null;
  return new Map(list.targets.map((t) => [t.duid ?? t.uri, effectiveWeight(t)]));
}
