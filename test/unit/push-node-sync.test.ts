/**
 * NodeSync and its fan-out with scripted appliers (the applier is the injected seam: a function the
 * test controls, standing for "push to an LB"). Backoff delays are tiny so tests wait on events,
 * and asserted as the values the policy computes, never as measured time.
 */
import { expect } from 'chai';
import type { BackoffPolicy } from '../../src/util/backoff.js';
import { NodeSync, type ApplyContext, type ApplyResult, type SyncOutcome } from '../../src/push/node-sync.js';
import { NodeSyncFanout } from '../../src/push/fanout.js';
import { eventually, sleep } from '../support/harness.js';

const FAST: BackoffPolicy = { initialMs: 2, maxMs: 16, factor: 2, jitter: 0 };

/** An applier whose calls wait until the test releases them, one by one. */
class Gate<T> {
  readonly calls: { desired: T; context: ApplyContext; release: (r: ApplyResult<string>) => void }[] = [];
  readonly apply = (desired: T, context: ApplyContext) =>
    new Promise<ApplyResult<string>>((release) => this.calls.push({ desired, context, release }));
}

describe('push: NodeSync', function () {
  const syncs: NodeSync<unknown, unknown>[] = [];
  afterEach(async () => {
    await Promise.all(syncs.splice(0).map((s) => s.close()));
  });
  function make<T, R>(opts: ConstructorParameters<typeof NodeSync<T, R>>[0]): NodeSync<T, R> {
    const s = new NodeSync(opts);
    syncs.push(s as NodeSync<unknown, unknown>);
    return s;
  }

  it('applies one at a time and only the newest state submitted meanwhile (latest wins)', async function () {
    const gate = new Gate<number>();
    const s = make({ node: 'lb1', apply: gate.apply, backoff: FAST });
    s.submit(1);
    s.submit(2);
    s.submit(3);
    await eventually(() => gate.calls.length === 1, 'first apply');
    expect(gate.calls[0]!.desired).to.equal(1);
    expect(s.status()).to.include({ phase: 'applying', pending: true });
    s.submit(4);
    gate.calls[0]!.release({ ok: true, result: 'one' });
    await eventually(() => gate.calls.length === 2, 'second apply');
    expect(gate.calls.map((c) => c.desired)).to.deep.equal([1, 4]);
    gate.calls[1]!.release({ ok: true, result: 'four' });
    await eventually(() => s.status().phase === 'idle', 'idle');
    expect(gate.calls).to.have.length(2);
    expect(s.status()).to.include({ applies: 2, consecutiveFailures: 0, pending: false });
    expect(s.status().lastOutcome).to.include({ ok: true, result: 'four', node: 'lb1' });
  });

  it('retries a failure with growing, bounded backoff and reports each outcome; success resets it', async function () {
    let failUntil = 6;
    const attempts: number[] = [];
    const outcomes: SyncOutcome<string>[] = [];
    const delays: number[] = [];
    const s = make<string, string>({
      node: 'lb1',
      backoff: FAST,
      now: () => 1_000,
      apply: async (_d, ctx) => {
        attempts.push(ctx.attempt);
        return attempts.length < failUntil
          ? { ok: false, result: null, reason: 'refused' }
          : { ok: true, result: 'ok' };
      },
      onOutcome: (o, st) => {
        outcomes.push(o);
        if (st.phase === 'waiting_retry') delays.push(st.nextRetryAt - o.at);
      },
    });
    s.submit('x');
    await eventually(() => outcomes.some((o) => o.ok), 'eventual success');
    expect(attempts).to.deep.equal([0, 1, 2, 3, 4, 5]);
    // FAST: 2, 4, 8, 16, then capped at 16 (jitter 0; the status clock is frozen, so exact).
    expect(delays).to.deep.equal([2, 4, 8, 16, 16]);
    expect(outcomes.filter((o) => !o.ok)).to.have.length(5);
    expect(s.status()).to.include({ phase: 'idle', consecutiveFailures: 0 });
    expect(s.status().lastSuccessAt).to.be.a('number');
    failUntil = 0;
  });

  it('a state submitted during backoff replaces the retried one but waits for the timer; force survives', async function () {
    const gate = new Gate<string>();
    const slow: BackoffPolicy = { initialMs: 300, maxMs: 300, factor: 1, jitter: 0 };
    const s = make({ node: 'lb1', apply: gate.apply, backoff: slow });
    s.submit('a', { force: true });
    await eventually(() => gate.calls.length === 1, 'first apply');
    gate.calls[0]!.release({ ok: false, result: null, reason: 'down' });
    await eventually(() => s.status().phase === 'waiting_retry', 'backoff');
    s.submit('b');
    expect(gate.calls).to.have.length(1);
    expect(s.status()).to.include({ phase: 'waiting_retry', pending: true, consecutiveFailures: 1 });
    await eventually(() => gate.calls.length === 2, 'retry');
    expect(gate.calls[1]!.desired).to.equal('b');
    expect(gate.calls[1]!.context).to.deep.equal({ force: true, attempt: 1 });
    gate.calls[1]!.release({ ok: true, result: 'b' });
    await eventually(() => s.status().phase === 'idle', 'idle');
  });

  it('an applier that throws is a failure, a listener that throws is ignored, close waits for the apply', async function () {
    const gate = new Gate<number>();
    let calls = 0;
    const s = make<number, string>({
      node: 'lb1',
      backoff: { initialMs: 60_000, maxMs: 60_000, factor: 1, jitter: 0 },
      apply: async (d, c) => {
        calls++;
        if (d === 1) throw new Error('boom');
        return gate.apply(d, c);
      },
      onOutcome: () => {
        throw new Error('listener bug');
      },
    });
    s.submit(1);
    await eventually(() => s.status().lastOutcome !== null, 'first outcome');
    expect(s.status().lastOutcome).to.include({ ok: false, reason: 'applier threw: boom' });
    expect(s.status().phase).to.equal('waiting_retry');
    // Closing stops the (one minute) retry timer and drops the waiting state.
    await s.close();
    expect(s.status()).to.include({ phase: 'closed', pending: false });
    s.submit(2);
    expect(calls).to.equal(1);

    const t = make({ node: 'lb2', apply: gate.apply, backoff: FAST });
    t.submit(7);
    await eventually(() => gate.calls.length === 1, 'apply');
    let closed = false;
    const closing = t.close().then(() => (closed = true));
    await sleep(20);
    expect(closed).to.equal(false);
    gate.calls[0]!.release({ ok: true, result: 'seven' });
    await closing;
    expect(t.status().lastOutcome).to.include({ ok: true, result: 'seven' });
  });
});

describe('push: NodeSyncFanout', function () {
  it('each node converges on its own: one failing node neither blocks nor fails the other', async function () {
    let downOk = false;
    const applied: string[] = [];
    const fan = new NodeSyncFanout<number, string>(
      [
        { name: 'up', apply: async (d) => (applied.push(`up:${d}`), { ok: true, result: `up:${d}` }) },
        {
          name: 'down',
          apply: async (d) =>
            downOk
              ? (applied.push(`down:${d}`), { ok: true, result: `down:${d}` })
              : { ok: false, result: null, reason: 'ECONNREFUSED' },
        },
      ],
      { backoff: FAST },
    );
    try {
      fan.submit(1);
      const status = () => [fan.statusOf('up')!, fan.statusOf('down')!];
      await eventually(() => status().every((s) => s.lastOutcome !== null), 'both outcomes');
      const [up, down] = status();
      expect(up).to.include({ node: 'up', consecutiveFailures: 0 });
      expect(up!.lastOutcome).to.include({ ok: true, result: 'up:1' });
      expect(down).to.include({ node: 'down' });
      expect(down!.lastOutcome).to.include({ ok: false, reason: 'ECONNREFUSED' });
      downOk = true;
      await eventually(() => fan.statusOf('down')!.lastOutcome?.ok, 'down node recovers');
      expect(applied.sort()).to.deep.equal(['down:1', 'up:1']);
      expect(fan.submitTo('nope', 2)).to.equal(false);
      expect(
        () =>
          new NodeSyncFanout([
            { name: 'a', apply: async () => ({ ok: true, result: 1 }) },
            { name: 'a', apply: async () => ({ ok: true, result: 1 }) },
          ]),
      ).to.throw(/twice/);
    } finally {
      await fan.close();
    }
  });
});
