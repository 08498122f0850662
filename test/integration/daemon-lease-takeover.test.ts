/**
 * The lease, the LB's backstop and the takeover through the daemons (lab on 127.41.x.x, three
 * backends, the lab LB with the snippet's backstop): `sipweigh controller` refreshes its lease at the
 * LB (htable sipweigh_lease: backstop 0 while it runs); a drained backend is written disabled (D);
 * the controller SIGKILLed, the lease lapses and the LB probes on its own (backstop 1) without
 * pinging the drained backend back; restarted, the controller takes over (backstop 0 again) with no
 * weight leaving its deadband, no backend bounced and the drain kept. Everything read from outside:
 * the LB over JSON-RPC, the controller's API and /metrics.
 *
 * A quiet lab leaves the two live backends at 50 slots each of the LB's 100, which a fresh start
 * would push too. So while the controller is down the LB's list is rewritten as a previous run would
 * have left it with be1 derated to 40 % of be2's share (the controller's 40:100, held as 29 and 71
 * slots: src/push/rweight-slots.ts), and the factors do not recover (scoring.recover_per_s 0): the
 * weights it pushes in steady state are then exactly what it found. A controller that did not take
 * over would push 50/50.
 */
import { expect } from 'chai';
import { writeFileSync } from 'node:fs';
import { formatDispatcherList, type Destination } from '../../src/kamailio/dispatcher-list.js';
import { parseLease } from '../../src/kamailio/lb-evidence.js';
import { startDaemonLab, type DaemonLab, allUpAndPushed } from '../support/daemon-lab.js';
import { eventually, sleep } from '../support/harness.js';
import { WeightWatcher } from '../support/lb-watch.js';
import { http, waitReady } from './api-support.js';

/** The schema's default lease (lease.duration_ms) and deadband (scoring.weight_deadband_ratio). */
const LEASE_MS = 1500;
const DEADBAND_RATIO = 0.04;
const LIVE = ['be1', 'be2'];
/** be1 derated to 40 % of be2's share: the controller's 40:100 as a Kamailio node holds it. */
const DERATED = 29;
const FULL = 71;

describe('lease, backstop and takeover through the daemons (real lab on 127.41.x.x)', function () {
  this.timeout(300000);
  let d: DaemonLab | undefined;
  let watcher: WeightWatcher | undefined;
  let settled: ReadonlyMap<string, number> | null = null;

  const lease = async () => parseLease(await d!.rpc.call('htable.dump', ['sipweigh_lease']));
  const stateOf = async (id: string) => (await d!.lbTargets()).find((t) => t.duid === id)?.state;
  const metric = async (name: string, labels: Record<string, string>) =>
    (await d!.metrics()).find(
      (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
    )?.value;

  const config = () => {
    const cfg = d!.labConfig();
    cfg.scoring = { ...(cfg.scoring as object), recover_per_s: 0 };
    return cfg;
  };

  before(async function () {
    d = await startDaemonLab({ backends: 3, net: 41 });
    d.startController(config());
    await waitReady(d.base);
    await allUpAndPushed(d!, ['be1', 'be2', 'be3'], 'all three backends up and pushed');
    watcher = new WeightWatcher(d.rpc, 100).start();
  });

  after(async function () {
    watcher?.stop();
    await d?.stop();
  });

  it('the controller refreshes its lease: the LB keeps its backstop off (0) while it runs', async function () {
    await eventually(async () => (await lease()).backstop === false, 'backstop 0 at the LB', 20000);
    // For 2 s (more than the lease), every read finds time left and the backstop off.
    for (let i = 0; i < 10; i++) {
      const l = await lease();
      expect(l.backstop, `read ${i}`).to.equal(false);
      expect(l.msLeft ?? 0, `read ${i}`).to.be.above(0);
      await sleep(200);
    }
    expect(await metric('sipweigh_lb_backstop', { node: 'lb1' })).to.equal(0);
    expect(await metric('sipweigh_lb_lease_refreshes_total', { node: 'lb1', outcome: 'ok' })).to.be.above(5);
    expect(await metric('sipweigh_lb_lease_refreshes_total', { node: 'lb1', outcome: 'failed' })).to.equal(0);
  });

  it('a drained backend is written disabled (D), the others stay active', async function () {
    const r = await http('POST', `${d!.base}/api/v1/backends/be3/drain`, {
      token: d!.token,
      body: JSON.stringify({ reason: 'lease test' }),
      headers: { 'content-type': 'application/json' },
    });
    expect(r.status).to.be.within(200, 299);
    await eventually(async () => (await stateOf('be3')) === 'disabled', 'be3 disabled at the LB', 10000);
    for (const id of LIVE) expect(await stateOf(id)).to.equal('active');
    // Settled weights to compare the takeover with.
    await sleep(2000);
    settled = await d!.lbWeights();
    expect(LIVE.every((id) => (settled?.get(id) ?? 0) > 0)).to.equal(true);
  });

  it('SIGKILL of the controller: the lease lapses, the LB probes on its own, the drained backend stays D', async function () {
    const controller = d!.controller!;
    const killedAt = Date.now();
    process.kill(controller.pid, 'SIGKILL');
    await controller.exited;
    const onAt = await eventually(
      async () => ((await lease()).backstop === true ? Date.now() : null),
      'backstop 1 at the LB',
      20000,
      50,
    );
    // The lease as last refreshed, counted down by the LB's 200 ms timer, and a tick of slack.
    expect(onAt - killedAt).to.be.below(LEASE_MS + 1500);
    // The LB pings every second now: the live backends answer and stay in, the drained one is not pinged back.
    await sleep(3500);
    const targets = await d!.lbTargets();
    const byId = new Map(targets.map((t) => [t.duid, t]));
    expect(byId.get('be3')?.state).to.equal('disabled');
    for (const id of LIVE) expect(byId.get(id)?.state, id).to.equal('active');
    // What a previous run would have left had it derated be1 (see the header).
    const list: Destination[] = targets.map((t) => ({
      setId: t.setId,
      uri: t.uri,
      state: t.state === 'disabled' ? 'disabled' : 'active',
      rweight: t.duid === 'be1' ? DERATED : t.duid === 'be2' ? FULL : (t.rweight ?? 1),
      duid: t.duid!,
    }));
    const path = (d!.labConfig().lb_nodes[0]!.dispatcher_list as { path: string }).path;
    writeFileSync(path, formatDispatcherList(list));
    await d!.rpc.call('dispatcher.reload');
    await eventually(
      async () => (await d!.lbWeights())?.get('be1') === DERATED,
      'be1 derated at the LB',
      10000,
    );
    settled = await d!.lbWeights();
  });

  it('restarted, the controller takes over: backstop 0, no weight out of its deadband, no bounce, drain kept', async function () {
    const restartAt = Date.now();
    d!.startController(config());
    await waitReady(d!.base);
    await eventually(async () => (await lease()).backstop === false, 'backstop 0 again', 30000);
    // Its first pushes: wait until it has pushed (or found the LB in sync) and then some cycles more.
    await eventually(
      async () => {
        const applied = (await metric('sipweigh_lb_pushes_total', { node: 'lb1', outcome: 'applied' })) ?? 0;
        const inSync = (await metric('sipweigh_lb_pushes_total', { node: 'lb1', outcome: 'in_sync' })) ?? 0;
        return applied + inSync > 0;
      },
      'a push (or an in-sync read) of the restarted controller',
      30000,
    );
    await sleep(3000);
    const samples = watcher!.between(restartAt, Date.now());
    expect(samples.length).to.be.above(20);
    for (const s of samples) {
      for (const id of LIVE) {
        const pre = settled!.get(id)!;
        const w = s.weights.get(id) ?? 0;
        expect(w, `${id} at +${s.at - restartAt} ms (was ${pre})`).to.be.above(0);
        expect(Math.abs(w - pre), `${id} at +${s.at - restartAt} ms: ${w} vs ${pre}`).to.be.at.most(
          Math.max(1, pre * DEADBAND_RATIO),
        );
      }
      expect(s.weights.get('be3') ?? 0).to.equal(0);
    }
    expect(await stateOf('be3')).to.equal('disabled');
    expect((await d!.backend('be3'))?.drained).to.equal(true);
    // The probing flags the LB's own pings left are repaired: the list is the controller's again.
    await eventually(
      async () => (await d!.lbTargets()).every((t) => t.probing === 'none'),
      'no probing flags left at the LB',
      15000,
    );
  });
});
