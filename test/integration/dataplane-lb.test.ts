/**
 * Issue 3, the LB's own behaviour (real Kamailio LB + 2 backends on loopback): relative weights,
 * stamped source and its trust, requests that must not be balanced (stray CANCEL/ACK, in-dialog,
 * foreign Route, loops, garbage), 503 without backends, and its guarded JSON-RPC over HTTP.
 */
import { expect } from 'chai';
import { join } from 'node:path';
import { DATAPLANE_NET, startDataPlane, type DataPlane } from '../../src/lab/dataplane.js';
import { runSippClient } from '../../src/lab/sipp.js';
import { SCENARIO_DIR, useProcessGroup } from '../support/harness.js';
import { describeEachKamailio } from '../support/platforms.js';
import { formatVersion } from '../../src/lab/platforms.js';
import {
  delta,
  fetchStats,
  header,
  lbRpcAccess,
  postJson,
  rpc,
  sipRequest,
  tcpSipRequest,
  UdpSipPeer,
  type ReceivedSip,
  type Stats,
  lbStatsOf,
  backendStatsOf,
} from './dataplane-helpers.js';

const { lbIp, sipPort } = DATAPLANE_NET;

describeEachKamailio('data plane: the LB', function (platform) {
  this.timeout(90000);
  const h = useProcessGroup('dataplane-lb');
  let plane: DataPlane;
  let peer: UdpSipPeer;
  /** A third party on the SIP port: must never receive anything the tests provoke. */
  let bystander: UdpSipPeer;
  let callSeq = 0;

  const lbStats = () => lbStatsOf(plane);
  const backendStats = () => backendStatsOf(plane);
  const sumDelta = (before: Stats[], after: Stats[], name: string) =>
    after.reduce((a, s, i) => a + delta(before[i] ?? {}, s, name), 0);
  const lbRpc = (method: string, params: unknown[] = []) => rpc(plane.lbRpcUrl, method, params, lbRpcAccess);
  const nextCallId = (what: string) => `dp-lb-${what}-${++callSeq}-${Date.now()}`;

  /** Sends one request from `from` and returns the first reply with a final status, if any. */
  async function ask(
    from: UdpSipPeer,
    text: string,
    callId: string,
    to: string = lbIp,
    waitMs = 3000,
  ): Promise<ReceivedSip | undefined> {
    await from.send(text, to, sipPort);
    return from.waitFor(
      (m) => m.status !== undefined && m.status >= 200 && header(m.text, 'Call-ID') === callId,
      waitMs,
    );
  }

  before(async function () {
    plane = await startDataPlane(h.group, {
      backends: [{ weight: 80 }, { weight: 20 }],
      kamailio: platform.binary,
    });
    peer = await UdpSipPeer.bind(DATAPLANE_NET.clientIp(5));
    bystander = await UdpSipPeer.bind(DATAPLANE_NET.clientIp(8), sipPort);
  });
  after(() => {
    peer?.close();
    bystander?.close();
  });

  describe('relative weights (dispatcher algorithm 11)', function () {
    it('splits 1,000 requests 80/20 within 3 points, and gives everything to the other when one is inactive', async function () {
      const sendOptions = async (name: string, count: number) => {
        const r = await runSippClient(h.group, {
          name,
          scenario: join(SCENARIO_DIR, 'uac-options.xml'),
          localIp: DATAPLANE_NET.clientIp(0),
          localPort: 5084,
          remote: `${lbIp}:${sipPort}`,
          rate: 400,
          maxCalls: count,
          timeoutS: 40,
        });
        expect(r.stats.successful, `${name}: answered`).to.equal(count);
        return r.stats.retransmissions;
      };
      let before = await backendStats();
      const retransmitted = await sendOptions('uac-split', 1000);
      let after = await backendStats();
      const split = after.map((s, i) => delta(before[i] ?? {}, s, 'core.rcv_requests_options'));
      // A retransmission (loaded machine) reaches a backend once more; without any, exactly 1,000.
      expect(split[0]! + split[1]!).to.be.within(1000, 1000 + retransmitted);
      expect(
        split[0]! / (split[0]! + split[1]!),
        `share of the weight-80 backend (${split.join('/')})`,
      ).to.be.within(0.77, 0.83);

      await lbRpc('dispatcher.set_state', ['i', DATAPLANE_NET.dsSet, plane.backends[0]!.uri]);
      try {
        before = await backendStats();
        const again = await sendOptions('uac-inactive', 200);
        after = await backendStats();
        const shifted = after.map((s, i) => delta(before[i] ?? {}, s, 'core.rcv_requests_options'));
        expect(shifted[0], 'requests at the inactive backend').to.equal(0);
        expect(shifted[1], 'requests at the other backend').to.be.within(200, 200 + again);
      } finally {
        await lbRpc('dispatcher.set_state', ['a', DATAPLANE_NET.dsSet, plane.backends[0]!.uri]);
      }
    });

    it('answers 503 with Retry-After when no backend is available', async function () {
      for (const b of plane.backends) await lbRpc('dispatcher.set_state', ['i', DATAPLANE_NET.dsSet, b.uri]);
      try {
        const callId = nextCallId('none');
        const via = `${peer.address}:${peer.port}`;
        const reply = await ask(
          peer,
          sipRequest({ method: 'INVITE', ruri: `sip:svc@${lbIp}`, callId, via }),
          callId,
        );
        expect(reply?.status).to.equal(503);
        expect(reply?.address).to.equal(lbIp);
        expect(Number(header(reply?.text ?? '', 'Retry-After'))).to.be.above(0);
      } finally {
        for (const b of plane.backends)
          await lbRpc('dispatcher.set_state', ['a', DATAPLANE_NET.dsSet, b.uri]);
      }
    });
  });

  describe('the stamped source', function () {
    it('replaces a client-supplied X-Sipweigh-Source with the real source', async function () {
      const callId = nextCallId('forged');
      const via = `${peer.address}:${peer.port}`;
      const text = sipRequest({
        method: 'OPTIONS',
        ruri: `sip:forge@${lbIp}`,
        callId,
        via,
        extraHeaders: ['X-Sipweigh-Source: udp:127.0.2.99:7777', 'X-Sipweigh-Source: udp:127.0.2.98:7778'],
      });
      const reply = await ask(peer, text, callId);
      expect(reply?.status, 'answered to the real client').to.equal(200);
      expect(plane.backends.map((b) => b.ip)).to.include(reply?.address);
      expect(header(reply?.text ?? '', 'X-Lab-Arrived')).to.equal(`vias=1;src=${peer.address}:${peer.port}`);
    });

    it('is ignored when sent straight to a backend from a non-LB address: the reply goes to the real sender', async function () {
      const backend = plane.backends[1]!;
      const before = await fetchStats(backend.rpcUrl);
      const callId = nextCallId('spoof');
      const via = `${peer.address}:${peer.port}`;
      const text = sipRequest({
        method: 'OPTIONS',
        ruri: `sip:spoof@${backend.ip}`,
        callId,
        via,
        extraHeaders: [`X-Sipweigh-Source: udp:${DATAPLANE_NET.clientIp(9)}:7777`],
      });
      const reply = await ask(peer, text, callId, backend.ip);
      expect(reply?.status).to.equal(200);
      expect(reply?.address).to.equal(backend.ip);
      expect(header(reply?.text ?? '', 'X-Lab-Arrived')).to.equal(`vias=1;src=${peer.address}:${peer.port}`);
      const after = await fetchStats(backend.rpcUrl);
      expect(delta(before, after, 'script.sipweigh_source_untrusted')).to.equal(1);
      expect(delta(before, after, 'script.sipweigh_source_adopted')).to.equal(0);
    });

    it('an IPv6 stamp from the LB address, which Kamailio cannot adopt, is counted invalid, not adopted', async function () {
      // corex set_source_address() rejects every IPv6 form in 5.6.3: the LB relays IPv6 clients
      // statefully instead, and the backend must not claim an adoption that did not happen.
      const backend = plane.backends[0]!;
      const fakeLb = await UdpSipPeer.bind(lbIp);
      try {
        const before = await fetchStats(backend.rpcUrl);
        const callId = nextCallId('v6');
        const via = `${fakeLb.address}:${fakeLb.port}`;
        const text = sipRequest({
          method: 'OPTIONS',
          ruri: `sip:v6@${backend.ip}`,
          callId,
          via,
          extraHeaders: ['X-Sipweigh-Source: udp:[2001:db8::1]:5060'],
        });
        const reply = await ask(fakeLb, text, callId, backend.ip);
        expect(reply?.status).to.equal(200);
        expect(header(reply?.text ?? '', 'X-Lab-Arrived')).to.equal(`vias=1;src=${via}`);
        const after = await fetchStats(backend.rpcUrl);
        expect(delta(before, after, 'script.sipweigh_source_adopted'), 'adopted').to.equal(0);
        expect(delta(before, after, 'script.sipweigh_source_invalid'), 'invalid').to.equal(1);
      } finally {
        fakeLb.close();
      }
    });

    it('is removed from a TCP client request too (stateful path): the backend keeps the LB as source', async function () {
      // The stateful relay reaches the backend over UDP from the LB's address, which the backend
      // trusts: a forged copy left in place would be adopted (replies sent to the bystander, the
      // backend's IP-based ACLs fooled).
      const before = await backendStats();
      const callId = nextCallId('tcp-forged');
      const reply = await tcpSipRequest(DATAPLANE_NET.clientIp(6), { address: lbIp, port: sipPort }, (via) =>
        sipRequest({
          method: 'OPTIONS',
          ruri: `sip:forge@${lbIp}`,
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
      expect(sumDelta(before, after, 'script.sipweigh_source_adopted'), 'stamps adopted').to.equal(0);
      expect(
        bystander.messages((m) => m.text.includes(callId)),
        'messages at the bystander',
      ).to.have.length(0);
    });
  });

  describe('requests that must not be balanced', function () {
    const via = () => `${peer.address}:${peer.port}`;

    it('answers a CANCEL without a known INVITE 481 itself; no backend sees it', async function () {
      const before = await backendStats();
      const callId = nextCallId('cancel');
      const reply = await ask(
        peer,
        sipRequest({ method: 'CANCEL', ruri: `sip:x@${lbIp}`, callId, via: via() }),
        callId,
      );
      expect(reply?.status).to.equal(481);
      expect(reply?.address).to.equal(lbIp);
      expect(sumDelta(before, await backendStats(), 'core.rcv_requests_cancel')).to.equal(0);
    });

    it('drops an ACK without a known INVITE; no backend sees it', async function () {
      const lbBefore = await lbStats();
      const before = await backendStats();
      const callId = nextCallId('ack');
      const reply = await ask(
        peer,
        sipRequest({ method: 'ACK', ruri: `sip:x@${lbIp}`, callId, via: via(), toTag: 't1' }),
        callId,
        lbIp,
        1000,
      );
      expect(reply, 'no reply to an ACK').to.equal(undefined);
      expect(delta(lbBefore, await lbStats(), 'script.sipweigh_stray_ack')).to.equal(1);
      expect(sumDelta(before, await backendStats(), 'core.rcv_requests_ack')).to.equal(0);
    });

    it('answers an unknown in-dialog request 481 instead of relaying it', async function () {
      const callId = nextCallId('bye');
      const reply = await ask(
        peer,
        sipRequest({
          method: 'BYE',
          ruri: `sip:x@${DATAPLANE_NET.clientIp(9)}`,
          callId,
          via: via(),
          toTag: 't2',
          cseq: 2,
        }),
        callId,
      );
      expect(reply?.status).to.equal(481);
    });

    it('detects a loop: an in-dialog request routed to the LB and addressed to it', async function () {
      const callId = nextCallId('loop');
      const text = sipRequest({
        method: 'BYE',
        ruri: `sip:${lbIp}`,
        callId,
        via: via(),
        toTag: 't3',
        cseq: 2,
        extraHeaders: [`Route: <sip:${lbIp};lr>`],
      });
      const reply = await ask(peer, text, callId);
      expect(reply?.status).to.equal(482);
    });

    it('refuses an in-dialog request whose Route set leads past the LB to a non-backend (no open relay)', async function () {
      const lbBefore = await lbStats();
      const callId = nextCallId('relay-dialog');
      const target = `${bystander.address}:${bystander.port}`;
      const text = sipRequest({
        method: 'INVITE',
        ruri: `sip:+15550100@${target}`,
        callId,
        via: via(),
        toTag: 't4',
        cseq: 2,
        extraHeaders: [`Route: <sip:${lbIp};lr>,<sip:${target};lr>`],
      });
      const reply = await ask(peer, text, callId);
      expect(reply?.status).to.equal(403);
      expect(delta(lbBefore, await lbStats(), 'script.sipweigh_stateful'), 'relayed').to.equal(0);
      expect(
        bystander.messages((m) => m.text.includes(callId)),
        'messages at the target',
      ).to.have.length(0);
    });

    it('relays an in-dialog request whose Route set names the LB then a backend (LB as outbound proxy)', async function () {
      const backend = plane.backends[1]!;
      const callId = nextCallId('outbound-proxy');
      const text = sipRequest({
        method: 'OPTIONS',
        ruri: `sip:dataplane-test@${via()}`,
        callId,
        via: via(),
        toTag: 't5',
        cseq: 2,
        extraHeaders: [`Route: <sip:${lbIp};lr>,<sip:${backend.ip};lr>`],
      });
      const reply = await ask(peer, text, callId);
      expect(reply?.status).to.equal(200);
      expect(reply?.address, 'statefully relayed: the reply comes back through the LB').to.equal(lbIp);
      expect(header(reply?.text ?? '', 'X-Lab-Arrived')).to.equal(`vias=2;src=${lbIp}:${sipPort}`);
    });

    it('follows an in-dialog request to the backend its top Route names, long after the Call-ID entry is gone', async function () {
      // A UA that sends every request to its outbound proxy address (the LB) without a Route for it,
      // e.g. the BYE of a 2-hour call: no entry for the Call-ID, the top Route is the backend's.
      const backend = plane.backends[1]!;
      const callId = nextCallId('old-dialog');
      const text = sipRequest({
        method: 'OPTIONS',
        ruri: `sip:callee@${backend.uasIp}:${sipPort}`,
        callId,
        via: via(),
        toTag: 't6',
        cseq: 7,
        extraHeaders: [`Route: <sip:${backend.ip};lr;ftag=dp>`],
      });
      const reply = await ask(peer, text, callId);
      expect(reply?.status).to.equal(200);
      expect(reply?.address, 'transparent: the backend answers').to.equal(backend.ip);
      expect(header(reply?.text ?? '', 'X-Lab-Arrived')).to.equal(`vias=1;src=${via()}`);
    });

    it('refuses an initial request with a Route to elsewhere (no open relay)', async function () {
      const callId = nextCallId('relay');
      const text = sipRequest({
        method: 'INVITE',
        ruri: `sip:x@${lbIp}`,
        callId,
        via: via(),
        extraHeaders: [`Route: <sip:${DATAPLANE_NET.clientIp(9)};lr>`],
      });
      const reply = await ask(peer, text, callId);
      expect(reply?.status).to.equal(403);
    });

    it('balances an initial request whose preloaded Route names the LB', async function () {
      const callId = nextCallId('preloaded');
      const text = sipRequest({
        method: 'OPTIONS',
        ruri: `sip:x@${lbIp}`,
        callId,
        via: via(),
        extraHeaders: [`Route: <sip:${lbIp};lr>`],
      });
      const reply = await ask(peer, text, callId);
      expect(reply?.status).to.equal(200);
      expect(plane.backends.map((b) => b.ip)).to.include(reply?.address);
    });

    it('answers OPTIONS addressed to itself with 200', async function () {
      const callId = nextCallId('ping');
      const reply = await ask(
        peer,
        sipRequest({ method: 'OPTIONS', ruri: `sip:${lbIp}`, callId, via: via() }),
        callId,
      );
      expect(reply?.status).to.equal(200);
      expect(reply?.address).to.equal(lbIp);
    });

    it('rejects Max-Forwards exhausted (483), a malformed Expires or Max-Forwards (400)', async function () {
      const hops = nextCallId('hops');
      const noHops = sipRequest({
        method: 'OPTIONS',
        ruri: `sip:x@${lbIp}`,
        callId: hops,
        via: via(),
      }).replace('Max-Forwards: 70', 'Max-Forwards: 0');
      expect((await ask(peer, noHops, hops))?.status).to.equal(483);
      const bad = nextCallId('expires');
      const badExpires = sipRequest({
        method: 'OPTIONS',
        ruri: `sip:x@${lbIp}`,
        callId: bad,
        via: via(),
        extraHeaders: ['Expires: soon'],
      });
      const reply = await ask(peer, badExpires, bad);
      expect(reply?.status).to.equal(400);
      expect(reply?.address).to.equal(lbIp);
      const garbled = nextCallId('maxfwd');
      const badMaxForwards = sipRequest({
        method: 'OPTIONS',
        ruri: `sip:x@${lbIp}`,
        callId: garbled,
        via: via(),
      }).replace('Max-Forwards: 70', 'Max-Forwards: many');
      const garbledReply = await ask(peer, badMaxForwards, garbled);
      expect(garbledReply?.status, 'malformed Max-Forwards').to.equal(400);
      expect(garbledReply?.address).to.equal(lbIp);
    });
  });

  describe('requests that must be balanced', function () {
    it('accepts bytes after a UDP body (RFC 3261 18.3: discarded), refuses a body shorter than Content-Length', async function () {
      const via = `${peer.address}:${peer.port}`;
      const padded = nextCallId('padded');
      const trailing = `${sipRequest({ method: 'OPTIONS', ruri: `sip:x@${lbIp}`, callId: padded, via })}\r\n`;
      const reply = await ask(peer, trailing, padded);
      expect(reply?.status, 'request with a trailing CRLF').to.equal(200);
      expect(plane.backends.map((b) => b.ip)).to.include(reply?.address);
      const short = nextCallId('short');
      const truncated = sipRequest({ method: 'OPTIONS', ruri: `sip:x@${lbIp}`, callId: short, via }).replace(
        'Content-Length: 0',
        'Content-Length: 40',
      );
      const refused = await ask(peer, truncated, short);
      expect(refused?.status, 'body shorter than Content-Length').to.equal(400);
      expect(refused?.address).to.equal(lbIp);
    });
  });

  describe('JSON-RPC over HTTP', function () {
    const call = { jsonrpc: '2.0', method: 'core.version', id: 1 };
    const auth = lbRpcAccess.auth;

    it('runs core.version for an allowed source with credentials', async function () {
      const reply = await postJson(plane.lbRpcUrl, call, lbRpcAccess);
      expect(reply.status).to.equal(200);
      expect((JSON.parse(reply.body) as { result: string }).result).to.match(
        new RegExp(`^kamailio ${formatVersion(platform.version).replace(/\./g, '\\.')}\\b`),
      );
      // RFC 7235: the scheme is case-insensitive and may be followed by more than one space.
      const token = Buffer.from(`${DATAPLANE_NET.rpcUser}:${DATAPLANE_NET.rpcPassword}`).toString('base64');
      for (const authorization of [`basic ${token}`, `BASIC  ${token}`]) {
        const other = await postJson(plane.lbRpcUrl, call, {
          localAddress: DATAPLANE_NET.rpcClientIp,
          authorization,
        });
        expect(other.status, authorization).to.equal(200);
      }
      const truncated = await postJson(plane.lbRpcUrl, call, {
        localAddress: DATAPLANE_NET.rpcClientIp,
        authorization: `Basic ${token.slice(0, -2)}`,
      });
      expect(truncated.status, 'truncated credentials').to.equal(401);
    });

    it('answers 401 with a Basic challenge without (or with wrong) credentials', async function () {
      const none = await postJson(plane.lbRpcUrl, call, { localAddress: DATAPLANE_NET.rpcClientIp });
      expect(none.status).to.equal(401);
      expect(String(none.headers['www-authenticate'])).to.match(/^Basic realm=/);
      const wrong = await postJson(plane.lbRpcUrl, call, {
        localAddress: DATAPLANE_NET.rpcClientIp,
        auth: { user: DATAPLANE_NET.rpcUser, password: 'not-the-password' },
      });
      expect(wrong.status).to.equal(401);
    });

    it('answers 403 to another loopback address, even with credentials, and on the SIP port', async function () {
      const foreign = await postJson(plane.lbRpcUrl, call, { localAddress: DATAPLANE_NET.clientIp(7), auth });
      expect(foreign.status).to.equal(403);
      const sipSocket = await postJson(`http://${lbIp}:${sipPort}/RPC`, call, lbRpcAccess);
      expect(sipSocket.status).to.equal(403);
    });
  });
});
