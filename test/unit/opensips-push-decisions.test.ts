/**
 * The OpenSIPS pusher's pure decisions: a drain survives the round trip through the table and
 * ds_list (sw_drained=1), the cache answers only for the OpenSIPS run it was verified on, a state-only
 * difference needs no table reload, and what the LB listed can be written back; and, through a fake
 * MI, that a dead MI costs one call per push.
 */
import { expect } from 'chai';
import type { Destination } from '../../src/kamailio/dispatcher-list.js';
import { formatDispatcherTable } from '../../src/opensips/dispatcher-table.js';
import { listedState, parseDsList, stateLetter } from '../../src/opensips/ds-list.js';
import {
  asOpenSips,
  cacheAnswers,
  listedAsDesired,
  needsTable,
  OpenSipsDispatcherPusher,
  runIdentity,
} from '../../src/opensips/pusher.js';
import { MiError } from '../../src/opensips/mi.js';
import { diffDispatcher } from '../../src/push/diff.js';
import { planDiscovery } from '../../src/controller/plan.js';

const d = (
  uri: string,
  rweight: number,
  duid: string,
  state: Destination['state'] = 'active',
): Destination => ({
  setId: 1,
  uri,
  state,
  rweight,
  duid,
});

/** ds_list's reply for rows as OpenSIPS would list them after loading `table` (attrs verbatim). */
function dsListOf(rows: readonly { uri: string; state: string; weight: number; attr: string }[]): unknown {
  return {
    PARTITIONS: [
      {
        name: 'default',
        SETS: [
          {
            id: 1,
            Destinations: rows.map((r) => ({
              URI: r.uri,
              state: r.state,
              weight: r.weight,
              priority: 0,
              attr: r.attr,
            })),
          },
        ],
      },
    ],
  };
}

/** The attrs column of each row of a db_text table (split on unescaped separators; no ':' in these attrs). */
function tableAttrs(table: string): string[] {
  return table
    .trimEnd()
    .split('\n')
    .slice(1)
    .map((row) => row.split(/(?<!\\):/)[8]!);
}

describe('OpenSIPS drain round trip (sw_drained)', function () {
  const desired = asOpenSips([
    d('sip:127.0.0.11:5060', 70, 'be1'),
    d('sip:127.0.0.12:5060', 30, 'be2', 'disabled'),
    d('sip:127.0.0.13:5060', 1, 'be3', 'inactive'),
  ]);

  it('marks only the disabled row in the table, and sets it Inactive over MI', function () {
    expect(tableAttrs(formatDispatcherTable(desired))).to.deep.equal([
      'duid=be1;rweight=70',
      'duid=be2;rweight=30;sw_drained=1',
      'duid=be3;rweight=1',
    ]);
    expect(desired.map((x) => stateLetter(x.state))).to.deep.equal(['a', 'i', 'i']);
  });

  it('reads an Inactive marked row back as disabled: in sync, and a restarted controller keeps the drain', function () {
    const attrs = tableAttrs(formatDispatcherTable(desired));
    const r = parseDsList(
      dsListOf([
        { uri: 'sip:127.0.0.11:5060', state: 'Active', weight: 70, attr: attrs[0]! },
        { uri: 'sip:127.0.0.12:5060', state: 'Inactive', weight: 30, attr: attrs[1]! },
        { uri: 'sip:127.0.0.13:5060', state: 'Inactive', weight: 1, attr: attrs[2]! },
      ]),
    );
    expect(r.ok).to.equal(true);
    if (!r.ok) return;
    expect(r.targets.map((t) => t.state)).to.deep.equal(['active', 'disabled', 'inactive']);
    expect(diffDispatcher(desired, r.targets).inSync).to.equal(true);
    const plan = planDiscovery({
      sets: [{ id: 1, self_registration: false, backends: [] }],
      reads: [{ node: 'lb1', ok: true, targets: r.targets }],
      retired: new Map(),
      nodes: [],
      defaultCapacity: 100,
    });
    expect(plan.disabled).to.deep.equal(['be2']);
  });

  it('after an OpenSIPS restart (every row Active) the drained row is active: a state change only', function () {
    const attrs = tableAttrs(formatDispatcherTable(desired));
    const r = parseDsList(
      dsListOf([
        { uri: 'sip:127.0.0.11:5060', state: 'Active', weight: 70, attr: attrs[0]! },
        { uri: 'sip:127.0.0.12:5060', state: 'Active', weight: 30, attr: attrs[1]! },
        { uri: 'sip:127.0.0.13:5060', state: 'Active', weight: 1, attr: attrs[2]! },
      ]),
    );
    if (!r.ok) throw new Error(r.error);
    expect(r.targets.map((t) => t.state)).to.deep.equal(['active', 'active', 'active']);
    const diff = diffDispatcher(desired, r.targets);
    expect(diff.inSync).to.equal(false);
    expect(diff.differences.map((x) => (x.kind === 'changed' ? x.destination.duid : x.kind))).to.deep.equal([
      'be2',
      'be3',
    ]);
    expect(needsTable(diff.differences), 'states only: no table reload').to.equal(false);
  });

  it('the mark counts only on an Inactive row; an undrained backend loses it through a table rewrite', function () {
    expect(listedState('inactive', { sw_drained: '1' })).to.equal('disabled');
    expect(listedState('trying', { sw_drained: '1' })).to.equal('trying');
    expect(listedState('inactive', { sw_drained: '0' })).to.equal('inactive');
    const r = parseDsList(
      dsListOf([
        {
          uri: 'sip:127.0.0.12:5060',
          state: 'Inactive',
          weight: 30,
          attr: 'duid=be2;rweight=30;sw_drained=1',
        },
      ]),
    );
    if (!r.ok) throw new Error(r.error);
    const diff = diffDispatcher(asOpenSips([d('sip:127.0.0.12:5060', 30, 'be2')]), r.targets);
    expect(needsTable(diff.differences), 'the attrs differ too').to.equal(true);
  });
});

describe('OpenSIPS pusher cache and rollback decisions', function () {
  const base = {
    force: false,
    key: 'k',
    verifiedKey: 'k',
    routesSame: true,
    run: 'Fri Dec  4 11:00:00 2026',
    verifiedRun: 'Fri Dec  4 11:00:00 2026',
  };

  it('the cache answers only for the verified list on the same OpenSIPS run', function () {
    expect(cacheAnswers(base)).to.equal(true);
    expect(cacheAnswers({ ...base, run: 'Fri Dec  4 11:20:00 2026' }), 'restarted').to.equal(false);
    expect(cacheAnswers({ ...base, run: null }), 'uptime unreadable').to.equal(false);
    expect(cacheAnswers({ ...base, run: null, verifiedRun: null })).to.equal(false);
    expect(cacheAnswers({ ...base, force: true })).to.equal(false);
    expect(cacheAnswers({ ...base, key: 'other' })).to.equal(false);
    expect(cacheAnswers({ ...base, verifiedKey: null })).to.equal(false);
    expect(cacheAnswers({ ...base, routesSame: false })).to.equal(false);
  });

  it('reads the run from MI uptime (3.6.8 reply)', function () {
    expect(
      runIdentity({
        Now: 'Fri Dec  4 11:30:00 2026',
        'Up since': 'Fri Dec  4 11:00:00 2026',
        'Up time': '1800 [sec]',
      }),
    ).to.equal('Fri Dec  4 11:00:00 2026');
    expect(runIdentity({})).to.equal(null);
    expect(runIdentity('x')).to.equal(null);
  });

  it('turns what the LB listed into a list to write back, drains and extra attrs kept', function () {
    const r = parseDsList(
      dsListOf([
        {
          uri: 'sip:127.0.0.11:5060',
          state: 'Active',
          weight: 70,
          attr: 'duid=be1;rweight=70;sw_capacity=200',
        },
        {
          uri: 'sip:127.0.0.12:5060',
          state: 'Inactive',
          weight: 30,
          attr: 'duid=be2;rweight=30;sw_drained=1',
        },
        { uri: 'sip:127.0.0.13:5060', state: 'Probing', weight: 5, attr: 'duid=be3;rweight=5' },
      ]),
    );
    if (!r.ok) throw new Error(r.error);
    const back = listedAsDesired(r.targets);
    expect(back).to.deep.equal([
      { ...d('sip:127.0.0.11:5060', 70, 'be1'), priority: 0, extraAttrs: { sw_capacity: '200' } },
      { ...d('sip:127.0.0.12:5060', 30, 'be2', 'disabled'), priority: 0, extraAttrs: { sw_drained: '1' } },
      { ...d('sip:127.0.0.13:5060', 5, 'be3', 'inactive'), priority: 0 },
    ]);
    // Written back, it reads as listed (the drain included).
    expect(diffDispatcher(asOpenSips(back!.slice(0, 2)), r.targets.slice(0, 2)).inSync).to.equal(true);
    const noWeight = parseDsList(
      dsListOf([{ uri: 'sip:127.0.0.11:5060', state: 'Active', weight: 0, attr: 'duid=be1' }]),
    );
    if (!noWeight.ok) throw new Error(noWeight.error);
    expect(listedAsDesired(noWeight.targets), 'weight 0 cannot be written').to.equal(null);
  });
});

describe('OpenSIPS pusher against an MI that does not answer (a fake MI: no OpenSIPS in a unit test)', function () {
  /** Records each MI call; every call fails as a refused connection does, or answers an MI error. */
  function fakeMi(fail: (method: string) => Error) {
    const calls: string[] = [];
    const mi = {
      target: 'http://127.0.0.1:1/mi',
      call(method: string): Promise<unknown> {
        calls.push(method);
        return Promise.reject(fail(method));
      },
    };
    return { mi, calls };
  }
  const noWrite = {
    write: () => Promise.reject(new Error('nothing may be written')),
    describe: () => 'fake:',
    close: () => Promise.resolve(),
  };

  it('an unreachable MI fails the push at `read` after one call (uptime), writing nothing', async function () {
    const { mi, calls } = fakeMi(() =>
      Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }),
    );
    const pusher = new OpenSipsDispatcherPusher({ mi, table: noWrite, destinations: noWrite });
    const out = await pusher.push([d('sip:127.0.0.11:5060', 70, 'be1')]);
    expect(out.kind).to.equal('failed');
    if (out.kind !== 'failed') return;
    expect(out.stage).to.equal('read');
    expect(out.reason).to.match(/uptime .*ECONNREFUSED/);
    // One connection per push against a dead MI: the controller's backoff counts pushes, not calls.
    expect(calls).to.deep.equal(['uptime']);
  });

  it('an MI that refuses uptime (a JSON-RPC error) still reads the list: no run, no cache', async function () {
    const { mi, calls } = fakeMi((m) => new MiError(m, -32601, 'Method not found'));
    const pusher = new OpenSipsDispatcherPusher({ mi, table: noWrite, destinations: noWrite });
    const out = await pusher.push([d('sip:127.0.0.11:5060', 70, 'be1')]);
    expect(out.kind === 'failed' && out.stage).to.equal('read');
    expect(calls).to.deep.equal(['uptime', 'ds_list']);
  });
});
