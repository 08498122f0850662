/**
 * The LB deals each backend exactly the share the controller chose (src/push/rweight-slots.ts), seen
 * through the daemons: the lab's Kamailio LB, three emulated backends with a sipp UAS each, their
 * agents and `sipweigh controller`. The backends are configured 32, 58 and 100 calls/s (each really
 * carries 200, so nothing derates them at this load), so the controller's weights are 32/58/100.
 * Written as they are, Kamailio's algorithm 11 deals them 18/30/52 calls in 100 (its truncation
 * leaves two slots, and both go to the list's first line): be1 would get 54 calls of 300, 6 % over
 * its share. Written as slots, 17/30/53: 51. Counted by each backend's own dialog counter.
 * Lab on 127.53.x.x.
 */
import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KamailioRpcClient } from '../../src/kamailio/rpc.js';
import { startLab, type RunningLab } from '../../src/lab/lab.js';
import { eventually } from '../support/harness.js';
import { formatWeights, labLoad, labRpc, readWeights, WeightWatcher } from '../support/lb-watch.js';
import { describeEachKamailio } from '../support/platforms.js';

const CONFIGURED = [32, 58, 100];
/** The largest remainders of 32/58/100 over 100 slots. */
const SLOTS = new Map([
  ['be1', 17],
  ['be2', 30],
  ['be3', 53],
]);
const CALLS = 300;

describeEachKamailio(
  'the LB deals each backend the share the controller chose (real LB, backends, agents, controller)',
  function (platform) {
    this.timeout(180000);
    let lab: RunningLab | undefined;
    let rpc: KamailioRpcClient | undefined;
    let backends: KamailioRpcClient[] = [];
    let watcher: WeightWatcher | undefined;

    before(async function () {
      lab = await startLab({
        backends: 3,
        capacities: [200, 200, 200],
        configuredCapacities: CONFIGURED,
        controller: true,
        net: 53,
        dir: mkdtempSync(join(tmpdir(), 'sipweigh-slots-')),
        kamailio: platform.binary,
      });
      rpc = labRpc(lab);
      backends = lab.state.plan.backends.map(
        (b) => new KamailioRpcClient({ url: `http://${b.sip.address}:${b.rpcPort}/RPC` }),
      );
    });

    after(async function () {
      watcher?.stop();
      rpc?.close();
      backends.forEach((c) => c.close());
      await lab?.stop();
    });

    const dialogs = async (): Promise<number[]> =>
      Promise.all(
        backends.map(async (c) => {
          const r = (await c.call('stats.fetch', ['dialog:processed_dialogs'], {
            deadlineMs: 2000,
          })) as Record<string, unknown>;
          return Number(r['dialog.processed_dialogs']);
        }),
      );

    it('the LB holds 17/30/53 slots of 100 and deals 300 calls 51/90/159', async function () {
      const held = await eventually(
        async () => {
          const w = await readWeights(rpc!);
          return w !== null && [...SLOTS].every(([id, n]) => w.get(id) === n) ? w : null;
        },
        "the controller's slots at the LB",
        60000,
        200,
      );
      expect(
        [...held.values()].reduce((a, b) => a + b, 0),
        'slots at the LB',
      ).to.equal(100);
      watcher = new WeightWatcher(rpc!, 200).start();
      const before = await dialogs();
      const r = await (await labLoad(lab!, 'uac-slots', 30, CALLS / 30)).done();
      const after = await dialogs();
      watcher.stop();
      expect(r.stats.successful, 'answered calls').to.equal(CALLS);
      const dealt = new Map([...SLOTS.keys()].map((id, i) => [id, after[i]! - before[i]!]));
      const lists = new Set(watcher.samples.map((s) => formatWeights(s.weights)));
      process.stdout.write(
        `      (dealt ${formatWeights(dealt)}; the LB's list in the run: ${[...lists].join(', ')})\n`,
      );
      expect(
        [...dealt.values()].reduce((a, b) => a + b, 0),
        'dialogs at the backends',
      ).to.equal(CALLS);
      // 300 picks from one 100-slot table deal each destination exactly 3 x its slots. A reload in the
      // middle (none is expected: the weights hold at this load) restarts the table: 2 calls of slack.
      for (const [id, n] of SLOTS) {
        expect(
          Math.abs(dealt.get(id)! - (CALLS / 100) * n),
          `${id}: ${dealt.get(id)} calls for ${n} slots`,
        ).to.be.at.most(2);
      }
      // Written as 32/58/100, be1 would have had 18 slots: 54 calls.
      expect(dealt.get('be1')!).to.be.below(54);
    });
  },
);
