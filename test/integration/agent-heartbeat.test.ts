/**
 * The agent over real UDP against the protocol helper's controller endpoint (127.0.4.x):
 * hello until acknowledged, probes answered with signed reports of real host figures (degraded
 * where nothing runs), draining carried in reports, bye on stop making the backend draining at once.
 * And the real process: `sipweigh agent --config FILE` sends bye on SIGTERM and exits 0.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runAgent, type AgentHandle } from '../../src/agent/index.js';
import { decodeDatagram, typeMask } from '../../src/heartbeat/codec.js';
import { ProbeEndpoint } from '../../src/probe/probe-endpoint.js';
import { deriveBackendKey, heartbeatKey } from '../../src/heartbeat/keys.js';
import { AGENT_SENDS, type HeartbeatMessage } from '../../src/heartbeat/messages.js';
import type { AgentConfig } from '../../src/config/types.js';
import type { Collector } from '../../src/metrics/collector.js';
import { eventually, REPO_ROOT } from '../support/harness.js';

const MASTER = Buffer.alloc(32, 0x44);

function agentConfig(
  backendId: string,
  listenPort: number,
  controller: { address: string; port: number },
): AgentConfig {
  return {
    kind: 'agent',
    backend_id: backendId,
    set: 1,
    listen: { address: '127.0.4.2', port: listenPort },
    controller,
    key: deriveBackendKey(MASTER, backendId),
    capacity: 150,
    draining: false,
    // Nothing listens here: the SIP socket and OPTIONS collectors fail, and their fields are null.
    sip: { address: '127.0.4.2', port: 5099 },
    collect_interval_ms: 100,
    logging: { level: 'info' },
  };
}

describe('integration: agent heartbeat against the controller endpoint', function () {
  this.timeout(60000);
  let ep: ProbeEndpoint;
  let agent: AgentHandle | undefined;

  before(async function () {
    ep = await ProbeEndpoint.start({
      listen: { address: '127.0.4.1', port: 0 },
      masterKeys: [MASTER],
      selfRegistrationSets: new Set([1]),
      timing: { probeIntervalMs: 100, probeTimeoutMs: 80 },
    });
  });
  after(async function () {
    await agent?.stop('test over', false);
    await ep?.close();
  });

  it('announces itself, is acknowledged and probed, and reports real host figures (degraded where nothing runs)', async function () {
    agent = await runAgent(agentConfig('be-hb', 0, ep.address), undefined, { signals: false });
    await eventually(() => agent!.acknowledged, 'hello acknowledged');
    const view = await eventually(() => {
      const b = ep.core.get('be-hb');
      return b?.metrics && b.metrics.cpu_util !== null && b.metrics.mem_used_ratio !== null ? b : undefined;
    }, 'a report with host figures');
    expect(view.source).to.equal('hello');
    expect(view.uri).to.equal('sip:127.0.4.2:5099');
    expect(view.agent).to.deep.equal(agent.address);
    const m = view.metrics!;
    expect(m.cpu_util).to.be.within(0, 1);
    expect(m.mem_used_ratio).to.be.within(0, 1);
    expect(m.load1).to.be.a('number');
    expect(m.capacity).to.equal(150);
    expect(m.draining).to.equal(false);
    // No Kamailio: the agent degrades instead of stopping.
    expect(m.tm_current).to.equal(null);
    expect(m.udp_rx_queue_bytes).to.equal(null);
    expect(m.options_rtt_ms).to.equal(null);
    await eventually(() => agent!.counters().probesAnswered >= 5, 'several probes answered');
    expect(agent.counters().dropsTotal).to.equal(0);
    expect(ep.core.counters.dropped.bad_mac).to.equal(0);
    expect(['returning', 'up']).to.include(ep.core.get('be-hb')!.health.kind);
  });

  it('carries the draining flag in its reports from the next probe on', async function () {
    agent!.setDraining(true);
    await eventually(() => ep.core.get('be-hb')?.metrics?.draining === true, 'draining in a report');
    agent!.setDraining(false);
    await eventually(() => ep.core.get('be-hb')?.metrics?.draining === false, 'undrained in a report');
  });

  it('sends bye on stop and the controller drains the backend at once', async function () {
    const byes = ep.core.counters.accepted.bye;
    await agent!.stop('maintenance');
    expect(agent!.counters().byesSent).to.equal(3);
    await eventually(() => ep.core.counters.accepted.bye > byes, 'bye accepted');
    expect(ep.core.get('be-hb')!.health.kind).to.equal('draining');
    agent = undefined;
  });
});

describe('integration: agent timing guarantees', function () {
  this.timeout(60000);
  let ep: ProbeEndpoint;
  let agent: AgentHandle | undefined;
  before(async function () {
    ep = await ProbeEndpoint.start({
      listen: { address: '127.0.4.3', port: 0 },
      masterKeys: [MASTER],
      selfRegistrationSets: new Set([1]),
      timing: { probeIntervalMs: 100, probeTimeoutMs: 80 },
    });
  });
  after(async function () {
    await agent?.stop('test over', false);
    await ep?.close();
  });

  it('answers probes from the snapshot while a collector hangs, and stops without waiting for it', async function () {
    let started = 0;
    const hanging: Collector = {
      name: 'hangs',
      fields: ['tm_current'],
      intervalMs: 100,
      timeoutMs: 60_000,
      collect: () => {
        started++;
        return new Promise(() => undefined);
      },
    };
    const quick: Collector = {
      name: 'quick',
      fields: ['load1'],
      intervalMs: 100,
      timeoutMs: 1000,
      collect: async () => ({ values: { load1: 0.5 } }),
    };
    agent = await runAgent(
      { ...agentConfig('be-slow', 0, ep.address), listen: { address: '127.0.4.4', port: 0 } },
      undefined,
      {
        signals: false,
        collectors: [hanging, quick],
      },
    );
    await eventually(
      () => ep.core.get('be-slow') && agent!.counters().probesAnswered >= 10,
      'ten probes answered',
    );
    expect(started, 'the hanging sample is still the first one').to.equal(1);
    const m = ep.core.get('be-slow')!.metrics!;
    expect(m.load1).to.equal(0.5);
    expect(m.tm_current).to.equal(null);
    const t0 = performance.now();
    await agent.stop('done');
    expect(performance.now() - t0, 'stop does not wait for the 60 s timeout').to.be.lessThan(10_000);
    agent = undefined;
  });

  it('announces itself again when probes stop (the controller restarted and forgot it)', async function () {
    agent = await runAgent(
      { ...agentConfig('be-again', 0, ep.address), listen: { address: '127.0.4.5', port: 0 } },
      undefined,
      {
        signals: false,
        silenceBeforeHelloMs: 1000,
      },
    );
    await eventually(() => agent!.acknowledged, 'first hello acknowledged');
    const address = ep.address;
    await ep.close();
    await eventually(() => !agent!.acknowledged, 'agent notices the silence');
    const hellosBefore = agent.counters().hellosSent;
    ep = await ProbeEndpoint.start({
      listen: address,
      masterKeys: [MASTER],
      selfRegistrationSets: new Set([1]),
      timing: { probeIntervalMs: 100, probeTimeoutMs: 80 },
    });
    await eventually(
      () => agent!.acknowledged && ep.core.get('be-again')?.metrics,
      'registered again with the new controller',
      40_000,
    );
    expect(agent.counters().hellosSent).to.be.greaterThan(hellosBefore);
    expect(ep.core.get('be-again')!.source).to.equal('hello');
  });
});

describe('integration: `sipweigh agent` process, SIGTERM → bye', function () {
  this.timeout(60000);
  let controller: Socket;
  const received: HeartbeatMessage[] = [];
  const backendId = 'be-sigterm';
  const key = heartbeatKey(deriveBackendKey(MASTER, backendId));

  before(async function () {
    // A plain UDP socket stands for the controller: it decodes what it gets and never answers.
    controller = createSocket('udp4');
    controller.on('message', (buf) => {
      const d = decodeDatagram(buf, (id) => (id === backendId ? [key] : undefined), typeMask(AGENT_SENDS));
      if (d.ok) received.push(d.msg);
    });
    await new Promise<void>((r) => controller.bind(0, '127.0.4.1', () => r()));
  });
  after(function () {
    controller.close();
  });

  it('runs from its config file, repeats hello while unacknowledged, sends bye on SIGTERM and exits 0', async function () {
    const dir = mkdtempSync(join(tmpdir(), 'sipweigh-agent-proc-'));
    const file = join(dir, 'agent.json');
    const cfg = agentConfig(backendId, 7953, { address: '127.0.4.1', port: controller.address().port });
    writeFileSync(file, JSON.stringify({ ...cfg, key: cfg.key.toString('hex'), logging: { level: 'warn' } }));
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(REPO_ROOT, 'src', 'cli', 'main.ts'), 'agent', '--config', file],
      {
        cwd: REPO_ROOT,
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      await eventually(
        () => received.filter((m) => m.type === 'hello').length >= 3,
        'three hellos (no ack)',
        20000,
      );
      const hello = received.find((m) => m.type === 'hello')!;
      expect(hello).to.include({ backendId, set: 1, uri: 'sip:127.0.4.2:5099', capacity: 150 });
      const seqs = received.filter((m) => m.type === 'hello').map((m) => m.seq);
      expect(new Set(seqs).size, 'each hello has its own sequence number').to.equal(seqs.length);
      child.kill('SIGTERM');
      const code = await Promise.race([
        exited,
        new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 15000)),
      ]);
      expect(code, stderr).to.equal(0);
      const byes = received.filter((m) => m.type === 'bye');
      expect(byes.length).to.be.at.least(1);
      expect(byes[0]).to.include({ backendId, reason: 'signal SIGTERM' });
      expect(byes[0]!.boot).to.equal(hello.boot);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
