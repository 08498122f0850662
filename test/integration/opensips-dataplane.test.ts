/**
 * Issue 15 item 3: OpenSIPS 3.6 as the LB (opensips/sipweigh-lb.cfg), Kamailio backends, sipp, on
 * loopback 127.47.x.x. The Kamailio LB's behaviour table, on OpenSIPS: no Via from the LB, replies
 * bypass it, the stamped source (and a forged one), CANCEL / 486 ACK / retransmission stickiness,
 * TCP relayed statefully, admission control, 503 without backends. Skipped when OpenSIPS is not
 * installed at its prefix (scripts/third-party.sh builds it).
 */
import { expect } from 'chai';
import { join } from 'node:path';
import { LAB_SCENARIOS } from '../../src/lab/scenarios.js';
import { openSipsCheck, opensipsAvailable, OPENSIPS_PREFIX } from '../../src/lab/opensips.js';
import { runSippClient, type SippRun } from '../../src/lab/sipp.js';
import { REPO_ROOT, SCENARIO_DIR, useProcessGroup } from '../support/harness.js';
import {
  delta,
  fetchStats,
  header,
  isRequest,
  sipRequest,
  sippReceivedMessages,
  tcpSipRequest,
  UdpSipPeer,
  type ReceivedSip,
  type Stats,
} from './dataplane-helpers.js';
import {
  miDelta,
  miStats,
  OSIPS_NET,
  startOsipsPlane,
  startOsipsUases,
  type OsipsPlane,
} from '../../src/lab/opensips-dataplane.js';

const { lbIp, sipPort } = OSIPS_NET;
const lbTarget = `${lbIp}:${sipPort}`;

function perBackend(before: readonly Stats[], after: readonly Stats[], name: string): number[] {
  return after.map((s, i) => delta(before[i] ?? {}, s, name));
}

/** Exact over UDP, except that each client retransmission (a loaded machine) may add one. */
function expectCounts(actual: readonly number[], expected: readonly number[], rtx: number, what: string) {
  actual.forEach((n, i) => expect(n, `${what} [${i}]`).to.be.within(expected[i]!, expected[i]! + rtx));
}

describe('OpenSIPS LB: data plane (OpenSIPS 3.6 LB, Kamailio backends)', function () {
  this.timeout(120000);
  const h = useProcessGroup('opensips-dataplane');
  let plane: OsipsPlane;
  let peer: UdpSipPeer;
  let bystander: UdpSipPeer;
  let uases: SippRun[] = [];
  let seq = 0;
  const nextCallId = (what: string) => `osips-${what}-${++seq}-${Date.now()}`;
  const backendStats = () => Promise.all(plane.backends.map((b) => fetchStats(b.rpcUrl)));
  const lbStats = () => miStats(plane.mi);

  async function restartUases(tag: string, scenario: string, traceMessages = false) {
    await Promise.all(uases.map((u) => u.process.stop()));
    uases = await startOsipsUases(h.group, plane, { scenario, tag, timeoutS: 100, traceMessages });
  }

  async function ask(text: string, callId: string, waitMs = 3000): Promise<ReceivedSip | undefined> {
    await peer.send(text, lbIp, sipPort);
    return peer.waitFor(
      (m) => m.status !== undefined && m.status >= 200 && header(m.text, 'Call-ID') === callId,
      waitMs,
    );
  }

  before(async function () {
    if (!opensipsAvailable()) {
      console.log(`      (OpenSIPS not installed at ${OPENSIPS_PREFIX}: run scripts/third-party.sh)`);
      this.skip();
    }
    plane = await startOsipsPlane(h.group, [{ weight: 70 }, { weight: 30 }]);
    peer = await UdpSipPeer.bind(OSIPS_NET.clientIp(5));
    bystander = await UdpSipPeer.bind(OSIPS_NET.clientIp(8), sipPort);
  });
  after(() => {
    peer?.close();
    bystander?.close();
    plane?.mi.close();
  });

  it('the rendered lab config passes `opensips -C`', function () {
    const r = openSipsCheck(plane.lb.files.cfg);
    expect(r.ok, r.output).to.equal(true);
  });

  it('sends an OPTIONS without a Via of its own; the reply comes from the backend, straight to the client', async function () {
    const callId = nextCallId('novia');
    const via = `${peer.address}:${peer.port}`;
    const reply = await ask(sipRequest({ method: 'OPTIONS', ruri: `sip:svc@${lbIp}`, callId, via }), callId);
    expect(reply?.status).to.equal(200);
    expect(
      plane.backends.map((b) => b.ip),
      'reply source',
    ).to.include(reply?.address);
    // The backend counted one Via (the client's) and adopted the stamped source.
    expect(header(reply?.text ?? '', 'X-Lab-Arrived')).to.equal(`vias=1;src=${via}`);
  });

  it('completes 30 calls; no reply, ACK or BYE reaches the LB; the UAS sees only the client Via + the backend one', async function () {
    await restartUases('calls', LAB_SCENARIOS.uas, true);
    const lbBefore = await lbStats();
    const calls = 30;
    const r = await runSippClient(h.group, {
      name: 'uac-calls',
      scenario: LAB_SCENARIOS.uac,
      localIp: OSIPS_NET.clientIp(0),
      localPort: 5091,
      remote: lbTarget,
      rate: 15,
      maxCalls: calls,
      timeoutS: 60,
    });
    expect(r.stats.successful, 'calls').to.equal(calls);
    const lbAfter = await lbStats();
    expect(miDelta(lbBefore, lbAfter, 'rcv_replies'), 'replies at the LB').to.equal(0);
    expect(miDelta(lbBefore, lbAfter, 'sipweigh_dispatched'), 'INVITEs dispatched').to.be.within(
      calls,
      calls + r.stats.retransmissions,
    );
    // INVITEs the LB received = the dispatched ones (+ retransmissions): no ACK, no BYE.
    expect(miDelta(lbBefore, lbAfter, 'rcv_requests'), 'requests at the LB').to.be.within(
      calls,
      calls + r.stats.retransmissions,
    );
    const invites = uases.flatMap((u) =>
      sippReceivedMessages(u.messagesFile ?? '').filter(isRequest('INVITE')),
    );
    expect(invites.length, 'INVITEs at the UASes').to.be.at.least(calls);
    for (const inv of invites) {
      expect(header(inv, 'X-Lab-Arrived'), 'Vias at the backend').to.match(
        /^vias=1;src=127\.47\.0\.100:5091$/,
      );
    }
  });

  it('a forged X-Sipweigh-Source from a UDP client loses to the real source the LB stamps first', async function () {
    const callId = nextCallId('forged');
    const via = `${peer.address}:${peer.port}`;
    const reply = await ask(
      sipRequest({
        method: 'OPTIONS',
        ruri: `sip:forge@${lbIp}`,
        callId,
        via,
        extraHeaders: [`X-Sipweigh-Source: udp:${bystander.address}:${bystander.port}`],
      }),
      callId,
    );
    expect(reply?.status, 'answered to the real client').to.equal(200);
    expect(header(reply?.text ?? '', 'X-Lab-Arrived')).to.equal(`vias=1;src=${via}`);
    expect(
      bystander.messages((m) => m.text.includes(callId)),
      'at the bystander',
    ).to.have.length(0);
  });

  it('TCP client: relayed statefully (LB Via), a forged source header removed, the reply over the connection', async function () {
    const before = await backendStats();
    const callId = nextCallId('tcp');
    const reply = await tcpSipRequest(OSIPS_NET.clientIp(6), { address: lbIp, port: sipPort }, (via) =>
      sipRequest({
        method: 'OPTIONS',
        ruri: `sip:tcp@${lbIp}`,
        callId,
        via,
        transport: 'TCP',
        extraHeaders: [`X-Sipweigh-Source: udp:${bystander.address}:${bystander.port}`],
      }),
    );
    expect(reply, 'reply over the TCP connection').to.match(/^SIP\/2\.0 200 /);
    expect(header(reply ?? '', 'X-Lab-Arrived'), 'source the backend saw').to.equal(
      `vias=2;src=${lbIp}:${sipPort}`,
    );
    const after = await backendStats();
    expect(
      after.reduce((a, s, i) => a + delta(before[i] ?? {}, s, 'script.sipweigh_source_adopted'), 0),
      'stamps adopted',
    ).to.equal(0);
    expect(bystander.messages((m) => m.text.includes(callId))).to.have.length(0);
  });

  it('answers a CANCEL without a known INVITE 481 itself and drops a stray ACK', async function () {
    const via = `${peer.address}:${peer.port}`;
    const lbBefore = await lbStats();
    const callId = nextCallId('cancel');
    const reply = await ask(sipRequest({ method: 'CANCEL', ruri: `sip:x@${lbIp}`, callId, via }), callId);
    expect(reply?.status).to.equal(481);
    expect(reply?.address).to.equal(lbIp);
    const ackId = nextCallId('ack');
    const none = await ask(
      sipRequest({ method: 'ACK', ruri: `sip:x@${lbIp}`, callId: ackId, via, toTag: 't1' }),
      ackId,
      800,
    );
    expect(none).to.equal(undefined);
    const lbAfter = await lbStats();
    expect(miDelta(lbBefore, lbAfter, 'sipweigh_cancel_481')).to.equal(1);
    expect(miDelta(lbBefore, lbAfter, 'sipweigh_stray_ack')).to.equal(1);
  });

  it('INVITE then CANCEL, 50 calls: every CANCEL and ACK reaches the INVITE backend, no 481', async function () {
    await restartUases('cancel', join(SCENARIO_DIR, 'uas-cancel.xml'));
    const lbBefore = await lbStats();
    const beBefore = await backendStats();
    const calls = 50;
    const r = await runSippClient(h.group, {
      name: 'uac-cancel',
      scenario: join(SCENARIO_DIR, 'uac-cancel.xml'),
      localIp: OSIPS_NET.clientIp(0),
      localPort: 5081,
      remote: lbTarget,
      rate: 25,
      maxCalls: calls,
      timeoutS: 60,
    });
    expect(r.stats.successful, 'calls ended 487 + ACK').to.equal(calls);
    expect(r.stats.deadCallMessages, 'retransmitted 487s').to.equal(0);
    const lbAfter = await lbStats();
    const beAfter = await backendStats();
    expect(miDelta(lbBefore, lbAfter, 'sipweigh_cancel_481')).to.equal(0);
    expectCounts(
      [miDelta(lbBefore, lbAfter, 'sipweigh_sticky')],
      [2 * calls],
      r.stats.retransmissions,
      'CANCEL + ACK',
    );
    const invites = perBackend(beBefore, beAfter, 'core.rcv_requests_invite');
    expect(
      invites.every((n) => n > 0),
      `both backends used: ${invites.join('/')}`,
    ).to.equal(true);
    expectCounts(
      perBackend(beBefore, beAfter, 'core.rcv_requests_cancel'),
      invites,
      r.stats.retransmissions,
      'CANCELs',
    );
    expectCounts(
      perBackend(beBefore, beAfter, 'core.rcv_requests_ack'),
      invites,
      r.stats.retransmissions,
      'ACKs',
    );
  });

  it('INVITE answered 486, 50 calls: every ACK reaches the INVITE backend', async function () {
    await restartUases('busy', LAB_SCENARIOS.busyUas);
    const lbBefore = await lbStats();
    const beBefore = await backendStats();
    const calls = 50;
    const r = await runSippClient(h.group, {
      name: 'uac-486',
      scenario: join(SCENARIO_DIR, 'uac-486.xml'),
      localIp: OSIPS_NET.clientIp(0),
      localPort: 5082,
      remote: lbTarget,
      rate: 25,
      maxCalls: calls,
      timeoutS: 60,
    });
    expect(r.stats.successful, 'calls ended 486 + ACK').to.equal(calls);
    expect(r.stats.deadCallMessages, 'retransmitted 486s').to.equal(0);
    const lbAfter = await lbStats();
    const beAfter = await backendStats();
    expect(miDelta(lbBefore, lbAfter, 'sipweigh_stray_ack')).to.equal(0);
    const invites = perBackend(beBefore, beAfter, 'core.rcv_requests_invite');
    expect(
      invites.every((n) => n > 0),
      `both backends used: ${invites.join('/')}`,
    ).to.equal(true);
    expectCounts(
      perBackend(beBefore, beAfter, 'core.rcv_requests_ack'),
      invites,
      r.stats.retransmissions,
      'ACKs',
    );
  });

  it('admission: T < 0 refuses new INVITEs with 503 + Retry-After (retransmission: same 503), T = 0 admits again', async function () {
    const via = `${peer.address}:${peer.port}`;
    await plane.mi.call('shv_set', { name: 'sipweigh_adm_T_1', type: 'int', value: -1 });
    try {
      const lbBefore = await lbStats();
      const callId = nextCallId('adm');
      const invite = sipRequest({
        method: 'INVITE',
        ruri: `sip:svc@${lbIp}`,
        callId,
        via,
        branch: 'z9hG4bK-adm-1',
      });
      const reply = await ask(invite, callId);
      expect(reply?.status).to.equal(503);
      expect(reply?.address).to.equal(lbIp);
      expect(Number(header(reply?.text ?? '', 'Retry-After'))).to.be.above(0);
      await peer.send(invite, lbIp, sipPort);
      await peer.waitFor(
        (m) => m.status === 503 && header(m.text, 'Call-ID') === callId && m !== reply,
        2000,
      );
      const lbAfter = await lbStats();
      expect(miDelta(lbBefore, lbAfter, 'sipweigh_admission_503'), 'refusals counted once').to.equal(1);
      expect(peer.messages((m) => m.status === 503 && header(m.text, 'Call-ID') === callId)).to.have.length(
        2,
      );
    } finally {
      await plane.mi.call('shv_set', { name: 'sipweigh_adm_T_1', type: 'int', value: 0 });
    }
    const callId = nextCallId('adm-open');
    const reply = await ask(sipRequest({ method: 'OPTIONS', ruri: `sip:svc@${lbIp}`, callId, via }), callId);
    expect(reply?.status).to.equal(200);
  });

  it('answers OPTIONS to itself 200, Max-Forwards 0 with 483', async function () {
    const via = `${peer.address}:${peer.port}`;
    const self = nextCallId('self');
    const ok = await ask(sipRequest({ method: 'OPTIONS', ruri: `sip:${lbIp}`, callId: self, via }), self);
    expect(ok?.status).to.equal(200);
    expect(ok?.address, 'answered by the LB').to.equal(lbIp);
    const hops = nextCallId('hops');
    const text = sipRequest({ method: 'OPTIONS', ruri: `sip:svc@${lbIp}`, callId: hops, via }).replace(
      'Max-Forwards: 70',
      'Max-Forwards: 0',
    );
    const tooMany = await ask(text, hops);
    expect(tooMany?.status).to.equal(483);
  });

  it('a preloaded Route: one naming the LB is dropped and the request balanced (statefully); one to elsewhere gets 403', async function () {
    const via = `${peer.address}:${peer.port}`;
    const ours = nextCallId('route-ours');
    const balanced = await ask(
      sipRequest({
        method: 'OPTIONS',
        ruri: `sip:svc@${lbIp}`,
        callId: ours,
        via,
        extraHeaders: [`Route: <sip:${lbIp}:${sipPort};lr>`],
      }),
      ours,
    );
    expect(balanced?.status).to.equal(200);
    expect(header(balanced?.text ?? '', 'X-Lab-Arrived'), 'relayed by the LB').to.equal(
      `vias=2;src=${lbIp}:${sipPort}`,
    );
    const foreign = nextCallId('route-foreign');
    const refused = await ask(
      sipRequest({
        method: 'OPTIONS',
        ruri: `sip:svc@${lbIp}`,
        callId: foreign,
        via,
        extraHeaders: [`Route: <sip:${bystander.address}:${bystander.port};lr>`],
      }),
      foreign,
    );
    expect(refused?.status).to.equal(403);
    expect(bystander.messages((m) => m.text.includes(foreign))).to.have.length(0);
  });

  it('answers 503 with Retry-After when no backend is active', async function () {
    for (const b of plane.backends)
      await plane.mi.call('ds_set_state', { state: 'i', group: '1', address: b.uri });
    try {
      const callId = nextCallId('none');
      const via = `${peer.address}:${peer.port}`;
      const reply = await ask(sipRequest({ method: 'INVITE', ruri: `sip:svc@${lbIp}`, callId, via }), callId);
      expect(reply?.status).to.equal(503);
      expect(reply?.address).to.equal(lbIp);
      expect(Number(header(reply?.text ?? '', 'Retry-After'))).to.be.above(0);
    } finally {
      for (const b of plane.backends)
        await plane.mi.call('ds_set_state', { state: 'a', group: '1', address: b.uri });
    }
  });
});

describe('OpenSIPS LB: a backend slower than the client retransmit timer', function () {
  this.timeout(90000);
  const h = useProcessGroup('opensips-slow');
  let plane: OsipsPlane;
  let uases: SippRun[] = [];

  before(async function () {
    if (!opensipsAvailable()) this.skip();
    plane = await startOsipsPlane(h.group, [
      { weight: 50, defines: { SW_PRE_RELAY_DELAY_US: 1200000 } },
      { weight: 50, defines: { SW_PRE_RELAY_DELAY_US: 1200000 } },
    ]);
    uases = await startOsipsUases(h.group, plane, {
      scenario: LAB_SCENARIOS.uas,
      tag: 'slow',
      timeoutS: 80,
      traceMessages: true,
    });
  });
  after(() => plane?.mi.close());

  it('retransmitted INVITEs follow the first: exactly one INVITE per call reaches the servers', async function () {
    const calls = 8;
    const before = await miStats(plane.mi);
    const r = await runSippClient(h.group, {
      name: 'uac-slow',
      scenario: join(REPO_ROOT, 'scripts', 'sipp', 'uac.xml'),
      localIp: OSIPS_NET.clientIp(0),
      localPort: 5083,
      remote: lbTarget,
      rate: 4,
      maxCalls: calls,
      timeoutS: 40,
    });
    expect(r.stats.successful).to.equal(calls);
    expect(r.stats.retransmissions, 'the client did retransmit INVITEs').to.be.at.least(calls);
    const after = await miStats(plane.mi);
    expect(miDelta(before, after, 'sipweigh_rtx_seen'), 'retransmissions seen at the LB').to.be.at.least(
      calls,
    );
    const all = uases.flatMap((u) =>
      sippReceivedMessages(u.messagesFile ?? '')
        .filter(isRequest('INVITE'))
        .map((m) => header(m, 'Call-ID') ?? ''),
    );
    expect(all, 'INVITEs at the servers').to.have.length(calls);
    expect(new Set(all).size, 'distinct calls').to.equal(calls);
  });
});
