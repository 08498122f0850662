import { expect } from 'chai';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { describeDifference, diffDispatcher } from '../../src/push/diff.js';
import {
  formatDispatcherList,
  formatListedTargets,
  type Destination,
} from '../../src/kamailio/dispatcher-list.js';
import { parseDispatcherList, type DispatcherTarget } from '../../src/kamailio/dispatcher-list-reply.js';

/** dispatcher.list of a real Kamailio 5.6.3 loaded with push-fixtures/dispatcher-flags.list. */
function listed(): DispatcherTarget[] {
  const reply: unknown = JSON.parse(
    readFileSync(new URL('./push-fixtures/dispatcher-list-5.6.3-flags.json', import.meta.url), 'utf8'),
  );
  const r = parseDispatcherList(reply);
  if (!r.ok) throw new Error(r.error);
  return [...r.targets];
}

const dest = (n: number, over: Partial<Destination> = {}): Destination => ({
  setId: 1,
  uri: `sip:127.0.7.${n}:5060`,
  state: 'active',
  rweight: 50,
  duid: String.fromCharCode(96 + n - 100),
  ...over,
});

/** The desired list that matches the fixture exactly, except what a test changes. */
const matching = (): Destination[] => [
  dest(101, { rweight: 50 }),
  dest(102, { rweight: 30, state: 'inactive' }),
  dest(103, { rweight: 20, state: 'disabled', priority: 5 }),
  dest(104, { rweight: 20 }),
  dest(106, { rweight: 10 }),
  {
    setId: 2,
    uri: 'sip:127.0.7.105:5060',
    state: 'active',
    rweight: 100,
    duid: 'e',
    extraAttrs: { sw_agent: '127.0.7.105:7070' },
  },
];

describe('push: dispatcher diff against a real 5.6.3 dispatcher.list', function () {
  it('reads flags AX, IX, DX, AP, TX and rweight/priority/duid from the fixture', function () {
    const byUri = new Map(listed().map((t) => [t.uri, t]));
    expect(byUri.get('sip:127.0.7.102:5060')).to.include({ state: 'inactive', probing: 'none', rweight: 30 });
    expect(byUri.get('sip:127.0.7.103:5060')).to.include({ state: 'disabled', priority: 5 });
    expect(byUri.get('sip:127.0.7.104:5060')).to.include({ state: 'active', probing: 'probing' });
    expect(byUri.get('sip:127.0.7.106:5060')).to.include({ state: 'trying', probing: 'none' });
  });

  it('is in sync only where Kamailio shows what sipweigh would write; probing and trying are drift', function () {
    const d = diffDispatcher(matching(), listed());
    expect(d.inSync).to.equal(false);
    expect(d.differences.map(describeDifference)).to.deep.equal([
      '~1 sip:127.0.7.104:5060 state active+probing→active',
      '~1 sip:127.0.7.106:5060 state trying→active',
    ]);
  });

  it('ignores order; reports weight, state, priority and attrs changes, additions and removals', function () {
    const targets = listed().filter(
      (t) => t.uri !== 'sip:127.0.7.104:5060' && t.uri !== 'sip:127.0.7.106:5060',
    );
    const desired = matching()
      .filter((d) => d.uri !== 'sip:127.0.7.104:5060' && d.uri !== 'sip:127.0.7.106:5060')
      .reverse();
    expect(diffDispatcher(desired, targets)).to.deep.equal({ inSync: true, differences: [] });

    const changed = desired.map((d) => {
      if (d.uri.endsWith('101:5060')) return { ...d, rweight: 7 };
      if (d.uri.endsWith('102:5060')) return { ...d, state: 'active' as const, priority: 2 };
      if (d.uri.endsWith('105:5060')) return { ...d, extraAttrs: {} };
      return d;
    });
    changed.push(dest(120, { duid: 'new' }));
    const gone = changed.filter((d) => !d.uri.endsWith('103:5060'));
    expect(diffDispatcher(gone, targets).differences.map(describeDifference)).to.deep.equal([
      '~2 sip:127.0.7.105:5060 attrs "duid=e;sw_agent=127.0.7.105:7070"→"duid=e"',
      '~1 sip:127.0.7.102:5060 state inactive→active, priority 0→2',
      '~1 sip:127.0.7.101:5060 rweight 50→7',
      '+1 sip:127.0.7.120:5060',
      '-1 sip:127.0.7.103:5060',
    ]);
  });

  it('a destination listed twice is one match and one removal; the same URI in two sets is two', function () {
    const [t] = listed();
    if (!t) throw new Error('fixture empty');
    const desired: Destination = { setId: t.setId, uri: t.uri, state: 'active', rweight: 1, duid: 'x' };
    const twice = diffDispatcher([desired], [t, t]);
    expect(twice.differences.map((d) => d.kind)).to.deep.equal(['changed', 'removed']);
    const otherSet = diffDispatcher([desired, { ...desired, setId: 9 }], [t]);
    expect(otherSet.differences.map((d) => d.kind)).to.deep.equal(['changed', 'added']);
  });

  it('rweight Kamailio ignored (reported 0 or absent) differs from any valid desired rweight', function () {
    const t = { ...listed()[0]!, rweight: null, attrs: { duid: 'a' }, attrsBody: 'duid=a' };
    const d = diffDispatcher([{ setId: t.setId, uri: t.uri, state: 'active', rweight: 5, duid: 'a' }], [t]);
    expect(d.differences.map(describeDifference)).to.deep.equal([`~${t.setId} ${t.uri} rweight none→5`]);
  });

  it('property: a list is in sync with the targets Kamailio would list for its own file', function () {
    const destination = fc.record({
      setId: fc.integer({ min: 0, max: 3 }),
      uri: fc.integer({ min: 1, max: 40 }).map((n) => `sip:127.0.7.${n}:5060`),
      state: fc.constantFrom('active', 'inactive', 'disabled') as fc.Arbitrary<Destination['state']>,
      rweight: fc.integer({ min: 1, max: 100 }),
      priority: fc.integer({ min: 0, max: 9 }),
      duid: fc.string({ minLength: 1, maxLength: 6, unit: fc.constantFrom('a', 'b', '1', '-', '.') }),
    });
    const unique = fc.uniqueArray(destination, {
      selector: (d) => `${d.setId} ${d.uri}`,
      maxLength: 30,
    });
    fc.assert(
      fc.property(unique, fc.integer({ min: 0, max: 1000 }), (raw, seed) => {
        const list = raw.map((d, i) => ({ ...d, duid: `${d.duid}${i}` }));
        // What dispatcher.list reports for the file we write, in Kamailio's own (another) order.
        const targets: DispatcherTarget[] = list.map((d) => ({
          setId: d.setId,
          uri: d.uri,
          state: d.state,
          inRotation: d.state === 'active',
          probing: 'none',
          priority: d.priority,
          attrsBody: `duid=${d.duid};rweight=${d.rweight}`,
          attrs: { duid: d.duid, rweight: String(d.rweight) },
          duid: d.duid,
          weight: 0,
          rweight: d.rweight,
          latency: null,
        }));
        const shuffled = targets.map((t, i) => ({ t, k: (i * 7919 + seed) % 101 })).sort((a, b) => a.k - b.k);
        expect(
          diffDispatcher(
            list,
            shuffled.map((s) => s.t),
          ).inSync,
        ).to.equal(true);
        if (list.length > 0) {
          const bumped = list.map((d, i) =>
            i === seed % list.length ? { ...d, rweight: (d.rweight % 100) + 1 } : d,
          );
          expect(diffDispatcher(bumped, targets).inSync).to.equal(false);
        }
      }),
    );
  });
});

describe('push: list file writers', function () {
  it('refuses two lines for one set and URI, or one duid twice in a set', function () {
    expect(() => formatDispatcherList([dest(101), dest(101, { duid: 'other' })])).to.throw(/appears twice/);
    expect(() => formatDispatcherList([dest(101, { duid: 'x' }), dest(102, { duid: 'x' })])).to.throw(
      /duid x appears twice/,
    );
    expect(() =>
      formatDispatcherList([dest(101, { duid: 'x' }), dest(102, { duid: 'x', setId: 2 })]),
    ).not.to.throw();
  });

  it('writes listed targets back with their runtime flags (2 trying, 8 probing) and attrs', function () {
    const text = formatListedTargets(listed());
    expect(text).to.be.a('string');
    const lines = (text ?? '')
      .split('\n')
      .filter((l) => l !== '' && !l.startsWith('#'))
      .sort();
    expect(lines).to.deep.equal(
      [
        '1 sip:127.0.7.101:5060 0 0 duid=a;rweight=50',
        '1 sip:127.0.7.102:5060 1 0 duid=b;rweight=30',
        '1 sip:127.0.7.103:5060 4 5 duid=c;rweight=20',
        '1 sip:127.0.7.104:5060 8 0 duid=d;rweight=20',
        '1 sip:127.0.7.106:5060 2 0 duid=f;rweight=10',
        '2 sip:127.0.7.105:5060 0 0 duid=e;rweight=100;sw_agent=127.0.7.105:7070',
      ].sort(),
    );
    const withBlank = { ...listed()[0]!, attrsBody: 'duid=a; rweight=5' };
    expect(formatListedTargets([withBlank])).to.equal(null);
  });
});
