/**
 * The SIP UDP socket's receive queue and drop counter from /proc/net/udp and /proc/net/udp6.
 *
 * Format (net/ipv4/udp.c, udp4_format_sock):
 *   "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops"
 *   " 4962: 0104007F:13C4 00000000:0000 07 00000000:00001E00 00:00000000 00000000     0        0 9408 2 000000002e586c75 34"
 * - an address is the in-memory (network order) __be32 printed with %08X, i.e. read as a host-order
 *   integer: on little-endian hosts the bytes come out reversed (127.0.4.1 -> 0104007F). IPv6
 *   addresses are four such 32-bit words, each reversed on its own (::1 -> 00000000 00000000 00000000
 *   01000000). The port is converted to host order first, so it reads naturally (13C4 = 5060).
 * - rx_queue is the socket's receive memory (sk_rmem_alloc) in hex: datagrams waiting for Kamailio,
 *   counted with the kernel's per-buffer overhead (truesize), so bytes of memory, not of payload.
 * - drops is decimal and cumulative since the socket was created.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { MetricsParseError, parseCounter } from './parse-error.js';

export type Endianness = 'LE' | 'BE';

export interface UdpSocketRow {
  /** Address bytes in network order (4 or 16). */
  readonly localAddress: Buffer;
  readonly localPort: number;
  readonly remoteAddress: Buffer;
  readonly remotePort: number;
  readonly state: number;
  readonly rxQueueBytes: number;
  readonly drops: number;
}

export interface UdpSocketFigures {
  readonly rxQueueBytes: number;
  readonly drops: number;
  /** How many sockets matched (more than one with SO_REUSEPORT: their figures are summed). */
  readonly sockets: number;
}

/** TCP_CLOSE: what an unconnected UDP socket shows; a connect()ed one shows 01 (ESTABLISHED). */
const UNCONNECTED = 7;

/** Decodes a /proc/net address column (8 or 32 hex digits) into network-order bytes. */
export function decodeProcAddress(hex: string, endianness: Endianness = 'LE'): Buffer | undefined {
  if ((hex.length !== 8 && hex.length !== 32) || !/^[0-9A-Fa-f]+$/.test(hex)) return undefined;
  const raw = Buffer.from(hex, 'hex');
  if (endianness === 'LE') {
    for (let i = 0; i < raw.length; i += 4) raw.subarray(i, i + 4).reverse();
  }
  return raw;
}

/** Network-order bytes of an IPv4 or IPv6 address in text form; undefined when it is neither. */
export function addressBytes(address: string): Buffer | undefined {
  if (isIPv4(address)) return Buffer.from(address.split('.').map(Number));
  if (!isIPv6(address)) return undefined;
  // Rewrite a dotted IPv4 tail (::ffff:127.0.4.1) as two hex words, drop a zone index.
  const text = address
    .replace(/%.*$/, '')
    .replace(
      /(\d+)\.(\d+)\.(\d+)\.(\d+)$/,
      (_, a, b, c, d) =>
        `${((Number(a) << 8) | Number(b)).toString(16)}:${((Number(c) << 8) | Number(d)).toString(16)}`,
    );
  const words = (s: string) => (s === '' ? [] : s.split(':').map((w) => parseInt(w, 16)));
  const [head = '', tail] = text.split('::');
  const all =
    tail === undefined
      ? words(head)
      : [
          ...words(head),
          ...new Array<number>(8 - words(head).length - words(tail).length).fill(0),
          ...words(tail),
        ];
  const out = Buffer.alloc(16);
  all.forEach((w, i) => out.writeUInt16BE(w, i * 2));
  return out;
}

function parseEndpoint(column: string | undefined, endianness: Endianness): [Buffer, number] | undefined {
  const m = column === undefined ? null : /^([0-9A-Fa-f]+):([0-9A-Fa-f]{4})$/.exec(column);
  if (!m?.[1] || !m[2]) return undefined;
  const address = decodeProcAddress(m[1], endianness);
  return address ? [address, parseInt(m[2], 16)] : undefined;
}

/**
 * Parses the whole table (udp or udp6). A malformed row is an error, not skipped: a silently
 * missing socket would read as "queue empty", the most misleading value there is.
 */
export function parseProcNetUdp(
  text: string,
  source = '/proc/net/udp',
  endianness: Endianness = 'LE',
): UdpSocketRow[] {
  const lines = text.split('\n');
  if (!/^\s*sl\s+local_address/.test(lines[0] ?? '')) {
    throw new MetricsParseError(source, 'missing "sl local_address" header line');
  }
  const rows: UdpSocketRow[] = [];
  for (const line of lines.slice(1)) {
    if (line.trim() === '') continue;
    const cols = line.trim().split(/\s+/);
    // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
    if (cols.length < 13) throw new MetricsParseError(source, `short row: ${line.trim()}`);
    const local = parseEndpoint(cols[1], endianness);
    const remote = parseEndpoint(cols[2], endianness);
    const state = /^[0-9A-Fa-f]{2}$/.test(cols[3] ?? '') ? parseInt(cols[3] ?? '', 16) : undefined;
    const queues = /^([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8})$/.exec(cols[4] ?? '');
    const drops = parseCounter(cols[12]);
    if (!local || !remote || state === undefined || !queues?.[2] || drops === undefined) {
      throw new MetricsParseError(source, `malformed row: ${line.trim()}`);
    }
    rows.push({
      localAddress: local[0],
      localPort: local[1],
      remoteAddress: remote[0],
      remotePort: remote[1],
      state,
      rxQueueBytes: parseInt(queues[2], 16),
      drops,
    });
  }
  return rows;
}

/**
 * Figures of the unconnected socket(s) bound to address:port. A socket bound to the wildcard address
 * (0.0.0.0 or ::) on that port also receives the traffic, so it counts when no exact binding exists.
 * Without an address (the SSH collector knows only the port), every unconnected socket on the port
 * counts. Undefined when nothing is bound there (Kamailio down or a configuration mistake).
 */
export function findUdpSocket(
  rows: readonly UdpSocketRow[],
  address: string | undefined,
  port: number,
): UdpSocketFigures | undefined {
  const bound = rows.filter((r) => r.localPort === port && r.state === UNCONNECTED);
  let matches = bound;
  if (address !== undefined) {
    const wanted = addressBytes(address);
    if (!wanted) throw new Error(`not an IP address: ${address}`);
    matches = bound.filter((r) => r.localAddress.equals(wanted));
    if (matches.length === 0) {
      matches = bound.filter(
        (r) => r.localAddress.length === wanted.length && r.localAddress.every((b) => b === 0),
      );
    }
  }
  if (matches.length === 0) return undefined;
  return {
    rxQueueBytes: matches.reduce((s, r) => s + r.rxQueueBytes, 0),
    drops: matches.reduce((s, r) => s + r.drops, 0),
    sockets: matches.length,
  };
}
