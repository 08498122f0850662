/**
 * Learned capacity through a capacity drop and back, end to end (issue 18): the lab's real LB, three
 * emulated backends of 25, 50 and 100 calls/s configured right, their agents, and `sipweigh
 * controller` on the config the lab writes with its `learnCapacity` choice. Offered 60 % of the pool
 * (the quality bench's drop); be3's service delay doubles after 20 s (its capacity halves) and comes
 * back after 40 s. With learning on, the weights must follow be3 down, and come back up once its
 * capacity does: below the pool's limit the probe alone never found it again (the retry of a fall,
 * src/scoring/capacity/estimator.ts). Judged by what the LB's dispatcher holds. Lab on 127.49.x.x;
 * everything stopped by PID.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { KamailioRpcClient } from '../../src/kamailio/rpc.js';
import { startDaemonLab, type DaemonLab } from '../support/daemon-lab.js';
import { eventually, sleep } from '../support/harness.js';
import { formatWeights, labLoad, WeightWatcher } from '../support/lb-watch.js';
import { waitReady } from './api-support.js';

const CAPACITIES = [25, 50, 100];
const POOL = 175;
/** be3's fair share of the weights halved (50 of 125) and whole (100 of 175). */
const HALVED_SHARE = 50 / 125;
const WHOLE_SHARE = 100 / 175;

const share = (w: ReadonlyMap<string, number>, id: string) => {
  const sum = [...w.values()].reduce((a, b) => a + b, 0);
  return sum > 0 ? (w.get(id) ?? 0) / sum : Number.NaN;
};

describe('closed loop with learned capacity: a capacity drop and its recovery (real LB, backends, agents, controller)', function () {
  this.timeout(300000);
  let d: DaemonLab | undefined;
  let watcher: WeightWatcher | undefined;
  let be3: KamailioRpcClient | undefined;

  before(async function () {
    d = await startDaemonLab({ backends: 3, capacities: CAPACITIES, net: 49, learnCapacity: true });
    // The lab's own config, as `learnCapacity` wrote it: nothing edited here.
    expect(readFileSync(d.lab.state.configs.controller, 'utf8')).to.match(/capacity:\s*\n\s*learn: true/);
    d.startController(d.labConfig());
    await waitReady(d.base);
    watcher = new WeightWatcher(d.rpc, 200).start();
    await eventually(
      async () => {
        const w = await d!.lbWeights();
        return w !== null && ['be1', 'be2', 'be3'].every((id) => (w.get(id) ?? 0) > 0);
      },
      'first push of the controller',
      60000,
      200,
    );
    const plan = d.lab.state.plan.backends[2]!;
    be3 = new KamailioRpcClient({ url: `http://${plan.sip.address}:${plan.rpcPort}/RPC` });
  });

  after(async function () {
    watcher?.stop();
    be3?.close();
    await d?.stop();
  });

  it('at 60 % offered the weights follow be3 halved, and come back with its capacity', async () => {
    const emulation = d!.lab.state.plan.backends[2]!.emulation!;
    const start = Date.now();
    const uac = await labLoad(d!.lab, 'uac-drop', Math.round(0.6 * POOL), 75);
    await sleep(20000);
    await be3!.call('pv.shvSet', ['sw_service_delay_us', 'int', emulation.delayUs * 2]);
    const dropAt = Date.now();
    await sleep(20000);
    // 0: back to the emulation's own delay.
    await be3!.call('pv.shvSet', ['sw_service_delay_us', 'int', 0]);
    const backAt = Date.now();
    await sleep(34000);
    const r = await uac.done();
    const followed = watcher!.firstAfter(dropAt, (w) => share(w, 'be3') <= HALVED_SHARE * 1.1);
    const back = watcher!.firstAfter(backAt, (w) => share(w, 'be3') >= WHOLE_SHARE * 0.9);
    const before = watcher!.between(start + 12000, dropAt).at(-1);
    process.stdout.write(
      `      (be3's share before the drop ${before ? share(before.weights, 'be3').toFixed(2) : '-'}; ` +
        `followed ${followed === null ? 'never' : `${followed - dropAt} ms`} after the drop, back ` +
        `${back === null ? 'never' : `${back - backAt} ms`} after the recovery; last ` +
        `${formatWeights(watcher!.between(backAt, Date.now()).at(-1)!.weights)}; ` +
        `calls ${r.stats.created} created, ${r.stats.failed} failed)\n`,
    );
    expect(before, 'weights before the drop').not.to.equal(undefined);
    expect(share(before!.weights, 'be3'), "be3's share before the drop").to.be.at.least(WHOLE_SHARE * 0.9);
    // Measured 1.2-1.4 s in the quality bench; the bound leaves room for a busy machine.
    expect(followed, 'weights followed the drop').not.to.equal(null);
    expect(followed! - dropAt, 'follow time (ms)').to.be.at.most(10000);
    // Measured 3.8-5.8 s in the bench, 3.7 s in this test alone and 10.9 s in a clean-clone CI run
    // (a climb knocked back waits 4 s, then 8 s); never before the retry of a fall. The load runs
    // 35 s past the recovery so that 30 s is a bound the watcher can see, and not a flaky one.
    expect(back, 'weights came back after the recovery').not.to.equal(null);
    expect(back! - backAt, 'back time (ms)').to.be.at.most(30000);
  });
});
