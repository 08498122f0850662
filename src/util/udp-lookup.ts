/**
 * dgram sockets look up the destination of every send(); for an IP literal Node's default still goes
 * through dns.lookup and defers the send by a tick. Heartbeat peers are addressed by IP literal, so
 * answer those at once (pass as `lookup` to dgram.createSocket). Names still resolve, the slow way.
 */
import { lookup as dnsLookup } from 'node:dns';
import { isIPv4, isIPv6 } from 'node:net';

type LookupCallback = (err: Error | null, address: string, family: number) => void;

export const literalLookup = ((hostname: string, options: unknown, callback: LookupCallback) => {
  if (isIPv4(hostname)) return callback(null, hostname, 4);
  if (isIPv6(hostname)) return callback(null, hostname, 6);
  return (dnsLookup as unknown as (h: string, o: unknown, cb: LookupCallback) => void)(
    hostname,
    options,
    callback,
  );
}) as unknown as typeof dnsLookup;
