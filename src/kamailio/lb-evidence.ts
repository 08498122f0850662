/**
 * What the LB snippet keeps for the controller besides the dispatcher list (kamailio/sipweigh-lb.cfg,
 * issue 17): the evidence htable and the lease htable, read and written over JSON-RPC.
 * - `sipweigh_ev`: `rtx::<URI>` counts retransmitted INVITEs sent (or that would have been sent) to a
 *   destination, `redispatch::<URI>` retransmissions moved off a destination no longer active. Both
 *   monotonic; they restart from 0 with the LB (a counter going down is a reset).
 * - `sipweigh_lease`: `ms_left`, the countdown the controller refreshes (htable.seti), and `backstop`,
 *   1 while the LB probes its destinations on its own because the countdown ran out.
 * An LB whose snippet predates these tables answers 500 "No such htable": that is an LB without
 * evidence support (or without a backstop), not an error to retry loudly.
 * `htable.dump TABLE` answers `[{entry, size, slot: [{name, value, type}]}]` (see admission.ts).
 */
import { RpcMethodError, type RpcParam } from './rpc.js';

export const EVIDENCE_HTABLE = 'sipweigh_ev';
export const LEASE_HTABLE = 'sipweigh_lease';

export interface EvidenceRpc {
  call(method: string, params?: readonly RpcParam[]): Promise<unknown>;
}

/** Per destination URI: its counters as the LB holds them. */
export interface DestinationCounters {
  readonly rtx: number;
  readonly redispatch: number;
}

export class LbReplyError extends Error {
  override readonly name = 'LbReplyError';
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The integer items of an `htable.dump` result (pure); string values are left out. */
export function dumpIntegers(result: unknown): Map<string, number> {
  if (!Array.isArray(result)) throw new LbReplyError('htable.dump: not an array');
  const out = new Map<string, number>();
  for (const bucket of result) {
    if (!isRecord(bucket) || !Array.isArray(bucket.slot)) throw new LbReplyError('htable.dump: a bucket without slot');
    for (const item of bucket.slot as unknown[]) {
      if (!isRecord(item) || typeof item.name !== 'string') throw new LbReplyError('htable.dump: an item without name');
      if (typeof item.value === 'number' && Number.isSafeInteger(item.value)) out.set(item.name, item.value);
    }
  }
  return out;
}

/** `htable.dump sipweigh_ev` -> counters per destination URI (pure). */
export function parseEvidence(result: unknown): Map<string, DestinationCounters> {
  const out = new Map<string, { rtx: number; redispatch: number }>();
  for (const [key, value] of dumpIntegers(result)) {
    const m = /^(rtx|redispatch)::(.+)$/.exec(key);
    if (!m?.[1] || !m[2]) continue;
    const c = out.get(m[2]) ?? { rtx: 0, redispatch: 0 };
    c[m[1] as 'rtx' | 'redispatch'] = value;
    out.set(m[2], c);
  }
  return out;
}

/**
 * What was counted between two reads, per URI (pure). A counter that went down was reset (the LB
 * restarted): what it holds now was all counted since. No previous read: nothing is new yet (the
 * counters hold the LB's whole history, not what happened since the controller started).
 */
export function counterDeltas(
  prev: ReadonlyMap<string, DestinationCounters> | null,
  next: ReadonlyMap<string, DestinationCounters>,
): Map<string, DestinationCounters> {
  const out = new Map<string, DestinationCounters>();
  if (prev === null) return out;
  const delta = (a: number | undefined, b: number) => (a === undefined ? b : b >= a ? b - a : b);
  for (const [uri, c] of next) {
    const p = prev.get(uri);
    const d = { rtx: delta(p?.rtx, c.rtx), redispatch: delta(p?.redispatch, c.redispatch) };
    if (d.rtx > 0 || d.redispatch > 0) out.set(uri, d);
  }
  return out;
}

/** The LB's lease table (pure): its backstop flag (null when the key is absent) and countdown. */
export function parseLease(result: unknown): { backstop: boolean | null; msLeft: number | null } {
  const items = dumpIntegers(result);
  const b = items.get('backstop');
  return { backstop: b === undefined ? null : b !== 0, msLeft: items.get('ms_left') ?? null };
}

export function isNoSuchHtable(e: unknown): boolean {
  return e instanceof RpcMethodError && /no such htable|not found/i.test(e.rpcMessage);
}

export const readEvidence = async (rpc: EvidenceRpc) => parseEvidence(await rpc.call('htable.dump', [EVIDENCE_HTABLE]));
export const readLease = async (rpc: EvidenceRpc) => parseLease(await rpc.call('htable.dump', [LEASE_HTABLE]));

/** Refreshes the lease: the LB counts `ms` down by itself (no clock shared between hosts). */
export async function refreshLease(rpc: EvidenceRpc, ms: number): Promise<void> {
  const result = await rpc.call('htable.seti', [LEASE_HTABLE, 'ms_left', ms]);
  if (typeof result !== 'string' || !/^ok/i.test(result)) {
    throw new LbReplyError(`htable.seti: expected "Ok. Key set to new value.", got ${JSON.stringify(result)}`);
  }
}
