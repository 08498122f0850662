/**
 * The controller endpoint on real UDP sockets (127.0.3.x) against FAKE agents that use the real codec.
 * Asserts protocol facts and state sequences with generous deadlines; detection times are printed,
 * not asserted (2 noisy cores).
 */
import { expect } from 'chai';
import { createSocket } from 'node:dgram';
import { ProbeEndpoint } from '../../src/probe/probe-endpoint.js';
import type { HealthKind } from '../../src/health/state-machine.js';
import { deriveBackendKey } from '../../src/heartbeat/keys.js';
import { eventually, sleep } from '../support/harness.js';
import { FakeAgent } from '../support/fake-agent.js';

const MASTER = Buffer.alloc(32, 0x11);
const NEW_MASTER = Buffer.alloc(32, 0x22);
const CTRL_IP = '127.0.3.1';
const AGENT_IP = '127.0.3.2';

describe('heartbeat controller endpoint (UDP, fake agents)', function () {
  this.timeout(60_000);
  let ep: ProbeEndpoint;
  const agents: FakeAgent[] = [];
  const transitions: { id: string; from: HealthKind; to: HealthKind; at: number }[] = [];

  before(async function () {
    ep = await ProbeEndpoint.start(
      {
        listen: { address: CTRL_IP, port: 0 },
        masterKeys: [MASTER],
        selfRegistrationSets: new Set([7]),
        timing: { probeIntervalMs: 100, probeTimeoutMs: 80 },
      },
      {
        onHealthChange: (b, from, to) =>
          transitions.push({ id: b.id, from: from.kind, to: to.kind, at: performance.now() }),
      },
    );
  });
  after(async function () {
    for (const a of agents) await a.close().catch(() => undefined);
    await ep?.close();
  });

  async function agent(id: string, opts: Partial<Parameters<typeof FakeAgent.start>[0]> = {}) {
    const a = await FakeAgent.start({
      backendId: id,
      key: deriveBackendKey(MASTER, id),
      controller: ep.address,
      bindAddress: AGENT_IP,
      ...opts,
    });
    agents.push(a);
    return a;
  }

  it('probes a configured backend, gets reports with RTT, and marks it up', async function () {
    const a = await agent('cfg-1');
    ep.core.upsert({
      id: 'cfg-1',
      set: 1,
      uri: 'sip:127.0.3.2:5060',
      capacity: 100,
      agent: a.address,
      source: 'config',
    });
    ep.arm();
    await eventually(() => ep.core.get('cfg-1')?.health.kind === 'up', 'cfg-1 up');
    const v = ep.core.get('cfg-1')!;
    expect(v.metrics).to.deep.equal(a.metrics);
    expect(v.srttMs).to.be.greaterThan(0);
    expect(a.dropped).to.deep.equal({});
    expect(transitions.filter((t) => t.id === 'cfg-1').map((t) => t.to)).to.deep.equal(['returning', 'up']);
  });

  it('a killed agent makes the backend down (suspect first)', async function () {
    const a = await agent('cfg-2');
    ep.core.upsert({
      id: 'cfg-2',
      set: 1,
      uri: 'sip:127.0.3.2:5061',
      capacity: 100,
      agent: a.address,
      source: 'config',
    });
    ep.arm();
    await eventually(() => ep.core.get('cfg-2')?.health.kind === 'up', 'cfg-2 up');
    const killedAt = performance.now();
    await a.close();
    await eventually(() => ep.core.get('cfg-2')?.health.kind === 'down', 'cfg-2 down', 10_000, 10);
    const down = transitions.find((t) => t.id === 'cfg-2' && t.to === 'down')!;
    const seq = transitions.filter((t) => t.id === 'cfg-2').map((t) => t.to);
    expect(seq).to.deep.equal(['returning', 'up', 'suspect', 'down']);
    console.log(
      `      detection: down ${(down.at - killedAt).toFixed(0)} ms after kill (interval 100 ms, timeout 80 ms, k=3)`,
    );
  });

  it('with the default timing (200 ms interval, 150 ms timeout) a killed agent is down within a second or so', async function () {
    const seen: { to: HealthKind; at: number }[] = [];
    const ep3 = await ProbeEndpoint.start(
      { listen: { address: CTRL_IP, port: 0 }, masterKeys: [MASTER] },
      { onHealthChange: (_b, _f, to) => seen.push({ to: to.kind, at: performance.now() }) },
    );
    try {
      const a = await FakeAgent.start({
        backendId: 'def-1',
        key: deriveBackendKey(MASTER, 'def-1'),
        controller: ep3.address,
        bindAddress: AGENT_IP,
      });
      agents.push(a);
      ep3.core.upsert({
        id: 'def-1',
        set: 1,
        uri: 'sip:127.0.3.2:5063',
        capacity: 1,
        agent: a.address,
        source: 'config',
      });
      ep3.arm();
      await eventually(() => ep3.core.get('def-1')?.health.kind === 'up', 'def-1 up');
      const killedAt = performance.now();
      await a.close();
      await eventually(() => ep3.core.get('def-1')?.health.kind === 'down', 'def-1 down', 10_000, 10);
      const down = seen.find((t) => t.to === 'down')!;
      console.log(`      detection: down ${(down.at - killedAt).toFixed(0)} ms after kill (defaults)`);
      expect(down.at - killedAt).to.be.below(5000);
    } finally {
      await ep3.close();
    }
  });

  it('bye makes the backend draining at once, although it keeps answering', async function () {
    const a = await agent('cfg-3');
    ep.core.upsert({
      id: 'cfg-3',
      set: 1,
      uri: 'sip:127.0.3.2:5062',
      capacity: 100,
      agent: a.address,
      source: 'config',
    });
    ep.arm();
    await eventually(() => ep.core.get('cfg-3')?.health.kind === 'up', 'cfg-3 up');
    const byes = ep.core.counters.accepted.bye;
    a.sendBye();
    await eventually(() => ep.core.counters.accepted.bye === byes + 1, 'bye received', 5000, 5);
    // Checked right when the bye was counted: the transition happened in the same handler.
    expect(ep.core.get('cfg-3')!.health).to.include({ kind: 'draining', cause: 'bye' });
    await sleep(500);
    expect(ep.core.get('cfg-3')!.health.kind).to.equal('draining');
    expect(a.probesAnswered).to.be.greaterThan(5);
  });

  it('a hello registers a backend into a set that allows it, and it gets acked and probed', async function () {
    const a = await agent('self-1', { set: 7, helloEveryMs: 200, uri: 'sip:127.0.3.2:5070', capacity: 42 });
    await eventually(() => a.acked, 'hello acked');
    await eventually(() => ep.core.get('self-1')?.health.kind === 'up', 'self-1 up');
    const v = ep.core.get('self-1')!;
    expect(v).to.include({ set: 7, uri: 'sip:127.0.3.2:5070', capacity: 42, source: 'hello' });
    expect(v.agent).to.deep.equal(a.address);
  });

  it('a hello into a set without self-registration is rejected and nothing is stored', async function () {
    const before = ep.core.counters.dropped.not_allowed;
    const size = ep.core.size;
    const a = await agent('self-2', { set: 1, helloEveryMs: 100 });
    await eventually(() => ep.core.counters.dropped.not_allowed >= before + 3, '3 hellos refused');
    expect(ep.core.get('self-2')).to.equal(undefined);
    expect(ep.core.size).to.equal(size);
    expect(a.acked).to.equal(false);
  });

  it('key rotation: an agent still on the previous master is accepted and probed with its key', async function () {
    const ep2 = await ProbeEndpoint.start({
      listen: { address: CTRL_IP, port: 0 },
      masterKeys: [NEW_MASTER, MASTER],
      timing: { probeIntervalMs: 100, probeTimeoutMs: 80 },
    });
    try {
      const oldKeyAgent = await FakeAgent.start({
        backendId: 'rot-1',
        key: deriveBackendKey(MASTER, 'rot-1'),
        controller: ep2.address,
        bindAddress: AGENT_IP,
      });
      const newKeyAgent = await FakeAgent.start({
        backendId: 'rot-2',
        key: deriveBackendKey(NEW_MASTER, 'rot-2'),
        controller: ep2.address,
        bindAddress: AGENT_IP,
      });
      agents.push(oldKeyAgent, newKeyAgent);
      ep2.core.upsert({
        id: 'rot-1',
        set: 1,
        uri: 'sip:127.0.3.2:5080',
        capacity: 1,
        agent: oldKeyAgent.address,
        source: 'config',
      });
      ep2.core.upsert({
        id: 'rot-2',
        set: 1,
        uri: 'sip:127.0.3.2:5081',
        capacity: 1,
        agent: newKeyAgent.address,
        source: 'config',
      });
      ep2.arm();
      await eventually(
        () => newKeyAgent.probesAnswered > 3 && oldKeyAgent.probesAnswered > 3,
        'both agents answer probes',
      );
      // Neither agent has said anything unprompted: the controller found the old key by alternating after a miss.
      await eventually(
        () => ep2.core.get('rot-1')?.health.kind === 'up' && ep2.core.get('rot-2')?.health.kind === 'up',
        'both up',
      );
      expect((oldKeyAgent.dropped.unknown_key ?? 0) + (oldKeyAgent.dropped.bad_mac ?? 0)).to.be.at.most(2);
      expect(newKeyAgent.dropped).to.deep.equal({});
      expect(ep2.core.counters.dropped.bad_mac + ep2.core.counters.dropped.unknown_key).to.equal(0);
    } finally {
      await ep2.close();
    }
  });
});

describe('heartbeat controller endpoint: schedule changes arm the timer (127.0.6.x)', function () {
  this.timeout(20000);

  it('probes a backend added after start without being told to re-arm', async function () {
    const ep = await ProbeEndpoint.start({
      listen: { address: '127.0.6.10', port: 0 },
      masterKeys: [Buffer.alloc(32, 0x61)],
      timing: { probeIntervalMs: 100, probeTimeoutMs: 80 },
    });
    const agentSocket = createSocket('udp4');
    let datagrams = 0;
    agentSocket.on('message', () => datagrams++);
    try {
      await new Promise<void>((r) => agentSocket.bind(0, '127.0.6.11', () => r()));
      // Nothing was scheduled at start; discovery adds a backend later (no datagram ever arrives).
      await sleep(200);
      ep.core.upsert({
        id: 'late-1',
        set: 1,
        uri: 'sip:127.0.6.11:5060',
        capacity: 1,
        agent: { address: '127.0.6.11', port: agentSocket.address().port },
        source: 'dispatcher',
      });
      await eventually(() => datagrams >= 3, 'probes to the backend added after start', 5000);
      expect(ep.core.counters.probesSent).to.be.at.least(3);
    } finally {
      agentSocket.close();
      await ep.close();
    }
  });
});
