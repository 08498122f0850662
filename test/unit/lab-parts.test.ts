import { expect } from 'chai';
import { formatDispatcherList } from '../../src/kamailio/dispatcher-list.js';
import { dmqDefines } from '../../src/lab/defines.js';
import { defineArgs } from '../../src/lab/kamailio.js';
import { controllerConfig } from '../../src/lab/lab-configs.js';
import { backendSettings, lbEndpoints, lbMemberName, lbSettings } from '../../src/lab/lab.js';
import { parseSippStats, sippArgs } from '../../src/lab/sipp.js';
import { procNetAddress } from '../../src/lab/sockets.js';
import { emulationFor, LAB_LIMITS, lbHostOctet, planLab } from '../../src/lab/topology.js';

describe('lab: topology plan', () => {
  it('gives every process its own loopback address', () => {
    const plan = planLab({ backends: 3, capacities: [50, 100, 200] });
    expect(plan.lb.sip).to.deep.equal({ address: '127.0.0.10', port: 5060 });
    expect(plan.backends.map((b) => b.sip.address)).to.deep.equal(['127.0.0.11', '127.0.0.12', '127.0.0.13']);
    expect(plan.backends.map((b) => b.uas.address)).to.deep.equal(['127.0.1.11', '127.0.1.12', '127.0.1.13']);
    const all = [
      plan.lb.sip.address,
      plan.client.address,
      ...plan.backends.flatMap((b) => [b.sip.address, b.uas.address]),
    ];
    expect(new Set(all).size).to.equal(all.length);
    expect(plan.backends.map((b) => b.emulation?.callsPerSecond)).to.deep.equal([50, 100, 200]);
  });

  it('emulates a capacity as workers / service delay', () => {
    expect(emulationFor(200)).to.deep.equal({ workers: 4, delayUs: 20000, callsPerSecond: 200 });
    expect(emulationFor(100, 2).delayUs).to.equal(20000);
    expect(() => emulationFor(0)).to.throw(/capacity/);
    expect(() => emulationFor(10, 0)).to.throw(/workers/);
  });

  it('tells sipweigh the configured capacity, which may differ from the emulated one', () => {
    const same = planLab({ backends: 2, capacities: [25, 50] });
    expect(same.backends.map((b) => b.configuredCapacity)).to.deep.equal([25, 50]);
    const wrong = planLab({ backends: 2, capacities: [25, 50], configuredCapacities: [40] });
    expect(wrong.backends.map((b) => b.configuredCapacity)).to.deep.equal([40, 40]);
    expect(wrong.backends.map((b) => b.emulation?.callsPerSecond)).to.deep.equal([25, 50]);
    expect(planLab({ backends: 1 }).backends[0]?.configuredCapacity).to.equal(100);
    expect(() => planLab({ backends: 3, configuredCapacities: [1, 2] })).to.throw(/3 backends/);
  });

  it('refuses impossible layouts with the option named', () => {
    expect(() => planLab({ backends: 0 })).to.throw(/--backends/);
    expect(() => planLab({ backends: 20 })).to.throw(/--backends/);
    expect(() => planLab({ backends: 3, capacities: [1, 2] })).to.throw(/--capacity/);
    expect(
      planLab({ backends: 2, capacities: [70] }).backends.every((b) => b.emulation?.callsPerSecond === 70),
    ).to.equal(true);
    expect(planLab({ backends: 2 }).backends.every((b) => b.emulation === null)).to.equal(true);
  });
});

describe('lab: several LB nodes (--lbs)', () => {
  it('keeps a single LB where it always was: lb1 at .10, its list dispatcher.list, no DMQ', () => {
    const plan = planLab({ backends: 2 });
    expect(plan.lbs).to.have.length(1);
    expect(plan.lbs[0]).to.deep.equal(plan.lb);
    expect(plan.lb).to.deep.equal({
      name: 'lb1',
      sip: { address: '127.0.0.10', port: 5060 },
      rpc: { address: '127.0.0.10', port: 5071, username: 'sipweigh', password: 'lab-secret' },
      dispatcherSet: 1,
      listFile: 'dispatcher.list',
      dmq: null,
    });
    expect(lbMemberName(plan, 0)).to.equal('lb');
    expect(lbEndpoints(plan.lb)).to.deep.equal([
      { transport: 'udp', address: '127.0.0.10', port: 5060 },
      { transport: 'tcp', address: '127.0.0.10', port: 5060 },
      { transport: 'tcp', address: '127.0.0.10', port: 5071 },
    ]);
  });

  it('gives each LB its own address, RPC socket, list file and DMQ socket, clear of every backend', () => {
    const plan = planLab({ backends: LAB_LIMITS.maxBackends, lbs: LAB_LIMITS.maxLbs, net: 57 });
    expect(plan.lb).to.deep.equal(plan.lbs[0]);
    expect(plan.lbs.map((l) => l.name)).to.deep.equal(['lb1', 'lb2', 'lb3', 'lb4']);
    expect(plan.lbs.map((l) => l.sip.address)).to.deep.equal([
      '127.57.0.10',
      '127.57.0.30',
      '127.57.0.31',
      '127.57.0.32',
    ]);
    expect(plan.lbs.map((l) => `${l.rpc.address}:${l.rpc.port}`)).to.deep.equal(
      plan.lbs.map((l) => `${l.sip.address}:5071`),
    );
    expect(plan.lbs.map((l) => l.listFile)).to.deep.equal([
      'dispatcher.list',
      'dispatcher-lb2.list',
      'dispatcher-lb3.list',
      'dispatcher-lb4.list',
    ]);
    expect(plan.lbs.map((l) => l.dmq?.sip)).to.deep.equal(
      plan.lbs.map((l) => ({ address: l.sip.address, port: 5090 })),
    );
    const all = [
      ...plan.lbs.map((l) => l.sip.address),
      plan.client.address,
      ...plan.backends.flatMap((b) => [b.sip.address, b.uas.address, b.agent.address]),
    ];
    // An agent shares its backend's address (another port); everything else is alone on its own.
    expect(new Set(all).size).to.equal(all.length - plan.backends.length);
    expect([1, 2, 3].map(lbHostOctet).every((o) => o > 10 + LAB_LIMITS.maxBackends && o < 255)).to.equal(
      true,
    );
    expect(plan.lbs.map((_, i) => lbMemberName(plan, i))).to.deep.equal(['lb', 'lb2', 'lb3', 'lb4']);
  });

  it('has every LB notify and allow exactly the other nodes over DMQ', () => {
    const plan = planLab({ backends: 2, lbs: 3 });
    const uri = (a: string) => `sip:${a}:5090`;
    for (const lb of plan.lbs) {
      const others = plan.lbs.filter((o) => o !== lb).map((o) => o.sip.address);
      expect(lb.dmq?.notify, lb.name).to.deep.equal(others.map(uri));
      expect(lb.dmq?.allow, lb.name).to.deep.equal(others);
      expect(lb.dmq?.allow, lb.name).to.not.include(lb.sip.address);
    }
    expect(dmqDefines(plan.lbs[1]!.dmq!)).to.deep.equal({
      SW_DMQ: true,
      SW_DMQ_IP: '127.0.0.30',
      SW_DMQ_PORT: 5090,
      SW_DMQ_ADDRESS: '"sip:127.0.0.30:5090"',
      SW_DMQ_ALLOW: '"127.0.0.10/32,127.0.0.31/32"',
      SW_DMQ_NOTIFY1: '"sip:127.0.0.10:5090"',
      SW_DMQ_NOTIFY2: '"sip:127.0.0.31:5090"',
    });
    expect(lbEndpoints(plan.lbs[2]!)).to.deep.include({
      transport: 'udp',
      address: '127.0.0.31',
      port: 5090,
    });
  });

  it('refuses DMQ settings lb.cfg cannot express: no peer, more than four, nobody allowed', () => {
    const sip = { address: '127.0.0.10', port: 5090 };
    const peer = 'sip:127.0.0.30:5090';
    expect(() => dmqDefines({ sip, notify: [], allow: ['127.0.0.30'] })).to.throw(/1\.\.4/);
    expect(() => dmqDefines({ sip, notify: Array(5).fill(peer), allow: ['127.0.0.30'] })).to.throw(/got 5/);
    expect(() => dmqDefines({ sip, notify: [peer], allow: [] })).to.throw(/allowed/);
  });

  it('gives each LB its own RPC allow list and has every backend trust every LB', () => {
    const plan = planLab({ backends: 2, lbs: 2, net: 57 });
    expect(lbSettings(plan, '/l2', plan.lbs[1]).rpcAllow).to.deep.equal(['127.0.0.1', '127.57.0.30']);
    expect(lbSettings(plan, '/l2', plan.lbs[1]).dispatcherList).to.equal('/l2');
    expect(lbSettings(plan, '/l').sip.address).to.equal('127.57.0.10');
    expect(backendSettings(plan, plan.backends[0]!).trustedLbs).to.deep.equal(['127.57.0.10', '127.57.0.30']);
  });

  it('lists every LB in the controller config, lb1 first, each with its own RPC URL and list', () => {
    const plan = planLab({ backends: 2, lbs: 2 });
    const cfg = controllerConfig('/lab', plan, '/lab/master.key', '/lab/api.token', undefined) as {
      lb_nodes: { name: string; rpc: { url: string }; dispatcher_list: { path: string } }[];
      status_file: string;
    };
    expect(cfg.lb_nodes.map((n) => [n.name, n.rpc.url, n.dispatcher_list.path])).to.deep.equal([
      ['lb1', 'http://127.0.0.10:5071/RPC', '/lab/dispatcher.list'],
      ['lb2', 'http://127.0.0.30:5071/RPC', '/lab/dispatcher-lb2.list'],
    ]);
    expect(cfg.status_file).to.equal('/lab/status.json');
    const one = controllerConfig('/lab', planLab({ backends: 1 }), 'k', 't', undefined) as {
      lb_nodes: { name: string }[];
    };
    expect(one.lb_nodes.map((n) => n.name)).to.deep.equal(['lb1']);
    const osips = { miUrl: 'http://x/mi', table: '/t', destinations: '/d' };
    expect(() => controllerConfig('/lab', plan, 'k', 't', osips)).to.throw(/single LB/);
  });

  it('writes scoring.capacity.learn only when the lab is asked to learn, the host signals off either way', () => {
    const plan = planLab({ backends: 2 });
    type Scoring = { scoring: { capacity?: { learn: boolean }; signals: { cpu_util: { knee: null } } } };
    const told = controllerConfig('/lab', plan, 'k', 't', undefined) as Scoring;
    expect(told.scoring.capacity).to.equal(undefined);
    const learning = controllerConfig('/lab', plan, 'k', 't', undefined, { learnCapacity: true }) as Scoring;
    expect(learning.scoring.capacity).to.deep.equal({ learn: true });
    expect(learning.scoring.signals.cpu_util.knee).to.equal(null);
  });

  it('refuses an LB count outside 1..4 with the option named', () => {
    expect(() => planLab({ backends: 1, lbs: 0 })).to.throw(/--lbs must be 1\.\.4/);
    expect(() => planLab({ backends: 1, lbs: 5 })).to.throw(/--lbs/);
    expect(() => planLab({ backends: 1, lbs: 1.5 })).to.throw(/--lbs/);
  });
});

describe('lab: small formats', () => {
  it('encodes addresses as /proc/net/udp does (little-endian hex)', () => {
    expect(procNetAddress('127.0.0.10', 5060)).to.equal('0A00007F:13C4');
    expect(procNetAddress('127.0.1.11', 80)).to.equal('0B01007F:0050');
    expect(() => procNetAddress('127.0.0', 1)).to.throw(/IPv4/);
  });

  it('writes dispatcher list lines with state flags and attributes, refusing bad entries', () => {
    const text = formatDispatcherList([
      { setId: 1, uri: 'sip:127.0.0.11:5060', state: 'active', rweight: 80, duid: 'be1' },
      { setId: 1, uri: 'sip:127.0.0.12:5060', state: 'inactive', rweight: 20, duid: 'be2', priority: 5 },
      { setId: 2, uri: 'sip:127.0.0.13:5060', state: 'disabled', rweight: 1, duid: 'be3' },
    ]);
    const lines = text.trimEnd().split('\n');
    expect(lines[0]).to.match(/^#/);
    expect(lines.slice(1)).to.deep.equal([
      '1 sip:127.0.0.11:5060 0 0 duid=be1;rweight=80',
      '1 sip:127.0.0.12:5060 1 5 duid=be2;rweight=20',
      '2 sip:127.0.0.13:5060 4 0 duid=be3;rweight=1',
    ]);
    const ok = { setId: 1, uri: 'sip:127.0.0.11', state: 'active', rweight: 50, duid: 'be1' } as const;
    expect(() => formatDispatcherList([{ ...ok, rweight: 0 }])).to.throw(/rweight/);
    expect(() => formatDispatcherList([{ ...ok, rweight: 101 }])).to.throw(/rweight/);
    expect(() => formatDispatcherList([{ ...ok, uri: 'http://x' }])).to.throw(/URI/);
    expect(() => formatDispatcherList([{ ...ok, duid: 'a b' }])).to.throw(/duid/);
  });

  it('passes Kamailio defines as -A NAME=VALUE, refusing names the preprocessor would not take', () => {
    expect(defineArgs({ SW_A: 1, SW_B: '"x"', SW_C: true, SW_D: false })).to.deep.equal([
      '-A',
      'SW_A=1',
      '-A',
      'SW_B="x"',
      '-A',
      'SW_C',
    ]);
    expect(() => defineArgs({ 'BAD-NAME': 1 })).to.throw(/define name/);
  });

  it('builds bounded sipp command lines and reads its cumulative statistics', () => {
    const args = sippArgs(
      {
        name: 'u',
        scenario: '/s.xml',
        localIp: '127.0.0.5',
        localPort: 5060,
        remote: '127.0.0.10:5060',
        rate: 10,
        maxCalls: 5,
        timeoutS: 30,
      },
      '/tmp/stats.csv',
    );
    expect(args).to.include.members([
      '-sf',
      '/s.xml',
      '-timeout',
      '30s',
      '-timeout_error',
      '-m',
      '5',
      '-nostdin',
    ]);
    expect(args[args.length - 1]).to.equal('127.0.0.10:5060');
    const csv = 'TotalCallCreated;SuccessfulCall(C);FailedCall(C);Retransmissions(C)\n1;1;0;0\n10;9;1;3\n';
    const s = parseSippStats(csv);
    expect([s.created, s.successful, s.failed, s.retransmissions]).to.deep.equal([10, 9, 1, 3]);
    expect(parseSippStats('').successful).to.equal(0);
  });
});
