/**
 * Per-source admission figures, pure: what every LB node knows of its sources -> the top sources
 * by refused calls plus "other" per set (GET /api/v1/sources, /metrics), and the events when a
 * source starts or stops being limited. Bounded whatever the traffic: top_n sources per set.
 */
import { OTHER_KEY, ZERO_COUNTS, type SourceCounts } from '../kamailio/source-table.js';
import type { NodeSources } from '../push/source-link.js';
import type { ControllerEvent } from './events.js';

export interface SourceRow {
  /** The LB's key: a source IP, `g<N>` for a group, or what the operator's hook set. */
  readonly source: string;
  /** The group's name when the key is a group's. */
  readonly group: string | null;
  readonly offered: number;
  readonly admitted: number;
  readonly refused: number;
  readonly offered_cps: number;
  readonly refused_cps: number;
  /** Calls/s the source is sure of (sum over the LB nodes); null when no share is computed. */
  readonly share_cps: number | null;
  /** Offers more than its share of a saturated set at some LB node. */
  readonly limited: boolean;
}

export interface SetSources {
  readonly set: number;
  readonly saturated: boolean;
  readonly sources: readonly SourceRow[];
  /** Everything not in `sources`: how many sources and their calls. */
  readonly other: { readonly sources: number } & SourceCounts;
}

export interface SourcesReport {
  readonly fairness: boolean;
  readonly top_n: number;
  readonly sets: readonly SetSources[];
}

const r3 = (x: number) => Math.round(x * 1000) / 1000;

function add(a: SourceCounts, b: SourceCounts): SourceCounts {
  return {
    offered: a.offered + b.offered,
    admitted: a.admitted + b.admitted,
    refused: a.refused + b.refused,
  };
}

/** `groupNames`: LB key (`g1`...) -> the operator's name. */
export function sourcesReport(
  nodes: readonly NodeSources[],
  opts: {
    readonly fairness: boolean;
    readonly topN: number;
    readonly groupNames: ReadonlyMap<string, string>;
  },
): SourcesReport {
  const sets = new Set<number>();
  for (const n of nodes) for (const s of [...n.totals.keys(), ...n.folded.keys()]) sets.add(s);
  const out: SetSources[] = [];
  for (const set of [...sets].sort((a, b) => a - b)) {
    const totals = new Map<string, SourceCounts>();
    const rates = new Map<string, { offered: number; refused: number }>();
    const shares = new Map<string, number>();
    const limited = new Set<string>();
    let other = { sources: 0, ...ZERO_COUNTS };
    let saturated = false;
    for (const n of nodes) {
      for (const [k, c] of n.totals.get(set) ?? []) totals.set(k, add(totals.get(k) ?? ZERO_COUNTS, c));
      for (const [k, r] of n.rates.get(set) ?? []) {
        const was = rates.get(k) ?? { offered: 0, refused: 0 };
        rates.set(k, { offered: was.offered + r.offered, refused: was.refused + r.refused });
      }
      const sh = n.shares.get(set);
      if (sh) {
        saturated ||= sh.saturated;
        for (const [k, cps] of sh.shares) if (k !== OTHER_KEY) shares.set(k, (shares.get(k) ?? 0) + cps);
        for (const k of sh.limited) limited.add(k);
      }
      const f = n.folded.get(set);
      if (f) other = { sources: other.sources + f.keys, ...add(other, f.counts) };
    }
    const ranked = [...totals].sort(
      ([ka, a], [kb, b]) =>
        b.refused - a.refused || b.offered - a.offered || (ka < kb ? -1 : ka > kb ? 1 : 0),
    );
    const rows = ranked.slice(0, opts.topN).map(([source, c]): SourceRow => {
      const r = rates.get(source);
      return {
        source,
        group: opts.groupNames.get(source) ?? null,
        ...c,
        offered_cps: r3(r?.offered ?? 0),
        refused_cps: r3(r?.refused ?? 0),
        share_cps: shares.has(source) ? r3(shares.get(source)!) : null,
        limited: limited.has(source),
      };
    });
    for (const [, c] of ranked.slice(opts.topN)) other = { sources: other.sources + 1, ...add(other, c) };
    out.push({ set, saturated, sources: rows, other });
  }
  return { fairness: opts.fairness, top_n: opts.topN, sets: out };
}

/** `set|key` of every source a node's shares limit now. */
export function limitedKeys(n: NodeSources): Set<string> {
  const out = new Set<string>();
  for (const [set, sh] of n.shares) for (const k of sh.limited) out.add(`${set}|${k}`);
  return out;
}

/** Events for the sources of one node that started or stopped being limited since `before`. */
export function limitedEvents(
  node: NodeSources,
  before: ReadonlySet<string>,
): {
  events: ControllerEvent[];
  now: Set<string>;
} {
  const now = limitedKeys(node);
  const events: ControllerEvent[] = [];
  const split = (id: string): [number, string] => {
    const i = id.indexOf('|');
    return [Number(id.slice(0, i)), id.slice(i + 1)];
  };
  for (const id of [...now].sort()) {
    if (before.has(id)) continue;
    const [set, source] = split(id);
    events.push({
      type: 'source_limited',
      node: node.node,
      set,
      source,
      offered_cps: r3(node.rates.get(set)?.get(source)?.offered ?? 0),
      share_cps: r3(node.shares.get(set)?.shares.get(source) ?? 0),
    });
  }
  for (const id of [...before].sort()) {
    if (now.has(id)) continue;
    const [set, source] = split(id);
    events.push({ type: 'source_released', node: node.node, set, source });
  }
  return { events, now };
}

/**
 * The "other" count exported as a counter (pure): never below what was exported before. "Other"
 * shrinks when a source moves into the top list; the exported value then holds until the rest have
 * caught up (briefly under-counted, never a false reset for Prometheus' rate()).
 */
export function monotonicOther(exportedBefore: number | undefined, otherNow: number): number {
  return Math.max(exportedBefore ?? 0, otherNow);
}
