/**
 * Key derivation and key ids.
 *
 * Every backend has its own key, derived from a master key the controller holds:
 *     backend_key = HMAC-SHA256(master, "sipweigh-v1/" + backend_id)
 * An agent holds only its own derived key, so a compromised backend can sign only as itself.
 *
 * Rotation: the controller accepts a current and a previous master at once. To pick the right one
 * without trying both, every datagram carries a one-byte key id computed from the derived key alone
 * (so an agent can compute it too, without knowing the master):
 *     key_id = HMAC-SHA256(backend_key, "sipweigh-v1/key-id")[0]
 * Two keys may share an id (1 in 256); the verifier then tries both. The id is a hint, never trusted:
 * only the MAC authenticates.
 */
import { createHmac, createSecretKey, type KeyObject } from 'node:crypto';
import { BACKEND_ID_PATTERN } from './messages.js';

const DERIVATION_LABEL = 'sipweigh-v1/';
const KEY_ID_LABEL = 'sipweigh-v1/key-id';
/** A master key shorter than this is refused: it is the root of every backend's key. */
export const MIN_MASTER_KEY_BYTES = 32;
/** Length of a derived backend key (the HMAC-SHA256 output). */
export const BACKEND_KEY_BYTES = 32;

/** A key ready for signing/verifying: the secret as a KeyObject (no copy per HMAC) and its wire id. */
export interface HeartbeatKey {
  readonly id: number;
  readonly secret: KeyObject;
}

export function deriveBackendKey(master: Buffer, backendId: string): Buffer {
  if (master.length < MIN_MASTER_KEY_BYTES) {
    throw new RangeError(`master key must be at least ${MIN_MASTER_KEY_BYTES} bytes, got ${master.length}`);
  }
  if (!BACKEND_ID_PATTERN.test(backendId))
    throw new RangeError(`invalid backend id ${JSON.stringify(backendId)}`);
  return createHmac('sha256', master)
    .update(DERIVATION_LABEL + backendId, 'utf8')
    .digest();
}

export function keyIdOf(backendKey: Buffer): number {
  return createHmac('sha256', backendKey).update(KEY_ID_LABEL, 'utf8').digest()[0]!;
}

/** Wraps a derived backend key (the agent's `key`) for the codec. */
export function heartbeatKey(backendKey: Buffer): HeartbeatKey {
  if (backendKey.length !== BACKEND_KEY_BYTES) {
    throw new RangeError(`backend key must be ${BACKEND_KEY_BYTES} bytes, got ${backendKey.length}`);
  }
  return { id: keyIdOf(backendKey), secret: createSecretKey(backendKey) };
}

/** The keys a backend may sign with: current first, then the previous master's during a rotation. */
export function backendKeys(backendId: string, masters: readonly Buffer[]): HeartbeatKey[] {
  return masters.map((m) => heartbeatKey(deriveBackendKey(m, backendId)));
}

/** Parses a hex key (64 hex digits for a derived key; at least 64 for a master). Throws with a clear message. */
export function parseHexKey(hex: string, what: string, minBytes: number): Buffer {
  const s = hex.trim();
  if (!/^(?:[0-9a-fA-F]{2})+$/.test(s))
    throw new RangeError(`${what} must be hex digits (an even number of them)`);
  const b = Buffer.from(s, 'hex');
  if (b.length < minBytes)
    throw new RangeError(`${what} must be at least ${minBytes} bytes (${minBytes * 2} hex digits)`);
  return b;
}
