/**
 * The closed loop end to end, every part real: the lab's LB (Kamailio, or OpenSIPS 3.6 in front of
 * Kamailio backends) and three emulated backends of capacity 50, 100 and 200 calls/s (1:2:4), a sipp
 * UAS behind each, a `sipweigh agent` beside each and `sipweigh controller` pushing weights into the
 * LB. Everything is judged by what the LB's dispatcher holds (Kamailio `dispatcher.list`, OpenSIPS MI
 * `ds_list`), polled as an operator would. Lab on 127.10.x.x.
 */
import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Destination } from '../../src/kamailio/dispatcher-list.js';
import { killMember, respawnMember } from '../../src/lab/lab-control.js';
import { startLab, type RunningLab } from '../../src/lab/lab.js';
import { eventually, sleep } from '../support/harness.js';
import { describeEachLb, labPlatformOptions, lbUnderTest, type LbUnderTest } from '../support/platforms.js';
import { sipweigh } from '../support/cli.js';
import type { ControllerStatus } from '../../src/controller/status.js';
import { rweightSlots } from '../../src/push/rweight-slots.js';
import { formatWeights, labLoad, ratioError, WeightWatcher } from '../support/lb-watch.js';

const CAPACITIES = new Map([
  ['be1', 50],
  ['be2', 100],
  ['be3', 200],
]);

describeEachLb(
  'closed loop: weights follow capacity and health (real LB, backends, agents, controller)',
  function (platform) {
    this.timeout(300000);
    let lab: RunningLab | undefined;
    let lb: LbUnderTest | undefined;
    let watcher: WeightWatcher | undefined;

    before(async function () {
      lab = await startLab({
        backends: 3,
        capacities: [...CAPACITIES.values()],
        controller: true,
        net: 10,
        dir: mkdtempSync(join(tmpdir(), 'sipweigh-loop-')),
        ...labPlatformOptions(platform),
      });
      lb = lbUnderTest(lab);
      watcher = new WeightWatcher(() => lb!.readWeights(), 200).start();
    });

    after(async function () {
      watcher?.stop();
      lb?.close();
      await lab?.stop();
    });

    const load = (name: string, rate: number, seconds: number) => labLoad(lab!, name, rate, seconds);

    it('converges to the 1:2:4 capacity ratio within 10 s of steady load and holds it for 30 s', async () => {
      // The controller has confirmed every backend and pushed once: the loop is running.
      await eventually(
        async () => {
          const w = await lb!.readWeights();
          return w !== null && [...w.values()].every((x) => x > 0) && ratioError(w, CAPACITIES) <= 0.1;
        },
        'first push of the controller',
        30000,
        200,
      );
      const start = Date.now();
      const uac = await load('uac-steady', 100, 42); // 29 % of the pool's 350 calls/s
      await sleep(42000);
      const converged = watcher!.firstAfter(start, (w) => ratioError(w, CAPACITIES) <= 0.1);
      expect(converged, 'weights never within 10 % of 1:2:4').to.not.equal(null);
      expect(converged! - start, 'time to converge (ms)').to.be.at.most(10000);
      const window = watcher!.between(converged!, converged! + 30000);
      expect(window.length, 'samples in the 30 s window').to.be.at.least(50);
      const worst = window.reduce((a, s) =>
        ratioError(s.weights, CAPACITIES) > ratioError(a.weights, CAPACITIES) ? s : a,
      );
      process.stdout.write(
        `      (converged ${converged! - start} ms after load start; worst in 30 s: ${formatWeights(worst.weights)}, ` +
          `${(ratioError(worst.weights, CAPACITIES) * 100).toFixed(1)} % off)\n`,
      );
      expect(ratioError(worst.weights, CAPACITIES), 'largest deviation in the 30 s window').to.be.at.most(
        0.1,
      );
      // The status file tells the same story as the LB.
      const shown = sipweigh('status', '--file', join(lab!.state.dir, 'status.json'), '--json');
      expect(shown.code, shown.err).to.equal(0);
      const status = JSON.parse(shown.out) as ControllerStatus;
      expect(status.sets[0]?.mode).to.equal('scored');
      // The status shows the controller's weights; a Kamailio LB holds them as slots of its 100.
      const told = status.sets[0]!.backends;
      const weights = told.map((b) => b.weight ?? 0);
      const slots = platform.lb === 'opensips' ? weights : rweightSlots(weights);
      expect(formatWeights(new Map(told.map((b, i) => [b.id, slots[i]!])))).to.equal(
        formatWeights((await lb!.readWeights())!),
      );
      expect(status.lb_nodes[0]?.consecutive_failures).to.equal(0);
      const r = await uac.done();
      expect(r.stats.failed, 'failed calls at 29 % load').to.be.at.most(Math.ceil(r.stats.created * 0.005));
    });

    it('takes a SIGKILLed backend out within about a second, and slow-starts it when it returns', async () => {
      const uac = await load('uac-kill', 100, 40);
      await sleep(3000);
      const [killedAt] = await Promise.all([killMember(lab!, 'backend-be2'), killMember(lab!, 'agent-be2')]);
      const out = await eventually(
        () => watcher!.firstAfter(killedAt, (w) => w.get('be2') === 0),
        'be2 out of rotation at the LB',
        10000,
        50,
      );
      process.stdout.write(`      (be2 inactive at the LB ${out - killedAt} ms after SIGKILL)\n`);
      expect(out - killedAt, 'kill to inactive at the LB (ms)').to.be.below(3000);
      const others = watcher!.samples[watcher!.samples.length - 1]!.weights;
      expect(others.get('be1')! > 0 && others.get('be3')! > 0, formatWeights(others)).to.equal(true);

      await sleep(2000);
      const back = Date.now();
      await respawnMember(lab!, 'backend-be2');
      await respawnMember(lab!, 'agent-be2');
      await eventually(
        () => watcher!.firstAfter(back, (w) => ratioError(w, CAPACITIES) <= 0.1),
        'be2 back at its full share',
        40000,
        200,
      );
      // The ramp as the LB saw it: be2's share of the pool rising through several steps, not one jump.
      const shares = watcher!
        .between(back, Date.now())
        .map((s) => (s.weights.get('be2') ?? 0) / [...s.weights.values()].reduce((a, b) => a + b, 0))
        .filter((x, i, all) => x > 0 && x !== all[i - 1]);
      process.stdout.write(`      (be2 share on return: ${shares.map((x) => x.toFixed(2)).join(' → ')})\n`);
      expect(shares.length, 'distinct shares during the ramp').to.be.at.least(3);
      expect(shares[0]!, 'first share after return').to.be.below((100 / 350) * 0.6);
      for (let i = 1; i < shares.length; i++) expect(shares[i]!).to.be.at.least(shares[i - 1]! - 0.02);
      await uac.done();
    });

    it('repairs an operator’s edited list + reload, and an LB restart, within one reconcile (5 s)', async () => {
      const stale: Destination[] = ['be1', 'be2', 'be3'].map((id, i) => ({
        setId: 1,
        uri: `sip:127.10.0.${11 + i}:5060`,
        state: id === 'be3' ? 'inactive' : 'active',
        rweight: 50,
        duid: id,
      }));
      // Kamailio: the list file + dispatcher.reload; OpenSIPS: the db_text table + dbt_reload,
      // ds_reload and ds_set_state (platforms.ts, operatorReload).
      await lb!.operatorReload(stale);
      const reloadedAt = Date.now();
      expect(formatWeights((await lb!.readWeights())!)).to.equal('be1=50 be2=50 be3=0');
      const repaired = await eventually(
        () => watcher!.firstAfter(reloadedAt, (w) => ratioError(w, CAPACITIES) <= 0.1),
        'drift repaired',
        20000,
        100,
      );
      process.stdout.write(`      (edited list + reload repaired after ${repaired - reloadedAt} ms)\n`);
      expect(repaired - reloadedAt).to.be.at.most(5000 + 2000);

      await killMember(lab!, 'lb');
      lb!.writeList(stale);
      await respawnMember(lab!, 'lb');
      const restartedAt = Date.now();
      // Shown, not asserted (the controller may already be at it): the LB back on the stale list
      // (OpenSIPS loads every destination active, so be3=50 there).
      const first = await eventually(() => lb!.readWeights(), 'the restarted LB answers', 10000, 50);
      process.stdout.write(`      (first reading after the restart: ${formatWeights(first)})\n`);
      const again = await eventually(
        () => watcher!.firstAfter(restartedAt, (w) => ratioError(w, CAPACITIES) <= 0.1),
        'restart repaired',
        20000,
        100,
      );
      process.stdout.write(
        `      (LB restarted on a stale list, repaired after ${again - restartedAt} ms)\n`,
      );
      expect(again - restartedAt).to.be.at.most(5000 + 2000);
    });
  },
);
