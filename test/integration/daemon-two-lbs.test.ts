/**
 * One controller, two LB nodes (lab on 127.33.x.x: the lab's LB lb1 and a second Kamailio LB lb2 on
 * 127.33.0.20 with its own list file). Seen from outside: both LBs hold the same weights and each
 * half of the pool's admission limit; lb2 restarted on a stale list, or changed by hand behind the
 * controller, is repaired by the reconcile while lb1 is untouched (its list never changes, and
 * /metrics counts no push to it).
 */
import { expect } from 'chai';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { admissionLimiterName, readLimiters } from '../../src/kamailio/admission.js';
import { fetchEffectiveWeights } from '../../src/kamailio/fetch-dispatcher-list.js';
import type { KamailioRpcClient } from '../../src/kamailio/rpc.js';
import type { KamailioInstance } from '../../src/lab/kamailio.js';
import { extraLbRpc, startDaemonLab, startExtraLb, type DaemonLab } from '../support/daemon-lab.js';
import { eventually } from '../support/harness.js';
import { formatWeights, WeightWatcher } from '../support/lb-watch.js';
import { sample, waitReady, type Sample } from './api-support.js';

const LB2_IP = '127.33.0.20';
const STALE =
  '1 sip:127.33.0.11:5060 1 0 duid=be1;rweight=7\n1 sip:127.33.0.12:5060 0 0 duid=be2;rweight=3\n';

describe('two LB nodes behind one controller (real lab on 127.33.x.x)', function () {
  this.timeout(240000);
  let d: DaemonLab | undefined;
  let lb2: KamailioInstance | undefined;
  let rpc2: KamailioRpcClient | undefined;
  let lb2List = '';
  let watcher1: WeightWatcher | undefined;

  const lb2Weights = () => fetchEffectiveWeights(rpc2!, { deadlineMs: 2000 });
  // Two equal backends: 50 slots of the LB's 100 each (src/push/rweight-slots.ts).
  const bothHalf = (w: ReadonlyMap<string, number> | null) => w?.get('be1') === 50 && w.get('be2') === 50;
  const metric = (m: Sample[], name: string, labels: Record<string, string>) =>
    sample(m, name, labels)?.value ?? 0;

  before(async function () {
    d = await startDaemonLab({ backends: 2, net: 33 });
    lb2List = join(d.lab.state.dir, 'dispatcher-lb2.list');
    // lb2 starts on a stale list: the controller brings it in line with lb1.
    writeFileSync(lb2List, STALE);
    lb2 = await startExtraLb(d.lab, 'lb2', LB2_IP, lb2List);
    rpc2 = extraLbRpc(d.lab, LB2_IP);
    const cfg = d.labConfig();
    const lb1 = cfg.lb_nodes[0]!;
    cfg.lb_nodes.push({
      ...lb1,
      name: 'lb2',
      rpc: { ...(lb1.rpc as object), url: `http://${LB2_IP}:5071/RPC` },
      dispatcher_list: { path: lb2List },
    });
    d.startController(cfg);
    await waitReady(d.base);
  });

  after(async function () {
    watcher1?.stop();
    rpc2?.close();
    await d?.stop();
  });

  it('both LBs hold the same weights, and the API and /metrics say so per node', async function () {
    await eventually(
      async () => bothHalf(await d!.lbWeights()) && bothHalf(await lb2Weights()),
      'be1 and be2 at 50 slots on both LBs',
      60000,
      200,
    );
    const lines = async (rpc: KamailioRpcClient) =>
      formatWeights((await fetchEffectiveWeights(rpc, { deadlineMs: 2000 }))!);
    expect(await lines(rpc2!)).to.equal(await lines(d!.rpc));
    // The API shows what the controller last verified on each node: lb1's list may be right from the
    // lab's start before the controller has read it back, so wait for the API too.
    const be1 = await eventually(
      async () => {
        const b = await d!.backend('be1');
        return b?.weights.lb1 === 50 && b.weights.lb2 === 50 ? b : null;
      },
      'the API shows be1 at 50 on both LB nodes',
      30000,
      200,
    );
    expect(be1.weights).to.deep.equal({ lb1: 50, lb2: 50 });
    const m = await d!.metrics();
    for (const node of ['lb1', 'lb2']) {
      expect(metric(m, 'sipweigh_backend_weight', { backend: 'be2', node }), node).to.equal(50);
      expect(metric(m, 'sipweigh_lb_node_synced', { node }), node).to.equal(1);
    }
  });

  it('each LB enforces half of the pool’s admission limit', async function () {
    const limit = async (rpc: KamailioRpcClient) =>
      (await readLimiters(rpc)).get(admissionLimiterName(1))?.limitCps;
    // Pool 2 x 100 calls/s x headroom 0.92, split over two LB nodes: 92 each.
    await eventually(
      async () => {
        const [a, b] = [await limit(d!.rpc), await limit(rpc2!)];
        return (
          a !== undefined &&
          b !== undefined &&
          a !== null &&
          b !== null &&
          Math.abs(a - 92) < 1 &&
          Math.abs(b - 92) < 1
        );
      },
      'a limit of 92 calls/s at each LB',
      30000,
    );
  });

  it('lb2 restarted on a stale list is repaired by the reconcile; lb1 is untouched', async function () {
    const m0 = await d!.metrics();
    const applied1 = metric(m0, 'sipweigh_lb_pushes_total', { node: 'lb1', outcome: 'applied' });
    const repairs2 = metric(m0, 'sipweigh_lb_drift_repairs_total', { node: 'lb2' });
    watcher1 = new WeightWatcher(d!.rpc, 100).start();
    await lb2!.process.stop();
    writeFileSync(lb2List, STALE);
    lb2 = await startExtraLb(d!.lab, 'lb2', LB2_IP, lb2List);
    expect((await lb2Weights())?.get('be1')).to.equal(0);
    await eventually(async () => bothHalf(await lb2Weights()), 'lb2 repaired', 30000, 200);
    // The restarted LB lost its admission limit with its memory: set again.
    await eventually(
      async () => {
        const l = (await readLimiters(rpc2!)).get(admissionLimiterName(1))?.limitCps;
        return typeof l === 'number' && Math.abs(l - 92) < 1;
      },
      'lb2’s admission limit set again',
      30000,
    );
    const m1 = await d!.metrics();
    expect(metric(m1, 'sipweigh_lb_drift_repairs_total', { node: 'lb2' })).to.be.greaterThan(repairs2);
    expect(metric(m1, 'sipweigh_lb_pushes_total', { node: 'lb1', outcome: 'applied' })).to.equal(applied1);
    // A few readings of lb1 after the repair as well, then all of them: never changed.
    const w1 = watcher1;
    const n = w1.samples.length;
    await eventually(() => w1.samples.length >= n + 5, 'more readings of lb1', 30000);
    expect(w1.samples.every((s) => bothHalf(s.weights))).to.equal(true);
  });

  it('lb2 changed by hand (set_state inactive) is repaired too; lb1 still untouched', async function () {
    const applied1 = metric(await d!.metrics(), 'sipweigh_lb_pushes_total', {
      node: 'lb1',
      outcome: 'applied',
    });
    const from = watcher1!.samples.length;
    await rpc2!.call('dispatcher.set_state', ['i', 1, 'sip:127.33.0.12:5060']);
    expect((await lb2Weights())?.get('be2')).to.equal(0);
    await eventually(async () => bothHalf(await lb2Weights()), 'lb2 repaired again', 30000, 200);
    expect(
      metric(await d!.metrics(), 'sipweigh_lb_pushes_total', { node: 'lb1', outcome: 'applied' }),
    ).to.equal(applied1);
    const w1 = watcher1!;
    const n = w1.samples.length;
    await eventually(() => w1.samples.length >= n + 5, 'more readings of lb1', 30000);
    const since = w1.samples.slice(from);
    expect(since.every((s) => bothHalf(s.weights))).to.equal(true);
  });
});
