/**
 * Seeded generator of hostile heartbeat datagrams for fuzzing a receiver (the controller endpoint or
 * an agent). Every datagram it yields must be dropped by a correct receiver: random bytes, single
 * and multi-byte mutations, truncations and extensions of correctly signed messages, and correctly
 * signed messages that are wrong in exactly one way (future-dated, stale, unknown version or type,
 * non-JSON or schema-breaking payload, wrong direction, oversized, wrong key, another backend's key,
 * an unknown backend, or a replay of a datagram the receiver has already accepted).
 *
 * Usage (see test/integration/heartbeat-fuzz.test.ts):
 *   for (const { kind, buf } of fuzzDatagrams({ target, count: 100_000, seed: 1, replayable })) send(buf)
 */
import { createHmac } from 'node:crypto';
import type { Socket } from 'node:dgram';
import { encodeMessage, HEADER_FIXED_BYTES, MAC_BYTES, type DropReason } from '../../src/heartbeat/codec.js';
import { deriveBackendKey, heartbeatKey, type HeartbeatKey } from '../../src/heartbeat/keys.js';
import {
  MAX_DATAGRAM_BYTES,
  MESSAGE_TYPES,
  type HeartbeatMessage,
  type MessageType,
} from '../../src/heartbeat/messages.js';
import { IDLE_METRICS } from './fake-agent.js';
import { sleep } from '../../src/util/sleep.js';

export interface FuzzTarget {
  /** The backend id the receiver knows. */
  readonly backendId: string;
  /** That backend's derived key (the receiver accepts it). */
  readonly key: Buffer;
  /** Types the receiver accepts: ['report','hello','bye'] for a controller, ['probe','hello_ack'] for an agent. */
  readonly accepts: readonly MessageType[];
}

export interface FuzzOptions {
  readonly target: FuzzTarget;
  readonly count: number;
  readonly seed: number;
  /** Datagrams the receiver has already accepted once; replaying them must fail. */
  readonly replayable?: readonly Buffer[];
  /** Wall clock for timestamps (default Date.now). */
  readonly now?: () => number;
}

export const FUZZ_KINDS = [
  'random',
  'random_with_magic',
  'flip_bits',
  'change_byte',
  'change_bytes',
  'truncate',
  'extend',
  'header_field',
  'wrong_master',
  'other_backend_key',
  'unknown_backend',
  'future_dated',
  'stale',
  'version_2_signed',
  'unknown_type_signed',
  'not_json_signed',
  'schema_signed',
  'wrong_direction_signed',
  'oversized_signed',
  'replay',
] as const;
export type FuzzKind = (typeof FUZZ_KINDS)[number];

/** A signed datagram changed anywhere: the header checks or the MAC must catch it. */
const HEADER_MUTATION_REASONS: readonly DropReason[] = [
  'malformed',
  'truncated',
  'unknown_version',
  'unknown_type',
  'unexpected_type',
  'unknown_backend',
  'unknown_key',
  'bad_mac',
];

/** The drop reasons each kind may legitimately produce (a correct receiver gives one of them). */
export const EXPECTED_REASONS: Readonly<Record<FuzzKind, readonly DropReason[]>> = {
  random: ['malformed', 'truncated', 'oversized'],
  random_with_magic: [
    'malformed',
    'truncated',
    'oversized',
    'unknown_version',
    'unknown_type',
    'unexpected_type',
    'unknown_backend',
    'unknown_key',
    'bad_mac',
  ],
  flip_bits: HEADER_MUTATION_REASONS,
  change_byte: HEADER_MUTATION_REASONS,
  change_bytes: [
    'malformed',
    'truncated',
    'unknown_version',
    'unknown_type',
    'unexpected_type',
    'unknown_backend',
    'unknown_key',
    'bad_mac',
  ],
  truncate: ['truncated', 'malformed', 'bad_mac'],
  extend: ['bad_mac', 'oversized'],
  header_field: [
    'malformed',
    'truncated',
    'unknown_version',
    'unknown_type',
    'unexpected_type',
    'unknown_backend',
    'unknown_key',
    'bad_mac',
  ],
  wrong_master: ['unknown_key', 'bad_mac'],
  other_backend_key: ['unknown_key', 'bad_mac'],
  unknown_backend: ['unknown_backend', 'unknown_key', 'bad_mac', 'not_allowed'],
  future_dated: ['future_dated'],
  stale: ['stale'],
  version_2_signed: ['unknown_version'],
  unknown_type_signed: ['unknown_type'],
  not_json_signed: ['malformed'],
  schema_signed: ['schema'],
  wrong_direction_signed: ['unexpected_type'],
  oversized_signed: ['oversized'],
  // A replay older than the freshness limit is refused as stale before the window is consulted.
  replay: ['replayed', 'stale'],
};

/** mulberry32: small, fast, seedable. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WRONG_MASTER = Buffer.alloc(32, 0x5a);

export function* fuzzDatagrams(opts: FuzzOptions): Generator<{ kind: FuzzKind; buf: Buffer }> {
  const rnd = prng(opts.seed);
  const now = opts.now ?? Date.now;
  const int = (n: number) => Math.floor(rnd() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const bytes = (n: number) => {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = int(256);
    return b;
  };
  const { backendId, accepts } = opts.target;
  const key = heartbeatKey(opts.target.key);
  const others = MESSAGE_TYPES.filter((t) => !accepts.includes(t));
  const kinds = FUZZ_KINDS.filter((k) => k !== 'replay' || (opts.replayable?.length ?? 0) > 0);
  // Fresh sequence numbers far above anything the real sender uses, and a boot id of our own.
  let seq = 1e12;
  const boot = 'fuzz' + int(1e9).toString(36).padStart(6, '0');

  /** A message of `type` for `id`, correct in every field, timestamped `ts`. */
  const message = (type: MessageType, id: string, ts: number): HeartbeatMessage => {
    const base = { backendId: id, seq: seq++, ts, boot };
    switch (type) {
      case 'probe':
        return { type, ...base };
      case 'report':
        return { type, ...base, echoSeq: int(1000), echoTs: ts, metrics: IDLE_METRICS };
      case 'hello':
        return { type, ...base, set: 1 + int(3), uri: 'sip:127.0.3.9:5060', capacity: 10 };
      case 'hello_ack':
        return { type, ...base, echoSeq: int(1000), echoTs: ts, intervalMs: 200 };
      case 'bye':
        return { type, ...base };
    }
  };
  /** A correctly signed datagram that a receiver would accept if it arrived now (never yielded as is). */
  const valid = () => encodeMessage(message(pick(accepts), backendId, now()), key);
  /** Signs arbitrary header fields + payload bytes with the target's key. */
  const signRaw = (
    version: number,
    typeCode: number,
    payload: Buffer,
    id = backendId,
    k: HeartbeatKey = key,
  ) => {
    const head = Buffer.from([0x53, 0x57, version, typeCode, k.id, id.length, ...Buffer.from(id, 'latin1')]);
    const body = Buffer.concat([head, payload]);
    return Buffer.concat([body, createHmac('sha256', k.secret).update(body).digest()]);
  };
  const typeCode = (t: MessageType) => ({ probe: 1, report: 2, hello: 3, hello_ack: 4, bye: 5 })[t];
  const payloadOf = (buf: Buffer) => buf.subarray(HEADER_FIXED_BYTES + buf[5]!, buf.length - MAC_BYTES);

  for (let n = 0; n < opts.count; n++) {
    const kind = pick(kinds);
    let buf: Buffer;
    switch (kind) {
      case 'random':
        buf = bytes(int(1400));
        if (buf[0] === 0x53 && buf[1] === 0x57) buf[0] = 0; // that is the next kind
        break;
      case 'random_with_magic':
        buf = Buffer.concat([
          Buffer.from([0x53, 0x57, rnd() < 0.8 ? 1 : int(256), 1 + int(5), int(256), 1 + int(64)]),
          bytes(int(1300)),
        ]);
        break;
      case 'flip_bits': {
        const orig = valid();
        buf = Buffer.from(orig);
        const flips = 1 + int(4);
        for (let i = 0; i < flips; i++) buf[int(buf.length)]! ^= 1 << int(8);
        if (buf.equals(orig)) buf[0]! ^= 1; // the flips cancelled out
        break;
      }
      case 'change_byte': {
        buf = valid();
        const i = int(buf.length);
        buf[i] = (buf[i]! + 1 + int(255)) & 0xff;
        break;
      }
      case 'change_bytes': {
        buf = valid();
        const i = int(buf.length);
        const n2 = 1 + int(Math.min(16, buf.length - i));
        for (let j = i; j < i + n2; j++) buf[j] = (buf[j]! + 1 + int(255)) & 0xff;
        break;
      }
      case 'truncate': {
        const v = valid();
        buf = Buffer.from(v.subarray(0, int(v.length)));
        break;
      }
      case 'extend':
        buf = Buffer.concat([valid(), bytes(1 + int(200))]);
        break;
      case 'header_field': {
        buf = valid();
        const i = int(HEADER_FIXED_BYTES);
        buf[i] = (buf[i]! + 1 + int(255)) & 0xff;
        break;
      }
      case 'wrong_master':
        buf = encodeMessage(
          message(pick(accepts), backendId, now()),
          heartbeatKey(deriveBackendKey(WRONG_MASTER, backendId)),
        );
        break;
      case 'other_backend_key': {
        const other = backendId === 'fuzz-other' ? 'fuzz-other2' : 'fuzz-other';
        buf = encodeMessage(
          message(pick(accepts), backendId, now()),
          heartbeatKey(deriveBackendKey(WRONG_MASTER, other)),
        );
        break;
      }
      case 'unknown_backend': {
        const id = 'fz-' + int(1e12).toString(36);
        buf = encodeMessage(
          message(pick(accepts), id, now()),
          heartbeatKey(deriveBackendKey(WRONG_MASTER, id)),
        );
        break;
      }
      case 'future_dated':
        buf = encodeMessage(message(pick(accepts), backendId, now() + 60_000 + int(1e9)), key);
        break;
      case 'stale':
        buf = encodeMessage(message(pick(accepts), backendId, Math.max(0, now() - 60_000 - int(1e9))), key);
        break;
      case 'version_2_signed':
        buf = signRaw(2 + int(254), typeCode(pick(accepts)), payloadOf(valid()));
        break;
      case 'unknown_type_signed':
        buf = signRaw(1, pick([0, 6, 7, 100, 255]), payloadOf(valid()));
        break;
      case 'not_json_signed': {
        const junk = pick([
          bytes(2 + int(300)),
          Buffer.from('{"seq":1,'),
          Buffer.from('nul'),
          Buffer.from('{"a":1}}'),
        ]);
        if (junk[0] === 0x7b && junk.length === 2) junk[1] = 0x7b; // "{}" would parse
        buf = signRaw(1, typeCode(pick(accepts)), junk);
        // Random bytes that happen to parse would be a schema error instead: replace them.
        try {
          JSON.parse(junk.toString('utf8'));
          buf = signRaw(1, typeCode(pick(accepts)), Buffer.from('{"seq":'));
        } catch {
          /* not JSON: as intended */
        }
        break;
      }
      case 'schema_signed': {
        const t = pick(accepts);
        const p = JSON.parse(
          payloadOf(encodeMessage(message(t, backendId, now()), key)).toString('utf8'),
        ) as Record<string, unknown>;
        const breakIt = pick(['neg_seq', 'extra', 'boot', 'drop_seq', 'string_ts', 'array']);
        let out: unknown = p;
        if (breakIt === 'neg_seq') p.seq = -1 - int(100);
        else if (breakIt === 'extra') p['x' + int(100)] = int(100);
        else if (breakIt === 'boot') p.boot = 'a';
        else if (breakIt === 'drop_seq') delete p.seq;
        else if (breakIt === 'string_ts') p.ts = String(p.ts);
        else out = [p];
        buf = signRaw(1, typeCode(t), Buffer.from(JSON.stringify(out)));
        break;
      }
      case 'wrong_direction_signed':
        buf = encodeMessage(message(pick(others), backendId, now()), key);
        break;
      case 'oversized_signed': {
        const v = valid();
        const pad = Buffer.alloc(MAX_DATAGRAM_BYTES - v.length + 1 + int(500), 0x20);
        buf = signRaw(1, v[3]!, Buffer.concat([payloadOf(v), pad]));
        break;
      }
      case 'replay':
        buf = Buffer.from(pick(opts.replayable!));
        break;
    }
    yield { kind, buf };
  }
}

export interface PacedSendOptions {
  /** Stop sending once this many datagrams are sent but not yet counted by the receiver. */
  readonly maxInFlight: number;
  /** Hard bound on the whole send loop (every load loop stops by itself). */
  readonly timeLimitMs: number;
  /** How long to wait for the tail to arrive after the last send. */
  readonly tailMs?: number;
}

export interface PacedSendResult {
  readonly sent: number;
  readonly sendErrors: number;
  readonly byKind: Record<FuzzKind, number>;
  readonly elapsedS: number;
}

/**
 * Sends generated datagrams over UDP, paced against the receiver's own count of what it received, so
 * the kernel does not drop them silently in a full socket buffer; then waits for the tail.
 */
export async function sendPaced(
  sender: Socket,
  to: { readonly address: string; readonly port: number },
  datagrams: Iterable<{ kind: FuzzKind; buf: Buffer }>,
  receivedSoFar: () => number,
  opts: PacedSendOptions,
): Promise<PacedSendResult> {
  let sent = 0;
  let sendErrors = 0;
  const byKind = Object.fromEntries(FUZZ_KINDS.map((k) => [k, 0])) as Record<FuzzKind, number>;
  const onSent = (err: Error | null) => {
    if (err) sendErrors++;
  };
  const started = Date.now();
  const overTime = () => Date.now() - started > opts.timeLimitMs;
  for (const { kind, buf } of datagrams) {
    while (sent - receivedSoFar() >= opts.maxInFlight && !overTime()) {
      await new Promise((r) => setImmediate(r));
    }
    if (overTime()) break;
    sender.send(buf, to.port, to.address, onSent);
    byKind[kind]++;
    sent++;
  }
  const tailUntil = Date.now() + (opts.tailMs ?? 10_000);
  while (receivedSoFar() < sent - sendErrors && Date.now() < tailUntil) {
    await sleep(20);
  }
  return { sent, sendErrors, byKind, elapsedS: (Date.now() - started) / 1000 };
}
