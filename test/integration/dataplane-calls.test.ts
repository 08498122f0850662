/**
 * Issue 3, calls through the transparent LB (real Kamailio LB + 2 backends + sipp on loopback):
 * - calls complete, the LB sees neither ACK nor BYE (nor any reply), the backend receives only the
 *   client's Via, and responses come from the backend's address;
 * - a client behind a NAT (Via names another port) completes calls thanks to rport;
 * - a TCP client completes calls through the LB, which then stays in the path (both directions).
 */
import { expect } from 'chai';
import { join } from 'node:path';
import { LAB_SCENARIOS } from '../../src/lab/scenarios.js';
import { DATAPLANE_NET, startDataPlane, startUases, type DataPlane } from '../../src/lab/dataplane.js';
import type { SippRun } from '../../src/lab/sipp.js';
import { runSippClient } from '../../src/lab/sipp.js';
import { SCENARIO_DIR, useProcessGroup } from '../support/harness.js';
import { describeEachKamailio } from '../support/platforms.js';
import {
  delta,
  header,
  isRequest,
  sipRequest,
  sippReceivedMessages,
  UdpSipPeer,
  type Stats,
  lbStatsOf,
  backendStatsOf,
} from './dataplane-helpers.js';

const LAB_UAC = LAB_SCENARIOS.uac;
const UAS_ANSWER = LAB_SCENARIOS.uas;

describeEachKamailio('data plane: calls through the transparent LB', function (platform) {
  this.timeout(90000);
  const h = useProcessGroup('dataplane-calls');
  let plane: DataPlane;
  let uases: SippRun[] = [];

  const lbStats = () => lbStatsOf(plane);
  const backendStats = () => backendStatsOf(plane);
  const sum = (all: Stats[], before: Stats[], name: string) =>
    all.reduce((acc, s, i) => acc + delta(before[i] ?? {}, s, name), 0);
  /** INVITEs the UASes received, each with the X-Lab-Arrived line its backend added. */
  const invitesAtUases = () =>
    uases.flatMap((u) => sippReceivedMessages(u.messagesFile ?? '').filter(isRequest('INVITE')));

  before(async function () {
    plane = await startDataPlane(h.group, {
      backends: [{ weight: 50 }, { weight: 50 }],
      kamailio: platform.binary,
    });
  });

  async function restartUases(tag: string, scenario: string, transport: 'u1' | 't1' = 'u1') {
    await Promise.all(uases.map((u) => u.process.stop()));
    uases = await startUases(h.group, plane, { scenario, tag, timeoutS: 80, traceMessages: true, transport });
  }

  it('completes calls; no ACK, BYE or reply reaches the LB; the backend gets only the client Via', async function () {
    await restartUases('calls', UAS_ANSWER);
    const lbBefore = await lbStats();
    const beBefore = await backendStats();
    const calls = 30;
    const clientPort = 5091;
    const r = await runSippClient(h.group, {
      name: 'uac-calls',
      scenario: LAB_UAC,
      localIp: DATAPLANE_NET.clientIp(0),
      localPort: clientPort,
      remote: `${DATAPLANE_NET.lbIp}:${DATAPLANE_NET.sipPort}`,
      rate: 15,
      maxCalls: calls,
      timeoutS: 40,
    });
    expect(r.stats.successful, 'successful calls').to.equal(calls);
    expect(r.stats.failed, 'failed calls').to.equal(0);

    const lbAfter = await lbStats();
    // Each client retransmission (a loaded machine) may add one message; none: the check is exact.
    const slack = r.stats.retransmissions;
    expect(delta(lbBefore, lbAfter, 'core.rcv_requests_invite'), 'INVITEs at the LB').to.be.within(
      calls,
      calls + slack,
    );
    expect(delta(lbBefore, lbAfter, 'core.rcv_requests_ack'), 'ACKs at the LB').to.equal(0);
    expect(delta(lbBefore, lbAfter, 'core.rcv_requests_bye'), 'BYEs at the LB').to.equal(0);
    expect(delta(lbBefore, lbAfter, 'core.rcv_replies'), 'replies at the LB').to.equal(0);

    const beAfter = await backendStats();
    expect(sum(beAfter, beBefore, 'core.rcv_requests_ack'), 'ACKs at the backends').to.be.within(
      calls,
      calls + slack,
    );
    expect(sum(beAfter, beBefore, 'core.rcv_requests_bye'), 'BYEs at the backends').to.be.within(
      calls,
      calls + slack,
    );

    const invites = invitesAtUases();
    expect(invites, 'INVITEs at the UASes').to.have.length(calls);
    for (const inv of invites) {
      // What the backend saw on arrival: one Via (the client's), and the client's real source.
      expect(header(inv, 'X-Lab-Arrived')).to.equal(`vias=1;src=${DATAPLANE_NET.clientIp(0)}:${clientPort}`);
      expect(header(inv, 'X-Sipweigh-Source'), 'stamp removed by the backend').to.equal(undefined);
    }
  });

  it('sends every response of a call from the backend address, straight to the client', async function () {
    const peer = await UdpSipPeer.bind(DATAPLANE_NET.clientIp(1));
    try {
      const callId = `dp-direct-${Date.now()}@test`;
      const via = `${peer.address}:${peer.port}`;
      const ruri = `sip:service@${DATAPLANE_NET.lbIp}:${DATAPLANE_NET.sipPort}`;
      await peer.send(
        sipRequest({ method: 'INVITE', ruri, callId, via }),
        DATAPLANE_NET.lbIp,
        DATAPLANE_NET.sipPort,
      );
      const ok = await peer.waitFor((m) => m.status === 200, 5000);
      expect(ok, '200 OK to the INVITE').to.not.equal(undefined);
      if (!ok) return;
      const backendIps = plane.backends.map((b) => b.ip);
      expect(backendIps).to.include(ok.address);
      for (const reply of peer.messages((m) => m.status !== undefined)) {
        expect(reply.address, `source of ${reply.status}`).to.equal(ok.address);
        expect(reply.port).to.equal(DATAPLANE_NET.sipPort);
      }
      // In-dialog requests follow the backend's Record-Route, i.e. go to the same backend.
      const rr = header(ok.text, 'Record-Route') ?? '';
      expect(rr).to.contain(`sip:${ok.address}`);
      const toTag = /;tag=([^;>\s]+)/.exec(header(ok.text, 'To') ?? '')?.[1];
      const contact = /<([^>]+)>/.exec(header(ok.text, 'Contact') ?? '')?.[1] ?? '';
      const route = [`Route: ${rr}`];
      await peer.send(
        sipRequest({ method: 'ACK', ruri: contact, callId, via, toTag, extraHeaders: route }),
        ok.address,
        DATAPLANE_NET.sipPort,
      );
      await peer.send(
        sipRequest({ method: 'BYE', ruri: contact, callId, via, toTag, cseq: 2, extraHeaders: route }),
        ok.address,
        DATAPLANE_NET.sipPort,
      );
      const byeOk = await peer.waitFor((m) => m.status === 200 && /CSeq:\s*2 BYE/i.test(m.text), 5000);
      expect(byeOk, '200 OK to the BYE').to.not.equal(undefined);
      expect(byeOk?.address).to.equal(ok.address);
    } finally {
      peer.close();
    }
  });

  it('completes calls for a client behind a NAT that relies on rport (Via names another port)', async function () {
    const lbBefore = await lbStats();
    const calls = 20;
    const r = await runSippClient(h.group, {
      name: 'uac-rport',
      scenario: join(SCENARIO_DIR, 'uac-rport-nat.xml'),
      localIp: DATAPLANE_NET.clientIp(2),
      localPort: 5098,
      remote: `${DATAPLANE_NET.lbIp}:${DATAPLANE_NET.sipPort}`,
      rate: 10,
      maxCalls: calls,
      timeoutS: 40,
    });
    expect(r.stats.successful, 'successful calls').to.equal(calls);
    expect(r.stats.failed).to.equal(0);
    const lbAfter = await lbStats();
    expect(delta(lbBefore, lbAfter, 'core.rcv_requests_ack')).to.equal(0);
    expect(delta(lbBefore, lbAfter, 'core.rcv_replies')).to.equal(0);
  });

  it('completes calls from a TCP client, with the LB statefully in the path', async function () {
    await restartUases('tcp', UAS_ANSWER);
    const lbBefore = await lbStats();
    const calls = 20;
    const r = await runSippClient(h.group, {
      name: 'uac-tcp',
      scenario: join(SCENARIO_DIR, 'uac-via-lb.xml'),
      transport: 't1',
      localIp: DATAPLANE_NET.clientIp(3),
      localPort: 5097,
      remote: `${DATAPLANE_NET.lbIp}:${DATAPLANE_NET.sipPort}`,
      rate: 10,
      maxCalls: calls,
      timeoutS: 40,
    });
    expect(r.stats.successful, 'successful calls').to.equal(calls);
    expect(r.stats.failed).to.equal(0);
    const lbAfter = await lbStats();
    // The LB record-routed the TCP dialogs: ACK and BYE come through it, over the client's connection.
    expect(delta(lbBefore, lbAfter, 'core.rcv_requests_ack')).to.equal(calls);
    expect(delta(lbBefore, lbAfter, 'core.rcv_requests_bye')).to.equal(calls);
    expect(delta(lbBefore, lbAfter, 'script.sipweigh_dispatched'), 'transparent dispatches').to.equal(0);
    const invites = invitesAtUases();
    expect(invites).to.have.length(calls);
    for (const inv of invites) {
      // The LB's own Via on top of the client's; the backend kept the LB as the source.
      expect(header(inv, 'X-Lab-Arrived')).to.equal(
        `vias=2;src=${DATAPLANE_NET.lbIp}:${DATAPLANE_NET.sipPort}`,
      );
    }
  });

  it('brings the callee BYE back to a TCP caller through the LB, over the caller connection', async function () {
    await restartUases('tcp-bye', join(SCENARIO_DIR, 'uas-answer-then-bye.xml'));
    const lbBefore = await lbStats();
    const calls = 10;
    const r = await runSippClient(h.group, {
      name: 'uac-tcp-bye',
      scenario: join(SCENARIO_DIR, 'uac-tcp-callee-hangs-up.xml'),
      transport: 't1',
      localIp: DATAPLANE_NET.clientIp(3),
      localPort: 5096,
      remote: `${DATAPLANE_NET.lbIp}:${DATAPLANE_NET.sipPort}`,
      rate: 5,
      maxCalls: calls,
      timeoutS: 40,
    });
    expect(r.stats.successful, 'calls ended by the callee').to.equal(calls);
    expect(r.stats.failed).to.equal(0);
    const lbAfter = await lbStats();
    // The BYEs came from the backends over UDP and left over the callers' TCP connection.
    expect(delta(lbBefore, lbAfter, 'core.rcv_requests_bye')).to.equal(calls);
  });

  it('brings the callee BYE back to a TCP caller behind a NAT (its Contact names an unreachable address)', async function () {
    // uas-answer-then-bye.xml is still running from the previous test. Without the LB's contact
    // alias the BYE went to the Contact's address: "connect failed", 477 to the backend, call hung.
    const calls = 5;
    const r = await runSippClient(h.group, {
      name: 'uac-tcp-nat-bye',
      scenario: join(SCENARIO_DIR, 'uac-tcp-nat-callee-hangs-up.xml'),
      transport: 't1',
      localIp: DATAPLANE_NET.clientIp(4),
      localPort: 5095,
      remote: `${DATAPLANE_NET.lbIp}:${DATAPLANE_NET.sipPort}`,
      rate: 5,
      maxCalls: calls,
      timeoutS: 30,
      vars: { private_ip: DATAPLANE_NET.clientIp(99) },
    });
    expect(r.stats.successful, 'calls ended by the callee').to.equal(calls);
    expect(r.stats.failed).to.equal(0);
  });
});
