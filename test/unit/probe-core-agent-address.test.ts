/**
 * Where probes go when a backend's agent address changes under a running core: a reload that removes
 * or moves a configured `agent:`, a reconcile that re-upserts a backend whose address came from its
 * hello. The configured address is the spec's; a hello-learned one is the core's and never pinned.
 */
import { expect } from 'chai';
import { ProbeCore } from '../../src/probe/probe-core.js';
import type { UdpAddress } from '../../src/util/udp-address.js';
import { encodeMessage } from '../../src/heartbeat/codec.js';
import { deriveBackendKey, heartbeatKey } from '../../src/heartbeat/keys.js';

const MASTER = Buffer.alloc(32, 0x45);
const A: UdpAddress = { address: '127.0.3.61', port: 4001 };
const B: UdpAddress = { address: '127.0.3.62', port: 4002 };
const C: UdpAddress = { address: '127.0.3.63', port: 4003 };

function makeCore() {
  let mono = 1000;
  const wall0 = 1_700_000_000_000;
  const sent: { to: UdpAddress }[] = [];
  const core = new ProbeCore(
    { masterKeys: [MASTER], clock: { mono: () => mono, wall: () => wall0 + mono }, random: () => 0.5 },
    (_buf, to) => sent.push({ to }),
  );
  let seq = 1;
  return {
    core,
    sent,
    advance(ms: number) {
      const end = mono + ms;
      while (core.nextDue <= end) {
        mono = Math.max(mono, core.nextDue);
        core.tick(mono);
      }
      mono = end;
    },
    hello(id: string, from: UdpAddress) {
      core.receive(
        encodeMessage(
          {
            type: 'hello',
            backendId: id,
            seq: seq++,
            ts: wall0 + mono,
            boot: 'agentboot1',
            set: 1,
            uri: 'sip:x',
            capacity: 1,
          },
          heartbeatKey(deriveBackendKey(MASTER, id)),
        ),
        from,
      );
    },
  };
}

const probesTo = (sent: readonly { to: UdpAddress }[], a: UdpAddress): number =>
  sent.filter((s) => s.to.address === a.address && s.to.port === a.port).length;

describe('probe core: the agent address across reloads', function () {
  it('stops probing a configured agent address that a reload removed', function () {
    const { core, sent, advance } = makeCore();
    core.upsert({ id: 'm1', set: 1, uri: 'sip:x', capacity: 1, agent: A, source: 'config' });
    advance(1000);
    expect(probesTo(sent, A)).to.be.greaterThan(0);
    core.upsert({ id: 'm1', set: 1, uri: 'sip:x', capacity: 1, source: 'config' });
    const before = sent.length;
    advance(2000);
    expect(sent.length - before, 'probes after the agent was removed').to.equal(0);
    expect(core.get('m1')!.agent).to.equal(null);
    // Its agent may still announce itself: the hello's source is then where probes go.
    core.upsert({ id: 'm1', set: 1, uri: 'sip:x', capacity: 1, source: 'config' });
    advance(1000);
    expect(sent.length - before).to.equal(0);
  });

  it('moves probes to a changed agent address, and none go to the old one', function () {
    const { core, sent, advance } = makeCore();
    core.upsert({ id: 'm2', set: 1, uri: 'sip:x', capacity: 1, agent: A, source: 'config' });
    advance(1000);
    const toA = probesTo(sent, A);
    core.upsert({ id: 'm2', set: 1, uri: 'sip:x', capacity: 1, agent: B, source: 'config' });
    advance(2000);
    expect(probesTo(sent, A)).to.equal(toA);
    expect(probesTo(sent, B)).to.be.greaterThan(5);
  });

  it('keeps a hello-learned address across a re-upsert without one, and does not pin it', function () {
    const { core, sent, advance, hello } = makeCore();
    core.upsert({ id: 'm3', set: 1, uri: 'sip:x', capacity: 1, source: 'config' });
    hello('m3', A);
    advance(1000);
    expect(probesTo(sent, A)).to.be.greaterThan(0);
    // A reconcile upserts every configured backend again, without an agent address.
    core.upsert({ id: 'm3', set: 1, uri: 'sip:x', capacity: 1, source: 'config' });
    const toA = probesTo(sent, A);
    advance(1000);
    expect(probesTo(sent, A)).to.be.greaterThan(toA);
    // The agent moved (a new instance, another address): its hello moves the probes.
    hello('m3', C);
    const movedAt = probesTo(sent, A);
    advance(1000);
    expect(probesTo(sent, A)).to.equal(movedAt);
    expect(probesTo(sent, C)).to.be.greaterThan(0);
  });
});
