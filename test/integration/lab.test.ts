import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KamailioRpcClient } from '../../src/kamailio/rpc.js';
import type { LabState } from '../../src/lab/lab.js';
import { labClient, type LabPlan } from '../../src/lab/topology.js';
import { LAB_SCENARIOS } from '../../src/lab/lab.js';
import { pidAlive, ProcessGroup } from '../../src/lab/processes.js';
import { runSippClient } from '../../src/lab/sipp.js';
import { sipweigh } from '../support/cli.js';
import { REPO_ROOT } from '../support/harness.js';

/** A bounded sipp UAC run from the lab's client address to the LB. */
function callsThroughLab(
  group: ProcessGroup,
  plan: LabPlan,
  name: string,
  scenario: string,
  calls: number,
  rate: number,
) {
  return runSippClient(group, {
    name,
    scenario,
    ...labClient(plan),
    rate,
    maxCalls: calls,
    timeoutS: 60,
  });
}

describe('sipweigh lab (real Kamailio and sipp)', function () {
  this.timeout(180000);
  const dir = mkdtempSync(join(tmpdir(), 'sipweigh-lab-test-'));
  const clientDir = mkdtempSync(join(tmpdir(), 'sipweigh-lab-client-'));
  const client = new ProcessGroup(clientDir);
  let state: LabState | undefined;

  after(async function () {
    // Whatever happened above: the client first, then every lab process by PID.
    await client.stopAll();
    sipweigh('lab', 'down', '--dir', dir);
    for (const m of state?.members ?? []) {
      if (pidAlive(m.pid)) process.kill(-m.pid, 'SIGKILL');
    }
  });

  it('lab up --backends 2 --json starts an LB and two backends with a UAS and an agent each, and the controller', () => {
    const r = sipweigh('lab', 'up', '--backends', '2', '--capacity', '100,200', '--dir', dir, '--json');
    expect(r.code, r.err).to.equal(0);
    state = JSON.parse(r.out) as LabState;
    expect(state.plan.lb.sip).to.deep.equal({ address: '127.0.0.10', port: 5060 });
    expect(state.plan.backends.map((b) => b.sip.address)).to.deep.equal(['127.0.0.11', '127.0.0.12']);
    expect(state.members.map((m) => m.role).sort()).to.deep.equal([
      'agent',
      'agent',
      'backend',
      'backend',
      'controller',
      'lb',
      'uas',
      'uas',
    ]);
    for (const m of state.members) expect(pidAlive(m.pid), m.name).to.equal(true);
  });

  it('writes sipweigh configs for the lab that validate', () => {
    for (const f of [state!.configs.controller, ...Object.values(state!.configs.agents)]) {
      const r = sipweigh('validate', f);
      expect(r.code, r.err).to.equal(0);
    }
  });

  it('lab status --json reports every member up', () => {
    const r = sipweigh('lab', 'status', '--dir', dir, '--json');
    expect(r.code, r.err).to.equal(0);
    const s = JSON.parse(r.out) as { running: boolean; members: { running: boolean; bound: boolean }[] };
    expect(s.running).to.equal(true);
    expect(s.members.every((m) => m.running && m.bound)).to.equal(true);
  });

  it('carries calls through the LB to both backends, split by weight, ACK/BYE bypassing the LB', async () => {
    const plan = state!.plan;
    const calls = 90;
    const r = await callsThroughLab(client, plan, 'uac', LAB_SCENARIOS.uac, calls, 30);
    expect(r.stats.successful, `sipp exit ${r.exit.code}`).to.equal(calls);
    expect(r.stats.failed).to.equal(0);

    const invites = await Promise.all(
      plan.backends.map(async (b) => {
        const rpc = new KamailioRpcClient({ url: `http://${b.sip.address}:${b.rpcPort}/RPC` });
        try {
          const s = (await rpc.call('stats.fetchn', ['core:rcv_requests_invite'])) as Record<string, number>;
          return s['core.rcv_requests_invite'] ?? 0;
        } finally {
          rpc.close();
        }
      }),
    );
    expect(invites[0]! + invites[1]!).to.equal(calls);
    // Weights 50/100: be2 gets about two thirds (generous bounds: 90 calls are few).
    expect(invites[1]!).to.be.within(45, 80);

    const lb = new KamailioRpcClient({
      url: state!.lb_rpc_url,
      username: plan.lb.rpc.username,
      password: plan.lb.rpc.password,
    });
    try {
      const s = (await lb.call('stats.fetchn', ['core:'])) as Record<string, number>;
      expect(s['core.rcv_requests_invite']).to.equal(calls);
      expect(s['core.rcv_requests_ack']).to.equal(0);
      expect(s['core.rcv_requests_bye']).to.equal(0);
    } finally {
      lb.close();
    }
  });

  it('lab up refuses to start a second lab over a running one', () => {
    const r = sipweigh('lab', 'up', '--backends', '1', '--dir', dir);
    expect(r.code).to.not.equal(0);
    expect(r.err).to.match(/already running/);
  });

  it('lab down stops every process by PID and leaves none running', async () => {
    const r = sipweigh('lab', 'down', '--dir', dir);
    expect(r.code, r.err).to.equal(0);
    for (const m of state!.members) expect(pidAlive(m.pid), `${m.name} pid ${m.pid}`).to.equal(false);
    const s = sipweigh('lab', 'status', '--dir', dir);
    expect(s.code).to.equal(4);
  });
});

describe("sipweigh lab --uas-scenario (an operator's own call flow)", function () {
  this.timeout(180000);
  const dir = mkdtempSync(join(tmpdir(), 'sipweigh-lab-busy-'));
  const client = new ProcessGroup(mkdtempSync(join(tmpdir(), 'sipweigh-lab-busy-client-')));
  let state: LabState | undefined;

  after(async function () {
    await client.stopAll();
    sipweigh('lab', 'down', '--dir', dir);
    for (const m of state?.members ?? []) if (pidAlive(m.pid)) process.kill(-m.pid, 'SIGKILL');
  });

  it('runs the given scenario behind every backend: calls get its 486', async () => {
    const r = sipweigh(
      'lab',
      'up',
      '--backends',
      '2',
      '--no-agents',
      '--no-controller',
      '--uas-scenario',
      join(REPO_ROOT, 'scripts/sipp/uas-busy.xml'),
      '--dir',
      dir,
      '--json',
    );
    expect(r.code, r.err).to.equal(0);
    state = JSON.parse(r.out) as LabState;
    expect(state.members.some((m) => m.role === 'agent')).to.equal(false);
    const plan = state.plan;
    const calls = 30;
    const uac = await callsThroughLab(
      client,
      plan,
      'uac-busy',
      join(REPO_ROOT, 'test/scenarios/uac-486.xml'),
      calls,
      20,
    );
    expect(uac.stats.successful, `sipp exit ${uac.exit.code}`).to.equal(calls);
    expect(uac.stats.failed).to.equal(0);
    const down = sipweigh('lab', 'down', '--dir', dir);
    expect(down.code, down.err).to.equal(0);
    for (const m of state.members) expect(pidAlive(m.pid), m.name).to.equal(false);
  });

  it('refuses a scenario file that does not exist, starting nothing', () => {
    const r = sipweigh('lab', 'up', '--uas-scenario', '/nonexistent.xml', '--dir', dir);
    expect(r.code).to.equal(1);
    expect(r.err).to.match(/UAS scenario not found/);
  });
});
