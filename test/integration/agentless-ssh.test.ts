/**
 * Agentless backends through the daemons, every part real (127.21.x.x): the lab's LB and three lab
 * backends (Kamailio 5.6), a real sshd on loopback with a pinned host key, and `sipweigh controller`
 * started as a process. be1 has an agent; be2 has only an `ssh:` section (no agent runs for it); be3
 * has an `ssh:` section whose host fingerprint is wrong. Judged from outside: the controller's API
 * and /metrics, the LB's dispatcher.list over JSON-RPC, sipp's calls and be2's own counters.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { KamailioRpcClient } from '../../src/kamailio/rpc.js';
import { labApiUrl } from '../../src/lab/lab-configs.js';
import { killMember, labProcess } from '../../src/lab/lab-control.js';
import { startLab, startLabAgent, startLabController, type RunningLab } from '../../src/lab/lab.js';
import { LAB_SCENARIOS } from '../../src/lab/scenarios.js';
import { sipweighCommand } from '../../src/lab/self-command.js';
import { startSipp } from '../../src/lab/sipp.js';
import { labClient, type BackendPlan } from '../../src/lab/topology.js';
import { eventually, sleep } from '../support/harness.js';
import { labRpc, readWeights, WeightWatcher } from '../support/lb-watch.js';
import { expectSchema, http, parseMetrics } from './api-support.js';
import { startTestSshd, type TestSshd } from './push-sshd.js';

const NET = 21;
const SSH_IP = `127.${NET}.0.40`;
const SSH_PORT = 2222;
const INTERVAL_MS = 500;

interface BackendBody {
  state: string;
  heartbeat: {
    via: string;
    ssh: string | null;
    rtt_ms: number | null;
    misses: number;
    last_error: string | null;
  };
  last_report: { metrics: Record<string, number | boolean | null> } | null;
}

describe('integration: an agentless backend measured over SSH by the controller', function () {
  this.timeout(600_000);
  let lab: RunningLab | undefined;
  let sshd: TestSshd | undefined;
  let rpc: KamailioRpcClient | undefined;
  let be2Rpc: KamailioRpcClient | undefined;
  let watcher: WeightWatcher | undefined;
  let base = '';
  let be2: BackendPlan;
  let cfgFile = '';
  let editConfig: (edit: (backends: Record<string, unknown>[]) => void) => void = () => undefined;
  let sshFor: (be: BackendPlan) => Record<string, unknown> = () => ({});
  /** When the LB was first seen holding the controller's weights. */
  let pushedAt = Infinity;

  const backend = async (id: string): Promise<BackendBody> => {
    const r = await http('GET', `${base}/api/v1/backends/${id}`);
    expect(r.status, r.text).to.equal(200);
    expectSchema('backend', r.json);
    return r.json as BackendBody;
  };

  before(async function () {
    lab = await startLab({
      backends: 3,
      net: NET,
      agents: false,
      dir: mkdtempSync(join(tmpdir(), 'sipweigh-agentless-')),
    });
    const { plan } = lab.state;
    be2 = plan.backends[1]!;
    sshd = await startTestSshd(lab.group, SSH_IP, SSH_PORT);
    const keyFile = join(lab.state.dir, 'ssh_client_key');
    writeFileSync(keyFile, sshd.target.privateKey, { mode: 0o600 });
    // Someone else's key: what a re-installed host (or a man in the middle) would present.
    execFileSync('ssh-keygen', [
      '-q',
      '-t',
      'ed25519',
      '-N',
      '',
      '-f',
      join(lab.state.dir, 'other_host_key'),
    ]);
    const wrongFingerprint = execFileSync('ssh-keygen', ['-lf', join(lab.state.dir, 'other_host_key.pub')], {
      encoding: 'utf8',
    }).split(' ')[1]!;
    const ssh = (be: BackendPlan, fingerprint: string) => ({
      host: SSH_IP,
      port: SSH_PORT,
      username: userInfo().username,
      private_key_file: keyFile,
      host_fingerprint: fingerprint,
      interval_ms: INTERVAL_MS,
      kamcmd: true,
      kamcmd_socket: `unix:${join(lab!.group.runDir, `backend-${be.id}`, 'kamailio_ctl')}`,
      // Every lab backend listens on port 5060 of its own address, on this one host.
      sip_address: be.sip.address,
      sip_port: be.sip.port,
    });
    const cfg = parse(readFileSync(lab.state.configs.controller, 'utf8')) as {
      sets: { backends: Record<string, unknown>[] }[];
      scoring: Record<string, unknown>;
    };
    const [b1, b2, b3] = cfg.sets[0]!.backends;
    delete b2!.agent;
    b2!.ssh = ssh(be2, sshd.target.hostFingerprint);
    delete b3!.agent;
    b3!.ssh = ssh(plan.backends[2]!, wrongFingerprint);
    expect(b1!.agent).to.be.an('object');
    // be3 never comes up: with one of three backends left after the kill, the default panic
    // threshold (half) would hold the last weights, which is not what this test is about.
    cfg.scoring.panic_threshold_ratio = 0.2;
    const file = join(lab.state.dir, 'controller-agentless.yaml');
    writeFileSync(file, stringify(cfg), { mode: 0o600 });
    cfgFile = file;
    editConfig = (edit) => {
      edit(cfg.sets[0]!.backends);
      writeFileSync(file, stringify(cfg), { mode: 0o600 });
    };
    sshFor = (be) => ssh(be, sshd!.target.hostFingerprint);
    const self = sipweighCommand();
    const validated = execFileSync(self.cmd, [...self.args, 'validate', file], { encoding: 'utf8' });
    expect(validated).to.include(': ok');
    await startLabAgent(lab.group, plan.backends[0]!, lab.state.configs.agents.be1!);
    await startLabController(lab.group, plan, file);
    base = labApiUrl(plan);
    rpc = labRpc(lab);
    be2Rpc = new KamailioRpcClient({ url: `http://${be2.sip.address}:${be2.rpcPort}/RPC` });
    watcher = new WeightWatcher(rpc, 100).start();
  });

  after(async function () {
    watcher?.stop();
    rpc?.close();
    be2Rpc?.close();
    await lab?.stop();
  });

  it('probes it over SSH: up, with real figures, in the API and in /metrics', async function () {
    const body = await eventually(
      async () => {
        const b = await backend('be2');
        return b.state === 'up' && b.last_report?.metrics.tm_current !== null ? b : null;
      },
      'be2 up with Kamailio figures',
      90_000,
      250,
    );
    expect(body.heartbeat).to.include({ via: 'ssh', ssh: `${userInfo().username}@${SSH_IP}:${SSH_PORT}` });
    expect(body.heartbeat.last_error).to.equal(null);
    expect(body.heartbeat.rtt_ms).to.be.a('number').and.greaterThan(0);
    const m = body.last_report!.metrics;
    expect(m.mem_used_ratio).to.be.within(0, 1);
    expect(m.load1).to.be.at.least(0);
    // Kamailio's own figures, through kamcmd on the host.
    expect(m.tm_current).to.be.at.least(0);
    expect(m.dialogs_active).to.be.at.least(0);
    // Its SIP socket, found by address on a host where three Kamailios share port 5060.
    expect(m.udp_rx_queue_bytes).to.be.at.least(0);
    expect(m.udp_drops).to.be.at.least(0);
    // What an agentless backend cannot see.
    expect(m.options_rtt_ms).to.equal(null);
    expect(m.draining).to.equal(false);
    const metrics = parseMetrics((await http('GET', `${base}/metrics`)).text);
    const of = (name: string, extra: Record<string, string> = {}) =>
      metrics.find(
        (s) =>
          s.name === name &&
          s.labels.backend === 'be2' &&
          Object.entries(extra).every(([k, v]) => s.labels[k] === v),
      )?.value;
    expect(of('sipweigh_backend_state', { state: 'up' })).to.equal(1);
    expect(of('sipweigh_backend_heartbeat_rtt_seconds')).to.be.greaterThan(0);
    expect(of('sipweigh_backend_report_age_seconds')).to.be.lessThan(5);
    // be1 beside it still runs on its agent.
    expect((await backend('be1')).heartbeat.via).to.equal('agent');
  });

  it('gets a weight in the LB list and carries calls, its dialogs counted on it', async function () {
    const weights = await eventually(
      async () => {
        const w = await readWeights(rpc!);
        return w && (w.get('be1') ?? 0) > 0 && (w.get('be2') ?? 0) > 0 ? w : null;
      },
      'be1 and be2 active with weights in the LB list',
      60_000,
      250,
    );
    expect(weights.get('be3') ?? 0, 'be3 (wrong host key) out').to.equal(0);
    pushedAt = Date.now();
    const processed = async () => {
      const r = (await be2Rpc!.call('stats.fetchn', ['dialog:'])) as Record<string, number>;
      return Number(r['dialog.processed_dialogs']);
    };
    const before = await processed();
    // 20 calls/s for 8 s, each held 2 s: about 40 dialogs at a time over be1 and be2.
    const run = await startSipp(lab!.group, {
      name: 'uac-agentless',
      scenario: LAB_SCENARIOS.uac,
      ...labClient(lab!.state.plan),
      rate: 20,
      maxCalls: 160,
      timeoutS: 60,
      extraArgs: ['-d', '2000'],
    });
    let seenActive = 0;
    const deadline = Date.now() + 60_000;
    while (run.process.isRunning() && Date.now() < deadline) {
      const m = (await backend('be2')).last_report?.metrics;
      seenActive = Math.max(seenActive, Number(m?.dialogs_active ?? 0));
      await sleep(250);
    }
    const result = await run.done();
    expect(result.stats.created).to.equal(160);
    expect(result.stats.successful, JSON.stringify(result.stats.raw)).to.equal(160);
    const carried = (await processed()) - before;
    console.log(
      `      be2 (agentless) carried ${carried} of 160 calls; up to ${seenActive} dialogs seen over SSH`,
    );
    expect(carried).to.be.greaterThan(10);
    expect(seenActive, 'dialogs_active read over SSH during the load').to.be.greaterThan(0);
  });

  it('a wrong host key keeps it out of rotation, and the API says why', async function () {
    const b = await backend('be3');
    expect(b.state).to.equal('down');
    expect(b.heartbeat.via).to.equal('ssh');
    expect(b.heartbeat.last_error).to.include('host key').and.include('refusing');
    expect(b.last_report).to.equal(null);
    // Never in rotation since the controller's first push took it out of the lab's initial list.
    const since = watcher!.samples.filter((s) => s.at >= pushedAt);
    expect(since.length).to.be.greaterThan(10);
    expect(since.every((s) => (s.weights.get('be3') ?? 0) === 0)).to.equal(true);
  });

  it('a live reload that moves be1 from its agent to SSH: measured over SSH, its old agent address probed no more', async function () {
    await eventually(async () => (await backend('be1')).state === 'up', 'be1 up on its agent', 60_000, 250);
    editConfig((backends) => {
      const b1 = backends[0]!;
      delete b1.agent;
      b1.ssh = sshFor(lab!.state.plan.backends[0]!);
    });
    process.kill(labProcess(lab!, 'controller').pid, 'SIGHUP');
    const moved = await eventually(
      async () => {
        const b = await backend('be1');
        return b.heartbeat.via === 'ssh' && b.heartbeat.last_error === null && b.heartbeat.rtt_ms !== null
          ? b
          : null;
      },
      `be1 probed over SSH after the reload of ${cfgFile}`,
      30_000,
      250,
    );
    expect(moved.state).to.be.oneOf(['up', 'suspect']);
    // Its agent is no longer needed: stopped, be1 stays up and no probe to its address goes unanswered.
    // SIGKILL, not SIGTERM: its bye would drain be1, which is not what this is about.
    const agent = labProcess(lab!, 'agent-be1');
    process.kill(agent.pid, 'SIGKILL');
    await agent.exited;
    const misses = (await backend('be1')).heartbeat.misses;
    await sleep(3000); // 15 heartbeat intervals: a forgotten probe to the old address would miss 15 times
    const after = await backend('be1');
    expect(after.state).to.equal('up');
    expect(after.heartbeat.misses - misses, 'misses after the agent stopped').to.be.at.most(1);
    expect((await readWeights(rpc!))?.get('be1') ?? 0).to.be.greaterThan(0);
  });

  it('killing its Kamailio takes it out of rotation (time from kill to inactive in the LB list)', async function () {
    expect((await readWeights(rpc!))?.get('be2') ?? 0).to.be.greaterThan(0);
    const killedAt = await killMember(lab!, `backend-${be2.id}`);
    const outAt = await eventually(
      () => watcher!.firstAfter(killedAt, (w) => (w.get('be2') ?? 0) === 0),
      'be2 inactive in the LB list',
      60_000,
      100,
    );
    const ms = outAt - killedAt;
    console.log(
      `      agentless be2: kill -> inactive in the LB list in ${ms} ms (SSH probe every ${INTERVAL_MS} ms)`,
    );
    expect(ms).to.be.lessThan(15_000);
    const b = await eventually(async () => {
      const x = await backend('be2');
      return x.state === 'down' ? x : null;
    }, 'be2 down in the API');
    expect(b.heartbeat.last_error).to.match(/Kamailio answers no kamcmd call|no SIP server/);
    // The controller is alive and still serving be1.
    expect(labProcess(lab!, 'controller').isRunning()).to.equal(true);
    expect((await readWeights(rpc!))?.get('be1') ?? 0).to.be.greaterThan(0);
  });
});
