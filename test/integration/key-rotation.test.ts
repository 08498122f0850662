/**
 * Heartbeat key rotation (docs/deploy.md, "Rotating the master key"), end to end.
 *
 * 1. The agent over real UDP (127.19.1.x): it holds its current and its previous key, answers
 *    probes signed with either, always signs with the current one, and takes new keys on reload
 *    without a restart.
 * 2. The daemons as processes on a real lab (127.19.0.x): `sipweigh controller` and one
 *    `sipweigh agent` per backend. The controller gets the new master as current and the old one as
 *    previous (SIGHUP), the agents move to their new keys one by one (SIGHUP), the old master is
 *    dropped; the API's backend states are polled throughout and never leave `up`, the LB's list
 *    keeps every backend in rotation, and no probe is missed.
 */
import { expect } from 'chai';
import { createSocket, type Socket } from 'node:dgram';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { parse, stringify } from 'yaml';
import { runAgent, type AgentHandle } from '../../src/agent/index.js';
import { followEvents } from '../../src/api/event-client.js';
import type { AgentConfig } from '../../src/config/types.js';
import type { StampedEvent } from '../../src/controller/events.js';
import { decodeDatagram, encodeMessage, typeMask } from '../../src/heartbeat/codec.js';
import { deriveBackendKey, heartbeatKey } from '../../src/heartbeat/keys.js';
import { AGENT_SENDS } from '../../src/heartbeat/messages.js';
import { fetchEffectiveWeights } from '../../src/kamailio/fetch-dispatcher-list.js';
import type { KamailioRpcClient } from '../../src/kamailio/rpc.js';
import { labApiUrl } from '../../src/lab/lab-configs.js';
import { startLab, startLabAgent, startLabController, type RunningLab } from '../../src/lab/lab.js';
import type { ManagedProcess } from '../../src/lab/processes.js';
import { eventually, sleep } from '../support/harness.js';
import { labRpc } from '../support/lb-watch.js';

const OLD = Buffer.alloc(32, 0x51);
const NEW = Buffer.alloc(32, 0x52);
const OTHER = Buffer.alloc(32, 0x53);

describe('key rotation: the agent holds a current and a previous key (real UDP, 127.19.1.x)', function () {
  this.timeout(60000);
  const ID = 'be-rot';
  let agent: AgentHandle | undefined;
  let controller: Socket | undefined;
  const reports: Buffer[] = [];
  let seq = 1;

  const config = (key: Buffer, previous?: Buffer): AgentConfig => ({
    kind: 'agent',
    backend_id: ID,
    set: 1,
    listen: { address: '127.19.1.2', port: 0 },
    controller: { address: '127.19.1.1', port: controller!.address().port },
    key: deriveBackendKey(key, ID),
    ...(previous ? { previous_key: deriveBackendKey(previous, ID) } : {}),
    capacity: 100,
    draining: false,
    sip: { address: '127.19.1.2', port: 5099 },
    collect_interval_ms: 100,
    logging: { level: 'info' },
  });

  /** Sends a probe signed with `master`'s key for this backend; resolves with the report it got, if any. */
  async function probe(master: Buffer): Promise<Buffer | null> {
    const before = reports.length;
    const msg = { type: 'probe' as const, backendId: ID, seq: seq++, ts: Date.now(), boot: 'rotation-ctl-1' };
    const buf = encodeMessage(msg, heartbeatKey(deriveBackendKey(master, ID)));
    controller!.send(buf, agent!.address.port, agent!.address.address);
    const deadline = Date.now() + 1500;
    while (Date.now() < deadline) {
      const r = reports.slice(before).find((b) => {
        const d = decodeDatagram(
          b,
          () => [OLD, NEW, OTHER].map((m) => heartbeatKey(deriveBackendKey(m, ID))),
          typeMask(AGENT_SENDS),
        );
        return d.ok && d.msg.type === 'report';
      });
      if (r) return r;
      await sleep(20);
    }
    return null;
  }
  const signedBy = (b: Buffer, master: Buffer): boolean =>
    decodeDatagram(b, () => [heartbeatKey(deriveBackendKey(master, ID))], typeMask(AGENT_SENDS)).ok;

  before(async function () {
    controller = createSocket('udp4');
    controller.on('message', (b) => reports.push(b));
    await new Promise<void>((r) => controller!.bind(0, '127.19.1.1', () => r()));
  });
  after(async function () {
    await agent?.stop('test over', false);
    controller?.close();
  });

  it('answers probes signed with either key, and signs every report with the current one', async function () {
    agent = await runAgent(config(NEW, OLD), undefined, { signals: false });
    const viaOld = await probe(OLD);
    expect(viaOld, 'a probe signed with the previous key is answered').to.not.equal(null);
    expect(signedBy(viaOld!, NEW)).to.equal(true);
    expect(signedBy(viaOld!, OLD)).to.equal(false);
    const viaNew = await probe(NEW);
    expect(viaNew).to.not.equal(null);
    expect(signedBy(viaNew!, NEW)).to.equal(true);
    // A key it does not hold: dropped, and counted.
    expect(await probe(OTHER)).to.equal(null);
    expect(agent.counters().drops.unknown_key + agent.counters().drops.bad_mac).to.equal(1);
  });

  it('takes new keys on reload without a restart, and refuses a file that changes more', async function () {
    const boot = agent!.bootId;
    expect(agent!.reload(config(NEW))).to.deep.equal({ ok: true, keys: true });
    expect(await probe(OLD), 'the dropped previous key is no longer accepted').to.equal(null);
    expect(await probe(NEW)).to.not.equal(null);
    const moved = { ...config(OTHER), capacity: 50 };
    expect(agent!.reload(moved)).to.deep.equal({ ok: false, restart: ['capacity'] });
    // Refused whole: the keys did not change either.
    expect(await probe(OTHER)).to.equal(null);
    expect(await probe(NEW)).to.not.equal(null);
    expect(agent!.bootId).to.equal(boot);
  });
});

interface BackendState {
  id: string;
  state: string;
  heartbeat: { misses: number };
}

describe('key rotation through the daemons: controller and agents move to a new master, no backend ever down (real lab on 127.19.0.x)', function () {
  this.timeout(240000);
  const IDS = ['be1', 'be2', 'be3'];
  let lab: RunningLab | undefined;
  let rpc: KamailioRpcClient | undefined;
  let controller: ManagedProcess | undefined;
  const agents = new Map<string, { p: ManagedProcess; file: string; yaml: Record<string, unknown> }>();
  let dir = '';
  let controllerFile = '';
  let controllerYaml: { heartbeat: Record<string, unknown>; [k: string]: unknown };
  let base = '';

  const hex = (b: Buffer) => `${b.toString('hex')}\n`;
  const keyFile = (name: string, value: Buffer): string => {
    const f = join(dir, name);
    writeFileSync(f, hex(value), { mode: 0o600 });
    return f;
  };
  const backends = async (): Promise<BackendState[]> => {
    const r = await fetch(`${base}/api/v1/backends`, { signal: AbortSignal.timeout(5000) });
    return ((await r.json()) as { backends: BackendState[] }).backends;
  };
  const logLines = (p: ManagedProcess): Record<string, unknown>[] =>
    readFileSync(p.logFile, 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  /** Sends the controller SIGHUP and resolves with its reload event (reloaded or refused), from its API. */
  async function reloadController(): Promise<StampedEvent> {
    const seen: StampedEvent[] = [];
    const follower = followEvents({ url: base, token: null }, (e) => {
      if (e.type === 'config_reloaded' || e.type === 'config_reload_refused') seen.push(e);
    });
    try {
      await follower.ready;
      process.kill(controller!.pid, 'SIGHUP');
      return await eventually(() => seen[0], 'the controller to report its reload', 30000);
    } finally {
      follower.close();
    }
  }
  /** Sends an agent SIGHUP and resolves with the reload's log line (an agent has no API to ask). */
  async function sighup(p: ManagedProcess): Promise<Record<string, unknown>> {
    const isReload = (l: Record<string, unknown>) => /^config reload/.test(String(l.msg));
    const before = logLines(p).filter(isReload).length;
    process.kill(p.pid, 'SIGHUP');
    return eventually(() => logLines(p).filter(isReload)[before], `${p.name} to log its reload`, 30000);
  }
  function writeController(masterFile: string, previousFile?: string): void {
    const hb: Record<string, unknown> = { ...controllerYaml.heartbeat, master_key_file: masterFile };
    delete hb.previous_master_key_file;
    if (previousFile) hb.previous_master_key_file = previousFile;
    writeFileSync(controllerFile, stringify({ ...controllerYaml, heartbeat: hb }), { mode: 0o600 });
  }
  function writeAgent(id: string, current: Buffer, previous?: Buffer): void {
    const a = agents.get(id)!;
    const yaml: Record<string, unknown> = { ...a.yaml, key_file: keyFile(`agent-${id}.key`, current) };
    if (previous) yaml.previous_key_file = keyFile(`agent-${id}.previous-key`, previous);
    writeFileSync(a.file, stringify(yaml), { mode: 0o600 });
  }

  before(async function () {
    dir = mkdtempSync(join(tmpdir(), 'sipweigh-keys-'));
    lab = await startLab({ backends: 3, net: 19, agents: false, controller: false, dir: join(dir, 'lab') });
    rpc = labRpc(lab);
    base = labApiUrl(lab.state.plan);
    const { configs, plan } = lab.state;
    controllerYaml = parse(readFileSync(configs.controller, 'utf8')) as typeof controllerYaml;
    // A probe counts as missed only after a second: a busy test machine must not fake a miss, while
    // a probe in a key the agent does not hold (which it drops) still shows as one.
    Object.assign(controllerYaml.heartbeat, { probe_interval_ms: 250, probe_timeout_ms: 1000 });
    controllerFile = join(dir, 'controller.yaml');
    writeController(keyFile('master-old.key', OLD));
    for (const be of plan.backends) {
      const yaml = parse(readFileSync(configs.agents[be.id]!, 'utf8')) as Record<string, unknown>;
      delete yaml.key;
      const file = join(dir, `agent-${be.id}.yaml`);
      agents.set(be.id, { p: undefined as unknown as ManagedProcess, file, yaml });
      writeAgent(be.id, deriveBackendKey(OLD, be.id));
    }
    for (const be of plan.backends)
      agents.get(be.id)!.p = await startLabAgent(lab.group, be, agents.get(be.id)!.file);
    controller = await startLabController(lab.group, plan, controllerFile);
    await eventually(
      async () => {
        const w = await fetchEffectiveWeights(rpc!, { deadlineMs: 2000 });
        const all = await backends().catch(() => []);
        return (
          IDS.every((id) => (w?.get(id) ?? 0) > 0) && all.length === 3 && all.every((b) => b.state === 'up')
        );
      },
      'every backend up and in rotation on the old master',
      90000,
    );
  });

  after(async function () {
    rpc?.close();
    await lab?.stop();
  });

  it('new master as current + old as previous, agents moved one by one, old master dropped: never down, never out of the LB', async function () {
    const pids = new Map([...agents].map(([id, a]) => [id, a.p.pid]));
    const missesBefore = new Map((await backends()).map((b) => [b.id, b.heartbeat.misses]));
    const notUp: string[] = [];
    const outOfLb: string[] = [];
    let apiPolls = 0;
    let lbPolls = 0;
    let polling = true;
    const poll = (async () => {
      while (polling) {
        const [states, weights] = await Promise.all([
          backends().catch(() => null),
          fetchEffectiveWeights(rpc!, { deadlineMs: 2000 }).catch(() => null),
        ]);
        if (states) {
          apiPolls++;
          for (const b of states) if (b.state !== 'up') notUp.push(`${b.id}=${b.state}`);
        }
        if (weights) {
          lbPolls++;
          for (const id of IDS) if (!((weights.get(id) ?? 0) > 0)) outOfLb.push(id);
        }
        await sleep(100);
      }
    })();
    try {
      const newMaster = keyFile('master-new.key', NEW);
      const oldMaster = join(dir, 'master-old.key');

      // 1. The controller: new master current, old previous. Applied live, not refused.
      writeController(newMaster, oldMaster);
      const step1 = await reloadController();
      expect(step1.type).to.equal('config_reloaded');
      expect(step1.type === 'config_reloaded' && step1.changes.heartbeat_keys).to.equal(true);
      await sleep(1500);

      // 2. The agents, one by one: new key current, old key previous, by SIGHUP (no restart, no bye).
      for (const id of IDS) {
        writeAgent(id, deriveBackendKey(NEW, id), deriveBackendKey(OLD, id));
        const line = await sighup(agents.get(id)!.p);
        expect(line, id).to.deep.include({ msg: 'config reloaded', keys: true });
        await sleep(1500);
      }

      // 3. The old master leaves the controller.
      writeController(newMaster);
      const step3 = await reloadController();
      expect(step3.type).to.equal('config_reloaded');
      await sleep(2000);

      // 4. And the agents drop their previous keys.
      for (const id of IDS) {
        writeAgent(id, deriveBackendKey(NEW, id));
        expect(await sighup(agents.get(id)!.p), id).to.deep.include({ msg: 'config reloaded' });
      }
      await sleep(2000);
    } finally {
      polling = false;
      await poll;
    }
    expect(notUp, 'API states other than up during the rotation').to.deep.equal([]);
    expect(outOfLb, 'backends out of the LB list during the rotation').to.deep.equal([]);
    expect(apiPolls).to.be.greaterThan(20);
    expect(lbPolls).to.be.greaterThan(20);
    const after = await backends();
    for (const b of after) {
      expect(b.state, b.id).to.equal('up');
      expect(b.heartbeat.misses, `${b.id} probes missed`).to.equal(missesBefore.get(b.id));
    }
    // The same processes throughout: nothing was restarted.
    for (const [id, a] of agents) {
      expect(a.p.pid, id).to.equal(pids.get(id));
      expect(a.p.isRunning(), id).to.equal(true);
    }
    expect(controller!.isRunning()).to.equal(true);
    // On the new master alone: a probe from the controller's old key would now be refused by the agents,
    // and they answer the controller's probes (fresh reports).
    await eventually(
      async () => (await backends()).every((b) => b.state === 'up'),
      'every backend up on the new master alone',
      10000,
    );
  });
});
