/**
 * A SIP OPTIONS request of our own and the matching of its response (pure; no sockets).
 *
 * Each ping is a new client transaction: a fresh RFC 3261 branch (magic cookie z9hG4bK), Call-ID and
 * From tag. A response belongs to it when its top Via carries our branch, its CSeq is our number with
 * method OPTIONS, and its Call-ID is ours (RFC 3261 17.1.3 needs only branch + CSeq method; Call-ID is
 * a cheap extra guard). Any final response counts: a 404 or 483 still proves that Kamailio read the
 * socket and ran its script, which is what the round trip measures.
 */
import { randomBytes } from 'node:crypto';
import type { UdpAddress } from '../util/udp-address.js';

export interface OptionsTransaction {
  readonly branch: string;
  readonly callId: string;
  readonly fromTag: string;
  readonly cseq: number;
}

export function newOptionsTransaction(cseq: number): OptionsTransaction {
  const token = () => randomBytes(8).toString('hex');
  return { branch: `z9hG4bK-sw-${token()}`, callId: `${token()}@sipweigh-agent`, fromTag: token(), cseq };
}

function hostport(ep: UdpAddress): string {
  return ep.address.includes(':') ? `[${ep.address}]:${ep.port}` : `${ep.address}:${ep.port}`;
}

export function buildOptions(tx: OptionsTransaction, local: UdpAddress, target: UdpAddress): Buffer {
  const uri = `sip:${hostport(target)}`;
  return Buffer.from(
    [
      `OPTIONS ${uri} SIP/2.0`,
      `Via: SIP/2.0/UDP ${hostport(local)};branch=${tx.branch};rport`,
      'Max-Forwards: 70',
      `From: <sip:sipweigh-agent@${hostport(local)}>;tag=${tx.fromTag}`,
      `To: <${uri}>`,
      `Call-ID: ${tx.callId}`,
      `CSeq: ${tx.cseq} OPTIONS`,
      'User-Agent: sipweigh-agent',
      'Accept: application/sdp',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n'),
    'latin1',
  );
}

export interface OptionsResponse {
  readonly status: number;
}

/** Header names in full and compact form (RFC 3261 7.3.3), lower case. */
const VIA = new Set(['via', 'v']);
const CALL_ID = new Set(['call-id', 'i']);

/**
 * The response's status if `datagram` is a final response to `tx`; undefined for anything else
 * (a provisional response, another transaction's late reply, a request, garbage).
 */
export function matchOptionsResponse(datagram: Buffer, tx: OptionsTransaction): OptionsResponse | undefined {
  // A response's headers fit in the first few KB; never scan a large body.
  const head = datagram.subarray(0, 4096).toString('latin1');
  const end = head.indexOf('\r\n\r\n');
  const lines = (end >= 0 ? head.slice(0, end) : head).split('\r\n');
  const statusLine = /^SIP\/2\.0 ([1-6]\d\d) /.exec(lines[0] ?? '');
  if (!statusLine) return undefined;
  const status = Number(statusLine[1]);
  if (status < 200) return undefined;
  let topVia: string | undefined;
  let callId: string | undefined;
  let cseq: string | undefined;
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (VIA.has(name)) topVia ??= value.split(',')[0];
    else if (CALL_ID.has(name)) callId ??= value;
    else if (name === 'cseq') cseq ??= value;
  }
  if (topVia === undefined || callId !== tx.callId) return undefined;
  const branch = /;\s*branch=([^;\s,]+)/i.exec(topVia)?.[1];
  if (branch !== tx.branch) return undefined;
  const cseqMatch = /^(\d+)\s+(\S+)$/.exec(cseq ?? '');
  if (!cseqMatch || Number(cseqMatch[1]) !== tx.cseq || cseqMatch[2] !== 'OPTIONS') return undefined;
  return { status };
}
