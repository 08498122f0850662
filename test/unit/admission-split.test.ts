/**
 * The admission limit's split over LB nodes (scoring/admission-split.ts) and each node's demand from
 * its counters (scoring/node-demand.ts), pure.
 */
import { expect } from 'chai';
import {
  DEFAULT_SPLIT,
  splitFractions,
  SPLIT_HYSTERESIS,
  stickySplit,
  withPeerMargin,
  type NodeDemand,
} from '../../src/scoring/admission-split.js';
import { demandRate, EMPTY_DEMAND, recordReading, type DemandState } from '../../src/scoring/node-demand.js';

const d = (node: string, demandCps: number | null, seen = demandCps !== null): NodeDemand => ({
  node,
  demandCps,
  seen,
});
const sum = (m: ReadonlyMap<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);

describe('admission split over LB nodes', function () {
  it('80/20 demand: parts within 10 % of 80/20, the floor kept, summing to exactly 1', function () {
    const f = splitFractions([d('lb1', 80), d('lb2', 20)], DEFAULT_SPLIT);
    expect(f.get('lb1')).to.be.closeTo(0.05 + 0.9 * 0.8, 1e-9);
    expect(f.get('lb2')).to.be.closeTo(0.05 + 0.9 * 0.2, 1e-9);
    expect(Math.abs(f.get('lb1')! / 0.8 - 1)).to.be.below(0.1);
    expect(sum(f)).to.be.closeTo(1, 1e-9);
  });

  it("all traffic on one node: it gets all but the others' floors", function () {
    const f = splitFractions([d('lb1', 0), d('lb2', 130), d('lb3', 0)], DEFAULT_SPLIT);
    expect(f.get('lb2')).to.be.closeTo(0.9, 1e-9);
    expect(f.get('lb1')).to.be.closeTo(0.05, 1e-9);
    expect(f.get('lb3')).to.be.closeTo(0.05, 1e-9);
  });

  it('no demand anywhere, none known, or by even: the same part for every node', function () {
    for (const nodes of [
      [d('a', 0), d('b', 0), d('c', 0)],
      [d('a', null), d('b', null), d('c', null)],
    ]) {
      const f = splitFractions(nodes, DEFAULT_SPLIT);
      expect([...f.values()]).to.deep.equal([0.34, 0.33, 0.33]);
    }
    const even = splitFractions([d('a', 90), d('b', 10)], { ...DEFAULT_SPLIT, by: 'even' });
    expect([...even.values()]).to.deep.equal([0.5, 0.5]);
  });

  it('a node seen before and unread since (it died) gets the floor; one never read counts as the busiest', function () {
    const gone = splitFractions([d('a', 50), d('b', null, true)], DEFAULT_SPLIT);
    expect(gone.get('b')).to.be.closeTo(0.05, 1e-9);
    expect(gone.get('a')).to.be.closeTo(0.95, 1e-9);
    // A peer this controller never read may be serving calls: never split as if it were idle.
    const never = splitFractions([d('a', 50), d('b', null, false)], DEFAULT_SPLIT);
    expect(never.get('a')).to.be.closeTo(0.5, 1e-9);
  });

  it('a floor finer than a step is rounded up to a step, not lost', function () {
    const f = splitFractions([d('a', 100), d('b', 0)], { ...DEFAULT_SPLIT, floor: 0.004 });
    expect(f.get('b')).to.be.closeTo(0.01, 1e-9);
  });

  it('the split in force holds against jitter under the hysteresis, and moves past it', function () {
    const held = splitFractions([d('a', 80), d('b', 20)], DEFAULT_SPLIT);
    const jitter = splitFractions([d('a', 83), d('b', 17)], DEFAULT_SPLIT);
    expect(stickySplit(held, jitter, SPLIT_HYSTERESIS)).to.equal(held);
    const moved = splitFractions([d('a', 20), d('b', 80)], DEFAULT_SPLIT);
    expect(stickySplit(held, moved, SPLIT_HYSTERESIS)).to.equal(moved);
    const third = splitFractions([d('a', 80), d('b', 20), d('c', 0)], DEFAULT_SPLIT);
    expect(stickySplit(held, third, SPLIT_HYSTERESIS), 'another node set').to.equal(third);
    expect(stickySplit(null, held, SPLIT_HYSTERESIS)).to.equal(held);
  });

  it('a floor above 1/N is cut to 1/N (an even split), never a sum above 1', function () {
    const f = splitFractions([d('a', 100), d('b', 0), d('c', 0)], { ...DEFAULT_SPLIT, floor: 0.5 });
    expect(sum(f)).to.be.closeTo(1, 1e-9);
    expect(f.get('b')).to.be.closeTo(0.33, 0.011);
  });

  it('property: parts are whole steps, at least the floor, monotone in demand, and sum to 1', function () {
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let trial = 0; trial < 500; trial++) {
      const n = 1 + Math.floor(rnd() * 5);
      const nodes = Array.from({ length: n }, (_, i) => d(`n${i}`, rnd() < 0.2 ? 0 : rnd() * 200));
      const f = splitFractions(nodes, DEFAULT_SPLIT);
      expect(sum(f)).to.be.closeTo(1, 1e-9);
      for (const v of f.values()) {
        expect(Math.abs(v * 100 - Math.round(v * 100))).to.be.below(1e-9);
        expect(v).to.be.at.least(Math.min(0.05, 1 / n) - 1e-9);
      }
      // More demand at node 0, the rest unchanged: its part does not shrink.
      const more = splitFractions(
        [d('n0', (nodes[0]!.demandCps ?? 0) + 50), ...nodes.slice(1)],
        DEFAULT_SPLIT,
      );
      expect(more.get('n0')).to.be.at.least(f.get('n0')! - 1e-9);
    }
  });

  it('two controllers reading the same demands in any order make the same split', function () {
    const a = splitFractions([d('lb1', 33.3), d('lb2', 66.7)], DEFAULT_SPLIT);
    const b = splitFractions([d('lb2', 66.7), d('lb1', 33.3)], DEFAULT_SPLIT);
    expect(a.get('lb1')).to.equal(b.get('lb1'));
    expect(a.get('lb2')).to.equal(b.get('lb2'));
  });
});

describe('a controller per LB node: one step per peer held back', function () {
  it('two views one step apart still sum to at most the pool limit', function () {
    const step = DEFAULT_SPLIT.step;
    // Controller 1 read lb1 a little busier than controller 2 did, and vice versa.
    const seen1 = splitFractions([d('lb1', 80.6), d('lb2', 19.4)], DEFAULT_SPLIT);
    const seen2 = splitFractions([d('lb1', 79.4), d('lb2', 20.6)], DEFAULT_SPLIT);
    expect(seen1.get('lb1')! + seen2.get('lb2')!, 'without the margin').to.be.above(1);
    const one = withPeerMargin(seen1, new Set(['lb1']), 1, step);
    const two = withPeerMargin(seen2, new Set(['lb2']), 1, step);
    expect(one.get('lb1')! + two.get('lb2')!).to.be.at.most(1 + 1e-9);
    // Each controller also holds its split against jitter from its own history: held splits up to
    // the hysteresis apart each way; the margin (hysteresis + a step) still keeps the sum at 1.
    const margin = SPLIT_HYSTERESIS + step;
    const held1 = splitFractions([d('lb1', 84), d('lb2', 16)], DEFAULT_SPLIT);
    const held2 = splitFractions([d('lb1', 76), d('lb2', 24)], DEFAULT_SPLIT);
    expect(held1.get('lb1')! + held2.get('lb2')!, 'held splits apart').to.be.above(1.05);
    const a = withPeerMargin(held1, new Set(['lb1']), 1, margin);
    const b = withPeerMargin(held2, new Set(['lb2']), 1, margin);
    expect(a.get('lb1')! + b.get('lb2')!).to.be.at.most(1 + 1e-9);
    expect(one.get('lb2'), 'a peer part is not pushed: left as computed').to.equal(seen1.get('lb2'));
  });

  it('no peers (one controller for every node): no margin', function () {
    const f = splitFractions([d('lb1', 80), d('lb2', 20)], DEFAULT_SPLIT);
    expect(withPeerMargin(f, new Set(['lb1', 'lb2']), 0, DEFAULT_SPLIT.step)).to.deep.equal(f);
  });
});

describe("an LB node's demand from its counters", function () {
  const p = { windowMs: 2000, staleMs: 4000 };
  const feed = (readings: [number, number][]): DemandState =>
    readings.reduce((s, [at, offered]) => recordReading(s, { at, offered }, p), EMPTY_DEMAND);

  it('the rate over the window; unknown from one reading', function () {
    expect(demandRate(feed([[0, 100]]), 0, p)).to.deep.equal({ cps: null, seen: false });
    const s = feed([
      [0, 0],
      [500, 10],
      [1000, 20],
      [1500, 30],
      [2000, 40],
      [2500, 90],
    ]);
    // The reading at 0 left the window: 80 calls from 500 to 2500 ms.
    expect(demandRate(s, 2500, p).cps).to.equal(40);
  });

  it('a moved load shows in full within one window', function () {
    const readings: [number, number][] = [];
    let offered = 0;
    for (let t = 0; t <= 10000; t += 500) {
      offered += t <= 5000 ? 10 : 0; // 20 calls/s, then none (the VIP moved away)
      readings.push([t, offered]);
    }
    expect(demandRate(feed(readings.slice(0, 11)), 5000, p).cps).to.equal(20);
    expect(demandRate(feed(readings.slice(0, 16)), 7500, p).cps).to.equal(0);
  });

  it('a counter that went down is a restarted node: history dropped, its last rate held meanwhile', function () {
    const s = feed([
      [0, 1000],
      [500, 1010],
      [1000, 3],
    ]);
    expect(s.readings).to.have.length(1);
    expect(demandRate(s, 1000, p).cps, 'held, not unknown').to.equal(20);
    expect(demandRate(recordReading(s, { at: 1500, offered: 23 }, p), 1500, p).cps).to.equal(40);
  });

  it('a node unread for longer than staleMs has no known demand', function () {
    const s = feed([
      [0, 0],
      [1000, 20],
    ]);
    expect(demandRate(s, 5000, p).cps).to.equal(20);
    expect(demandRate(s, 5001, p)).to.deep.equal({ cps: null, seen: true });
  });
});
