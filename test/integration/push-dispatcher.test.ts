/**
 * The dispatcher push against real Kamailio 5.6.3 LBs (src/lab/kamailio/lb.cfg) on 127.0.7.10 and .20, the
 * list file written locally: weights and states land, survive an operator's reload and a restart,
 * an in-sync push writes and reloads nothing, failures leave the LB on its previous list, and the
 * NodeSync machinery backs off from an unreachable LB and converges when it returns.
 */
import { expect } from 'chai';
import { readFileSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DispatcherPusher, dispatcherApplier, type PushOutcome } from '../../src/push/pusher.js';
import type { Destination } from '../../src/kamailio/dispatcher-list.js';
import { LocalListFile } from '../../src/push/transports/local-file.js';
import { NodeSync, type NodeSyncStatus, type SyncOutcome } from '../../src/push/node-sync.js';
import { NodeSyncFanout } from '../../src/push/fanout.js';
import type { KamailioInstance } from '../../src/lab/kamailio.js';
import { eventually, useProcessGroup } from '../support/harness.js';
import { destinations, linesOf, listedLines, testLb, type TestLb } from './push-lb.js';

const FAST_BACKOFF = { initialMs: 100, maxMs: 800, factor: 2, jitter: 0.2 };

describe('integration: dispatcher push into a real LB', function () {
  this.timeout(120_000);
  const h = useProcessGroup('push');
  let lb: TestLb;
  let instance: KamailioInstance;
  let pusher: DispatcherPusher;
  const initial = destinations(3);

  before(async function () {
    lb = testLb(h.group, 'lb1', '127.0.7.10', initial);
    instance = await lb.start();
    pusher = new DispatcherPusher({ rpc: lb.rpc, transport: new LocalListFile({ path: lb.listFile }) });
  });
  after(() => lb?.rpc.client.close());

  const desiredA: Destination[] = [
    { ...initial[0]!, rweight: 70 },
    { ...initial[1]!, rweight: 20, state: 'inactive' },
    { ...initial[2]!, rweight: 10, state: 'disabled' },
  ];

  it('pushes weights and states: applied with the changes, visible in dispatcher.list', async function () {
    expect(await listedLines(lb.rpc)).to.deep.equal(linesOf(initial));
    const out = await pusher.push(desiredA);
    expect(out.kind, JSON.stringify(out)).to.equal('applied');
    if (out.kind !== 'applied') return;
    expect(out.changes.map((c) => c.kind)).to.deep.equal(['changed', 'changed', 'changed']);
    expect(out.durations.writeMs).to.be.a('number');
    expect(out.durations.reloadMs).to.be.a('number');
    expect(out.durations.verifyMs).to.be.a('number');
    expect(await listedLines(lb.rpc)).to.deep.equal(linesOf(desiredA));
  });

  it('an in-sync push writes nothing and reloads nothing (cache, then a forced read)', async function () {
    const inode = statSync(lb.listFile).ino;
    const reloads = lb.rpc.count('dispatcher.reload');
    const lists = lb.rpc.count('dispatcher.list');
    const cached = await pusher.push(desiredA);
    expect(cached).to.deep.include({ kind: 'in_sync', checkedBy: 'cache' });
    expect(lb.rpc.count('dispatcher.list')).to.equal(lists);
    // Order is not drift: the reversed list is in sync after a read.
    const read = await pusher.push([...desiredA].reverse());
    expect(read).to.deep.include({ kind: 'in_sync', checkedBy: 'read' });
    const forced = await pusher.push(desiredA, { force: true });
    expect(forced).to.deep.include({ kind: 'in_sync', checkedBy: 'read' });
    expect(lb.rpc.count('dispatcher.list')).to.equal(lists + 2);
    expect(lb.rpc.count('dispatcher.reload')).to.equal(reloads);
    expect(statSync(lb.listFile).ino).to.equal(inode);
  });

  it("states survive an operator's dispatcher.reload, a set_state and a Kamailio restart", async function () {
    await lb.rpc.call('dispatcher.reload');
    expect(await listedLines(lb.rpc)).to.deep.equal(linesOf(desiredA));
    // An operator's set_state is drift: a forced push (reconcile) repairs it.
    await lb.rpc.call('dispatcher.set_state', ['i', 1, initial[0]!.uri]);
    const repaired = await pusher.push(desiredA, { force: true });
    expect(repaired.kind, JSON.stringify(repaired)).to.equal('applied');
    expect(await listedLines(lb.rpc)).to.deep.equal(linesOf(desiredA));
    await instance.process.stop();
    instance = await lb.start();
    expect(await listedLines(lb.rpc)).to.deep.equal(linesOf(desiredA));
  });

  it('a write that fails does not reload: the LB stays on its list', async function () {
    const before = await listedLines(lb.rpc);
    const reloads = lb.rpc.count('dispatcher.reload');
    const broken = new DispatcherPusher({
      rpc: lb.rpc,
      transport: new LocalListFile({ path: join(h.group.runDir, 'no-such-dir', 'lb1.list') }),
    });
    const out = await broken.push(destinations(3, () => 33));
    expect(out).to.deep.include({ kind: 'failed', stage: 'write' });
    expect(lb.rpc.count('dispatcher.reload')).to.equal(reloads);
    expect(await listedLines(lb.rpc)).to.deep.equal(before);
  });

  it('a list Kamailio loads only in part is rolled back: the LB ends on its previous list', async function () {
    const before = await listedLines(lb.rpc);
    const bad: Destination[] = [
      ...destinations(3, () => 44),
      { setId: 1, uri: 'sip:no-such-host.invalid:5060', state: 'active', rweight: 10, duid: 'ghost' },
    ];
    const out = await pusher.push(bad);
    expect(out.kind).to.equal('failed');
    if (out.kind !== 'failed' || out.stage !== 'verify')
      throw new Error(`expected a verify failure: ${JSON.stringify(out)}`);
    expect(out.reason).to.include('+1 sip:no-such-host.invalid:5060');
    expect(out.rollback).to.deep.equal({ kind: 'reloaded' });
    expect(await listedLines(lb.rpc)).to.deep.equal(before);
    // And the next push of a good list starts from a read, not from a stale cache.
    const again = await pusher.push(desiredA);
    expect(again).to.deep.include({ kind: 'in_sync', checkedBy: 'read' });
  });

  it('a reload Kamailio refuses (its list file gone) fails at the reload stage; the LB keeps its list', async function () {
    const before = await listedLines(lb.rpc);
    // A controller configured with another path than the LB's list_file, and that file deleted.
    renameSync(lb.listFile, `${lb.listFile}.away`);
    try {
      const elsewhere = new DispatcherPusher({
        rpc: lb.rpc,
        transport: new LocalListFile({ path: join(h.group.runDir, 'elsewhere.list') }),
      });
      const out = await elsewhere.push(destinations(3, () => 66));
      expect(out).to.deep.include({ kind: 'failed', stage: 'reload' });
      if (out.kind === 'failed') expect(out.reason).to.include('Reload Failed');
      expect(await listedLines(lb.rpc)).to.deep.equal(before);
    } finally {
      renameSync(`${lb.listFile}.away`, lb.listFile);
    }
  });

  it('an unreachable LB: failed outcomes, growing backoff, no crash; converges once it is back', async function () {
    const outcomes: SyncOutcome<PushOutcome>[] = [];
    const waits: number[] = [];
    const sync = new NodeSync<readonly Destination[], PushOutcome>({
      node: 'lb1',
      apply: dispatcherApplier(pusher),
      backoff: FAST_BACKOFF,
      onOutcome: (o, st: NodeSyncStatus<PushOutcome>) => {
        outcomes.push(o);
        if (st.phase === 'waiting_retry') waits.push(st.nextRetryAt - o.at);
      },
    });
    try {
      await instance.process.stop();
      const desiredB = destinations(3, (i) => 10 + i);
      sync.submit(desiredB);
      await eventually(() => outcomes.length >= 5, 'five failed attempts', 30_000);
      expect(outcomes.every((o) => !o.ok)).to.equal(true);
      const first = outcomes[0]!;
      expect(first.ok === false && first.result?.kind === 'failed' && first.result.stage).to.equal('read');
      expect(sync.status().consecutiveFailures).to.be.at.least(5);
      // Nominal 100, 200, 400, 800, 800 ms with ±20 % jitter: the fourth wait exceeds the first.
      expect(waits[3]!).to.be.greaterThan(waits[0]! * 2);
      expect(Math.max(...waits)).to.be.at.most(800 * 1.2 + 5);
      instance = await lb.start();
      await eventually(() => sync.status().lastOutcome?.ok, 'converged after the LB returned', 30_000);
      expect(sync.status().consecutiveFailures).to.equal(0);
      expect(await listedLines(lb.rpc)).to.deep.equal(linesOf(desiredB));
    } finally {
      await sync.close();
    }
  });

  it('two LB nodes, one down: the other gets its push, each has its own result', async function () {
    const lb2 = testLb(h.group, 'lb2', '127.0.7.20', initial); // never started: RPC port closed
    const fan = new NodeSyncFanout<readonly Destination[], PushOutcome>(
      [lb, lb2].map((node) => ({
        name: node.name,
        apply: dispatcherApplier(
          new DispatcherPusher({ rpc: node.rpc, transport: new LocalListFile({ path: node.listFile }) }),
        ),
      })),
      { backoff: FAST_BACKOFF },
    );
    try {
      const desiredC = destinations(3, (i) => 90 - i * 30);
      fan.submit(desiredC);
      const status = () => [fan.statusOf('lb1')!, fan.statusOf('lb2')!];
      await eventually(() => status().every((s) => s.lastOutcome !== null), 'both nodes answered', 30_000);
      const [one, two] = status();
      expect(one!.lastOutcome).to.deep.include({ ok: true, node: 'lb1' });
      expect(two!.lastOutcome).to.deep.include({ ok: false, node: 'lb2' });
      // lb2 keeps retrying: waiting for its next attempt, or (on a busy runner, 100 ms later) in it.
      expect(['waiting_retry', 'applying']).to.include(two!.phase);
      expect(two!.consecutiveFailures).to.be.at.least(1);
      expect(await listedLines(lb.rpc)).to.deep.equal(linesOf(desiredC));
      // lb2's file was never written: its push failed at the read, before any write.
      expect(readFileSync(lb2.listFile, 'utf8')).to.not.include('rweight=90');
    } finally {
      await fan.close();
      lb2.rpc.client.close();
    }
  });
});
