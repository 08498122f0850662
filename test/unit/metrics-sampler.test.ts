/**
 * The sampler's guarantees, with scripted collectors: independent failure, timeouts, snapshot never
 * waiting, in-flight lower bounds.
 */
import { expect } from 'chai';
import type { Collector, Sample } from '../../src/metrics/collector.js';
import { Sampler } from '../../src/metrics/sampler.js';
import { eventually, sleep } from '../support/harness.js';

function scripted(
  name: string,
  fields: Collector['fields'],
  collect: Collector['collect'],
  extra: Partial<Collector> = {},
): Collector {
  return { name, fields, intervalMs: 20, timeoutMs: 200, collect, ...extra };
}

describe('metrics: sampler', function () {
  let sampler: Sampler | undefined;
  afterEach(async function () {
    await sampler?.stop();
    sampler = undefined;
  });

  it('a failing collector nulls only its own fields; the others keep reporting', async function () {
    let calls = 0;
    sampler = new Sampler([
      scripted('good', ['load1'], async () => ({ values: { load1: ++calls } })),
      scripted('bad', ['tm_current', 'dialogs_active'], async () => {
        throw new Error('connection refused');
      }),
    ]);
    sampler.start();
    await eventually(() => (sampler!.snapshot().load1 ?? 0) >= 3, 'three good samples');
    const snap = sampler.snapshot();
    expect(snap.tm_current).to.equal(null);
    expect(snap.dialogs_active).to.equal(null);
    const bad = sampler.status().find((s) => s.name === 'bad')!;
    expect(bad.state).to.equal('failed');
    expect(bad.problems).to.deep.equal(['connection refused']);
    expect(bad.failures).to.be.greaterThan(1);
  });

  it('a value measured before is nulled when its collector starts failing', async function () {
    let fail = false;
    sampler = new Sampler([
      scripted('flaky', ['udp_rx_queue_bytes'], async () => {
        if (fail) throw new Error('gone');
        return { values: { udp_rx_queue_bytes: 1234 } };
      }),
    ]);
    sampler.start();
    await eventually(() => sampler!.snapshot().udp_rx_queue_bytes === 1234, 'a value');
    fail = true;
    await eventually(() => sampler!.snapshot().udp_rx_queue_bytes === null, 'the value nulled');
  });

  it('a collector that hangs times out, and snapshot() answers at once meanwhile', async function () {
    sampler = new Sampler([
      scripted('stuck', ['req_rate'], () => new Promise<Sample>(() => undefined), { timeoutMs: 100 }),
      scripted('fine', ['load1'], async () => ({ values: { load1: 1 } })),
    ]);
    sampler.start();
    const t0 = performance.now();
    const snap = sampler.snapshot();
    expect(performance.now() - t0).to.be.lessThan(50);
    expect(snap.req_rate).to.equal(null);
    await eventually(
      () => sampler!.status().find((s) => s.name === 'stuck')!.state === 'failed',
      'the timeout',
    );
    expect(sampler.status().find((s) => s.name === 'stuck')!.problems[0]).to.match(/no sample within 100 ms/);
    expect(sampler.snapshot().load1).to.equal(1);
  });

  it('a late result of a timed-out sample is thrown away', async function () {
    let n = 0;
    sampler = new Sampler([
      scripted(
        'slow-then-fast',
        ['load1'],
        async () => {
          n++;
          if (n === 1) {
            await sleep(300);
            return { values: { load1: 999 } };
          }
          return { values: { load1: n } };
        },
        { timeoutMs: 100 },
      ),
    ]);
    sampler.start();
    await eventually(() => (sampler!.snapshot().load1 ?? 0) >= 2, 'a later sample');
    await sleep(350);
    expect(sampler.snapshot().load1).to.not.equal(999);
  });

  it('a collector that throws synchronously is a failed sample, not a crash', async function () {
    sampler = new Sampler([
      scripted('throws', ['cpu_util'], () => {
        throw new TypeError('bug');
      }),
    ]);
    sampler.start();
    await eventually(() => sampler!.status()[0]!.failures >= 2, 'two failures');
    expect(sampler.snapshot().cpu_util).to.equal(null);
  });

  it('fields a collector leaves out are null and the state is degraded', async function () {
    sampler = new Sampler([
      scripted('half', ['tm_current', 'req_rate'], async () => ({
        values: { tm_current: 4 },
        problems: ['rates: first reading'],
      })),
    ]);
    sampler.start();
    await eventually(() => sampler!.status()[0]!.samples >= 1, 'a sample');
    expect(sampler.snapshot()).to.include({ tm_current: 4, req_rate: null });
    expect(sampler.status()[0]).to.include({ state: 'degraded' });
  });

  it('refuses two collectors claiming one field', function () {
    expect(
      () =>
        new Sampler([
          scripted('a', ['load1'], async () => ({ values: {} })),
          scripted('b', ['load1'], async () => ({ values: {} })),
        ]),
    ).to.throw('claimed by both a and b');
  });

  it("reports a sample in flight through the collector's inFlight() lower bound", async function () {
    let release: (() => void) | undefined;
    let n = 0;
    sampler = new Sampler([
      scripted(
        'ping',
        ['options_rtt_ms'],
        async () => {
          if (++n === 1) return { values: { options_rtt_ms: 1 } };
          // The second ping hangs until released; later ones answer at once.
          if (n === 2) await new Promise<void>((r) => (release = r));
          return { values: { options_rtt_ms: 2 } };
        },
        { timeoutMs: 5000, inFlight: (elapsed) => (elapsed > 1 ? { options_rtt_ms: elapsed } : undefined) },
      ),
    ]);
    sampler.start();
    await eventually(() => release !== undefined, 'second sample in flight');
    await sleep(150);
    expect(sampler.snapshot().options_rtt_ms).to.be.greaterThan(100);
    release!();
    await eventually(() => sampler!.snapshot().options_rtt_ms === 2, 'the completed value');
  });

  it('stop() does not wait for a collector that never finishes', async function () {
    const s = new Sampler([
      scripted('hangs', ['req_rate'], () => new Promise<Sample>(() => undefined), { timeoutMs: 60_000 }),
    ]);
    s.start();
    await sleep(50);
    const t0 = performance.now();
    await s.stop();
    expect(performance.now() - t0).to.be.lessThan(5000);
  });

  it('stop() closes every collector and schedules nothing more', async function () {
    let closed = 0;
    let calls = 0;
    const s = new Sampler([
      scripted('c', ['load1'], async () => ({ values: { load1: ++calls } }), { close: () => void closed++ }),
    ]);
    s.start();
    await eventually(() => calls >= 2, 'two samples');
    await s.stop();
    const after = calls;
    await sleep(100);
    expect(calls).to.equal(after);
    expect(closed).to.equal(1);
  });
});
