/**
 * Agentless backends, the decisions: who is probed over SSH, the cadence, what one SSH probe means
 * for health and metrics, and how the core applies it (no SSH here: verdicts are fed by hand).
 */
import { expect } from 'chai';
import type { SshConfig } from '../../src/config/types.js';
import type { AgentlessSample } from '../../src/metrics/ssh-collector.js';
import {
  agentlessMetrics,
  agentlessSsh,
  judgePoll,
  nextPollDelayMs,
  pollCadence,
  probedBy,
  sameSsh,
} from '../../src/probe/agentless.js';
import { ProbeCore } from '../../src/probe/probe-core.js';
import type { UdpAddress } from '../../src/util/udp-address.js';

const SSH: SshConfig = {
  host: '127.0.9.1',
  port: 2222,
  username: 'sipweigh',
  private_key_file: '/etc/sipweigh/id',
  host_fingerprint: 'SHA256:' + 'A'.repeat(43),
  interval_ms: 1000,
  kamcmd: true,
  sip_port: 5060,
};
const AGENT: UdpAddress = { address: '127.0.9.2', port: 7951 };

const sample = (over: Partial<AgentlessSample> = {}): AgentlessSample => ({
  values: { cpu_util: 0.25, mem_used_ratio: 0.5, load1: 0.7, tm_current: 3, dialogs_active: 2, req_rate: 10 },
  problems: [],
  sipSocket: 'found',
  kamailio: 'answered',
  ...over,
});

describe('agentless: which backends, what cadence', function () {
  it('probes over SSH only a backend with an ssh section and no agent', function () {
    expect(probedBy({ agent: AGENT })).to.equal('agent');
    expect(probedBy({ agent: AGENT, ssh: SSH })).to.equal('agent');
    expect(probedBy({ ssh: SSH })).to.equal('ssh');
    expect(probedBy({})).to.equal('hello');
    expect(agentlessSsh({ agent: AGENT, ssh: SSH })).to.equal(null);
    expect(agentlessSsh({ ssh: SSH })).to.equal(SSH);
    expect(sameSsh(SSH, { ...SSH })).to.equal(true);
    expect(sameSsh(SSH, { ...SSH, interval_ms: 2000 })).to.equal(false);
    expect(sameSsh(SSH, { ...SSH, sip_address: '127.0.0.1' })).to.equal(false);
    expect(sameSsh(null, undefined)).to.equal(true);
    expect(sameSsh(SSH, null)).to.equal(false);
  });

  it("probes once per the section's interval, faster while suspect, and at once after an overrun", function () {
    const c = pollCadence({ interval_ms: 1000 });
    expect(c).to.include({ intervalMs: 1000, timeoutMs: 1000 });
    expect(c.commandDeadlineMs).to.be.at.least(15_000);
    const at = (o: Partial<Parameters<typeof nextPollDelayMs>[1]>) =>
      nextPollDelayMs(c, { suspect: false, elapsedMs: 0, jitter: 0.1, suspectSpeedup: 2, random: 0.5, ...o });
    expect(at({})).to.equal(1000);
    expect(at({ elapsedMs: 30 })).to.equal(970);
    expect(at({ suspect: true })).to.equal(500);
    expect(at({ random: 0 })).to.equal(900);
    expect(at({ random: 0.999999 })).to.be.closeTo(1100, 0.01);
    expect(at({ elapsedMs: 5000 })).to.equal(0);
  });
});

describe('agentless: what one SSH probe means', function () {
  const c = pollCadence({ interval_ms: 1000 });

  it('an answer in time is an ok with its round trip, its figures as an agent would report them', function () {
    const v = judgePoll({ kind: 'answered', rttMs: 42, sample: sample() }, 120, c, '*:5060');
    expect(v.ok).to.equal(true);
    if (!v.ok) return;
    expect(v.rttMs).to.equal(42);
    expect(v.metrics).to.deep.equal({
      cpu_util: 0.25,
      mem_used_ratio: 0.5,
      load1: 0.7,
      tm_current: 3,
      dialogs_active: 2,
      req_rate: 10,
      err5xx_rate: null,
      udp_rx_queue_bytes: null,
      udp_drops: null,
      options_rtt_ms: null,
      capacity: 120,
      draining: false,
    });
  });

  it('never reports an OPTIONS round trip or a draining flag, and clamps like an agent', function () {
    const m = agentlessMetrics(
      sample({ values: { options_rtt_ms: 5, cpu_util: 1.7, dialogs_active: 2.6, udp_drops: -1 } }),
      10,
    );
    expect(m).to.include({
      options_rtt_ms: null,
      draining: false,
      cpu_util: 1,
      dialogs_active: 3,
      udp_drops: 0,
    });
  });

  it('an SSH failure, a refused host key or an overrun is a miss that says why', function () {
    const refused = judgePoll(
      {
        kind: 'failed',
        error: 'ssh u@h:22 not connected (waiting): host key of u@h:22 is SHA256:x, expected SHA256:y',
      },
      1,
      c,
      '*:5060',
    );
    expect(refused).to.deep.equal({
      ok: false,
      cause: 'ssh u@h:22 not connected (waiting): host key of u@h:22 is SHA256:x, expected SHA256:y',
    });
    const slow = judgePoll({ kind: 'answered', rttMs: 1500, sample: sample() }, 1, c, '*:5060');
    expect(slow).to.deep.equal({ ok: false, cause: 'answered in 1500 ms, over the 1000 ms timeout' });
  });

  it('a host without its SIP server is a miss: no socket on the SIP port, or a Kamailio deaf to kamcmd', function () {
    expect(
      judgePoll(
        { kind: 'answered', rttMs: 5, sample: sample({ sipSocket: 'absent' }) },
        1,
        c,
        '127.0.0.11:5060',
      ),
    ).to.deep.equal({ ok: false, cause: 'no SIP server: no UDP socket bound to 127.0.0.11:5060' });
    const deaf = judgePoll(
      {
        kind: 'answered',
        rttMs: 5,
        sample: sample({
          kamailio: 'silent',
          problems: ['cpu: first reading', 'tm.stats: tm: exit 255: connect: No such file or directory'],
        }),
      },
      1,
      c,
      '*:5060',
    );
    expect(deaf).to.deep.equal({
      ok: false,
      cause: 'Kamailio answers no kamcmd call: tm.stats: tm: exit 255: connect: No such file or directory',
    });
    // Figures that could not be read are not a dead server: an ok with what was measured.
    for (const s of [sample({ sipSocket: 'unknown' }), sample({ sipSocket: 'unchecked', kamailio: 'off' })]) {
      expect(judgePoll({ kind: 'answered', rttMs: 5, sample: s }, 1, c, '*:5060').ok).to.equal(true);
    }
  });
});

describe('agentless: the core applies SSH verdicts like probes and reports', function () {
  function makeCore() {
    let mono = 1000;
    const changes: string[] = [];
    const reports: { id: string; rtt: number | null }[] = [];
    const sent: UdpAddress[] = [];
    const core = new ProbeCore(
      {
        masterKeys: [Buffer.alloc(32, 7)],
        clock: { mono: () => mono, wall: () => 1.7e12 + mono },
        random: () => 0.5,
      },
      (_b, to) => sent.push(to),
      { onReport: (b, _m, rtt) => reports.push({ id: b.id, rtt }) },
    );
    core.onAgentlessChange = (id) => changes.push(id);
    return {
      core,
      changes,
      reports,
      sent,
      advance(ms: number) {
        const end = mono + ms;
        while (core.nextDue <= end) {
          mono = Math.max(mono, core.nextDue);
          core.tick(mono);
        }
        mono = end;
      },
    };
  }
  const ok = (rttMs: number) =>
    judgePoll(
      { kind: 'answered', rttMs, sample: sample() },
      100,
      pollCadence({ interval_ms: 1000 }),
      '*:5060',
    );

  it('up after return_after_oks good probes, down after down_after_misses failed ones, with metrics, RTT and cause', function () {
    const { core, changes, reports, sent, advance } = makeCore();
    core.upsert({ id: 'al1', set: 1, uri: 'sip:a', capacity: 100, ssh: SSH, source: 'config' });
    expect(changes).to.deep.equal(['al1']);
    expect(core.agentlessSpec('al1')).to.equal(SSH);
    expect(core.agentlessIds()).to.deep.equal(['al1']);
    const v = core.get('al1')!;
    expect(v).to.include({ via: 'ssh', sshTarget: 'sipweigh@127.0.9.1:2222', lastError: null, agent: null });
    for (let i = 0; i < 5; i++) core.recordPoll('al1', ok(20));
    expect(v.health.kind).to.equal('up');
    expect(v.metrics).to.include({ dialogs_active: 2, capacity: 100, draining: false });
    expect(v.srttMs).to.equal(20);
    expect(Number.isFinite(v.lastReportAt)).to.equal(true);
    expect(reports).to.have.length(5);
    expect(reports[0]).to.deep.equal({ id: 'al1', rtt: 20 });
    for (let i = 0; i < 3; i++) core.recordPoll('al1', { ok: false, cause: 'ssh down' });
    expect(v.health.kind).to.equal('down');
    expect(v.lastError).to.equal('ssh down');
    expect(v.misses).to.equal(3);
    expect(core.counters.sshProbes).to.deep.equal({ ok: 5, missed: 3 });
    core.recordPoll('al1', ok(20));
    expect(v.lastError).to.equal(null);
    // No UDP probe ever went anywhere for it.
    advance(5000);
    expect(sent).to.have.length(0);
  });

  it('ignores verdicts for backends it does not probe over SSH (an agent, when configured, wins)', function () {
    const { core } = makeCore();
    core.upsert({ id: 'ag1', set: 1, uri: 'sip:a', capacity: 1, agent: AGENT, ssh: SSH, source: 'config' });
    core.recordPoll('ag1', ok(1));
    core.recordPoll('nobody', ok(1));
    expect(core.get('ag1')!.health.kind).to.equal('down');
    expect(core.get('ag1')!.via).to.equal('agent');
    expect(core.counters.sshProbes).to.deep.equal({ ok: 0, missed: 0 });
  });

  it('tells the shell when a backend starts, changes or stops being probed over SSH, and switches probing', function () {
    const { core, changes, sent, advance } = makeCore();
    core.upsert({ id: 'sw', set: 1, uri: 'sip:a', capacity: 1, agent: AGENT, ssh: SSH, source: 'config' });
    expect(changes).to.deep.equal([]);
    advance(1000);
    expect(sent.length).to.be.greaterThan(0);
    // A reload removes the agent: SSH takes over, the agent is probed no more.
    core.upsert({ id: 'sw', set: 1, uri: 'sip:a', capacity: 1, ssh: SSH, source: 'config' });
    expect(changes).to.deep.equal(['sw']);
    const n = sent.length;
    advance(2000);
    expect(sent.length).to.equal(n);
    // The same settings again (a reconcile): nothing to restart.
    core.upsert({ id: 'sw', set: 1, uri: 'sip:a', capacity: 1, ssh: { ...SSH }, source: 'config' });
    expect(changes).to.deep.equal(['sw']);
    core.upsert({
      id: 'sw',
      set: 1,
      uri: 'sip:a',
      capacity: 1,
      ssh: { ...SSH, interval_ms: 500 },
      source: 'config',
    });
    expect(changes).to.deep.equal(['sw', 'sw']);
    expect(core.agentlessSpec('sw')!.interval_ms).to.equal(500);
    // An agent again: the SSH poller stops, UDP probes resume.
    core.upsert({ id: 'sw', set: 1, uri: 'sip:a', capacity: 1, agent: AGENT, ssh: SSH, source: 'config' });
    expect(changes).to.deep.equal(['sw', 'sw', 'sw']);
    expect(core.agentlessSpec('sw')).to.equal(undefined);
    advance(1000);
    expect(sent.length).to.be.greaterThan(n);
    core.upsert({ id: 'sw', set: 1, uri: 'sip:a', capacity: 1, ssh: SSH, source: 'config' });
    core.remove('sw');
    expect(changes).to.deep.equal(['sw', 'sw', 'sw', 'sw', 'sw']);
    expect(core.agentlessIds()).to.deep.equal([]);
  });
});
