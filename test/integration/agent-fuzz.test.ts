/**
 * Fuzz: 100,000 hostile datagrams over real UDP (127.0.4.x) at a running agent, from the protocol
 * helper's seeded generator (test/support/fuzz-datagrams.ts). None may be accepted (no report goes
 * out, no hello is acknowledged); every one that arrives is counted under a drop reason; the agent's
 * collectors keep running; afterwards a valid probe is answered with a correct report.
 * Sends are paced against the agent's own receive counter so the kernel does not drop them silently.
 */
import { expect } from 'chai';
import { createSocket, type Socket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { findUdpSocket, parseProcNetUdp } from '../../src/metrics/proc-net-udp.js';
import { runAgent, type AgentHandle } from '../../src/agent/index.js';
import { decodeDatagram, DROP_REASONS, encodeMessage, typeMask } from '../../src/heartbeat/codec.js';
import { deriveBackendKey, heartbeatKey } from '../../src/heartbeat/keys.js';
import { AGENT_SENDS, CONTROLLER_SENDS, type HeartbeatMessage } from '../../src/heartbeat/messages.js';
import type { AgentConfig } from '../../src/config/types.js';
import { eventually, sleep } from '../support/harness.js';
import { fuzzDatagrams, FUZZ_KINDS, sendPaced } from '../support/fuzz-datagrams.js';

const MASTER = Buffer.alloc(32, 0x55);
const BACKEND = 'be-fuzz';
const COUNT = 100_000;
const TIME_LIMIT_MS = 120_000;
const MAX_IN_FLIGHT = 500;

describe('integration: agent fuzz over UDP', function () {
  this.timeout(240_000);
  const backendKey = deriveBackendKey(MASTER, BACKEND);
  const key = heartbeatKey(backendKey);
  let agent: AgentHandle;
  let sender: Socket;
  const replies: HeartbeatMessage[] = [];
  let undecodable = 0;
  let controllerSeq = 0;
  const controllerBoot = 'fuzzctl01';

  const probe = () =>
    encodeMessage(
      { type: 'probe', backendId: BACKEND, seq: ++controllerSeq, ts: Date.now(), boot: controllerBoot },
      key,
    );

  before(async function () {
    sender = createSocket('udp4');
    sender.on('message', (buf) => {
      const d = decodeDatagram(buf, (id) => (id === BACKEND ? [key] : undefined), typeMask(AGENT_SENDS));
      if (d.ok) replies.push(d.msg);
      else undecodable++;
    });
    await new Promise<void>((r) => sender.bind(0, '127.0.4.21', () => r()));
    const config: AgentConfig = {
      kind: 'agent',
      backend_id: BACKEND,
      set: 1,
      listen: { address: '127.0.4.20', port: 0 },
      // hellos go to a port where nothing listens: only the fuzzer could acknowledge them.
      controller: { address: '127.0.4.22', port: 7950 },
      key: backendKey,
      capacity: 100,
      draining: false,
      sip: { address: '127.0.4.20', port: 5099 },
      collect_interval_ms: 100,
      logging: { level: 'info' },
    };
    agent = await runAgent(config, undefined, { signals: false });
  });
  after(async function () {
    await agent?.stop('test over', false);
    sender?.close();
  });

  it(`accepts none of ${COUNT} random and mutated datagrams, counts each by reason, and answers a valid probe after`, async function () {
    const to = agent.address;
    // Prime: probes the agent accepts once (each answered), to replay during the fuzz.
    const replayable = Array.from({ length: 20 }, probe);
    for (const b of replayable) sender.send(b, to.port, to.address);
    await eventually(
      () => replies.filter((m) => m.type === 'report').length === 20,
      'primed probes answered',
    );
    const base = agent.counters();
    const repliesBefore = replies.length;

    const gen = fuzzDatagrams({
      target: { backendId: BACKEND, key: backendKey, accepts: CONTROLLER_SENDS },
      count: COUNT,
      seed: 4044,
      replayable,
    });
    const {
      sent,
      sendErrors,
      byKind,
      elapsedS: elapsed,
    } = await sendPaced(sender, to, gen, () => agent.counters().received - base.received, {
      maxInFlight: MAX_IN_FLIGHT,
      timeLimitMs: TIME_LIMIT_MS,
    });
    await sleep(200); // any (wrong) report would be on its way back by now

    const c = agent.counters();
    const received = c.received - base.received;
    // What did not reach the agent was dropped by the kernel (receive buffer full), and counted there.
    const kernelDrops = findUdpSocket(
      parseProcNetUdp(readFileSync('/proc/net/udp', 'utf8')),
      to.address,
      to.port,
    )!.drops;
    const dropped = Object.fromEntries(DROP_REASONS.map((r) => [r, c.drops[r] - base.drops[r]]));
    const droppedTotal = Object.values(dropped).reduce((a, b) => a + b, 0);
    console.log(`      kernel drops on the agent's socket: ${kernelDrops}`);
    console.log(
      `      sent ${sent} in ${elapsed.toFixed(1)} s (${(sent / elapsed).toFixed(0)}/s), received ${received}, send errors ${sendErrors}`,
    );
    console.log(
      `      dropped by reason: ${JSON.stringify(Object.fromEntries(Object.entries(dropped).filter(([, n]) => n > 0)))}`,
    );

    expect(sent).to.equal(COUNT);
    for (const k of FUZZ_KINDS) expect(byKind[k], `datagrams of kind ${k} sent`).to.be.greaterThan(0);
    expect(received, 'the agent saw (nearly) all datagrams').to.be.at.least(Math.floor(COUNT * 0.98));
    expect(received + kernelDrops, 'every datagram reached the agent or was counted by the kernel').to.equal(
      sent - sendErrors,
    );
    expect(c.probesAnswered, 'no fuzzed probe answered').to.equal(base.probesAnswered);
    expect(replies.length, 'nothing sent back to the fuzzer').to.equal(repliesBefore);
    expect(undecodable).to.equal(0);
    expect(agent.acknowledged, 'no fuzzed hello_ack accepted').to.equal(false);
    expect(droppedTotal, 'every datagram that arrived is counted under a reason').to.equal(received);
    for (const r of [
      'malformed',
      'truncated',
      'oversized',
      'unknown_version',
      'unknown_type',
      'unexpected_type',
      'unknown_backend',
      'bad_mac',
      'schema',
      'replayed',
      'stale',
      'future_dated',
    ] as const) {
      expect(dropped[r], r).to.be.greaterThan(0);
    }
    // The collectors kept sampling through the flood.
    expect(agent.measurements().mem_used_ratio).to.be.a('number');

    // Still answers correctly.
    const p = probe();
    sender.send(p, to.port, to.address);
    const report = await eventually(
      () => replies.slice(repliesBefore).find((m) => m.type === 'report'),
      'report to a valid probe',
    );
    expect(report.type === 'report' && report.echoSeq).to.equal(controllerSeq);
    expect(report.type === 'report' && report.metrics.capacity).to.equal(100);
  });
});
