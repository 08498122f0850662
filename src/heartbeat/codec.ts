/**
 * Heartbeat protocol v1 wire codec. Pure: bytes in, message or drop reason out; no sockets, no
 * clocks, no state (the replay window is replay.ts, the sockets are endpoint.ts).
 *
 * Datagram layout (all integers unsigned, one byte each; docs/heartbeat-protocol.md has the rationale):
 *
 *   offset  size  field
 *   0       2     magic "SW" (0x53 0x57)
 *   2       1     protocol version (1)
 *   3       1     message type code (messages.ts MESSAGE_TYPE_CODES)
 *   4       1     key id (keys.ts keyIdOf)
 *   5       1     backend id length L, 1..64
 *   6       L     backend id, ASCII [A-Za-z0-9._:@-]
 *   6+L     P     JSON payload, UTF-8 (schemas/heartbeat.schema.json, by type)
 *   6+L+P   32    HMAC-SHA256(backend key, bytes 0 .. 6+L+P-1)
 *
 * Everything the receiver needs to choose the key (backend id, key id) is in the fixed binary
 * header, so the MAC is checked before a single byte of JSON is parsed: a flood of forged datagrams
 * costs one HMAC each, never a JSON parse or a schema run.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { HeartbeatKey } from './keys.js';
import {
  MAX_BACKEND_ID_BYTES,
  MAX_DATAGRAM_BYTES,
  MESSAGE_TYPE_CODES,
  PROTOCOL_VERSION,
  BACKEND_ID_PATTERN,
  type HeartbeatMessage,
  type MessageType,
  type ReportMetrics,
} from './messages.js';
import { payloadValidators } from './schema.js';

export const MAGIC_0 = 0x53; // 'S'
export const MAGIC_1 = 0x57; // 'W'
export const HEADER_FIXED_BYTES = 6;
export const MAC_BYTES = 32;

/**
 * Why a datagram was dropped. A closed set: receivers count by it, operators alert on it.
 * The first nine come from the codec, the rest from the receiver's state (replay window, registry).
 */
export const DROP_REASONS = [
  'oversized', // longer than MAX_DATAGRAM_BYTES
  'truncated', // shorter than its header says it must be
  'malformed', // bad magic, bad backend id, or payload not JSON
  'unknown_version', // version byte is not 1
  'unknown_type', // type code not in v1
  'unexpected_type', // a valid type, but not one this receiver accepts (e.g. a probe sent to the controller)
  'unknown_backend', // no key for this backend id (and it may not self-register)
  'unknown_key', // the key id matches none of the backend's keys
  'bad_mac', // authentication failed
  'schema', // authentic, but the payload breaks the schema
  'replayed', // sequence number already seen, or below the window, or a retired boot id
  'stale', // timestamp older than the accepted age
  'future_dated', // timestamp further ahead than the accepted clock skew
  'not_allowed', // authentic hello for a set that does not allow self-registration (or registry full)
] as const;
export type DropReason = (typeof DROP_REASONS)[number];

export type Drop = { readonly ok: false; readonly reason: DropReason };
export type Decoded = { readonly ok: true; readonly msg: HeartbeatMessage; readonly keyId: number } | Drop;

/** What the fixed header says, before anything is authenticated. */
export interface DatagramHeader {
  readonly type: MessageType;
  readonly keyId: number;
  readonly backendId: string;
  /** Offset of the JSON payload. */
  readonly payloadOffset: number;
  /** Offset of the MAC (= end of the payload = length of the signed bytes). */
  readonly macOffset: number;
}
export type HeaderResult = { readonly ok: true; readonly header: DatagramHeader } | Drop;

const TYPE_BY_CODE: readonly (MessageType | undefined)[] = (() => {
  const t: (MessageType | undefined)[] = [];
  for (const [name, code] of Object.entries(MESSAGE_TYPE_CODES)) t[code] = name as MessageType;
  return t;
})();

/** Drops are shared constants: dropping allocates nothing. */
const DROPS: Readonly<Record<DropReason, Drop>> = Object.fromEntries(
  DROP_REASONS.map((r) => [r, Object.freeze({ ok: false, reason: r })]),
) as Record<DropReason, Drop>;
export function drop(reason: DropReason): Drop {
  return DROPS[reason];
}

/** Bit mask of accepted type codes, for a cheap `unexpected_type` test before any key lookup. */
export function typeMask(types: readonly MessageType[]): number {
  let m = 0;
  for (const t of types) m |= 1 << MESSAGE_TYPE_CODES[t];
  return m;
}
export const ALL_TYPES_MASK = typeMask(Object.keys(MESSAGE_TYPE_CODES) as MessageType[]);

function isIdByte(b: number): boolean {
  // [A-Za-z0-9._:@-]
  return (
    (b >= 0x61 && b <= 0x7a) ||
    (b >= 0x41 && b <= 0x5a) ||
    (b >= 0x30 && b <= 0x3a) || // digits and ':'
    b === 0x2e ||
    b === 0x5f ||
    b === 0x2d ||
    b === 0x40
  );
}

/** Header fields written by readHeaderInto (a receiver may reuse one object for every datagram). */
export interface MutableHeader {
  type: MessageType;
  keyId: number;
  backendId: string;
  payloadOffset: number;
  macOffset: number;
}

export function emptyHeader(): MutableHeader {
  return { type: 'probe', keyId: 0, backendId: '', payloadOffset: 0, macOffset: 0 };
}

/**
 * Reads and checks the unauthenticated header into `out`; returns null, or why the datagram must be
 * dropped (then `out` is partly written and meaningless). Never throws, allocates only the id string.
 */
export function readHeaderInto(buf: Buffer, acceptMask: number, out: MutableHeader): DropReason | null {
  const n = buf.length;
  if (n > MAX_DATAGRAM_BYTES) return 'oversized';
  if (n >= 2 && (buf[0] !== MAGIC_0 || buf[1] !== MAGIC_1)) return 'malformed';
  if (n < HEADER_FIXED_BYTES) return 'truncated';
  if (buf[2] !== PROTOCOL_VERSION) return 'unknown_version';
  const code = buf[3]!;
  const type = TYPE_BY_CODE[code];
  if (type === undefined) return 'unknown_type';
  const idLen = buf[5]!;
  if (idLen === 0 || idLen > MAX_BACKEND_ID_BYTES) return 'malformed';
  const payloadOffset = HEADER_FIXED_BYTES + idLen;
  const macOffset = n - MAC_BYTES;
  if (macOffset < payloadOffset + 2) return 'truncated';
  for (let i = HEADER_FIXED_BYTES; i < payloadOffset; i++) if (!isIdByte(buf[i]!)) return 'malformed';
  if ((acceptMask & (1 << code)) === 0) return 'unexpected_type';
  out.type = type;
  out.keyId = buf[4]!;
  out.backendId = buf.toString('latin1', HEADER_FIXED_BYTES, payloadOffset);
  out.payloadOffset = payloadOffset;
  out.macOffset = macOffset;
  return null;
}

/** Reads and checks the unauthenticated header. Never throws. */
export function readHeader(buf: Buffer, acceptMask = ALL_TYPES_MASK): HeaderResult {
  const header = emptyHeader();
  const r = readHeaderInto(buf, acceptMask, header);
  return r === null ? { ok: true, header } : DROPS[r];
}

function macMatches(buf: Buffer, macOffset: number, key: HeartbeatKey): boolean {
  const expected = createHmac('sha256', key.secret).update(buf.subarray(0, macOffset)).digest();
  return timingSafeEqual(expected, buf.subarray(macOffset, macOffset + MAC_BYTES));
}

/**
 * Authenticates (with whichever of `keys` carries the header's key id), then parses and validates
 * the payload. Never throws.
 */
export function openDatagram(buf: Buffer, header: DatagramHeader, keys: readonly HeartbeatKey[]): Decoded {
  let idMatched = false;
  let authentic = false;
  for (const k of keys) {
    if (k.id !== header.keyId) continue;
    idMatched = true;
    if (macMatches(buf, header.macOffset, k)) {
      authentic = true;
      break;
    }
  }
  if (!idMatched) return DROPS.unknown_key;
  if (!authentic) return DROPS.bad_mac;

  let payload: unknown;
  try {
    payload = JSON.parse(buf.toString('utf8', header.payloadOffset, header.macOffset));
  } catch {
    return DROPS.malformed;
  }
  if (!payloadValidators[header.type](payload)) return DROPS.schema;
  return { ok: true, msg: fromWire(header, payload as WirePayload), keyId: header.keyId };
}

/** Finds a backend's keys; `undefined` means "no such backend" (the caller must not remember the id). */
export type KeyLookup = (backendId: string, type: MessageType) => readonly HeartbeatKey[] | undefined;

/** The whole decode: header, key lookup, MAC, JSON, schema. Replay and freshness are the caller's (replay.ts). */
export function decodeDatagram(buf: Buffer, lookup: KeyLookup, acceptMask = ALL_TYPES_MASK): Decoded {
  const h = readHeader(buf, acceptMask);
  if (!h.ok) return h;
  const keys = lookup(h.header.backendId, h.header.type);
  if (keys === undefined) return DROPS.unknown_backend;
  return openDatagram(buf, h.header, keys);
}

/** The payload as it is on the wire, after schema validation. */
interface WirePayload {
  seq: number;
  ts: number;
  boot: string;
  echo_seq?: number;
  echo_ts?: number;
  metrics?: unknown;
  set?: number;
  uri?: string;
  capacity?: number;
  agent?: string;
  interval_ms?: number;
  reason?: string;
}

function fromWire(h: DatagramHeader, p: WirePayload): HeartbeatMessage {
  // The schema guarantees the per-type fields below are present and typed.
  switch (h.type) {
    case 'probe':
      return { type: 'probe', backendId: h.backendId, seq: p.seq, ts: p.ts, boot: p.boot };
    case 'report':
      return {
        type: 'report',
        backendId: h.backendId,
        seq: p.seq,
        ts: p.ts,
        boot: p.boot,
        echoSeq: p.echo_seq!,
        echoTs: p.echo_ts!,
        metrics: p.metrics as ReportMetrics,
      };
    case 'hello': {
      const m: HeartbeatMessage = {
        type: 'hello',
        backendId: h.backendId,
        seq: p.seq,
        ts: p.ts,
        boot: p.boot,
        set: p.set!,
        uri: p.uri!,
        capacity: p.capacity!,
      };
      if (p.agent !== undefined) m.agent = p.agent;
      return m;
    }
    case 'hello_ack':
      return {
        type: 'hello_ack',
        backendId: h.backendId,
        seq: p.seq,
        ts: p.ts,
        boot: p.boot,
        echoSeq: p.echo_seq!,
        echoTs: p.echo_ts!,
        intervalMs: p.interval_ms!,
      };
    case 'bye': {
      const m: HeartbeatMessage = { type: 'bye', backendId: h.backendId, seq: p.seq, ts: p.ts, boot: p.boot };
      if (p.reason !== undefined) m.reason = p.reason;
      return m;
    }
  }
}

function toWire(msg: HeartbeatMessage): WirePayload {
  const base = { seq: msg.seq, ts: msg.ts, boot: msg.boot };
  switch (msg.type) {
    case 'probe':
      return base;
    case 'report':
      return { ...base, echo_seq: msg.echoSeq, echo_ts: msg.echoTs, metrics: msg.metrics };
    case 'hello': {
      const p: WirePayload = { ...base, set: msg.set, uri: msg.uri, capacity: msg.capacity };
      if (msg.agent !== undefined) p.agent = msg.agent;
      return p;
    }
    case 'hello_ack':
      return { ...base, echo_seq: msg.echoSeq, echo_ts: msg.echoTs, interval_ms: msg.intervalMs };
    case 'bye': {
      const p: WirePayload = { ...base };
      if (msg.reason !== undefined) p.reason = msg.reason;
      return p;
    }
  }
}

/** A message we were asked to send cannot be sent as v1 (a bug in the caller, not bad input). */
export class EncodeError extends Error {
  override name = 'EncodeError';
}

/**
 * Encodes and signs. Throws EncodeError if the message breaks the schema or would exceed
 * MAX_DATAGRAM_BYTES: sending something our own receiver would drop is a bug to surface, not hide.
 * `validate: false` skips the schema run on hot paths whose messages are built from typed values
 * (the controller's probes); tests keep it on.
 */
export function encodeMessage(
  msg: HeartbeatMessage,
  key: HeartbeatKey,
  opts: { validate?: boolean } = {},
): Buffer {
  if (!BACKEND_ID_PATTERN.test(msg.backendId))
    throw new EncodeError(`invalid backend id ${JSON.stringify(msg.backendId)}`);
  const payload = toWire(msg);
  if (opts.validate !== false && !payloadValidators[msg.type](payload)) {
    throw new EncodeError(
      `${msg.type} payload breaks the schema: ${JSON.stringify(payloadValidators[msg.type].errors?.[0])}`,
    );
  }
  return encodeJson(msg.type, msg.backendId, key, JSON.stringify(payload));
}

/**
 * The last step of encoding, for hot paths that build the JSON payload themselves (the controller's
 * probes, a simulator's reports): frames and signs `json` as is. The caller vouches that `json` is a
 * valid payload for `type` and `backendId` matches BACKEND_ID_PATTERN; only the size is checked.
 */
export function encodeJson(type: MessageType, backendId: string, key: HeartbeatKey, json: string): Buffer {
  const idLen = backendId.length; // ASCII by the pattern
  const jsonLen = Buffer.byteLength(json, 'utf8');
  const macOffset = HEADER_FIXED_BYTES + idLen + jsonLen;
  const total = macOffset + MAC_BYTES;
  if (total > MAX_DATAGRAM_BYTES)
    throw new EncodeError(`${type} would be ${total} bytes (max ${MAX_DATAGRAM_BYTES})`);
  const buf = Buffer.allocUnsafe(total);
  buf[0] = MAGIC_0;
  buf[1] = MAGIC_1;
  buf[2] = PROTOCOL_VERSION;
  buf[3] = MESSAGE_TYPE_CODES[type];
  buf[4] = key.id;
  buf[5] = idLen;
  buf.write(backendId, HEADER_FIXED_BYTES, 'latin1');
  buf.write(json, HEADER_FIXED_BYTES + idLen, 'utf8');
  createHmac('sha256', key.secret).update(buf.subarray(0, macOffset)).digest().copy(buf, macOffset);
  return buf;
}
