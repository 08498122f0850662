import { expect } from 'chai';
import { formatDispatcherList } from '../../src/kamailio/dispatcher-list.js';
import { defineArgs } from '../../src/lab/kamailio.js';
import { parseSippStats, sippArgs } from '../../src/lab/sipp.js';
import { procNetAddress } from '../../src/lab/sockets.js';
import { emulationFor, planLab } from '../../src/lab/topology.js';

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
