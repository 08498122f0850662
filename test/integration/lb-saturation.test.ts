/**
 * The LB's own saturation, seen from outside (lab on 127.44.x.x: the lab's Kamailio LB, two
 * backends, `sipweigh controller` as a process with `lb_nodes[].sip_socket` naming the LB's SIP
 * socket). The LB's UDP receivers are stopped (SIGSTOP, by the PIDs Kamailio's core.psx gives), a
 * bounded burst of datagrams fills the socket's receive queue and overflows it, and the controller's
 * /metrics and GET /api/v1/lb-nodes show the queue and the kernel's drops. A socket the config names
 * wrongly is reported unmeasured, with the reason, rather than as an empty queue.
 */
import { expect } from 'chai';
import { createSocket } from 'node:dgram';
import { followEvents, type EventFollower } from '../../src/api/event-client.js';
import type { StampedEvent } from '../../src/controller/events.js';
import { startDaemonLab, type DaemonLab } from '../support/daemon-lab.js';
import { eventually } from '../support/harness.js';
import { expectSchema, http, sample, waitReady, type Sample } from './api-support.js';

const NET = 44;
const BURST = 4000;

interface LbNodeBody {
  readonly name: string;
  readonly sip_socket:
    | { state: 'measured'; socket: string; rx_queue_bytes: number; drops: number; drops_per_s: number | null }
    | { state: 'unmeasured'; socket: string; reason: string }
    | null;
}

/** PIDs of the Kamailio processes that read `socket` ("udp receiver child=N sock=ip:port"). */
async function udpReceiverPids(d: DaemonLab, socket: string): Promise<number[]> {
  const psx = (await d.rpc.call('core.psx')) as { PID: number; DSC: string }[];
  return psx.filter((p) => /udp receiver/i.test(p.DSC) && p.DSC.includes(socket)).map((p) => p.PID);
}

/** Sends `count` OPTIONS-sized datagrams from `from` to `to`, as fast as the socket takes them. */
async function burst(from: string, to: { address: string; port: number }, count: number): Promise<void> {
  const s = createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.bind(0, from, () => resolve());
  });
  const payload = Buffer.from(
    `OPTIONS sip:${to.address}:${to.port} SIP/2.0\r\nVia: SIP/2.0/UDP ${from};branch=z9hG4bK-flood\r\n` +
      `From: <sip:flood@${from}>;tag=1\r\nTo: <sip:${to.address}>\r\nCall-ID: flood@${from}\r\n` +
      `CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n${'X-Pad: x\r\n'.repeat(20)}\r\n`,
  );
  try {
    for (let i = 0; i < count; i++) {
      await new Promise<void>((resolve, reject) =>
        s.send(payload, to.port, to.address, (e) => (e ? reject(e) : resolve())),
      );
    }
  } finally {
    s.close();
  }
}

describe('LB saturation: the LB socket’s queue and drops in the API and /metrics (real lab on 127.44.x.x)', function () {
  this.timeout(180000);
  let d: DaemonLab | undefined;
  let stopped: number[] = [];
  let follower: EventFollower | undefined;
  const events: StampedEvent[] = [];
  const seen = (type: StampedEvent['type']) => events.filter((e) => e.type === type);

  const resume = () => {
    for (const pid of stopped) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // Already gone.
      }
    }
    stopped = [];
  };
  const lbNode = async (): Promise<LbNodeBody> => {
    const r = await http('GET', `${d!.base}/api/v1/lb-nodes`, { token: d!.token });
    expect(r.status).to.equal(200);
    expectSchema('lb-nodes', r.json);
    return (r.json as { lb_nodes: LbNodeBody[] }).lb_nodes[0]!;
  };
  const metric = (m: Sample[], name: string) => sample(m, name, { node: 'lb1' })?.value;

  before(async function () {
    d = await startDaemonLab({ backends: 2, net: NET });
    const cfg = d.labConfig();
    cfg.lb_nodes[0]!.sip_socket = { ...d.lab.state.plan.lb.sip };
    d.startController(cfg);
    await waitReady(d.base);
    follower = followEvents({ url: d.base, token: d.token, history: true }, (e) => events.push(e));
    await follower.ready;
  });

  afterEach(resume);

  after(async function () {
    follower?.close();
    resume();
    await d?.stop();
  });

  it('measures the idle LB socket: an empty queue, measured 1', async function () {
    const lb = d!.lab.state.plan.lb.sip;
    const node = await eventually(async () => {
      const n = await lbNode();
      return n.sip_socket?.state === 'measured' ? n : null;
    }, 'the LB socket measured');
    expect(node.name).to.equal('lb1');
    expect(node.sip_socket).to.deep.include({ socket: `${lb.address}:${lb.port}` });
    const m = await d!.metrics();
    expect(metric(m, 'sipweigh_lb_socket_measured')).to.equal(1);
    expect(metric(m, 'sipweigh_lb_rx_queue_bytes')).to.be.a('number');
    expect(metric(m, 'sipweigh_lb_rx_drops_total')).to.be.a('number');
    await eventually(() => seen('lb_socket_measured').length === 1, 'the lb_socket_measured event');
    // What `sipweigh status` prints is read from the same status.
    const status = await d!.status<{ lb_nodes: { sip_socket?: { state: string } }[] }>();
    expectSchema('status', status);
    expect(status.lb_nodes[0]?.sip_socket?.state).to.equal('measured');
  });

  it('a stalled LB under a burst: the queue and the kernel’s drops show in /metrics and the API', async function () {
    const lb = d!.lab.state.plan.lb.sip;
    const socket = `${lb.address}:${lb.port}`;
    const before = await lbNode();
    const dropsBefore = before.sip_socket?.state === 'measured' ? before.sip_socket.drops : 0;
    const pids = await udpReceiverPids(d!, socket);
    expect(pids, 'Kamailio UDP receivers of the LB socket (core.psx)').to.not.be.empty;
    for (const pid of pids) {
      process.kill(pid, 'SIGSTOP');
      stopped.push(pid);
    }
    await burst(d!.lab.state.plan.client.address, lb, BURST);

    const m = await eventually(
      async () => {
        const s = await d!.metrics();
        const queue = metric(s, 'sipweigh_lb_rx_queue_bytes') ?? 0;
        const drops = metric(s, 'sipweigh_lb_rx_drops_total') ?? 0;
        return queue > 0 && drops > dropsBefore ? s : null;
      },
      'queue and drops in /metrics',
      15000,
      200,
    );
    const drops = metric(m, 'sipweigh_lb_rx_drops_total')!;
    // Whatever the buffer size, most of a burst this far above it is dropped, and no more than it.
    expect(drops - dropsBefore).to.be.within(1, BURST);
    const node = await lbNode();
    expect(node.sip_socket?.state).to.equal('measured');
    if (node.sip_socket?.state !== 'measured') return;
    expect(node.sip_socket.rx_queue_bytes).to.be.greaterThan(0);
    expect(node.sip_socket.drops).to.be.at.least(drops);

    // Resumed, the LB reads its queue down; the drops stay counted.
    resume();
    await eventually(
      async () => {
        const n = await lbNode();
        return (
          n.sip_socket?.state === 'measured' &&
          n.sip_socket.rx_queue_bytes === 0 &&
          n.sip_socket.drops >= drops
        );
      },
      'the queue read down once the LB runs again',
      30000,
      200,
    );
    // Told once when the drops began and once when they ended, with what the run lost.
    const ended = await eventually(
      () => seen('lb_socket_drops_ended')[0],
      'the lb_socket_drops_ended event',
      15000,
    );
    expect(seen('lb_socket_dropping')).to.have.length(1);
    expect(seen('lb_socket_dropping')[0]).to.deep.include({ node: 'lb1', socket });
    expect(ended).to.deep.include({ node: 'lb1', socket });
    expect((ended as Extract<StampedEvent, { type: 'lb_socket_drops_ended' }>).dropped).to.be.within(
      1,
      BURST,
    );
  });

  it('a socket nobody is bound to is reported unmeasured with the reason, not as an empty queue', async function () {
    await d!.controller?.stop();
    const cfg = d!.labConfig();
    const lb = d!.lab.state.plan.lb.sip;
    cfg.lb_nodes[0]!.sip_socket = { address: lb.address, port: 5999 };
    d!.startController(cfg);
    await waitReady(d!.base);
    const node = await eventually(async () => {
      const n = await lbNode();
      return n.sip_socket?.state === 'unmeasured' ? n : null;
    }, 'the LB socket unmeasured');
    expect(node.sip_socket).to.deep.include({
      reason: `no UDP socket bound to ${lb.address}:5999 on this host (is the LB's Kamailio running?)`,
    });
    const m = await d!.metrics();
    expect(metric(m, 'sipweigh_lb_socket_measured')).to.equal(0);
    expect(metric(m, 'sipweigh_lb_rx_queue_bytes')).to.equal(undefined);
  });
});
