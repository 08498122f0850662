/** fast-check arbitraries for heartbeat v1 messages: every value the schema allows, edge cases included. */
import fc from 'fast-check';
import type {
  ByeMessage,
  HeartbeatMessage,
  HelloAckMessage,
  HelloMessage,
  ProbeMessage,
  ReportMessage,
  ReportMetrics,
} from '../../src/heartbeat/messages.js';

/** JSON has no -0: it comes back as 0, so generate +0 only. */
const noNegZero = (x: number) => (Object.is(x, -0) ? 0 : x);
const dbl = (min: number, max: number) =>
  fc.double({ min, max, noNaN: true, noDefaultInfinity: true }).map(noNegZero);
const nullable = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: null, freq: 4 });

export const backendIdArb = fc.stringMatching(/^[A-Za-z0-9._:@-]{1,64}$/);
export const bootArb = fc.stringMatching(/^[A-Za-z0-9_-]{8,64}$/);
export const seqArb = fc.maxSafeNat();
export const tsArb = fc.maxSafeNat();

export const metricsArb: fc.Arbitrary<ReportMetrics> = fc.record({
  cpu_util: nullable(dbl(0, 1)),
  mem_used_ratio: nullable(dbl(0, 1)),
  load1: nullable(dbl(0, 1e12)),
  tm_current: nullable(fc.maxSafeNat()),
  dialogs_active: nullable(fc.maxSafeNat()),
  req_rate: nullable(dbl(0, 1e12)),
  err5xx_rate: nullable(dbl(0, 1e12)),
  udp_rx_queue_bytes: nullable(fc.maxSafeNat()),
  udp_drops: nullable(fc.maxSafeNat()),
  options_rtt_ms: nullable(dbl(0, 1e12)),
  capacity: dbl(Number.MIN_VALUE, 1e9).filter((x) => x > 0),
  draining: fc.boolean(),
});

const envelope = { backendId: backendIdArb, seq: seqArb, ts: tsArb, boot: bootArb };
const printable = (max: number) => fc.stringMatching(new RegExp(`^[\\x20-\\x7e]{0,${max}}$`));

export const probeArb: fc.Arbitrary<ProbeMessage> = fc.record({
  type: fc.constant('probe' as const),
  ...envelope,
});
export const reportArb: fc.Arbitrary<ReportMessage> = fc.record({
  type: fc.constant('report' as const),
  ...envelope,
  echoSeq: seqArb,
  echoTs: tsArb,
  metrics: metricsArb,
});
export const helloArb: fc.Arbitrary<HelloMessage> = fc.record(
  {
    type: fc.constant('hello' as const),
    ...envelope,
    set: fc.integer({ min: 0, max: 2147483647 }),
    uri: fc
      .tuple(fc.constantFrom('sip:', 'sips:'), fc.stringMatching(/^[!#-;=?-~]{1,250}$/))
      .map(([s, r]) => s + r),
    capacity: dbl(Number.MIN_VALUE, 1e9).filter((x) => x > 0),
    agent: printable(64),
  },
  { requiredKeys: ['type', 'backendId', 'seq', 'ts', 'boot', 'set', 'uri', 'capacity'] },
);
export const helloAckArb: fc.Arbitrary<HelloAckMessage> = fc.record({
  type: fc.constant('hello_ack' as const),
  ...envelope,
  echoSeq: seqArb,
  echoTs: tsArb,
  intervalMs: fc.integer({ min: 10, max: 600000 }),
});
export const byeArb: fc.Arbitrary<ByeMessage> = fc.record(
  { type: fc.constant('bye' as const), ...envelope, reason: printable(64) },
  { requiredKeys: ['type', 'backendId', 'seq', 'ts', 'boot'] },
);

export const messageArb: fc.Arbitrary<HeartbeatMessage> = fc.oneof(
  probeArb,
  reportArb,
  helloArb,
  helloAckArb,
  byeArb,
);
