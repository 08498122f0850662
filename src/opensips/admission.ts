/**
 * The admission limiter of an OpenSIPS LB, for the controller's shared admission code
 * (src/kamailio/admission.ts). The OpenSIPS snippet keeps the same GCRA state as the Kamailio one,
 * but in cfgutils shared variables instead of the htable sipweigh_adm:
 *   htable key T_<set> / tau_<set>  <->  shared variable sipweigh_adm_T_<set> / sipweigh_adm_tau_<set>
 * This adapter answers the two calls that code makes (`htable.dump sipweigh_adm`, `htable.seti
 * sipweigh_adm <key> <int>`) with MI shv_get / shv_set, so limits, their plan and their checks stay
 * one implementation. The snippet enforces set 1 only (its dispatcher set): it defines no variables
 * for other sets, which therefore read as "missing", as on a Kamailio LB without that limiter.
 */
import { ADMISSION_HTABLE } from '../kamailio/admission.js';
import { RpcMethodError, type RpcParam } from '../kamailio/rpc.js';
import type { OpenSipsMiClient } from './mi.js';

const PREFIX = 'sipweigh_adm_';

/** `shv_get` without a name: every shared variable (pure). Keeps the integer sipweigh_adm_ ones. */
export function admissionVariables(result: unknown): Map<string, number> {
  const out = new Map<string, number>();
  const lists = Array.isArray(result) ? result : [];
  for (const list of lists) {
    if (!Array.isArray(list)) continue;
    for (const v of list as unknown[]) {
      if (typeof v !== 'object' || v === null) continue;
      const { name, value } = v as { name?: unknown; value?: unknown };
      if (typeof name === 'string' && name.startsWith(PREFIX) && typeof value === 'number') {
        out.set(name.slice(PREFIX.length), value);
      }
    }
  }
  return out;
}

/** An `htable.dump` result (the shape parseLimiterDump reads) of the limiter's T_ and tau_ keys (pure). */
export function asHtableDump(vars: ReadonlyMap<string, number>): unknown {
  const slot = [...vars].filter(([k]) => /^(T|tau)_\d+$/.test(k)).map(([name, value]) => ({ name, value }));
  return [{ slot }];
}

export class OpenSipsAdmissionRpc {
  constructor(private readonly mi: Pick<OpenSipsMiClient, 'call' | 'target'>) {}

  async call(method: string, params: readonly RpcParam[] = []): Promise<unknown> {
    if (params[0] !== ADMISSION_HTABLE) {
      throw new RpcMethodError(method, this.mi.target, -32601, 'not found on an OpenSIPS LB');
    }
    if (method === 'htable.dump') return asHtableDump(admissionVariables(await this.mi.call('shv_get', {})));
    if (method === 'htable.seti') {
      const [, key, value] = params;
      if (typeof key !== 'string' || !/^(T|tau)_\d+$/.test(key) || typeof value !== 'number') {
        throw new RpcMethodError(method, this.mi.target, -32602, `bad limiter key or value: ${String(key)}`);
      }
      await this.mi.call('shv_set', { name: `${PREFIX}${key}`, type: 'int', value });
      return 'Ok. Key set to new value.';
    }
    throw new RpcMethodError(method, this.mi.target, -32601, 'not found on an OpenSIPS LB');
  }
}
