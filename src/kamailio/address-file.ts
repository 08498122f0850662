/**
 * The permissions module's address file (modparam address_file; kamailio/sipweigh-lb.cfg
 * SIPWEIGH_SOURCE_GROUPS_FILE), written from the controller's source groups, pure. Kamailio 5.6's
 * format, one record a line: `<group> <address> [<mask bits> [<port> [<tag>]]]`, '#' starts a
 * comment; port 0 matches any port; the tag is one token without spaces. The LB looks a new INVITE's
 * source up with allow_source_address_group() (the group id, -1 when none) and uses `g<group>` as its
 * source key; a group id must be >= 1 (0 would end the script: it is the function's return value).
 * Group N is the operator's N-th group (admission.fairness.groups, from 1). The tag says whether the
 * packet-rate guard skips the source. After a rewrite, the RPC permissions.addressReload loads it.
 */
import { parseNetwork } from '../util/cidr.js';

export const TRUSTED_TAG = 'trusted';
export const UNTRUSTED_TAG = 'limited';

export interface AddressGroup {
  readonly name: string;
  readonly networks: readonly string[];
  readonly trusted: boolean;
}

/** The LB's source key of the group at `index` (0-based) in the config. */
export const groupKey = (index: number): string => `g${index + 1}`;

/** The file's text; throws RangeError on a network that does not parse (validate refuses those first). */
export function formatAddressFile(groups: readonly AddressGroup[]): string {
  const lines = ['# Source groups for fair admission, written by the sipweigh controller: do not edit.'];
  groups.forEach((g, i) => {
    lines.push(`# ${groupKey(i)}: ${g.name}`);
    for (const text of g.networks) {
      const parsed = parseNetwork(text);
      if (!parsed.ok) throw new RangeError(`group ${g.name}: ${parsed.error}`);
      const n = parsed.network;
      lines.push(`${i + 1} ${n.address} ${n.prefix} 0 ${g.trusted ? TRUSTED_TAG : UNTRUSTED_TAG}`);
    }
  });
  return `${lines.join('\n')}\n`;
}

/** Reloads the file at the LB (permissions.addressReload, no parameters). */
export async function reloadAddressFile(rpc: { call(method: string, params?: readonly never[]): Promise<unknown> }): Promise<void> {
  await rpc.call('permissions.addressReload', []);
}
