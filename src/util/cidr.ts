/**
 * IPv4/IPv6 networks as the operator writes them (`10.0.0.0/24`, `2001:db8::/32`, or one address),
 * pure: parsed to a number range so that overlaps and membership are exact, whatever the notation.
 */
import { isIPv4, isIPv6 } from 'node:net';

export interface Network {
  readonly family: 4 | 6;
  /** The network address as written back (host bits zero). */
  readonly address: string;
  readonly prefix: number;
  /** First and last address of the block. */
  readonly first: bigint;
  readonly last: bigint;
}

export type NetworkParse =
  { readonly ok: true; readonly network: Network } | { readonly ok: false; readonly error: string };

function v4ToBigint(a: string): bigint {
  return a.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}

function v6ToBigint(a: string): bigint {
  let text = a;
  // An embedded IPv4 tail (::ffff:10.0.0.1) is two groups.
  const v4 = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4?.[1] !== undefined && v4[2] !== undefined) {
    const n = v4ToBigint(v4[2]);
    text = `${v4[1]}${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const groups = (s: string) => (s === '' ? [] : s.split(':'));
  const h = groups(head);
  const t = tail === undefined ? [] : groups(tail);
  const all = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return all.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

function v4ToString(n: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => String((n >> s) & 0xffn)).join('.');
}

function v6ToString(n: bigint): string {
  const groups = [];
  for (let i = 7; i >= 0; i--) groups.push(((n >> BigInt(i * 16)) & 0xffffn).toString(16));
  return groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
}

/**
 * One address or CIDR block. Refused: anything that is not an IP address, a prefix out of range,
 * and host bits set (`10.0.0.1/24`): the operator meant either the address or the block, and the
 * LB would silently take the block.
 */
export function parseNetwork(text: string): NetworkParse {
  const [addr = '', prefixText, extra] = text.trim().split('/');
  if (extra !== undefined) return { ok: false, error: `${text}: not an address or CIDR block` };
  const family = isIPv4(addr) ? 4 : isIPv6(addr) ? 6 : 0;
  if (family === 0) return { ok: false, error: `${text}: not an IPv4 or IPv6 address` };
  if (family === 6 && addr.includes('%'))
    return { ok: false, error: `${text}: a zone index is not a network` };
  const bits = family === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? bits : /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
  if (!(prefix >= 0 && prefix <= bits)) return { ok: false, error: `${text}: prefix must be 0..${bits}` };
  const n = family === 4 ? v4ToBigint(addr) : v6ToBigint(addr);
  const hostBits = BigInt(bits - prefix);
  const first = (n >> hostBits) << hostBits;
  if (first !== n) {
    const net = family === 4 ? v4ToString(first) : v6ToString(first);
    return { ok: false, error: `${text}: host bits set (did you mean ${net}/${prefix}?)` };
  }
  const last = first + (1n << hostBits) - 1n;
  const address = family === 4 ? v4ToString(first) : v6ToString(first);
  return { ok: true, network: { family, address, prefix, first, last } };
}

/** Whether two blocks share an address (one inside the other, or equal). */
export function overlaps(a: Network, b: Network): boolean {
  return a.family === b.family && a.first <= b.last && b.first <= a.last;
}

export function formatNetwork(n: Network): string {
  return `${n.address}/${n.prefix}`;
}
