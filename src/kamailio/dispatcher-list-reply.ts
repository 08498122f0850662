/**
 * Pure parser of Kamailio's `dispatcher.list` JSON-RPC reply (shape taken from a running 5.6.3 and
 * from dispatcher.c `ds_rpc_print_set`; fixtures in test/unit/discovery-fixtures/):
 *
 *   { "jsonrpc": "2.0", "id": 1, "result": { "NRSETS": 2, "RECORDS": [
 *       { "SET": { "ID": 1, "TARGETS": [
 *           { "DEST": { "URI": "sip:10.0.0.5:5060", "FLAGS": "AX", "PRIORITY": 0,
 *                       "ATTRS": { "BODY": "duid=be-a;weight=50", "DUID": "be-a", "MAXLOAD": 0,
 *                                  "WEIGHT": 50, "RWEIGHT": 0, "SOCKET": null, ... },   (only with attrs)
 *                       "LATENCY": { "AVG": 0, ... },      (only with ds_ping_latency_stats)
 *                       "RUNTIME": { "DLGLOAD": 0 },       (only with ds_hash_size)
 *                       "HOST": ..., "PORT": ...           (only in "full" mode) } } ] } } ] } }
 *
 * FLAGS is two letters: state A(ctive) I(nactive) D(isabled) T(rying), then P(robing) N(o ping) X(neither).
 * The state letter is the first that applies of I, D, T, A (`ds_rpc_print_set`, 6.1.4), so a "T"
 * has neither the inactive nor the disabled flag: `ds_skip_dst` (dispatch.h) skips only those two,
 * and a trying destination is still picked, with its share of algorithm 11's slots.
 * An empty dispatcher answers with the error 500 "No Destination Sets": that is an empty list, not
 * a failure. Unknown extra fields are ignored (they differ between versions and modes); a missing or
 * mistyped field we rely on is an error naming its path.
 */

export type DispatcherState = 'active' | 'inactive' | 'disabled' | 'trying';
export type DispatcherProbing = 'probing' | 'noping' | 'none';

export interface DispatcherTarget {
  readonly setId: number;
  readonly uri: string;
  readonly state: DispatcherState;
  /**
   * Whether the LB's dispatcher still picks this destination, read by the parser of the platform
   * that listed it: the same state means different things (a Kamailio "T" is in rotation, an
   * OpenSIPS "Probing", also listed as trying, is out).
   */
  readonly inRotation: boolean;
  readonly probing: DispatcherProbing;
  readonly priority: number;
  /** The raw attrs string as in the list file, '' when none. */
  readonly attrsBody: string;
  /** The attrs as key=value pairs (`duid=be-a;weight=50` -> {duid:'be-a', weight:'50'}). */
  readonly attrs: Readonly<Record<string, string>>;
  readonly duid: string | null;
  readonly weight: number | null;
  readonly rweight: number | null;
  /** Latency statistics of Kamailio's own OPTIONS probing, when enabled. */
  readonly latency: {
    readonly avgMs: number;
    readonly estMs: number;
    readonly maxMs: number;
    readonly timeouts: number;
  } | null;
}

/**
 * The weight a destination has in the LB's rotation: its rweight while in rotation, 0 otherwise.
 * A destination without an rweight counts 1, as algorithm 11 treats it.
 */
export function effectiveWeight(t: DispatcherTarget): number {
  return t.inRotation ? (t.rweight ?? 1) : 0;
}

export type DispatcherListResult =
  | { readonly ok: true; readonly targets: readonly DispatcherTarget[] }
  | { readonly ok: false; readonly error: string };

const STATES: Record<string, DispatcherState> = { A: 'active', I: 'inactive', D: 'disabled', T: 'trying' };
const PROBING: Record<string, DispatcherProbing> = { P: 'probing', N: 'noping', X: 'none' };

class ParseError extends Error {}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function obj(v: unknown, path: string): Obj {
  if (!isObj(v)) throw new ParseError(`${path}: expected an object`);
  return v;
}
function arr(v: unknown, path: string): unknown[] {
  if (!Array.isArray(v)) throw new ParseError(`${path}: expected an array`);
  return v;
}
function int(v: unknown, path: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new ParseError(`${path}: expected an integer`);
  return v;
}
function str(v: unknown, path: string): string {
  if (typeof v !== 'string') throw new ParseError(`${path}: expected a string`);
  return v;
}
function optNum(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/** Splits a dispatcher attrs body `a=1;b=two` into pairs (later keys win; keys without '=' get ''). */
export function parseAttrsBody(body: string): Record<string, string> {
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const part of body.split(';')) {
    const p = part.trim();
    if (p === '') continue;
    const eq = p.indexOf('=');
    if (eq < 0) out[p] = '';
    else out[p.slice(0, eq).trim()] = p.slice(eq + 1).trim();
  }
  return out;
}

function parseTarget(setId: number, v: unknown, path: string): DispatcherTarget {
  const dest = obj(obj(v, path).DEST, `${path}.DEST`);
  const uri = str(dest.URI, `${path}.DEST.URI`);
  const flags = str(dest.FLAGS, `${path}.DEST.FLAGS`);
  const state = STATES[flags[0] ?? ''];
  const probing = PROBING[flags[1] ?? 'X'];
  if (!state || !probing) throw new ParseError(`${path}.DEST.FLAGS: unknown flags ${JSON.stringify(flags)}`);
  const priority = int(dest.PRIORITY, `${path}.DEST.PRIORITY`);
  let attrsBody = '';
  let duid: string | null = null;
  let weight: number | null = null;
  let rweight: number | null = null;
  if (dest.ATTRS !== undefined) {
    const a = obj(dest.ATTRS, `${path}.DEST.ATTRS`);
    attrsBody = a.BODY === null || a.BODY === undefined ? '' : str(a.BODY, `${path}.DEST.ATTRS.BODY`);
    duid = typeof a.DUID === 'string' && a.DUID !== '' ? a.DUID : null;
    weight = optNum(a.WEIGHT);
    rweight = optNum(a.RWEIGHT);
  }
  let latency: DispatcherTarget['latency'] = null;
  if (isObj(dest.LATENCY)) {
    const l = dest.LATENCY;
    latency = {
      avgMs: optNum(l.AVG) ?? 0,
      estMs: optNum(l.EST) ?? 0,
      maxMs: optNum(l.MAX) ?? 0,
      timeouts: optNum(l.TIMEOUT) ?? 0,
    };
  }
  return {
    setId,
    uri,
    state,
    // What ds_skip_dst leaves in: everything but inactive and disabled (see the header).
    inRotation: state === 'active' || state === 'trying',
    probing,
    priority,
    attrsBody,
    attrs: parseAttrsBody(attrsBody),
    duid,
    weight,
    rweight,
    latency,
  };
}

/** Parses a whole JSON-RPC response object (already JSON-decoded). Never throws. */
export function parseDispatcherList(reply: unknown): DispatcherListResult {
  try {
    const r = obj(reply, 'reply');
    if (r.error !== undefined) {
      const e = obj(r.error, 'reply.error');
      const message = typeof e.message === 'string' ? e.message : JSON.stringify(e);
      if (message === 'No Destination Sets') return { ok: true, targets: [] };
      return { ok: false, error: `dispatcher.list failed: ${String(e.code ?? '?')} ${message}` };
    }
    const result = obj(r.result, 'reply.result');
    const records = arr(result.RECORDS, 'reply.result.RECORDS');
    const targets: DispatcherTarget[] = [];
    records.forEach((rec, i) => {
      const set = obj(obj(rec, `RECORDS[${i}]`).SET, `RECORDS[${i}].SET`);
      const setId = int(set.ID, `RECORDS[${i}].SET.ID`);
      arr(set.TARGETS, `RECORDS[${i}].SET.TARGETS`).forEach((t, j) =>
        targets.push(parseTarget(setId, t, `RECORDS[${i}].SET.TARGETS[${j}]`)),
      );
    });
    return { ok: true, targets };
  } catch (e) {
    if (e instanceof ParseError)
      return { ok: false, error: `unexpected dispatcher.list reply: ${e.message}` };
    throw e;
  }
}
