/**
 * Pure comparison of the list a controller wants on an LB with what that LB's `dispatcher.list`
 * reports. Destinations are matched by set and URI; list order is ignored (Kamailio orders each
 * set by priority and reverses file order within it, so order says nothing about drift).
 *
 * What counts as a difference, as Kamailio 5.6.3 reports it:
 * - state: FLAGS' first letter (A, I, D, T). sipweigh writes only 0, 1 or 4, so a "T" (trying) or a
 *   second letter other than X (P = probing flag 8 from someone else's list) is drift too: after our
 *   next reload it would be gone, and until then Kamailio's own probing may move the destination.
 * - rweight: ATTRS.RWEIGHT; Kamailio reports 0 when the file's value was outside 1..100.
 * - priority: PRIORITY.
 * - attrs: every other attribute (duid, or anything an operator added such as socket= or weight=),
 *   compared as key=value pairs; the file we write carries exactly `duid=…;rweight=…`.
 */
import {
  destinationAttrs,
  destinationKey,
  type Destination,
  type DestinationState,
} from '../kamailio/dispatcher-list.js';
import { parseAttrsBody, type DispatcherTarget } from '../kamailio/dispatcher-list-reply.js';

export type FieldChange =
  | {
      readonly field: 'state';
      readonly from: {
        readonly state: DispatcherTarget['state'];
        readonly probing: DispatcherTarget['probing'];
      };
      readonly to: DestinationState;
    }
  | { readonly field: 'rweight'; readonly from: number | null; readonly to: number }
  | { readonly field: 'priority'; readonly from: number; readonly to: number }
  /** Attributes other than rweight, as a sorted `k=v;k=v` string. */
  | { readonly field: 'attrs'; readonly from: string; readonly to: string };

export type DestinationDiff =
  | { readonly kind: 'added'; readonly destination: Destination }
  | { readonly kind: 'removed'; readonly target: DispatcherTarget }
  | {
      readonly kind: 'changed';
      readonly destination: Destination;
      readonly changes: readonly [FieldChange, ...FieldChange[]];
    };

export interface DispatcherDiff {
  readonly inSync: boolean;
  /** In desired order, then the removed ones in the LB's order. */
  readonly differences: readonly DestinationDiff[];
}

/** Attributes except rweight, canonical (sorted) so that key order in a file is not drift. */
function otherAttrs(attrs: Readonly<Record<string, string>>): string {
  return Object.keys(attrs)
    .filter((k) => k !== 'rweight')
    .sort()
    .map((k) => `${k}=${attrs[k]}`)
    .join(';');
}

export function compareDestination(desired: Destination, actual: DispatcherTarget): FieldChange[] {
  const changes: FieldChange[] = [];
  if (actual.state !== desired.state || actual.probing !== 'none') {
    changes.push({
      field: 'state',
      from: { state: actual.state, probing: actual.probing },
      to: desired.state,
    });
  }
  if (actual.rweight !== desired.rweight) {
    changes.push({ field: 'rweight', from: actual.rweight, to: desired.rweight });
  }
  const priority = desired.priority ?? 0;
  if (actual.priority !== priority) changes.push({ field: 'priority', from: actual.priority, to: priority });
  const wantAttrs = otherAttrs(parseAttrsBody(destinationAttrs(desired)));
  const haveAttrs = otherAttrs(actual.attrs);
  if (wantAttrs !== haveAttrs) changes.push({ field: 'attrs', from: haveAttrs, to: wantAttrs });
  return changes;
}

export function diffDispatcher(
  desired: readonly Destination[],
  actual: readonly DispatcherTarget[],
): DispatcherDiff {
  // A key the LB lists twice (possible with a hand-written file) is one match plus one removal.
  const unmatched = new Map<string, DispatcherTarget[]>();
  for (const t of actual) {
    const key = destinationKey(t);
    const list = unmatched.get(key);
    if (list) list.push(t);
    else unmatched.set(key, [t]);
  }
  const differences: DestinationDiff[] = [];
  for (const d of desired) {
    const match = unmatched.get(destinationKey(d))?.shift();
    if (!match) {
      differences.push({ kind: 'added', destination: d });
      continue;
    }
    const [first, ...rest] = compareDestination(d, match);
    if (first) differences.push({ kind: 'changed', destination: d, changes: [first, ...rest] });
  }
  for (const [, left] of unmatched) {
    for (const target of left) differences.push({ kind: 'removed', target });
  }
  return { inSync: differences.length === 0, differences };
}

/** One line per difference, for logs and status: `+1 sip:a`, `-1 sip:b`, `~1 sip:c rweight 50→30`. */
export function describeDifference(d: DestinationDiff): string {
  switch (d.kind) {
    case 'added':
      return `+${d.destination.setId} ${d.destination.uri}`;
    case 'removed':
      return `-${d.target.setId} ${d.target.uri}`;
    case 'changed':
      return `~${d.destination.setId} ${d.destination.uri} ${d.changes.map(describeChange).join(', ')}`;
  }
}

function describeChange(c: FieldChange): string {
  switch (c.field) {
    case 'state': {
      const probing = c.from.probing === 'none' ? '' : `+${c.from.probing}`;
      return `state ${c.from.state}${probing}→${c.to}`;
    }
    case 'rweight':
      return `rweight ${c.from ?? 'none'}→${c.to}`;
    case 'priority':
      return `priority ${c.from}→${c.to}`;
    case 'attrs':
      return `attrs ${JSON.stringify(c.from)}→${JSON.stringify(c.to)}`;
  }
}
