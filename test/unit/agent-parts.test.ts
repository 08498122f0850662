/** The agent's pure parts: wire-safe metrics, hello backoff, replay across controller boots, drop counts. */
import { expect } from 'chai';
import fc from 'fast-check';
import { toReportMetrics } from '../../src/metrics/report-metrics.js';
import { backoffDelayMs } from '../../src/util/backoff.js';
import { Announcer, HELLO_BACKOFF } from '../../src/agent/announcer.js';
import { silentLogger } from '../../src/util/logger.js';
import { sleep } from '../support/harness.js';
import { ControllerReplay, REMEMBERED_CONTROLLER_BOOTS } from '../../src/agent/controller-replay.js';
import { DropCounters } from '../../src/agent/drop-counters.js';
import { planAgentReload } from '../../src/agent/reload-plan.js';
import { checkConfigEncodable, runAgent } from '../../src/agent/agent.js';
import type { AgentConfig } from '../../src/config/types.js';
import { payloadValidators } from '../../src/heartbeat/schema.js';
import { emptyMeasurements, MEASURED_FIELDS, type Measurements } from '../../src/metrics/types.js';

const NOW = 1_800_000_000_000;

describe('agent: report metrics', function () {
  it('whatever collectors produce, the report passes the heartbeat schema', function () {
    const anyNumber = fc.oneof(
      fc.double(),
      fc.constant(Number.NaN),
      fc.constant(Infinity),
      fc.constant(-Infinity),
      fc.integer(),
      fc.constant(null),
    );
    fc.assert(
      fc.property(
        fc.tuple(...MEASURED_FIELDS.map(() => anyNumber)),
        fc.double({ min: 0.001, max: 1e6, noNaN: true }),
        fc.boolean(),
        (values, capacity, draining) => {
          const m = emptyMeasurements();
          MEASURED_FIELDS.forEach((f, i) => (m[f] = values[i] ?? null));
          const metrics = toReportMetrics(m, capacity, draining);
          const payload = { seq: 1, ts: NOW, boot: 'bootbootboot', echo_seq: 1, echo_ts: NOW, metrics };
          expect(payloadValidators.report(payload), JSON.stringify(payloadValidators.report.errors)).to.equal(
            true,
          );
        },
      ),
    );
  });

  it('keeps measured values, nulls and the configured capacity and draining flag', function () {
    const m: Measurements = { ...emptyMeasurements(), cpu_util: 0.25, tm_current: 12, options_rtt_ms: 0.4 };
    expect(toReportMetrics(m, 200, true)).to.include({
      cpu_util: 0.25,
      tm_current: 12,
      options_rtt_ms: 0.4,
      load1: null,
      capacity: 200,
      draining: true,
    });
    expect(toReportMetrics({ ...m, cpu_util: 1.2, udp_rx_queue_bytes: 10.6 }, 1, false)).to.include({
      cpu_util: 1,
      udp_rx_queue_bytes: 11,
    });
  });
});

describe('agent: hello backoff', function () {
  it('doubles from 250 ms up to 30 s, within ±20 % jitter', function () {
    expect(backoffDelayMs(HELLO_BACKOFF, 0, 0.5)).to.equal(250);
    expect(backoffDelayMs(HELLO_BACKOFF, 1, 0.5)).to.equal(500);
    expect(backoffDelayMs(HELLO_BACKOFF, 3, 0.5)).to.equal(2000);
    expect(backoffDelayMs(HELLO_BACKOFF, 20, 0.5)).to.equal(30_000);
    expect(backoffDelayMs(HELLO_BACKOFF, 0, 0)).to.equal(200);
    expect(backoffDelayMs(HELLO_BACKOFF, 0, 0.999999)).to.equal(300);
    fc.assert(
      fc.property(fc.nat(1000), fc.double({ min: 0, max: 0.9999999, noNaN: true }), (attempt, r) => {
        const d = backoffDelayMs(HELLO_BACKOFF, attempt, r);
        expect(d).to.be.at.least(200).and.at.most(36_000);
      }),
    );
  });
});

describe('agent: announcer', function () {
  const fast = { initialMs: 20, maxMs: 40, factor: 2, jitter: 0 };
  let announcer: Announcer | undefined;
  afterEach(() => announcer?.stop());

  it('repeats hello until an ack echoes one of its hellos, then stops', async function () {
    const seqs: number[] = [];
    let next = 100;
    announcer = new Announcer({
      sendHello: () => (seqs.push(++next), next),
      logger: silentLogger,
      backoff: fast,
    });
    announcer.start();
    await sleep(150);
    expect(seqs.length).to.be.at.least(3);
    expect(announcer.acknowledge(5, 200), 'an ack for a hello we never sent').to.equal(false);
    expect(announcer.acknowledged).to.equal(false);
    expect(announcer.acknowledge(seqs[1]!, 200)).to.equal(true);
    expect(announcer.acknowledged).to.equal(true);
    const count = seqs.length;
    await sleep(150);
    expect(seqs.length).to.equal(count);
    expect(announcer.hellosSent).to.equal(count);
  });

  it('announces again after a silence without probes, not while probes come', async function () {
    const seqs: number[] = [];
    announcer = new Announcer({
      sendHello: () => seqs.push(seqs.length + 1),
      logger: silentLogger,
      backoff: fast,
      silenceMs: 100,
    });
    announcer.start();
    announcer.acknowledge(1, 50);
    for (let i = 0; i < 4; i++) {
      await sleep(40);
      announcer.probed();
      announcer.checkSilence();
    }
    expect(announcer.acknowledged).to.equal(true);
    expect(seqs).to.have.length(1);
    await sleep(150);
    announcer.checkSilence();
    expect(announcer.acknowledged).to.equal(false);
    expect(seqs.length).to.be.at.least(2);
  });

  it('sends nothing after stop', async function () {
    const seqs: number[] = [];
    announcer = new Announcer({ sendHello: () => seqs.push(1), logger: silentLogger, backoff: fast });
    announcer.start();
    announcer.stop();
    await sleep(100);
    expect(seqs).to.have.length(1);
  });
});

describe('agent: replay protection across controller boots', function () {
  it('accepts each (boot, seq) once', function () {
    const r = new ControllerReplay();
    expect(r.admit('bootAAAA', 1, NOW, NOW)).to.equal(null);
    expect(r.admit('bootAAAA', 1, NOW, NOW)).to.equal('replayed');
    expect(r.admit('bootAAAA', 2, NOW, NOW)).to.equal(null);
  });

  it('two live controllers interleaving do not drop each other', function () {
    const r = new ControllerReplay();
    for (let seq = 1; seq <= 50; seq++) {
      expect(r.admit('bootAAAA', seq, NOW, NOW)).to.equal(null);
      expect(r.admit('bootBBBB', seq, NOW, NOW)).to.equal(null);
    }
    expect(r.admit('bootAAAA', 50, NOW, NOW)).to.equal('replayed');
  });

  it('refuses stale and future-dated messages', function () {
    const r = new ControllerReplay({ maxAgeMs: 5000, maxFutureMs: 1000 });
    expect(r.admit('bootAAAA', 1, NOW - 6000, NOW)).to.equal('stale');
    expect(r.admit('bootAAAA', 2, NOW + 2000, NOW)).to.equal('future_dated');
  });

  it('remembers a bounded number of boots', function () {
    const r = new ControllerReplay();
    for (let i = 0; i < REMEMBERED_CONTROLLER_BOOTS * 10; i++)
      expect(r.admit(`boot${String(i).padStart(6, '0')}`, 1, NOW, NOW)).to.equal(null);
    const last = `boot${String(REMEMBERED_CONTROLLER_BOOTS * 10 - 1).padStart(6, '0')}`;
    expect(r.admit(last, 1, NOW, NOW)).to.equal('replayed');
  });
});

describe('agent: drop counters', function () {
  it('counts by reason and reports recent drops once', function () {
    const d = new DropCounters();
    d.count('bad_mac');
    d.count('bad_mac');
    d.count('oversized');
    expect(d.snapshot()).to.include({ bad_mac: 2, oversized: 1, replayed: 0 });
    expect(d.total()).to.equal(3);
    expect(d.takeRecent()).to.equal(3);
    expect(d.takeRecent()).to.equal(0);
  });
});

describe('agent: config values the protocol cannot carry', function () {
  const config: AgentConfig = {
    kind: 'agent',
    backend_id: 'be-cfg',
    set: 1,
    listen: { address: '127.0.6.3', port: 0 },
    controller: { address: '127.0.6.1', port: 7000 },
    key: Buffer.alloc(32, 7),
    capacity: 100,
    draining: false,
    sip: { address: '127.0.6.3', port: 5060 },
    collect_interval_ms: 250,
    logging: { level: 'info' },
  };

  it('accepts a config whose hello and report encode', function () {
    expect(() => checkConfigEncodable(config)).to.not.throw();
  });

  it('refuses to start with a capacity or set beyond the wire schema, naming the field', async function () {
    for (const [bad, field] of [
      [{ capacity: 2e9 }, 'capacity'],
      [{ set: 2 ** 31 }, 'set'],
    ] as const) {
      let error: unknown;
      await runAgent({ ...config, ...bad }, silentLogger, { signals: false, collectors: [] }).then(
        async (a) => a.stop('unexpected', false),
        (e: unknown) => (error = e),
      );
      expect(String(error)).to.match(/cannot be sent in heartbeat v1/);
      expect(String(error)).to.include(field);
    }
  });
});

describe('agent: reload plan (SIGHUP)', function () {
  const base: AgentConfig = {
    kind: 'agent',
    backend_id: 'be1',
    set: 1,
    listen: { address: '127.0.0.11', port: 7951 },
    controller: { address: '127.0.0.10', port: 7950 },
    key: Buffer.alloc(32, 1),
    capacity: 100,
    draining: false,
    sip: { address: '127.0.0.11', port: 5060 },
    kamailio_rpc: {
      url: 'http://127.0.0.11:5072/RPC',
      password: 'rpc-secret-31',
      timeout_ms: 500,
    },
    collect_interval_ms: 250,
    logging: { level: 'info' },
  };

  it('takes new keys live: current and previous, added or dropped', function () {
    const rotating = { ...base, key: Buffer.alloc(32, 2), previous_key: Buffer.alloc(32, 1) };
    expect(planAgentReload(base, rotating)).to.deep.equal({ ok: true, keys: true });
    expect(planAgentReload(rotating, { ...rotating, previous_key: undefined })).to.deep.equal({
      ok: true,
      keys: true,
    });
    expect(planAgentReload(rotating, { ...rotating, key: Buffer.alloc(32, 2) })).to.deep.equal({
      ok: true,
      keys: false,
    });
  });

  it('refuses whole, naming each field and no value, a change that needs a restart', function () {
    const next = {
      ...base,
      key: Buffer.alloc(32, 2),
      listen: { address: '127.0.0.12', port: 7951 },
      capacity: 50,
      kamailio_rpc: {
        url: 'http://127.0.0.11:5072/RPC',
        password: 'rpc-secret-32',
        timeout_ms: 500,
      },
    };
    const plan = planAgentReload(base, next);
    expect(plan).to.deep.equal({ ok: false, restart: ['capacity', 'kamailio_rpc', 'listen'] });
    expect(JSON.stringify(plan)).to.not.match(/rpc-secret/);
  });
});
