/**
 * The controller's decisions (src/controller/plan.ts), pure: start-up grace, what a scoring result
 * means for each LB node, what discovery makes of the LBs' lists, retired backends after a reload.
 */
import { expect } from 'chai';
import type { ControllerConfig, SetConfig } from '../../src/config/types.js';
import type { DispatcherTarget } from '../../src/kamailio/dispatcher-list-reply.js';
import type { BackendView } from '../../src/probe/probe-core.js';
import type { BackendScore, CycleResult, SetResult } from '../../src/scoring/index.js';
import { initialNodeState } from '../../src/controller/node-state.js';
import {
  EMPTY_MEMORY,
  admissionDesired,
  discoveryEvents,
  isSettled,
  planCycle,
  planDiscovery,
  planRegistryReload,
  retire,
  retiredAfterPush,
  scorerSample,
  startupGraceMs,
  type CycleInput,
} from '../../src/controller/plan.js';

function view(id: string, set = 1, health: BackendView['health'] = { kind: 'up', since: 0 }): BackendView {
  return {
    id,
    set,
    uri: `sip:${id}.example:5060`,
    capacity: 100,
    source: 'config',
    agent: null,
    via: 'agent',
    sshTarget: null,
    lastError: null,
    health,
    flapPenalty: 0,
    srttMs: 1,
    lastRttMs: 1,
    misses: 0,
    metrics: null,
    lastReportAt: NaN,
    agentBoot: null,
  };
}

function score(id: string, set = 1): BackendScore {
  return {
    id,
    set,
    health: 'up',
    capacityCps: 100,
    pressure: 0.5,
    dominant: 'cpu_util',
    factor: 1,
    effectiveCapacityCps: 100,
    assignment: { phase: 'normal' },
  } as unknown as BackendScore;
}

function scored(set: number, weights: Record<string, number>, limit: number | null = null): SetResult {
  return {
    set,
    mode: 'scored',
    weights: new Map(Object.entries(weights)),
    poolCapacityCps: 200,
    admissionLimitCps: limit,
    panic: null,
    backends: Object.keys(weights).map((id) => score(id, set)),
  };
}

function panicked(set: number, weights: Record<string, number> | null, ids: string[]): SetResult {
  return {
    set,
    mode: 'panic',
    weights: weights ? new Map(Object.entries(weights)) : null,
    poolCapacityCps: null,
    admissionLimitCps: null,
    panic: { healthy: 0, counted: ids.length, threshold: 0.5, since: 0 },
    backends: ids.map((id) => score(id, set)),
  } as SetResult;
}

const cycle = (...sets: SetResult[]): CycleResult => ({
  state: {} as CycleResult['state'],
  sets,
  rejected: [],
});

function input(over: Partial<CycleInput>): CycleInput {
  return {
    views: [view('a'), view('b')],
    result: cycle(scored(1, { a: 30, b: 70 })),
    listed: null,
    sets: [1],
    admissionEnabled: false,
    nodes: [initialNodeState('lb1'), initialNodeState('lb2')],
    fractions: new Map(),
    memory: EMPTY_MEMORY,
    ...over,
  };
}

describe('controller plan: start-up grace', function () {
  const never: BackendView['health'] = { kind: 'down', since: 0, cause: 'never_seen' };

  it('waits while a backend is still being confirmed, until the grace runs out', function () {
    const views = [view('a'), view('b', 1, never)];
    expect(isSettled(false, views, 1000, 2000)).to.equal(false);
    expect(isSettled(false, views, 2000, 2000)).to.equal(true);
  });

  it('settles at once when nobody is confirming, and stays settled', function () {
    expect(isSettled(false, [view('a')], 0, 2000)).to.equal(true);
    expect(isSettled(true, [view('b', 1, never)], 0, 2000)).to.equal(true);
  });

  it('the grace covers return_after_oks probes with room, at least 2 s', function () {
    const hb = { probe_interval_ms: 500, return_after_oks: 3 } as ControllerConfig['heartbeat'];
    expect(startupGraceMs(hb)).to.equal(3000);
    expect(startupGraceMs({ ...hb, probe_interval_ms: 100 })).to.equal(2000);
  });
});

describe('controller plan: one cycle', function () {
  it('submits the same list to every unblocked node, weight 0 written inactive', function () {
    const plan = planCycle(
      input({
        result: cycle(scored(1, { a: 0, b: 100 })),
        nodes: [initialNodeState('lb1'), { ...initialNodeState('lb2'), blocked: 'other sets' }],
      }),
    );
    expect(plan.submit?.map((s) => s.node)).to.deep.equal(['lb1']);
    const states = plan.submit?.[0]?.desired.destinations.map((d) => [d.duid, d.state, d.rweight]);
    expect(states).to.deep.equal([
      ['a', 'inactive', 1],
      ['b', 'active', 100],
    ]);
  });

  it('tells a change of weights once, with what drove it', function () {
    const first = planCycle(input({}));
    const changed = first.events.filter((e) => e.type === 'weights_changed');
    expect(changed).to.have.length(1);
    expect(changed[0]).to.deep.include({ set: 1, mode: 'scored', pool_cps: 200 });
    const again = planCycle(input({ memory: first.memory }));
    expect(again.events.filter((e) => e.type === 'weights_changed')).to.have.length(0);
    const moved = planCycle(input({ memory: first.memory, result: cycle(scored(1, { a: 40, b: 60 })) }));
    expect(moved.events.map((e) => e.type)).to.deep.equal(['weights_changed']);
  });

  it('a set in panic before its first score keeps what the LB listed; nothing until an LB was read', function () {
    const result = cycle(panicked(1, null, ['a', 'b']));
    const none = planCycle(input({ result }));
    expect(none.submit).to.equal(null);
    expect(none.events.map((e) => e.type)).to.deep.equal(['set_waiting']);
    const listed = new Map([['1 sip:a.example:5060', 40]]);
    const plan = planCycle(input({ result, listed, memory: none.memory }));
    const weights = plan.submit?.[0]?.desired.destinations.map((d) => [d.duid, d.state, d.rweight]);
    // b was not in the LB's rotation: it stays out.
    expect(weights).to.deep.equal([
      ['a', 'active', 40],
      ['b', 'inactive', 1],
    ]);
    expect(plan.events).to.deep.equal([]);
  });

  it('tells a panic when it starts and when it ends, once each', function () {
    const start = planCycle(input({ result: cycle(panicked(1, { a: 30, b: 70 }, ['a', 'b'])) }));
    expect(start.events.map((e) => e.type)).to.include('panic_started');
    const still = planCycle(
      input({ result: cycle(panicked(1, { a: 30, b: 70 }, ['a', 'b'])), memory: start.memory }),
    );
    expect(still.events.map((e) => e.type)).to.not.include('panic_started');
    const over = planCycle(input({ memory: still.memory }));
    expect(over.events.map((e) => e.type)).to.include('panic_ended');
  });

  it('admission on: each node its fraction of the limit (even without one); off: no limit on every managed set', function () {
    const on = planCycle(input({ admissionEnabled: true, result: cycle(scored(1, { a: 30, b: 70 }, 101)) }));
    const limits = (p: typeof on) => p.submit?.map((s) => [s.node, s.desired.admission]);
    expect(limits(on)).to.deep.equal([
      ['lb1', { kind: 'limits', limits: new Map([[1, 50.5]]) }],
      ['lb2', { kind: 'limits', limits: new Map([[1, 50.5]]) }],
    ]);
    const fractions = new Map([
      ['lb1', 0.8],
      ['lb2', 0.2],
    ]);
    const split = planCycle(
      input({ admissionEnabled: true, fractions, result: cycle(scored(1, { a: 30, b: 70 }, 101)) }),
    );
    expect(limits(split)).to.deep.equal([
      ['lb1', { kind: 'limits', limits: new Map([[1, 80.8]]) }],
      ['lb2', { kind: 'limits', limits: new Map([[1, 20.2]]) }],
    ]);
    const off = admissionDesired(false, cycle(scored(1, { a: 1 }, 101)), [3, 1], 0.5);
    expect(off).to.deep.equal({ kind: 'off', sets: [1, 3] });
  });

  it('tells every sample the scorer rejected', function () {
    const result = { ...cycle(scored(1, { a: 30, b: 70 })), rejected: [{ id: 'x', reason: 'bad' }] };
    const plan = planCycle(input({ result: result as CycleResult }));
    expect(plan.events[0]).to.deep.equal({ type: 'sample_rejected', backend: 'x', reason: 'bad' });
  });
});

const SETS: SetConfig[] = [{ id: 1, backends: [] } as unknown as SetConfig];

function target(setId: number, uri: string, duid: string | null, weight = 50): DispatcherTarget {
  return {
    setId,
    uri,
    state: 'active',
    inRotation: true,
    probing: 'none',
    priority: 0,
    attrsBody: duid === null ? '' : `duid=${duid}`,
    attrs: duid === null ? {} : { duid },
    duid,
    weight: null,
    rweight: weight,
    latency: null,
  };
}

describe('controller plan: discovery', function () {
  const nodes = [initialNodeState('lb1'), initialNodeState('lb2')];

  it('blocks a node whose list has sets the config does not manage, once; unblocks it when they go', function () {
    const reads = [
      {
        node: 'lb1',
        ok: true as const,
        targets: [target(1, 'sip:10.0.0.1:5060', null), target(7, 'sip:x:5060', null)],
      },
      { node: 'lb2', ok: true as const, targets: [target(1, 'sip:10.0.0.1:5060', null)] },
    ];
    const inp = { sets: SETS, reads, retired: new Map(), nodes, defaultCapacity: 100 };
    const plan = planDiscovery(inp);
    expect(plan.nodes.map((n) => n.blocked === null)).to.deep.equal([false, true]);
    expect(plan.events.filter((e) => e.type === 'node_blocked')).to.have.length(1);
    const again = planDiscovery({ ...inp, nodes: plan.nodes });
    expect(again.events.filter((e) => e.type === 'node_blocked')).to.have.length(0);
    const cleared = planDiscovery({
      ...inp,
      nodes: plan.nodes,
      reads: [reads[1]!, { ...reads[1]!, node: 'lb1' }],
    });
    expect(cleared.nodes.every((n) => n.blocked === null)).to.equal(true);
    expect(cleared.events).to.deep.equal([{ type: 'node_unblocked', node: 'lb1' }]);
  });

  it('an unreadable LB: told, left as it was, discovery incomplete, fallback weights from the first readable', function () {
    const reads = [
      { node: 'lb1', ok: false as const, error: 'refused' },
      { node: 'lb2', ok: true as const, targets: [target(1, 'sip:10.0.0.1:5060', null, 30)] },
    ];
    const plan = planDiscovery({ sets: SETS, reads, retired: new Map(), nodes, defaultCapacity: 100 });
    expect(plan.complete).to.equal(false);
    expect(plan.events[0]).to.deep.equal({ type: 'lb_list_unreadable', node: 'lb1', error: 'refused' });
    expect(plan.nodes[0]).to.equal(nodes[0]);
    expect(plan.nodes[1]?.synced).to.equal(true);
    expect([...(plan.listed ?? [])]).to.deep.equal([['1 sip:10.0.0.1:5060', 30]]);
    const none = planDiscovery({
      sets: SETS,
      reads: [reads[0]!],
      retired: new Map(),
      nodes,
      defaultCapacity: 100,
    });
    expect(none.listed).to.equal(null);
  });

  it('a backend some LB lists disabled (a drain written by a previous run) is named to be kept drained', function () {
    const reads = [
      {
        node: 'lb1',
        ok: true as const,
        targets: [
          { ...target(1, 'sip:10.0.0.1:5060', 'be1'), state: 'disabled' as const, inRotation: false },
          {
            ...target(1, 'sip:10.0.0.2:5060', 'be2'),
            state: 'inactive' as const,
            inRotation: false,
            probing: 'probing' as const,
          },
          target(1, 'sip:10.0.0.3:5060', 'be3'),
        ],
      },
    ];
    const plan = planDiscovery({
      sets: SETS,
      reads,
      retired: new Map(),
      nodes: [nodes[0]!],
      defaultCapacity: 100,
    });
    expect(plan.disabled).to.deep.equal(['be1']);
    // Listed inactive (the LB's own probing took it out): not drained, and not in rotation either.
    expect([...(plan.listed ?? [])]).to.deep.include.members([
      ['1 sip:10.0.0.2:5060', 0],
      ['1 sip:10.0.0.1:5060', 0],
    ]);
  });

  it('a retired backend is not taken back from the list we wrote it into', function () {
    const reads = [{ node: 'lb1', ok: true as const, targets: [target(1, 'sip:10.0.0.9:5060', 'gone')] }];
    const retired = new Map([['gone', new Set(['lb1'])]]);
    const plan = planDiscovery({ sets: SETS, reads, retired, nodes: [nodes[0]!], defaultCapacity: 100 });
    expect(plan.backends.map((b) => b.id)).to.not.include('gone');
    const free = planDiscovery({
      sets: SETS,
      reads,
      retired: new Map(),
      nodes: [nodes[0]!],
      defaultCapacity: 100,
    });
    expect(free.backends.map((b) => b.id)).to.include('gone');
  });

  it('tells a discovery only when it changed the registry', function () {
    expect(discoveryEvents([], [])).to.deep.equal([]);
    expect(discoveryEvents(['a'], [])).to.deep.equal([{ type: 'discovery', added: ['a'], removed: [] }]);
  });
});

describe('controller plan: reload and retired backends', function () {
  it('a removed backend stays retired until every node converged without it', function () {
    let r = retire(new Map(), ['x'], [], ['lb1', 'lb2']);
    r = retiredAfterPush(r, 'lb1');
    expect([...r.keys()]).to.deep.equal(['x']);
    r = retiredAfterPush(r, 'lb2');
    expect(r.size).to.equal(0);
  });

  it('a backend added back is no longer retired', function () {
    const r = retire(retire(new Map(), ['x'], [], ['lb1']), [], ['x'], ['lb1']);
    expect(r.size).to.equal(0);
  });

  it('removes only configured backends, puts added and changed ones in as configured', function () {
    const next = {
      sets: [{ id: 2, backends: [{ id: 'n', sip_uri: 'sip:n:5060', capacity: 10, agent: null }] }],
    } as unknown as ControllerConfig;
    const changes = { backends: { added: ['n'], removed: ['c', 'd'], changed: [] } };
    const source = (id: string) => (id === 'c' ? 'config' : id === 'd' ? 'dispatcher' : undefined);
    const plan = planRegistryReload(next, changes as never, source, new Map(), ['lb1']);
    expect(plan.remove).to.deep.equal(['c']);
    expect(plan.upsert).to.deep.equal([
      { id: 'n', set: 2, uri: 'sip:n:5060', capacity: 10, source: 'config' },
    ]);
    expect([...plan.retired.keys()]).to.deep.equal(['c']);
  });
});

describe('controller plan: scorer samples', function () {
  const metrics = { cpu: 0.5 } as unknown as NonNullable<BackendView['metrics']>;

  it('a view with a report at a known time is a sample with that report, its health and capacity', function () {
    const v = { ...view('a', 2, { kind: 'suspect', since: 0, misses: 1 }), metrics, lastReportAt: 1234 };
    expect(scorerSample(v)).to.deep.equal({
      id: 'a',
      set: 2,
      capacity: 100,
      health: 'suspect',
      report: { metrics, at: 1234 },
      probed: false,
      evidenceOnly: false,
    });
  });

  it('evidenceOnly: a suspect that has missed no probe (passive evidence alone)', function () {
    expect(scorerSample(view('a', 1, { kind: 'suspect', since: 0, misses: 0 })).evidenceOnly).to.equal(true);
    expect(scorerSample(view('a', 1, { kind: 'suspect', since: 0, misses: 1 })).evidenceOnly).to.equal(false);
  });

  it('probed: an agent address (configured, listed or from a hello) or an SSH section; else not', function () {
    expect(scorerSample(view('a')).probed).to.equal(false);
    expect(scorerSample({ ...view('a'), agent: { address: '127.0.0.1', port: 7951 } }).probed).to.equal(true);
    expect(scorerSample({ ...view('a'), via: 'ssh' }).probed).to.equal(true);
  });

  it('no report yet, or a report without a time, counts as no sample (report null)', function () {
    expect(scorerSample(view('a')).report).to.equal(null);
    expect(scorerSample({ ...view('a'), metrics, lastReportAt: NaN }).report).to.equal(null);
    expect(scorerSample({ ...view('a'), metrics: null, lastReportAt: 10 }).report).to.equal(null);
  });
});
