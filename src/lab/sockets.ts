/**
 * Is anything bound to ADDR:PORT? Read from /proc/net/{udp,tcp}, so readiness does not depend on a
 * protocol exchange with the process (and works for any program, not only SIP).
 */
import { readFile } from 'node:fs/promises';

export type Transport = 'udp' | 'tcp';

export interface Endpoint {
  readonly transport: Transport;
  readonly address: string; // IPv4 dotted quad
  readonly port: number;
}

/** /proc/net encodes an IPv4 address as 8 hex digits of the address in host (little-endian) order. */
export function procNetAddress(address: string, port: number): string {
  const octets = address.split('.').map((o) => Number(o));
  if (octets.length !== 4 || octets.some((o) => !Number.isInteger(o) || o < 0 || o > 255)) {
    throw new Error(`not an IPv4 address: ${address}`);
  }
  const hex = octets
    .reverse()
    .map((o) => o.toString(16).padStart(2, '0'))
    .join('')
    .toUpperCase();
  return `${hex}:${port.toString(16).padStart(4, '0').toUpperCase()}`;
}

const TCP_LISTEN = '0A';

export async function isBound(ep: Endpoint): Promise<boolean> {
  const table = await readFile(`/proc/net/${ep.transport}`, 'utf8');
  const local = procNetAddress(ep.address, ep.port);
  for (const line of table.split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols[1] !== local) continue;
    if (ep.transport === 'udp' || cols[3] === TCP_LISTEN) return true;
  }
  return false;
}

export function formatEndpoint(ep: Endpoint): string {
  return `${ep.transport}:${ep.address}:${ep.port}`;
}
