/**
 * Fuzz: 100,000 hostile datagrams over real UDP (127.0.3.x) at a running controller endpoint.
 * None may be accepted; every one that arrives is counted under a drop reason; afterwards a real
 * probe/report exchange still works. Sends are paced against the endpoint's own receive counter, so
 * the kernel does not silently drop them (and what did arrive is what is asserted on).
 */
import { expect } from 'chai';
import { createSocket, type Socket } from 'node:dgram';
import { ProbeEndpoint } from '../../src/probe/probe-endpoint.js';
import { encodeMessage, DROP_REASONS } from '../../src/heartbeat/codec.js';
import { deriveBackendKey, heartbeatKey } from '../../src/heartbeat/keys.js';
import { AGENT_SENDS } from '../../src/heartbeat/messages.js';
import { eventually } from '../support/harness.js';
import { FakeAgent, IDLE_METRICS } from '../support/fake-agent.js';
import { fuzzDatagrams, FUZZ_KINDS, sendPaced } from '../support/fuzz-datagrams.js';

const MASTER = Buffer.alloc(32, 0x33);
const TARGET = 'fz-target';
const COUNT = 100_000;
const TIME_LIMIT_MS = 90_000;
/** Datagrams allowed in flight (sent, not yet counted by the endpoint): well inside the socket buffer. */
const MAX_IN_FLIGHT = 500;

describe('heartbeat fuzz: controller endpoint over UDP', function () {
  this.timeout(180_000);
  let ep: ProbeEndpoint;
  let sender: Socket;
  let agent: FakeAgent | undefined;

  before(async function () {
    ep = await ProbeEndpoint.start({
      listen: { address: '127.0.3.10', port: 0 },
      masterKeys: [MASTER],
      selfRegistrationSets: new Set([2]), // so that unknown-backend hellos go the long way (derive + MAC)
      timing: { probeIntervalMs: 100, probeTimeoutMs: 80 },
    });
    sender = createSocket('udp4');
    await new Promise<void>((r) => sender.bind(0, '127.0.3.11', () => r()));
  });
  after(async function () {
    await agent?.close().catch(() => undefined);
    await new Promise<void>((r) => sender.close(() => r()));
    await ep?.close();
  });

  it(`drops all of ${COUNT} random and mutated datagrams, counted by reason, and still works after`, async function () {
    // The target is known but not probed during the fuzz, so any accepted message would be the fuzzer's.
    ep.core.upsert({ id: TARGET, set: 1, uri: 'sip:127.0.3.12:5060', capacity: 10, source: 'config' });
    const key = heartbeatKey(deriveBackendKey(MASTER, TARGET));

    // Prime: reports the endpoint accepts once (unmatched echo, so no health effect), to replay later.
    const replayable: Buffer[] = [];
    for (let i = 0; i < 20; i++) {
      replayable.push(
        encodeMessage(
          {
            type: 'report',
            backendId: TARGET,
            seq: i,
            ts: Date.now(),
            boot: 'primeboot1',
            echoSeq: 999_999,
            echoTs: Date.now(),
            metrics: IDLE_METRICS,
          },
          key,
        ),
      );
    }
    const to = ep.address;
    for (const b of replayable) sender.send(b, to.port, to.address);
    await eventually(() => ep.core.counters.accepted.report === 20, 'primes accepted');
    const base = structuredClone(ep.core.counters);

    const gen = fuzzDatagrams({
      target: { backendId: TARGET, key: deriveBackendKey(MASTER, TARGET), accepts: AGENT_SENDS },
      count: COUNT,
      seed: 20240601,
      replayable,
    });
    const {
      sent,
      sendErrors,
      byKind,
      elapsedS: elapsed,
    } = await sendPaced(sender, to, gen, () => ep.core.counters.received - base.received, {
      maxInFlight: MAX_IN_FLIGHT,
      timeLimitMs: TIME_LIMIT_MS,
    });

    const c = ep.core.counters;
    const received = c.received - base.received;
    const dropped = Object.fromEntries(DROP_REASONS.map((r) => [r, c.dropped[r] - base.dropped[r]]));
    const droppedTotal = Object.values(dropped).reduce((a, b) => a + b, 0);
    console.log(
      `      sent ${sent} in ${elapsed.toFixed(1)} s (${(sent / elapsed).toFixed(0)}/s), received ${received}, send errors ${sendErrors}`,
    );
    console.log(`      dropped by reason: ${JSON.stringify(dropped)}`);

    expect(sent).to.equal(COUNT);
    for (const k of FUZZ_KINDS) expect(byKind[k], `datagrams of kind ${k} sent`).to.be.greaterThan(0);
    expect(received, 'the endpoint saw (nearly) all datagrams').to.be.at.least(Math.floor(COUNT * 0.98));
    expect(c.accepted).to.deep.equal(base.accepted);
    expect(c.registered).to.equal(base.registered);
    expect(droppedTotal).to.equal(received);
    expect(c.internalErrors).to.equal(0);
    // Every reason a receiver can reach from outside shows up (not_allowed needs a master-signed hello).
    for (const r of DROP_REASONS.filter((x) => x !== 'not_allowed'))
      expect(dropped[r], r).to.be.greaterThan(0);
    expect(ep.core.size).to.equal(1);

    // Still answers correctly: a real exchange brings the target up.
    agent = await FakeAgent.start({
      backendId: TARGET,
      key: deriveBackendKey(MASTER, TARGET),
      controller: to,
      bindAddress: '127.0.3.12',
    });
    ep.core.upsert({
      id: TARGET,
      set: 1,
      uri: 'sip:127.0.3.12:5060',
      capacity: 10,
      agent: agent.address,
      source: 'config',
    });
    ep.arm();
    await eventually(() => ep.core.get(TARGET)?.health.kind === 'up', 'target up after the fuzz');
    expect(agent.dropped).to.deep.equal({});
    expect(ep.core.counters.accepted.report).to.be.greaterThan(base.accepted.report);
  });
});
