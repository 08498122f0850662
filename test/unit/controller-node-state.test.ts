/**
 * One LB node's record (src/controller/node-state.ts), pure: what each apply outcome does to its
 * counters and last apply, which transitions are told, and when a node counts as ready. Also the
 * log line of every event (event-log.ts) and the event bus.
 */
import { expect } from 'chai';
import { logLineOf } from '../../src/controller/event-log.js';
import { EventBus, type ControllerEvent, type StampedEvent } from '../../src/controller/events.js';
import { initialNodeState, nodeAfterApply, notReadyReasons } from '../../src/controller/node-state.js';
import type { AdmissionOutcome, NodeOutcome } from '../../src/push/node-link.js';
import type { PushOutcome } from '../../src/push/pusher.js';
import type { SyncOutcome } from '../../src/push/node-sync.js';

const durations = { totalMs: 12.34 } as PushOutcome['durations'];

function ok(push: PushOutcome, admission: AdmissionOutcome = { kind: 'off' }, driftRepaired = false) {
  const result: NodeOutcome = { push, admission, driftRepaired };
  return { ok: true, result, node: 'lb1', at: 1000, durationMs: 13 } as SyncOutcome<NodeOutcome>;
}

const applied = (n: number): PushOutcome => ({ kind: 'applied', changes: new Array(n).fill({}), durations });
const cacheHit: PushOutcome = { kind: 'in_sync', checkedBy: 'cache', durations };
const failedPush: PushOutcome = {
  kind: 'failed',
  stage: 'reload',
  reason: 'refused',
  changes: null,
  durations,
};
const failed = {
  ok: false,
  result: {
    push: failedPush,
    admission: { kind: 'failed', reason: 'not tried: push failed' },
    driftRepaired: false,
  },
  reason: 'reload: refused',
  node: 'lb1',
  at: 2000,
  durationMs: 5,
} as SyncOutcome<NodeOutcome>;

const types = (events: readonly ControllerEvent[]) => events.map((e) => e.type);

describe('controller: one LB node record', function () {
  it('a verified push: counted, recorded, told as a push and, the first time, as reachable', function () {
    const step = nodeAfterApply(initialNodeState('lb1'), ok(applied(2), { kind: 'off' }, true), 0);
    expect(types(step.events)).to.deep.equal(['node_push', 'node_reachable']);
    expect(step.events[0]).to.deep.include({
      outcome: 'applied',
      changes: 2,
      ms: 12.3,
      drift_repaired: true,
    });
    expect(step.state.counters).to.deep.equal({
      pushes: { applied: 1, in_sync: 0, failed: 0 },
      driftRepairs: 1,
      errors: 0,
    });
    expect(step.state.synced).to.equal(true);
    expect(step.converged).to.equal(true);
  });

  it('a cache hit is no push: not counted, not recorded, not told', function () {
    const first = nodeAfterApply(initialNodeState('lb1'), ok(applied(1)), 0).state;
    const step = nodeAfterApply(first, ok(cacheHit), 0);
    expect(step.events).to.deep.equal([]);
    expect(step.state.last).to.equal(first.last);
    expect(step.state.counters.pushes.in_sync).to.equal(0);
  });

  it('failures: each told as a failed push, the first after a success as unreachable; recovery told once', function () {
    let s = nodeAfterApply(initialNodeState('lb1'), ok(applied(1)), 0).state;
    const down = nodeAfterApply(s, failed, 1);
    expect(types(down.events)).to.deep.equal(['node_push', 'node_unreachable']);
    expect(down.events[0]).to.deep.include({
      outcome: 'failed',
      stage: 'reload',
      error: 'refused',
      failures: 1,
    });
    const still = nodeAfterApply(down.state, failed, 2);
    expect(types(still.events)).to.deep.equal(['node_push']);
    expect(still.state.counters.errors).to.equal(2);
    s = still.state;
    const back = nodeAfterApply(s, ok(cacheHit), 0);
    expect(back.events).to.deep.equal([{ type: 'node_reachable', node: 'lb1', again: true }]);
  });

  it('admission: every limit set is told; a lasting missing limiter is told once', function () {
    const limits = { kind: 'applied' as const, limits: [{ set: 1, limitCps: 50 }] };
    let step = nodeAfterApply(initialNodeState('lb1'), ok(applied(1), limits), 0);
    expect(step.events).to.deep.include({ type: 'admission_applied', node: 'lb1', limits: limits.limits });
    step = nodeAfterApply(step.state, ok(cacheHit, limits), 0);
    expect(types(step.events)).to.deep.equal(['admission_applied']);
    const missing = { kind: 'missing' as const, sets: [1] };
    step = nodeAfterApply(step.state, ok(cacheHit, missing), 0);
    expect(types(step.events)).to.deep.equal(['admission_missing']);
    step = nodeAfterApply(step.state, ok(cacheHit, missing), 0);
    expect(step.events).to.deep.equal([]);
    step = nodeAfterApply(step.state, ok(cacheHit, { kind: 'cleared', sets: [1] }), 0);
    expect(step.events).to.deep.equal([{ type: 'admission_cleared', node: 'lb1', sets: [1] }]);
  });

  it('an applier that gave no result is a failed apply', function () {
    const threw = { ok: false, result: null, reason: 'applier threw: x', node: 'lb1', at: 1, durationMs: 2 };
    const step = nodeAfterApply(initialNodeState('lb1'), threw as SyncOutcome<NodeOutcome>, 1);
    expect(step.events[0]).to.deep.include({ type: 'node_push', outcome: 'failed', stage: 'apply' });
    expect(step.state.last?.error).to.equal('applier threw: x');
  });
});

describe('controller: readiness', function () {
  it('a node never read nor pushed is not ready', function () {
    expect(notReadyReasons([initialNodeState('lb1')])).to.deep.equal([
      'LB node lb1 has not been read or pushed successfully yet',
    ]);
    expect(notReadyReasons([{ ...initialNodeState('lb1'), synced: true }])).to.deep.equal([]);
  });

  it('a blocked node is not ready, even once read (discovery reads it before it is found blocked)', function () {
    const blocked = { ...initialNodeState('lb1'), synced: true, blocked: 'its list has set 7' };
    expect(notReadyReasons([blocked])).to.deep.equal(['LB node lb1 is not pushed to: its list has set 7']);
  });
});

describe('controller events: bus and log lines', function () {
  it('stamps each event with the time; a throwing subscriber stops no one', function () {
    const bus = new EventBus(() => 42);
    const got: StampedEvent[] = [];
    bus.subscribe(() => {
      throw new Error('bad subscriber');
    });
    const off = bus.subscribe((e) => got.push(e));
    bus.emit({ type: 'panic_ended', set: 1 });
    off();
    bus.emit({ type: 'panic_ended', set: 2 });
    expect(got).to.deep.equal([{ type: 'panic_ended', set: 1, time: 42 }]);
  });

  it('keeps the log lines operators know', function () {
    expect(logLineOf({ type: 'node_reachable', node: 'lb1', again: false })?.msg).to.equal('LB node in sync');
    expect(logLineOf({ type: 'set_waiting', set: 1 })?.msg).to.equal(
      'waiting for the first reports of the set',
    );
    const push = logLineOf({
      type: 'node_push',
      node: 'lb1',
      outcome: 'applied',
      changes: 2,
      ms: 3.1,
      drift_repaired: false,
      stage: null,
      error: null,
      failures: 0,
    });
    expect(push).to.deep.equal({
      level: 'info',
      fields: { node: 'lb1', changes: 2, ms: 3.1 },
      msg: 'dispatcher list pushed and verified',
    });
    const panic = logLineOf({ type: 'panic_started', set: 1, healthy: 0, counted: 3, threshold: 0.5 });
    expect(panic?.level).to.equal('error');
    expect(panic?.msg).to.match(/^PANIC/);
  });
});
