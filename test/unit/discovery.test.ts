import { expect } from 'chai';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { parseAttrsBody, parseDispatcherList } from '../../src/kamailio/dispatcher-list-reply.js';
import { hostPortOf, mergeDiscovery, parseAgentAttr } from '../../src/discovery/merge.js';
import { applyDiscovery } from '../../src/probe/apply-discovery.js';
import { ProbeCore } from '../../src/probe/probe-core.js';
import type { SetConfig } from '../../src/config/types.js';

/** Replies recorded from a real Kamailio 5.6.3 loaded with discovery-fixtures/dispatcher.list. */
const fixture = (name: string): unknown =>
  JSON.parse(readFileSync(new URL(`./discovery-fixtures/${name}`, import.meta.url), 'utf8'));

describe('dispatcher.list parser (replies of a real Kamailio 5.6.3)', function () {
  it('reads sets, URIs, states, probing, priority and attrs (with latency stats)', function () {
    const r = parseDispatcherList(fixture('dispatcher-list-5.6.3-latency.json'));
    expect(r.ok).to.equal(true);
    if (!r.ok) return;
    expect(
      r.targets.map((t) => [t.setId, t.uri, t.state, t.probing, t.priority, t.duid, t.weight]),
    ).to.deep.equal([
      [2, 'sip:127.0.3.24:5070', 'disabled', 'none', 0, 'be-d', 0],
      [1, 'sip:127.0.3.22:5060', 'inactive', 'none', 5, 'be-b', 30],
      [1, 'sip:127.0.3.23:5060;transport=udp', 'active', 'probing', 0, null, null],
      [1, 'sip:127.0.3.21:5060', 'active', 'none', 0, 'be-a', 50],
    ]);
    const a = r.targets[3]!;
    expect(a.attrs).to.deep.equal({ duid: 'be-a', weight: '50', rweight: '50', sw_agent: '127.0.3.21:7070' });
    expect(a.rweight).to.equal(50);
    expect(a.latency).to.deep.equal({ avgMs: 0, estMs: 0, maxMs: 0, timeouts: 0 });
  });

  it('reads the "full" mode with the dialog-load runtime block', function () {
    const r = parseDispatcherList(fixture('dispatcher-list-5.6.3-full-hash.json'));
    expect(r.ok).to.equal(true);
    if (r.ok) expect(r.targets).to.have.length(4);
  });

  it('reads the replies of Kamailio 6.1.4 (IDX, IUID, overload-control fields) as those of 5.6.3', function () {
    // Recorded from the 6.1.4 that scripts/third-party.sh builds, on the same dispatcher.list, with
    // Kamailio's own probing off (ds_ping_interval 0). One difference is 6.1's, not the parser's: it
    // drops the file's probing flag 8 when probing is off ("tm module not loaded, disabling probing"),
    // where 5.6.3 keeps it and reports P.
    const old = parseDispatcherList(fixture('dispatcher-list-5.6.3-latency.json'));
    const withoutProbing = (r: typeof old) => (r.ok ? r.targets.map((t) => ({ ...t, probing: null })) : r);
    const now = parseDispatcherList(fixture('dispatcher-list-6.1.4-latency.json'));
    expect(now.ok).to.equal(true);
    expect(withoutProbing(now)).to.deep.equal(withoutProbing(old));
    if (now.ok) expect(now.targets.map((t) => t.probing)).to.deep.equal(['none', 'none', 'none', 'none']);
    // "full" mode: every destination has ATTRS (weight 0 where the file has none), as in 5.6.
    const full = parseDispatcherList(fixture('dispatcher-list-6.1.4-full.json'));
    expect(full.ok && full.targets.map((t) => [t.uri, t.state, t.duid, t.rweight])).to.deep.equal(
      now.ok && now.targets.map((t) => [t.uri, t.state, t.duid, t.rweight ?? 0]),
    );
  });

  it('treats "No Destination Sets" as an empty list, other errors as errors', function () {
    expect(parseDispatcherList(fixture('dispatcher-list-5.6.3-empty.json'))).to.deep.equal({
      ok: true,
      targets: [],
    });
    const e = parseDispatcherList({
      jsonrpc: '2.0',
      id: 1,
      error: { code: 500, message: 'Internal error set structure' },
    });
    expect(e).to.deep.equal({ ok: false, error: 'dispatcher.list failed: 500 Internal error set structure' });
  });

  it('names the path of a malformed field', function () {
    const r = parseDispatcherList({ result: { NRSETS: 1, RECORDS: [{ SET: { ID: '1', TARGETS: [] } }] } });
    expect(r).to.deep.equal({
      ok: false,
      error: 'unexpected dispatcher.list reply: RECORDS[0].SET.ID: expected an integer',
    });
    const f = parseDispatcherList({
      result: {
        RECORDS: [{ SET: { ID: 1, TARGETS: [{ DEST: { URI: 'sip:a', FLAGS: 'QQ', PRIORITY: 0 } }] } }],
      },
    });
    expect(f.ok).to.equal(false);
  });

  it('never throws, whatever the reply', function () {
    fc.assert(
      fc.property(fc.anything(), (v) => void parseDispatcherList(v)),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        void parseDispatcherList({ result: { RECORDS: [{ SET: { ID: 1, TARGETS: [v] } }] } });
      }),
      { numRuns: 2000 },
    );
  });

  it('splits attrs bodies', function () {
    expect(parseAttrsBody('duid=x; weight = 5;;flag')).to.deep.equal({ duid: 'x', weight: '5', flag: '' });
  });
});

describe('discovery merge', function () {
  const sets: SetConfig[] = [
    {
      id: 1,
      self_registration: false,
      backends: [
        {
          id: 'cfg-a',
          sip_uri: 'sip:127.0.3.21:5060',
          capacity: 200,
          agent: { address: '127.0.3.21', port: 7070 },
        },
      ],
    },
    { id: 2, self_registration: true, backends: [] },
  ];
  const target = (setId: number, uri: string, body = '') => {
    const r = parseDispatcherList({
      result: {
        RECORDS: [
          {
            SET: {
              ID: setId,
              TARGETS: [
                {
                  DEST: {
                    URI: uri,
                    FLAGS: 'AX',
                    PRIORITY: 0,
                    ATTRS: { BODY: body, DUID: /duid=([^;]+)/.exec(body)?.[1] ?? '' },
                  },
                },
              ],
            },
          },
        ],
      },
    });
    if (!r.ok) throw new Error(r.error);
    return r.targets[0]!;
  };

  it('merges config and LB lists: config wins, ids from duid or host:port, agent and capacity from attrs', function () {
    const r = mergeDiscovery(
      sets,
      [
        {
          node: 'lb1',
          targets: [
            target(1, 'sip:127.0.3.21:5060', 'duid=other'),
            target(1, 'sip:127.0.3.22:5060', 'duid=be-b;sw_agent=127.0.3.22:7070;sw_capacity=50'),
            target(2, 'sip:127.0.3.23:5060'),
          ],
        },
        {
          node: 'lb2',
          targets: [
            target(1, 'sip:127.0.3.22:5060', 'duid=be-b;sw_agent=127.0.3.22:7070;sw_capacity=50'),
            target(9, 'sip:127.0.3.99:5060'),
          ],
        },
      ],
      { defaultCapacity: 100 },
    );
    expect(r.backends).to.deep.equal([
      {
        id: 'cfg-a',
        set: 1,
        uri: 'sip:127.0.3.21:5060',
        capacity: 200,
        agent: { address: '127.0.3.21', port: 7070 },
        source: 'config',
      },
      {
        id: 'be-b',
        set: 1,
        uri: 'sip:127.0.3.22:5060',
        capacity: 50,
        agent: { address: '127.0.3.22', port: 7070 },
        source: 'dispatcher',
      },
      {
        id: '127.0.3.23:5060',
        set: 2,
        uri: 'sip:127.0.3.23:5060',
        capacity: 100,
        agent: undefined,
        source: 'dispatcher',
      },
    ]);
    expect(r.notes).to.deep.equal([
      { kind: 'unmanaged_set', node: 'lb2', setId: 9, uri: 'sip:127.0.3.99:5060' },
    ]);
  });

  it('notes bad attributes and id conflicts instead of guessing', function () {
    const r = mergeDiscovery(
      sets,
      [
        {
          node: 'lb1',
          targets: [
            target(2, 'sip:127.0.3.30:5060', 'duid=x;sw_agent=nope;sw_capacity=-1'),
            target(2, 'sip:127.0.3.31:5060', 'duid=x'),
          ],
        },
      ],
      { defaultCapacity: 100 },
    );
    expect(r.backends.find((b) => b.id === 'x')).to.include({
      uri: 'sip:127.0.3.30:5060',
      capacity: 100,
      agent: undefined,
    });
    expect(r.notes.map((n) => n.kind)).to.deep.equal(['bad_attr', 'bad_attr', 'id_conflict']);
  });

  it('parses URIs and agent attributes strictly', function () {
    expect(hostPortOf('sip:alice@10.0.0.1:5080;transport=udp')).to.equal('10.0.0.1:5080');
    expect(hostPortOf('sips:[2001:db8::1]:5061')).to.equal('2001:db8::1:5061');
    expect(hostPortOf('sip:host.example')).to.equal('host.example');
    expect(hostPortOf('http://x')).to.equal(null);
    expect(parseAgentAttr('127.0.3.1:7070')).to.deep.equal({ address: '127.0.3.1', port: 7070 });
    expect(parseAgentAttr('127.0.3.1:70700')).to.equal(null);
    expect(parseAgentAttr('300.0.0.1:1')).to.equal(null);
  });

  it('applies to the core: adds, keeps config, removes vanished dispatcher backends', function () {
    const core = new ProbeCore({ masterKeys: [Buffer.alloc(32, 1)] }, () => undefined);
    const first = mergeDiscovery(
      sets,
      [{ node: 'lb1', targets: [target(2, 'sip:127.0.3.40:5060', 'duid=d1')] }],
      { defaultCapacity: 1 },
    );
    expect(applyDiscovery(core, first.backends)).to.deep.equal({ added: ['cfg-a', 'd1'], removed: [] });
    const second = mergeDiscovery(sets, [{ node: 'lb1', targets: [] }], { defaultCapacity: 1 });
    expect(applyDiscovery(core, second.backends)).to.deep.equal({ added: [], removed: ['d1'] });
    expect(core.list().map((b) => b.id)).to.deep.equal(['cfg-a']);
  });

  it('a self-registered backend the LB lists (our own write) stays self-registered, and is forgotten', function () {
    let mono = 0;
    const core = new ProbeCore(
      {
        masterKeys: [Buffer.alloc(32, 1)],
        selfRegistrationSets: new Set([2]),
        forgetSelfRegisteredAfterMs: 60_000,
        clock: { mono: () => mono, wall: () => 1_700_000_000_000 + mono },
      },
      () => undefined,
    );
    core.upsert({
      id: 'h1',
      set: 2,
      uri: 'sip:127.0.3.41:5060',
      capacity: 10,
      agent: { address: '127.0.3.41', port: 7070 },
      source: 'hello',
    });
    const listed = mergeDiscovery(
      sets,
      [
        {
          node: 'lb1',
          targets: [
            target(2, 'sip:127.0.3.41:5060', 'duid=h1;rweight=1;sw_agent=127.0.3.41:7070;sw_capacity=10'),
          ],
        },
      ],
      { defaultCapacity: 1 },
    );
    applyDiscovery(core, listed.backends);
    expect(core.get('h1')?.source).to.equal('hello');
    mono = 61_000;
    core.tick(mono);
    expect(core.get('h1')).to.equal(undefined);
  });

  it('removes nothing when some LB could not be read (it may list what the others do not)', function () {
    const core = new ProbeCore({ masterKeys: [Buffer.alloc(32, 1)] }, () => undefined);
    const first = mergeDiscovery(
      sets,
      [{ node: 'lb1', targets: [target(2, 'sip:127.0.3.40:5060', 'duid=d1')] }],
      { defaultCapacity: 1 },
    );
    applyDiscovery(core, first.backends);
    const unread = mergeDiscovery(sets, [], { defaultCapacity: 1 });
    expect(applyDiscovery(core, unread.backends, { complete: false })).to.deep.equal({
      added: [],
      removed: [],
    });
    expect(core.list().map((b) => b.id)).to.deep.equal(['cfg-a', 'd1']);
  });
});
