/**
 * The controller (in process) against real Kamailio 5.6.3 LBs (src/lab/kamailio/lb.cfg) on 127.13.0.x, with
 * FAKE agents (test/support/fake-agent.ts) for the backends: what it does with the destinations an
 * LB already lists. A destination without a duid (its id is then host:port) is pushed like any
 * other; a reconcile while the LB is unreachable keeps the LB-discovered backends it could not
 * re-read; a new set whose backends were never seen does not freeze the other sets.
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { configFromData } from '../../src/config/load.js';
import type { ControllerConfig } from '../../src/config/types.js';
import { Controller } from '../../src/controller/controller.js';
import { deriveBackendKey } from '../../src/heartbeat/keys.js';
import type { KamailioInstance } from '../../src/lab/kamailio.js';
import { silentLogger } from '../../src/util/logger.js';
import { FakeAgent } from '../support/fake-agent.js';
import { eventually, useProcessGroup } from '../support/harness.js';
import { listedLines, RPC_PASSWORD, RPC_USER, testLb, type TestLb } from './push-lb.js';

const MASTER = randomBytes(32);

interface SetSpec {
  readonly id: number;
  readonly backends: readonly { id: string; uri: string; agent: { address: string; port: number } }[];
}

function controllerConfig(
  dir: string,
  heartbeatIp: string,
  lb: TestLb,
  sets: readonly SetSpec[],
): ControllerConfig {
  return configFromData(join(dir, 'controller.yaml'), {
    kind: 'controller',
    heartbeat: {
      listen: { address: heartbeatIp, port: 17013 },
      master_key: MASTER.toString('hex'),
      probe_interval_ms: 200,
    },
    lb_nodes: [
      {
        name: lb.name,
        rpc: {
          url: `http://${lb.ip}:5071/RPC`,
          username: RPC_USER,
          password: RPC_PASSWORD,
          timeout_ms: 1000,
        },
        dispatcher_list: { path: lb.listFile },
      },
    ],
    sets: sets.map((s) => ({
      id: s.id,
      backends: s.backends.map((b) => ({ id: b.id, sip_uri: b.uri, capacity: 100, agent: b.agent })),
    })),
    scoring: { signals: { cpu_util: { knee: null }, mem_used_ratio: { knee: null } } },
    // Never during the test: the tests call reconcile() themselves.
    schedules: { reconcile: '0 0 0 1 1 *' },
  }) as ControllerConfig;
}

async function fakeAgent(id: string, bindAddress: string, heartbeatIp: string): Promise<FakeAgent> {
  return FakeAgent.start({
    backendId: id,
    key: deriveBackendKey(MASTER, id),
    controller: { address: heartbeatIp, port: 17013 },
    bindAddress,
  });
}

describe('integration: the controller and the destinations an LB lists', function () {
  this.timeout(120_000);
  const h = useProcessGroup('controller-lb-list');
  const agents: FakeAgent[] = [];
  let controller: Controller | undefined;

  afterEach(async function () {
    await controller?.stop();
    controller = undefined;
  });
  after(async function () {
    for (const a of agents) await a.close();
  });

  describe('an LB-discovered destination without duid (id host:port)', function () {
    let lb: TestLb;
    let instance: KamailioInstance;
    const heartbeatIp = '127.13.0.2';

    before(async function () {
      lb = testLb(h.group, 'lb-a', '127.13.0.10', []);
      // be1 was left inactive by an earlier run; the operator's own destination has no duid.
      writeFileSync(
        lb.listFile,
        '1 sip:127.13.0.11:5060 1 0 duid=be1;rweight=50\n1 sip:127.13.0.45:5060 0 0 sw_capacity=50\n',
      );
      instance = await lb.start();
    });
    after(() => lb?.rpc.client.close());

    it('is pushed with the rest (be1 back in rotation), its duid and capacity written', async function () {
      const be1 = await fakeAgent('be1', '127.13.1.11', heartbeatIp);
      agents.push(be1);
      controller = await Controller.start(
        controllerConfig(h.group.runDir, heartbeatIp, lb, [
          { id: 1, backends: [{ id: 'be1', uri: 'sip:127.13.0.11:5060', agent: be1.address }] },
        ]),
        { logger: silentLogger },
      );
      expect(controller.probe.get('127.13.0.45:5060')?.source).to.equal('dispatcher');
      await eventually(
        async () => (await listedLines(lb.rpc)).includes('1 sip:127.13.0.11:5060 active 100'),
        'be1 active at weight 100 on the LB',
      );
      const status = controller.nodeStatus()[0]?.sync;
      expect(status?.lastOutcome?.ok, JSON.stringify(status?.lastOutcome)).to.equal(true);
      const r = await lb.rpc.client.call('dispatcher.list');
      expect(JSON.stringify(r)).to.include('duid=127.13.0.45:5060').and.include('sw_capacity=50');
    });

    it('survives a reconcile while the LB is down: not forgotten, not deleted when it returns', async function () {
      const be1 = await fakeAgent('be1', '127.13.1.12', heartbeatIp);
      agents.push(be1);
      controller = await Controller.start(
        controllerConfig(h.group.runDir, heartbeatIp, lb, [
          { id: 1, backends: [{ id: 'be1', uri: 'sip:127.13.0.11:5060', agent: be1.address }] },
        ]),
        { logger: silentLogger },
      );
      const c = controller;
      await eventually(() => c.nodeStatus()[0]?.sync?.lastOutcome?.ok, 'the controller in sync with the LB');
      const before = await listedLines(lb.rpc);
      expect(before.some((l) => l.startsWith('1 sip:127.13.0.45:5060 '))).to.equal(true);

      await instance.process.stop();
      await c.reconcile();
      expect(
        c.probe.get('127.13.0.45:5060'),
        'still known after a reconcile that could not read the LB',
      ).to.not.equal(undefined);
      const restartedAt = Date.now();
      instance = await lb.start();
      await eventually(() => {
        const s = c.nodeStatus()[0]?.sync;
        return s?.lastOutcome?.ok === true && s.lastOutcome.at > restartedAt;
      }, 'the controller in sync again after the LB returned');
      await c.reconcile();
      await eventually(() => {
        const s = c.nodeStatus()[0]?.sync;
        return s?.phase === 'idle' && s.lastOutcome?.ok;
      }, 'the reconcile applied');
      expect(await listedLines(lb.rpc)).to.deep.equal(before);
    });
  });

  describe('a new set whose backends were never seen', function () {
    let lb: TestLb;
    const heartbeatIp = '127.13.0.3';

    before(async function () {
      lb = testLb(h.group, 'lb-b', '127.13.0.20', []);
      writeFileSync(lb.listFile, '1 sip:127.13.0.21:5060 1 0 duid=be1;rweight=50\n');
      await lb.start();
    });
    after(() => lb?.rpc.client.close());

    it('does not stop the other sets being pushed (be1 back in rotation)', async function () {
      const be1 = await fakeAgent('be1', '127.13.1.21', heartbeatIp);
      agents.push(be1);
      controller = await Controller.start(
        controllerConfig(h.group.runDir, heartbeatIp, lb, [
          { id: 1, backends: [{ id: 'be1', uri: 'sip:127.13.0.21:5060', agent: be1.address }] },
          // Not deployed yet: nobody answers on its agent port, and the LB has never listed it.
          {
            id: 2,
            backends: [
              { id: 'be9', uri: 'sip:127.13.0.29:5060', agent: { address: '127.13.1.29', port: 7070 } },
            ],
          },
        ]),
        { logger: silentLogger },
      );
      await eventually(
        async () => (await listedLines(lb.rpc)).includes('1 sip:127.13.0.21:5060 active 100'),
        'be1 active at weight 100 on the LB',
      );
      const lines = await listedLines(lb.rpc);
      expect(lines).to.include('2 sip:127.13.0.29:5060 inactive 1');
    });
  });

  describe('a set in panic before its first scoring, listed without duids', function () {
    let lb: TestLb;
    const heartbeatIp = '127.13.0.4';

    before(async function () {
      lb = testLb(h.group, 'lb-c', '127.13.0.30', []);
      // An operator's list from before sipweigh: no duid, so the LB names them only by set and URI.
      writeFileSync(
        lb.listFile,
        '1 sip:127.13.0.31:5060 0 0 rweight=70\n1 sip:127.13.0.32:5060 1 0 rweight=30\n',
      );
      await lb.start();
    });
    after(() => lb?.rpc.client.close());

    it('keeps what the LB listed (be1 active at 70, be2 inactive) while no agent answers', async function () {
      const nobody = (port: number) => ({ address: '127.13.1.39', port });
      controller = await Controller.start(
        controllerConfig(h.group.runDir, heartbeatIp, lb, [
          {
            id: 1,
            backends: [
              { id: 'be1', uri: 'sip:127.13.0.31:5060', agent: nobody(7071) },
              { id: 'be2', uri: 'sip:127.13.0.32:5060', agent: nobody(7072) },
            ],
          },
        ]),
        { logger: silentLogger },
      );
      const c = controller;
      await eventually(() => c.nodeStatus()[0]?.sync?.lastOutcome?.ok, 'the controller in sync with the LB');
      expect(await listedLines(lb.rpc)).to.deep.equal([
        '1 sip:127.13.0.31:5060 active 70',
        '1 sip:127.13.0.32:5060 inactive 1',
      ]);
    });
  });

  describe('an LB unreachable at start-up whose list has a set not in the config', function () {
    let lb: TestLb;
    const heartbeatIp = '127.13.0.5';

    before(function () {
      lb = testLb(h.group, 'lb-d', '127.13.0.40', []);
      writeFileSync(
        lb.listFile,
        '1 sip:127.13.0.41:5060 1 0 duid=be1;rweight=50\n7 sip:127.13.0.47:5060 0 0 duid=other;rweight=100\n',
      );
    });
    after(() => lb?.rpc.client.close());

    it('is not rewritten when it comes up: the other set stays', async function () {
      const be1 = await fakeAgent('be1', '127.13.1.41', heartbeatIp);
      agents.push(be1);
      controller = await Controller.start(
        controllerConfig(h.group.runDir, heartbeatIp, lb, [
          { id: 1, backends: [{ id: 'be1', uri: 'sip:127.13.0.41:5060', agent: be1.address }] },
        ]),
        { logger: silentLogger },
      );
      const c = controller;
      await lb.start();
      // The first attempt that got a list from the LB, whatever it then did.
      const outcome = await eventually(() => {
        const o = c.nodeStatus()[0]?.sync?.lastOutcome;
        const push = o?.result?.push;
        if (!o || !push) return null;
        return push.kind !== 'failed' || push.stage !== 'read' || /not managed/.test(push.reason) ? o : null;
      }, 'a push attempt that read the LB');
      expect(outcome.ok, JSON.stringify(outcome)).to.equal(false);
      expect(await listedLines(lb.rpc)).to.deep.equal([
        '1 sip:127.13.0.41:5060 inactive 50',
        '7 sip:127.13.0.47:5060 active 100',
      ]);
    });
  });

  describe('an LB up at start-up whose list has a set not in the config', function () {
    let lb: TestLb;
    const heartbeatIp = '127.13.0.6';

    before(async function () {
      lb = testLb(h.group, 'lb-e', '127.13.0.50', []);
      writeFileSync(
        lb.listFile,
        '1 sip:127.13.0.51:5060 0 0 duid=be1;rweight=50\n7 sip:127.13.0.57:5060 0 0 duid=other;rweight=100\n',
      );
      await lb.start();
    });
    after(() => lb?.rpc.client.close());

    it('is blocked, and the controller is not ready while it is (what /readyz says)', async function () {
      const be1 = await fakeAgent('be1', '127.13.1.51', heartbeatIp);
      agents.push(be1);
      controller = await Controller.start(
        controllerConfig(h.group.runDir, heartbeatIp, lb, [
          { id: 1, backends: [{ id: 'be1', uri: 'sip:127.13.0.51:5060', agent: be1.address }] },
        ]),
        { logger: silentLogger },
      );
      // Discovery read the LB at start-up: it was read, and found blocked.
      expect(controller.nodeStatus()[0]?.blocked).to.match(/sets not in this config \(7\)/);
      expect(controller.notReadyReasons()).to.deep.equal([
        `LB node lb-e is not pushed to: ${controller.nodeStatus()[0]?.blocked}`,
      ]);
      expect(await listedLines(lb.rpc)).to.deep.equal([
        '1 sip:127.13.0.51:5060 active 50',
        '7 sip:127.13.0.57:5060 active 100',
      ]);
    });
  });
});
