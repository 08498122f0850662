/**
 * The pure pieces of fair admission between the LB's counters and its share entries: the
 * sipweigh_src dump, rates from counter deltas (resets included), which keys get a share of their
 * own, the entries to write (deadband, refresh, removal), the groups file, the sources report and
 * its bounded top list, and the limited/released events.
 */
import { expect } from 'chai';
import { formatAddressFile, groupKey } from '../../src/kamailio/address-file.js';
import { parseSourceDump, type SourceCounts } from '../../src/kamailio/source-table.js';
import {
  advanceRates,
  addCounts,
  counterDelta,
  demandOf,
  type KeyRates,
} from '../../src/scoring/source-rates.js';
import {
  DEMAND_MARGIN,
  MAX_TRACKED_KEYS,
  SHARE_TOLERANCE_US,
  entryWrites,
  planSetShares,
} from '../../src/scoring/source-shares.js';
import { groupPolicies, type NodeSources } from '../../src/push/source-link.js';
import { limitedEvents, monotonicOther, sourcesReport } from '../../src/controller/sources-report.js';

const dump = (items: Record<string, number | string>) => [
  {
    entry: 0,
    size: Object.keys(items).length,
    slot: Object.entries(items).map(([name, value]) => ({
      name,
      value,
      type: typeof value === 'number' ? 'int' : 'str',
    })),
  },
];
const counts = (offered: number, admitted: number, refused: number): SourceCounts => ({
  offered,
  admitted,
  refused,
});
const rates = (offered: number, refused = 0): KeyRates => ({
  offered,
  admitted: offered - refused,
  refused,
  smoothedOffered: offered,
});

describe('the LB source table (kamailio/source-table)', () => {
  it('reads counters, shares and tolerances per set; IPv6 keys keep their colons', () => {
    const t = parseSourceDump(
      dump({
        'off::1::10.0.0.1': 30,
        'adm::1::10.0.0.1': 20,
        'ref::1::10.0.0.1': 10,
        'off::1::2001:db8::1': 4,
        'off::2::g1': 7,
        'G::1::10.0.0.1': 40000,
        'G::1::*': 200000,
        'Gtau::1': 1000000,
        'Gtat::1::10.0.0.1': 123,
        'something-else': 'x',
      }),
    );
    expect(t.counters.get(1)?.get('10.0.0.1')).to.deep.equal(counts(30, 20, 10));
    expect(t.counters.get(1)?.get('2001:db8::1')).to.deep.equal(counts(4, 0, 0));
    expect(t.counters.get(2)?.get('g1')).to.deep.equal(counts(7, 0, 0));
    expect([...(t.shares.get(1) ?? [])]).to.deep.equal([
      ['10.0.0.1', 40000],
      ['*', 200000],
    ]);
    expect(t.tolerances.get(1)).to.equal(1000000);
  });

  it('refuses a reply that is not an htable dump, or a counter that is not an integer', () => {
    expect(() => parseSourceDump({ nope: 1 })).to.throw(/not an array/);
    expect(() => parseSourceDump(dump({ 'off::1::a': 'x' }))).to.throw(/not an integer/);
  });
});

describe('per-source rates from counter deltas (scoring/source-rates)', () => {
  const reading = (entries: [number, string, SourceCounts][]) => {
    const m = new Map<number, Map<string, SourceCounts>>();
    for (const [set, key, c] of entries) {
      if (!m.has(set)) m.set(set, new Map());
      m.get(set)!.set(key, c);
    }
    return m;
  };

  it('the first reading is a baseline; then deltas over the elapsed time', () => {
    const first = advanceRates(null, reading([[1, 'a', counts(100, 90, 10)]]), 0);
    expect(first.deltas.size).to.equal(0);
    const second = advanceRates(first.state, reading([[1, 'a', counts(150, 120, 30)]]), 1000);
    expect(second.deltas.get(1)?.get('a')).to.deep.equal(counts(50, 30, 20));
    const r = second.state.rates.get(1)?.get('a');
    expect(r?.offered).to.equal(50);
    expect(r?.refused).to.equal(20);
    expect(demandOf(r!)).to.equal(50);
  });

  it('a counter that went down was reset (LB restart): its value is what happened since', () => {
    const s0 = advanceRates(null, reading([[1, 'a', counts(1000, 1000, 0)]]), 0).state;
    const step = advanceRates(s0, reading([[1, 'a', counts(12, 10, 2)]]), 1000);
    expect(step.deltas.get(1)?.get('a')).to.deep.equal(counts(12, 10, 2));
  });

  it('a counter that wrapped past 2^31 - 1 (32-bit signed at the LB) counts modulo 2^32, never below 0', () => {
    const top = 2 ** 31 - 1;
    const s0 = advanceRates(null, reading([[1, 'a', counts(top - 5, top - 5, 0)]]), 0).state;
    // 10 more offered and admitted: 4 before the wrap, then -2^31 onwards.
    const step = advanceRates(s0, reading([[1, 'a', counts(-(2 ** 31) + 4, -(2 ** 31) + 4, 0)]]), 1000);
    expect(step.deltas.get(1)?.get('a')).to.deep.equal(counts(10, 10, 0));
    expect(step.state.rates.get(1)?.get('a')?.offered).to.equal(10);
    expect(counterDelta(-(2 ** 31) + 10, -(2 ** 31) + 4), 'past the wrap, a plain difference').to.equal(6);
    expect(counterDelta(-1, -3)).to.equal(2);
    expect(counterDelta(3, -2), 'unsigned 2^32 - 2 -> 3').to.equal(5);
    // A reset from high up (an LB restart) is not a wrap: what happened since.
    expect(counterDelta(7, 2 ** 31 - 100)).to.equal(7);
    expect(counterDelta(7, -(2 ** 30))).to.equal(7);
  });

  it('a key new since the last reading counts whole; a quiet key fades, its demand follows slowly', () => {
    let s = advanceRates(null, reading([]), 0).state;
    let step = advanceRates(s, reading([[1, 'new', counts(20, 20, 0)]]), 1000);
    expect(step.deltas.get(1)?.get('new')?.offered).to.equal(20);
    s = step.state;
    step = advanceRates(s, reading([[1, 'new', counts(20, 20, 0)]]), 2000);
    const quiet = step.state.rates.get(1)?.get('new');
    expect(quiet?.offered).to.equal(0);
    expect(quiet?.smoothedOffered).to.be.within(10, 20);
    expect(demandOf(quiet!)).to.equal(quiet?.smoothedOffered);
  });

  it('totals add up per set and key', () => {
    const t = new Map<number, Map<string, SourceCounts>>();
    addCounts(t, reading([[1, 'a', counts(1, 1, 0)]]));
    addCounts(
      t,
      reading([
        [1, 'a', counts(2, 1, 1)],
        [1, 'b', counts(5, 0, 5)],
      ]),
    );
    expect(t.get(1)?.get('a')).to.deep.equal(counts(3, 2, 1));
    expect(t.get(1)?.get('b')).to.deep.equal(counts(5, 0, 5));
  });
});

describe("one set's shares at one node (scoring/source-shares)", () => {
  const policy = { otherReserve: 0.05, groups: new Map() };

  it('flood + polite: the flood is limited, the polite source keeps a margin over its rate', () => {
    const s = planSetShares(
      100,
      new Map([
        ['flood', rates(1000)],
        ['polite', rates(20)],
      ]),
      policy,
    );
    expect(s.saturated).to.equal(true);
    expect(s.shares.get('polite')).to.be.closeTo(20 * DEMAND_MARGIN, 1e-6);
    expect(s.limited).to.deep.equal(['flood']);
    expect(s.entries.get('polite')).to.equal(40_000);
    expect(s.entries.get('*')).to.equal(200_000); // the 5 % reserve, no other source yet: one newcomer gets it all
    expect(s.toleranceUs).to.equal(SHARE_TOLERANCE_US);
  });

  it('not saturated by what is sent (even if the margin would be): nobody is shared below its rate', () => {
    // 60 + 30 sent under a limit of 100; with the margin they would ask 112.5.
    const s = planSetShares(
      100,
      new Map([
        ['a', rates(60)],
        ['b', rates(30)],
      ]),
      policy,
    );
    expect(s.saturated).to.equal(false);
    expect(s.limited).to.deep.equal([]);
    expect(s.shares.get('a')).to.be.at.least(60);
    expect(s.shares.get('b')).to.be.at.least(30);
  });

  it('not saturated: the other bucket (every newcomer) is sure of its reserve only, the spare goes through the set limiter', () => {
    const s = planSetShares(100, new Map([['a', rates(10)]]), policy);
    expect(s.saturated).to.equal(false);
    expect(s.shares.get('*')).to.be.closeTo(5, 1e-9);
    expect(s.entries.get('*')).to.equal(200_000);
    // Nothing yet (an idle pool): the newcomers' bucket is still the reserve, not the whole limit.
    const idle = planSetShares(100, new Map(), policy);
    expect(idle.entries.get('*')).to.equal(200_000);
    const sum = [...s.shares.values()].reduce((a, b) => a + b, 0);
    expect(sum).to.be.at.most(100 + 1e-9);
  });

  it('not saturated, many small sources past the tracked ones: the bucket is sure of what they send together', () => {
    const many = new Map<string, KeyRates>();
    for (let i = 0; i < MAX_TRACKED_KEYS + 40; i++) many.set(`10.8.${i >> 8}.${i & 255}`, rates(2));
    const s = planSetShares(1000, many, policy);
    expect(s.saturated).to.equal(false);
    expect(s.otherKeys).to.equal(40);
    // 40 sources x 2 calls/s = 80, above the 5 % reserve (50), far under the spare it could get.
    expect(s.shares.get('*')).to.be.closeTo(80, 1e-9);
    expect(s.entries.get('*')).to.equal(12_500);
  });

  it('groups: weight and guarantee of g<N>; keys past the tracked ones share "*"', () => {
    const groups = groupPolicies(
      {
        enabled: true,
        top_n: 10,
        other_reserve: 0.05,
        deadband: 0.1,
        groups: [{ name: 'trunk', networks: ['10.0.0.0/8'], weight: 3, guaranteed_cps: 60, trusted: true }],
      },
      0.5,
    );
    expect(groups.get('g1')).to.deep.equal({ name: 'trunk', weight: 3, guaranteedCps: 30 });
    const many = new Map<string, KeyRates>([['g1', rates(500)]]);
    for (let i = 0; i < MAX_TRACKED_KEYS + 10; i++) many.set(`10.9.${i >> 8}.${i & 255}`, rates(1 + (i % 3)));
    const s = planSetShares(100, many, { otherReserve: 0.05, groups });
    expect(s.otherKeys).to.equal(10);
    expect(s.entries.size).to.equal(MAX_TRACKED_KEYS + 2);
    // One limiter at the LB for the whole bucket: its entry is the bucket's share, never divided by its keys.
    expect(s.entries.get('*')).to.equal(Math.ceil(1e6 / (s.shares.get('*') ?? 0)));
    expect(s.shares.get('g1')).to.be.at.least(30);
  });

  it('entries to write: missing or moved beyond the deadband; all on refresh; removed when no longer tracked', () => {
    const desired = {
      entries: new Map([
        ['a', 10_000],
        ['b', 20_000],
        ['*', 200_000],
      ]),
      toleranceUs: 1_000_000,
    };
    const held = {
      shares: new Map([
        ['a', 10_500],
        ['b', 25_000],
        ['gone', 5],
      ]),
      toleranceUs: 1_000_000,
    };
    const w = entryWrites(desired, held, 0.1, false);
    expect(w.set).to.deep.equal([
      { key: 'b', value: 20_000 },
      { key: '*', value: 200_000 },
    ]);
    expect(w.remove).to.deep.equal(['gone']);
    expect(w.removeTolerance).to.equal(false);
    const all = entryWrites(desired, held, 0.1, true);
    expect(all.set.map((x) => x.key)).to.deep.equal([null, 'a', 'b', '*']);
    // A share that shrank (a longer interval) beyond 2 % goes out at once: the limit was cut.
    const shrunk = entryWrites(
      { entries: new Map([['a', 10_300]]), toleranceUs: 1_000_000 },
      { shares: new Map([['a', 10_000]]), toleranceUs: 1_000_000 },
      0.1,
      false,
    );
    expect(shrunk.set).to.deep.equal([{ key: 'a', value: 10_300 }]);
    const off = entryWrites(null, held, 0.1, false);
    expect(off).to.deep.equal({ set: [], remove: ['a', 'b', 'gone'], removeTolerance: true });
  });
});

describe('the source groups file (kamailio/address-file)', () => {
  it('one record per network: group from 1, network address, mask, any port, trust tag', () => {
    const text = formatAddressFile([
      { name: 'carrier-a', networks: ['192.0.2.0/24', '2001:db8::/48'], trusted: true },
      { name: 'sbc-b', networks: ['198.51.100.7'], trusted: false },
    ]);
    const records = text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
    expect(records).to.deep.equal([
      '1 192.0.2.0 24 0 trusted',
      '1 2001:db8:: 48 0 trusted',
      '2 198.51.100.7 32 0 limited',
    ]);
    expect(text).to.match(/^# g1: carrier-a$/m);
    expect(groupKey(1)).to.equal('g2');
    expect(
      formatAddressFile([])
        .split('\n')
        .filter((l) => l && !l.startsWith('#')),
    ).to.deep.equal([]);
    expect(() => formatAddressFile([{ name: 'x', networks: ['nope'], trusted: false }])).to.throw(/group x/);
  });
});

describe('the sources report and its events (controller/sources-report)', () => {
  const node = (name: string, refusedOf: Record<string, number>, limited: string[] = []): NodeSources => ({
    node: name,
    totals: new Map([
      [1, new Map(Object.entries(refusedOf).map(([k, r]) => [k, counts(100 + r, 100, r)] as const))],
    ]),
    folded: new Map(),
    rates: new Map([
      [1, new Map(Object.keys(refusedOf).map((k) => [k, rates(50, refusedOf[k]! > 0 ? 10 : 0)] as const))],
    ]),
    shares: new Map([
      [
        1,
        {
          limitCps: 100,
          saturated: limited.length > 0,
          shares: new Map([...Object.keys(refusedOf).map((k) => [k, 40] as const), ['*', 5] as const]),
          otherKeys: 0,
          entries: new Map(),
          toleranceUs: 1,
          limited,
        },
      ],
    ]),
  });

  it('top N by refused calls, summed over nodes; the rest as "other"; group names shown', () => {
    const r = sourcesReport(
      [node('lb1', { flood: 900, g1: 0, a: 5, b: 1 }, ['flood']), node('lb2', { flood: 800, a: 0 })],
      { fairness: true, topN: 2, groupNames: new Map([['g1', 'trunk']]) },
    );
    const set = r.sets[0]!;
    expect(set.saturated).to.equal(true);
    expect(set.sources.map((s) => s.source)).to.deep.equal(['flood', 'a']);
    expect(set.sources[0]).to.include({
      refused: 1700,
      offered: 1900,
      limited: true,
      share_cps: 80,
      offered_cps: 100,
    });
    expect(set.other).to.deep.equal({ sources: 2, offered: 201, admitted: 200, refused: 1 });
    const withGroup = sourcesReport([node('lb1', { g1: 0 })], {
      fairness: true,
      topN: 5,
      groupNames: new Map([['g1', 'trunk']]),
    });
    expect(withGroup.sets[0]?.sources[0]?.group).to.equal('trunk');
  });

  it('a source that starts or stops being limited is told once', () => {
    const first = limitedEvents(node('lb1', { flood: 9 }, ['flood']), new Set());
    expect(first.events).to.deep.equal([
      { type: 'source_limited', node: 'lb1', set: 1, source: 'flood', offered_cps: 50, share_cps: 40 },
    ]);
    expect(limitedEvents(node('lb1', { flood: 9 }, ['flood']), first.now).events).to.deep.equal([]);
    expect(limitedEvents(node('lb1', { flood: 0 }), first.now).events).to.deep.equal([
      { type: 'source_released', node: 'lb1', set: 1, source: 'flood' },
    ]);
  });
});

describe('the "other" series of sipweigh_source_calls_total (controller/sources-report)', () => {
  it('never goes down when a source moves into the top list; follows again once caught up', () => {
    let exported = monotonicOther(undefined, 120);
    expect(exported).to.equal(120);
    exported = monotonicOther(exported, 30); // a source of 95 calls moved into the top list
    expect(exported).to.equal(120);
    exported = monotonicOther(exported, 125);
    expect(exported).to.equal(125);
  });
});
