/**
 * The LB's per-source state for fair admission (issue 14): the htable `sipweigh_src` of
 * kamailio/sipweigh-lb.cfg, per set <SET> and source key <key> (the source IP, or `g<N>` for the
 * operator's group N, or what the operator's hook chose):
 * - `off::<SET>::<key>`, `adm::<SET>::<key>`, `ref::<SET>::<key>`: new INVITEs offered, admitted,
 *   refused with 503 (the LB's counters, monotonic until the LB restarts or the entry expires);
 * - `G::<SET>::<key>`: the key's guaranteed share as an emission interval in µs (written here);
 *   `G::<SET>::*` for every key without an entry of its own; `Gtau::<SET>`: the tolerance of every
 *   per-key limiter (µs); `Gtat::...`: the LB's own schedules (never written here).
 * Entries expire 120 s after their last write, so the controller writes its own again well before.
 * Keys may hold colons (IPv6 sources): the set is the first field after the prefix, the key all the rest.
 */
import { AdmissionReplyError, dumpEntries, isNoSuchHtable, type AdmissionRpc } from './admission.js';

export const SOURCE_HTABLE = 'sipweigh_src';

/** The key of the "other" bucket: every source without a share of its own. */
export const OTHER_KEY = '*';

export interface SourceCounts {
  readonly offered: number;
  readonly admitted: number;
  readonly refused: number;
}

export const ZERO_COUNTS: SourceCounts = { offered: 0, admitted: 0, refused: 0 };

export interface SourceTable {
  /** Per set, per source key: the LB's counters. */
  readonly counters: ReadonlyMap<number, ReadonlyMap<string, SourceCounts>>;
  /** Per set, per key (`*` included): the share entries the LB holds (µs). */
  readonly shares: ReadonlyMap<number, ReadonlyMap<string, number>>;
  /** Per set: Gtau. */
  readonly tolerances: ReadonlyMap<number, number>;
}

export const shareEntry = (set: number, key: string): string => `G::${set}::${key}`;
export const toleranceEntry = (set: number): string => `Gtau::${set}`;

const COUNTER = /^(off|adm|ref)::(0|[1-9][0-9]{0,9})::(.+)$/;
const SHARE = /^G::(0|[1-9][0-9]{0,9})::(.+)$/;
const TOLERANCE = /^Gtau::(0|[1-9][0-9]{0,9})$/;
const FIELD = { off: 'offered', adm: 'admitted', ref: 'refused' } as const;

function inner<K, V>(outer: Map<number, Map<K, V>>, set: number): Map<K, V> {
  let m = outer.get(set);
  if (!m) outer.set(set, (m = new Map()));
  return m;
}

/** Validates an `htable.dump sipweigh_src` result (pure); entries of other shapes are ignored. */
export function parseSourceDump(result: unknown): SourceTable {
  const counters = new Map<number, Map<string, SourceCounts>>();
  const shares = new Map<number, Map<string, number>>();
  const tolerances = new Map<number, number>();
  const integer = (name: string, value: number | string): number => {
    if (typeof value !== 'number') throw new AdmissionReplyError('htable.dump', `${name} is not an integer`, value);
    return value;
  };
  for (const [name, value] of dumpEntries(result)) {
    const c = COUNTER.exec(name);
    if (c?.[1] && c[2] && c[3]) {
      const perKey = inner(counters, Number(c[2]));
      const before = perKey.get(c[3]) ?? ZERO_COUNTS;
      perKey.set(c[3], { ...before, [FIELD[c[1] as keyof typeof FIELD]]: integer(name, value) });
      continue;
    }
    const g = SHARE.exec(name);
    if (g?.[1] && g[2]) {
      inner(shares, Number(g[1])).set(g[2], integer(name, value));
      continue;
    }
    const t = TOLERANCE.exec(name);
    if (t?.[1]) tolerances.set(Number(t[1]), integer(name, value));
  }
  return { counters, shares, tolerances };
}

/** The LB's source table; null when it has none (fair admission not in its config). */
export async function readSourceTable(rpc: AdmissionRpc): Promise<SourceTable | null> {
  try {
    return parseSourceDump(await rpc.call('htable.dump', [SOURCE_HTABLE]));
  } catch (e) {
    if (isNoSuchHtable(e)) return null;
    throw e;
  }
}

/** One entry of ours: a share or a tolerance (an integer; htable.seti would turn anything else into 0). */
export async function setSourceEntry(rpc: AdmissionRpc, name: string, value: number): Promise<void> {
  if (!Number.isSafeInteger(value)) throw new RangeError(`${name}: not an integer: ${value}`);
  const result = await rpc.call('htable.seti', [SOURCE_HTABLE, name, value]);
  if (typeof result !== 'string' || !/^ok/i.test(result)) {
    throw new AdmissionReplyError('htable.seti', 'expected "Ok. Key set to new value."', result);
  }
}

export async function deleteSourceEntry(rpc: AdmissionRpc, name: string): Promise<void> {
  await rpc.call('htable.delete', [SOURCE_HTABLE, name]);
}
