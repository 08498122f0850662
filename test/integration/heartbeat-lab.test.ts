/**
 * The heartbeat end to end, every part real: the lab's Kamailio LB and backends, a real `sipweigh
 * agent` process beside each backend, sipp load through the LB, and the controller's heartbeat
 * endpoint (in this process) discovering the backends from its config and the LB's dispatcher.list.
 * Checks the promises: reports follow the load up and down; a SIGKILLed agent is marked down;
 * an agent stopped with SIGTERM says bye and is drained at once.
 */
import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadControllerConfig } from '../../src/config/load.js';
import { applyDiscovery } from '../../src/probe/apply-discovery.js';
import { fetchDispatcherList } from '../../src/kamailio/fetch-dispatcher-list.js';
import { mergeDiscovery } from '../../src/discovery/merge.js';
import { endpointOptionsFromConfig } from '../../src/probe/options.js';
import { ProbeEndpoint } from '../../src/probe/probe-endpoint.js';
import type { ReportMetrics } from '../../src/heartbeat/messages.js';
import { KamailioRpcClient } from '../../src/kamailio/rpc.js';
import { startLab, type RunningLab } from '../../src/lab/lab.js';
import { pidAlive } from '../../src/lab/processes.js';
import { LAB_SCENARIOS } from '../../src/lab/scenarios.js';
import { runSippClient } from '../../src/lab/sipp.js';
import { eventually } from '../support/harness.js';
import { labClient } from '../../src/lab/topology.js';

describe('heartbeat end to end on the lab (real agents, Kamailio, sipp)', function () {
  this.timeout(240000);
  let lab: RunningLab | undefined;
  let ep: ProbeEndpoint | undefined;
  const latest = new Map<string, ReportMetrics>();
  const peak = new Map<string, { dialogs: number; tm: number }>();
  const wentDown = new Map<string, number>();
  const wentDraining = new Map<string, number>();

  before(async function () {
    lab = await startLab({
      backends: 3,
      capacities: [100, 200, 200],
      dir: mkdtempSync(join(tmpdir(), 'sipweigh-hb-lab-')),
    });
    const config = loadControllerConfig(lab.state.configs.controller);
    ep = await ProbeEndpoint.start(endpointOptionsFromConfig(config), {
      onReport: (b, m) => {
        latest.set(b.id, m);
        const p = peak.get(b.id) ?? { dialogs: 0, tm: 0 };
        peak.set(b.id, {
          dialogs: Math.max(p.dialogs, m.dialogs_active ?? 0),
          tm: Math.max(p.tm, m.tm_current ?? 0),
        });
      },
      onHealthChange: (b, _from, to) => {
        if (to.kind === 'down') wentDown.set(b.id, Date.now());
        if (to.kind === 'draining') wentDraining.set(b.id, Date.now());
      },
    });
  });

  after(async function () {
    await ep?.close();
    await lab?.stop();
  });

  it('discovers the backends from its config and the LB dispatcher.list, and probes them up', async () => {
    const { plan } = lab!.state;
    const rpc = new KamailioRpcClient({
      url: lab!.state.lb_rpc_url,
      username: plan.lb.rpc.username,
      password: plan.lb.rpc.password,
    });
    const list = await fetchDispatcherList(rpc);
    rpc.close();
    expect(list.ok, JSON.stringify(list)).to.equal(true);
    if (!list.ok) return;
    const config = loadControllerConfig(lab!.state.configs.controller);
    const found = mergeDiscovery(config.sets, [{ node: 'lb1', targets: list.targets }], {
      defaultCapacity: 100,
    });
    expect(found.notes).to.deep.equal([]);
    expect(found.backends.map((b) => b.id).sort()).to.deep.equal(['be1', 'be2', 'be3']);
    applyDiscovery(ep!.core, found.backends);
    ep!.arm();
    await eventually(() => ep!.core.list().every((b) => b.health.kind === 'up'), 'every backend up', 20000);
    for (const id of ['be1', 'be2', 'be3']) {
      const m = latest.get(id)!;
      expect(m.udp_rx_queue_bytes, `${id} queue`).to.be.a('number');
      expect(m.options_rtt_ms, `${id} OPTIONS rtt`).to.be.a('number');
      expect(m.tm_current, `${id} transactions`).to.be.a('number');
    }
    expect(latest.get('be2')!.capacity).to.equal(200);
  });

  it('reports in-flight work that rises with calls through the LB and falls after them', async () => {
    const { plan } = lab!.state;
    peak.clear();
    const uac = await runSippClient(lab!.group, {
      name: 'uac-load',
      scenario: LAB_SCENARIOS.uac,
      ...labClient(plan),
      rate: 60,
      maxCalls: 300,
      timeoutS: 90,
      extraArgs: ['-d', '3000'], // calls held 3 s: ~180 dialogs up at once across the pool
    });
    expect(uac.stats.successful).to.be.at.least(295);
    for (const id of ['be1', 'be2', 'be3']) {
      expect(peak.get(id)?.dialogs ?? 0, `${id} peak dialogs`).to.be.at.least(10);
      expect(peak.get(id)?.tm ?? 0, `${id} peak transactions`).to.be.at.least(10);
    }
    // Every call has ended: dialogs back to zero everywhere, transactions drained by their wait timers.
    await eventually(
      () =>
        ['be1', 'be2', 'be3'].every(
          (id) => latest.get(id)?.dialogs_active === 0 && (latest.get(id)?.tm_current ?? 99) < 5,
        ),
      'dialogs and transactions back down',
      40000,
    );
  });

  it('marks a backend down when its agent is killed (SIGKILL), the others stay up', async () => {
    const agent = lab!.state.members.find((m) => m.name === 'agent-be1')!;
    const killedAt = Date.now();
    process.kill(agent.pid, 'SIGKILL');
    await eventually(() => wentDown.has('be1'), 'be1 down', 15000, 20);
    const ms = wentDown.get('be1')! - killedAt;
    process.stdout.write(`      (be1 down ${ms} ms after SIGKILL of its agent)\n`);
    expect(ms).to.be.below(10000);
    expect(pidAlive(agent.pid)).to.equal(false);
    expect(ep!.core.get('be2')!.health.kind).to.equal('up');
    expect(ep!.core.get('be3')!.health.kind).to.equal('up');
  });

  it('drains a backend at once when its agent stops with SIGTERM (bye)', async () => {
    const agent = lab!.state.members.find((m) => m.name === 'agent-be2')!;
    const stoppedAt = Date.now();
    process.kill(agent.pid, 'SIGTERM');
    await eventually(() => wentDraining.has('be2'), 'be2 draining', 10000, 10);
    const ms = wentDraining.get('be2')! - stoppedAt;
    process.stdout.write(`      (be2 draining ${ms} ms after SIGTERM of its agent)\n`);
    // "At once": on the bye itself, not after missed probes (3 misses take ~600 ms).
    expect(ms).to.be.below(3000);
    expect(ep!.core.counters.accepted.bye).to.be.at.least(1);
    expect(wentDown.has('be2')).to.equal(false);
    expect(ep!.core.get('be3')!.health.kind).to.equal('up');
  });
});
