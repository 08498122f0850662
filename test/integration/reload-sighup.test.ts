/**
 * Live reload on a real lab (127.15.x.x): a controller driving a real LB (lb1) and, to have an RPC
 * that always fails, a second LB node where nothing listens (lb2). SIGHUP with a broken config
 * keeps the old one running (it still answers and still pushes); with a valid one it applies it
 * (a backend added enters the LB's list, one removed leaves it, and stays out across reconciles).
 * The test follows the controller's events (GET /api/v1/events) to see each reload's outcome. Last,
 * the whole log and event stream of that controller — start, reloads good and bad, a failing RPC —
 * are searched for every secret it was given.
 */
import { expect } from 'chai';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { admissionLimiterName, readLimiters } from '../../src/kamailio/admission.js';
import { followEvents, type EventFollower } from '../../src/api/event-client.js';
import type { StampedEvent } from '../../src/controller/events.js';
import { formatDispatcherList } from '../../src/kamailio/dispatcher-list.js';
import { fetchDispatcherList, fetchEffectiveWeights } from '../../src/kamailio/fetch-dispatcher-list.js';
import type { KamailioRpcClient } from '../../src/kamailio/rpc.js';
import { initialDestinations } from '../../src/lab/lab.js';
import type { ManagedProcess } from '../../src/lab/processes.js';
import { sipweighCommand } from '../../src/lab/self-command.js';
import { sipweigh } from '../support/cli.js';
import { eventually } from '../support/harness.js';
import { labRpc } from '../support/lb-watch.js';
import { expectSchema, http, startApiLab, type ApiLab } from './api-support.js';

const LB2_PASSWORD = 'lb2-rpc-password-e4b1c9d7';
const BAD_MASTER_KEY = `${'9f'.repeat(31)}zz`;

interface ControllerYaml {
  heartbeat: Record<string, unknown>;
  lb_nodes: Record<string, unknown>[];
  sets: { backends: { id: string }[] }[];
  [k: string]: unknown;
}

describe('live reload: SIGHUP and POST /api/v1/reload (real lab on 127.15.x.x)', function () {
  this.timeout(240000);
  let t: ApiLab | undefined;
  let rpc: KamailioRpcClient | undefined;
  let controller: ManagedProcess | undefined;
  let file = '';
  let full: ControllerYaml;

  const logLines = (): Record<string, unknown>[] =>
    readFileSync(controller!.logFile, 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  /** What the controller told (GET /api/v1/events), from its start. */
  const told: StampedEvent[] = [];
  let follower: EventFollower | undefined;
  type ReloadEvent = Extract<StampedEvent, { type: 'config_reloaded' | 'config_reload_refused' }>;
  const reloads = (): ReloadEvent[] =>
    told.filter((e): e is ReloadEvent => e.type === 'config_reloaded' || e.type === 'config_reload_refused');
  const lbIds = async () => {
    const r = await fetchDispatcherList(rpc!, { deadlineMs: 2000 });
    return r.ok ? r.targets.map((x) => x.duid).sort() : null;
  };
  const lbWeight = async (id: string) => (await fetchEffectiveWeights(rpc!, { deadlineMs: 2000 }))?.get(id);
  const apiIds = async () =>
    ((await http('GET', `${t!.base}/api/v1/backends`)).json as { backends: { id: string }[] }).backends
      .map((b) => b.id)
      .sort();
  /** Writes `cfg` as the controller's file and sends SIGHUP; resolves with the event it produced. */
  async function sighup(cfg: string): Promise<ReloadEvent> {
    writeFileSync(file, cfg);
    const before = reloads().length;
    process.kill(controller!.pid, 'SIGHUP');
    return eventually(
      () => {
        const seen = reloads();
        return seen.length > before ? seen[seen.length - 1] : null;
      },
      'the controller to tell the reload',
      30000,
    );
  }
  const withBackends = (ids: string[]): string => {
    const all = (JSON.parse(JSON.stringify(full)) as ControllerYaml).sets[0]!.backends;
    const cfg = JSON.parse(JSON.stringify(full)) as ControllerYaml;
    cfg.sets[0]!.backends = all.filter((b) => ids.includes(b.id));
    return stringify(cfg);
  };

  before(async function () {
    t = await startApiLab({ backends: 3, net: 15, controller: false });
    rpc = labRpc(t.lab);
    const { state } = t.lab;
    // The LB starts with be1 and be2 only: be3 is what a reload adds.
    writeFileSync(
      state.dispatcher_list,
      formatDispatcherList(initialDestinations(state.plan).filter((d) => d.duid !== 'be3')),
    );
    await rpc.call('dispatcher.reload', []);
    full = parse(readFileSync(state.configs.controller, 'utf8')) as ControllerYaml;
    full.lb_nodes.push({
      name: 'lb2',
      // Nothing listens there: every RPC to lb2 fails (with a password that must never be logged).
      rpc: {
        url: 'http://127.15.0.99:5071/RPC',
        username: 'sipweigh',
        password: LB2_PASSWORD,
        timeout_ms: 500,
      },
      dispatcher_list: { path: join(state.dir, 'dispatcher-lb2.list') },
    });
    full.logging = { level: 'debug' };
    file = join(state.dir, 'controller-reload.yaml');
    writeFileSync(file, withBackends(['be1', 'be2']), { mode: 0o600 });
    const self = sipweighCommand();
    controller = t.lab.group.spawn('controller-reload', self.cmd, [
      ...self.args,
      'controller',
      '--config',
      file,
    ]);
    await eventually(
      async () =>
        ((await lbWeight('be1')) ?? 0) > 0 &&
        ((await lbWeight('be2')) ?? 0) > 0 &&
        (await apiIds()).length === 2,
      'the controller up with be1 and be2 in rotation',
      90000,
    );
    follower = followEvents({ url: t.base, token: t.token, history: true }, (e) => told.push(e));
    await follower.ready;
  });

  after(async function () {
    follower?.close();
    rpc?.close();
    await t?.lab.stop();
  });

  it('is not ready while an LB node has never been reached, and says which', async function () {
    const r = await http('GET', `${t!.base}/readyz`);
    expect(r.status).to.equal(503);
    expectSchema('ready', r.json);
    expect((r.json as { reasons: string[] }).reasons).to.deep.equal([
      'LB node lb2 has not been read or pushed successfully yet',
    ]);
  });

  it('SIGHUP with a broken config: refused with FILE:LINE:COL and the field; the old config keeps running and pushing', async function () {
    // Remove be1 and, in the same file, break be2's capacity: nothing of it may be applied.
    const broken = withBackends(['be2']).replace(/capacity: 100/, 'capacity: -5');
    const line = await sighup(broken);
    expect(line.type).to.equal('config_reload_refused');
    expect(line.type === 'config_reload_refused' && line.error).to.match(
      new RegExp(
        `^${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:\\d+:\\d+: sets\\[0\\]\\.backends\\[0\\]\\.capacity: must be > 0`,
      ),
    );
    expect(await apiIds()).to.deep.equal(['be1', 'be2']);
    expect(await lbIds()).to.deep.equal(['be1', 'be2']);
    // Still pushing: a drain reaches the LB, an undrain brings it back.
    const d = await http('POST', `${t!.base}/api/v1/backends/be1/drain`, { token: t!.token });
    expect(d.status).to.equal(200);
    await eventually(async () => (await lbWeight('be1')) === 0, 'be1 drained at the LB', 30000);
    await http('POST', `${t!.base}/api/v1/backends/be1/undrain`, { token: t!.token });
    await eventually(async () => ((await lbWeight('be1')) ?? 0) > 0, 'be1 back at the LB', 60000);
  });

  it('POST /api/v1/reload refuses the same way (400 with the reason), and a change that needs a restart names its field', async function () {
    writeFileSync(file, withBackends(['be2']).replace(/capacity: 100/, 'capacity: -5'));
    const r = await http('POST', `${t!.base}/api/v1/reload`, { token: t!.token });
    expect(r.status).to.equal(400);
    expectSchema('reload-response', r.json);
    expect(r.json).to.deep.include({ reloaded: false });
    expect((r.json as { error: string }).error).to.match(
      /:\d+:\d+: sets\[0\]\.backends\[0\]\.capacity: must be > 0/,
    );

    const moved = parse(withBackends(['be1', 'be2'])) as ControllerYaml;
    (moved.heartbeat.listen as { port: number }).port = 7960;
    writeFileSync(file, stringify(moved));
    const cli = sipweigh('reload', '--api', t!.base, '--token-file', t!.lab.state.configs.apiToken);
    expect(cli.code).to.equal(3);
    expect(cli.err).to.contain(
      `${file}: heartbeat.listen: cannot change while the controller runs (restart it to apply)`,
    );
    expect(await apiIds()).to.deep.equal(['be1', 'be2']);
  });

  it('SIGHUP with malformed YAML and an invalid key is refused too, without echoing what it read', async function () {
    const yaml = withBackends(['be1', 'be2'])
      .replace(/master_key_file: .*/, `master_key: ${BAD_MASTER_KEY}`)
      .concat(`bogus: [lab-secret, ${LB2_PASSWORD}\n`);
    const line = await sighup(yaml);
    expect(line.type).to.equal('config_reload_refused');
    expect(line.type === 'config_reload_refused' && line.error).to.match(/malformed YAML/);
    const invalidKey = await sighup(
      withBackends(['be1', 'be2']).replace(/master_key_file: .*/, `master_key: ${BAD_MASTER_KEY}`),
    );
    expect(invalidKey.type === 'config_reload_refused' && invalidKey.error).to.match(
      /heartbeat\.master_key: must be a secret key as 64 to 128 hex digits/,
    );
    expect(await apiIds()).to.deep.equal(['be1', 'be2']);
  });

  it('SIGHUP with a valid config: be3 added enters the LB list (slow start), be1 removed leaves it and stays out', async function () {
    const line = await sighup(withBackends(['be2', 'be3']));
    expect(line.type).to.equal('config_reloaded');
    expect(line.type === 'config_reloaded' && line.changes.backends).to.deep.equal({
      added: ['be3'],
      removed: ['be1'],
      changed: [],
    });
    await eventually(
      async () => JSON.stringify(await lbIds()) === '["be2","be3"]' && ((await lbWeight('be3')) ?? 0) > 0,
      'the LB to list be2 and be3 (in rotation) and not be1',
      60000,
    );
    expect(await apiIds()).to.deep.equal(['be2', 'be3']);
    // be3 entered through the confirmation and slow start, not at full weight at once.
    const be3Weights = told.flatMap((e) =>
      e.type === 'weights_changed' ? e.backends.filter((b) => b.id === 'be3') : [],
    );
    expect(be3Weights.find((b) => b.weight > 0)?.phase).to.equal('slow_start');
    // The lab reconciles every 5 s (re-reading the LB): be1, which the LB listed until our push, must not return.
    const status = async () =>
      (await http('GET', `${t!.base}/api/v1/status`)).json as {
        schedules: { name: string; lastRun: string | null }[];
      };
    const removedAt = Date.now();
    await eventually(
      async () => {
        const run = (await status()).schedules.find((s) => s.name === 'reconcile')?.lastRun;
        return run !== null && run !== undefined && Date.parse(run) > removedAt + 1000;
      },
      'a reconcile after the removal',
      30000,
    );
    expect(await lbIds()).to.deep.equal(['be2', 'be3']);
    expect(await apiIds()).to.deep.equal(['be2', 'be3']);
  });

  it('admission switched off by a reload: the limit the controller set at the LB is lifted; on again: set again', async function () {
    const limit = async () => (await readLimiters(rpc!)).get(admissionLimiterName(1))?.limitCps;
    await eventually(async () => typeof (await limit()) === 'number', 'a limit set at the LB', 30000);
    const running = readFileSync(file, 'utf8');
    const off = parse(running) as ControllerYaml;
    off.admission = { enabled: false };
    expect((await sighup(stringify(off))).type).to.equal('config_reloaded');
    // T_1 = 0 at the LB: no limit, every call admitted again.
    await eventually(async () => (await limit()) === null, 'the limit lifted at the LB (T_1 = 0)', 30000);
    const status = (await http('GET', `${t!.base}/api/v1/status`)).json as {
      sets: { admission_limit_cps: number | null }[];
    };
    expect(status.sets[0]?.admission_limit_cps).to.equal(null);
    expect((await sighup(running)).type).to.equal('config_reloaded');
    await eventually(async () => typeof (await limit()) === 'number', 'the limit set again', 30000);
  });

  it('the whole log (start, reloads good and bad, a failing RPC) holds no secret', async function () {
    const log = readFileSync(controller!.logFile, 'utf8');
    // lb2 failed, and said so: the failing RPC is in this log.
    expect(logLines().some((l) => l.node === 'lb2' && /ECONNREFUSED/.test(JSON.stringify(l)))).to.equal(true);
    const master = readFileSync(t!.lab.state.configs.masterKey, 'utf8').trim();
    const secrets = {
      master_key: master,
      master_key_upper: master.toUpperCase(),
      bad_master_key: BAD_MASTER_KEY,
      lb1_rpc_password: t!.lab.state.plan.lb.rpc.password,
      lb2_rpc_password: LB2_PASSWORD,
      api_token: t!.token,
    };
    const stream = JSON.stringify(told);
    for (const [what, value] of Object.entries(secrets)) {
      expect(log, what).to.not.contain(value);
      expect(stream, `${what} in the event stream`).to.not.contain(value);
    }
    expect(log.split('\n').length).to.be.greaterThan(20);
  });
});
