/**
 * The demand watch (src/controller/demand-watch.ts) with a fake counters reader (named so: it
 * stands for an LB's RPC/MI), and the counters' reply parsing (src/push/admission-counters.ts).
 */
import { expect } from 'chai';
import type { AdmissionSplitConfig } from '../../src/config/types.js';
import { DemandWatch, PEER_MARGIN, type DemandNode } from '../../src/controller/demand-watch.js';
import type { ControllerEvent } from '../../src/controller/events.js';
import { CountersReplyError, offeredFrom, type CountersReader } from '../../src/push/admission-counters.js';

const rpc = { url: 'http://127.0.0.1:5071/RPC', timeout_ms: 2000 };
const node = (name: string, own: boolean): DemandNode => ({ name, kind: 'kamailio', rpc, own });
const split: AdmissionSplitConfig = { by: 'demand', floor: 0.05, window_ms: 2000, peers: [] };

/** A fake LB counter: `offered` grows as the test says; `fail` makes reads reject; `hang` never answers. */
class FakeCounters implements CountersReader {
  offeredNow = 0;
  fail: string | null = null;
  hang = false;
  reads = 0;
  constructor(readonly node: string) {}
  offered(signal?: AbortSignal): Promise<number> {
    this.reads++;
    if (this.hang)
      return new Promise((_, reject) =>
        signal?.addEventListener('abort', () => reject(new Error('aborted'))),
      );
    return this.fail ? Promise.reject(new Error(this.fail)) : Promise.resolve(this.offeredNow);
  }
  close(): void {}
}

const settle = () => new Promise((r) => setImmediate(r));

describe('demand watch: every LB node read, its demand and the split', function () {
  it('a failing node is told once and counted; a node still answering is not read again', async function () {
    const fakes = new Map<string, FakeCounters>();
    const events: ControllerEvent[] = [];
    const w = new DemandWatch(
      [node('lb1', true), node('lb2', false)],
      () => ({ enabled: true, split }),
      (e) => events.push(e),
      (n) => {
        const f = new FakeCounters(n.name);
        fakes.set(n.name, f);
        return f;
      },
    );
    const [lb1, lb2] = [fakes.get('lb1')!, fakes.get('lb2')!];
    lb2.fail = 'ECONNREFUSED';
    for (let i = 0; i < 3; i++) {
      w.tick();
      await settle();
    }
    expect(events).to.deep.equal([{ type: 'node_demand_failed', node: 'lb2', error: 'ECONNREFUSED' }]);
    expect(w.status(1000).find((s) => s.node === 'lb2')).to.include({
      read_errors: 3,
      last_error: 'ECONNREFUSED',
    });
    lb2.fail = null;
    w.tick();
    await settle();
    expect(events.map((e) => e.type)).to.deep.equal(['node_demand_failed', 'node_demand_ok']);
    lb1.hang = true;
    w.tick();
    w.tick();
    expect(lb1.reads, 'not read again while a read is in flight').to.equal(5);
    // stop() aborts the hung read rather than waiting for its deadline, and tells nothing after.
    await w.stop();
    expect(events).to.have.length(2);
  });

  it('reads nothing with admission off, by even, or a single node', async function () {
    for (const [enabled, by, nodes] of [
      [false, 'demand', 2],
      [true, 'even', 2],
      [true, 'demand', 1],
    ] as const) {
      const fakes: FakeCounters[] = [];
      const w = new DemandWatch(
        [node('lb1', true), node('lb2', false)].slice(0, nodes),
        () => ({ enabled, split: { ...split, by } }),
        () => undefined,
        (n) => {
          const f = new FakeCounters(n.name);
          fakes.push(f);
          return f;
        },
      );
      w.tick();
      await settle();
      expect(fakes.map((f) => f.reads)).to.deep.equal(fakes.map(() => 0));
      expect([...w.split(0).values()].reduce((a, b) => a + b, 0)).to.be.closeTo(
        nodes === 1 ? 1 : 1 - PEER_MARGIN,
        1e-9,
      );
      await w.stop();
    }
  });
});

describe('admission counters from an LB reply', function () {
  it('Kamailio stats.fetchn and OpenSIPS get_statistics: admitted + refused', function () {
    expect(
      offeredFrom(
        { 'script.sipweigh_admitted': 90, 'script.sipweigh_admission_503': 10, 'script.x': 5 },
        '.',
      ),
    ).to.equal(100);
    expect(
      offeredFrom({ 'script:sipweigh_admitted': '7', 'script:sipweigh_admission_503': '3' }, ':'),
    ).to.equal(10);
  });

  it('an LB without admission control (no counters) or a reply of another shape is an error, not 0', function () {
    expect(() => offeredFrom({ 'script.sipweigh_dispatched': 5 }, '.')).to.throw(
      CountersReplyError,
      /admission control/,
    );
    expect(() => offeredFrom([1, 2], '.')).to.throw(CountersReplyError);
    expect(() => offeredFrom(null, '.')).to.throw(CountersReplyError);
  });
});
