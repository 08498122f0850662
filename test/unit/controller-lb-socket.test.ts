/**
 * The LB's own socket (lb_nodes[].sip_socket): the pure status step (drop rate, counter reset, why
 * unmeasured), the host-address test, the watch over a fake /proc, and what the API and /metrics
 * make of a status.
 */
import { expect } from 'chai';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { apiValidator } from '../../src/api/schemas.js';
import { logLineOf } from '../../src/controller/event-log.js';
import {
  isHostAddress,
  lbSocketEvents,
  lbSocketJson,
  lbSocketLine,
  nextLbSocketStatus,
  type HostInterface,
  type LbSocketStatus,
} from '../../src/controller/lb-socket.js';
import { LbSocketWatch } from '../../src/controller/lb-socket-watch.js';
import { buildStatus, formatStatus } from '../../src/controller/status.js';
import type { ControllerSnapshot } from '../../src/controller/snapshot.js';
import { ConfigError } from '../../src/config/errors.js';
import { loadControllerConfig } from '../../src/config/load.js';
import { lbSocketSeries } from '../../src/telemetry/lb-socket-series.js';
import { REPO_ROOT } from '../support/harness.js';

const LO: HostInterface = { address: '127.0.0.1', netmask: '255.0.0.0', family: 'IPv4', internal: true };
const ETH: HostInterface = { address: '10.1.2.3', netmask: '255.255.255.0', family: 'IPv4', internal: false };
const HOST = [LO, ETH];
const SOCKET = { address: '127.44.0.1', port: 5060 };

const figures = (rxQueueBytes: number, drops: number) => ({ figures: { rxQueueBytes, drops, sockets: 1 } });
const at = (mono: number) => ({ mono, wall: 1_700_000_000_000 + mono });

/** A /proc/net/udp with one unconnected socket on 127.44.0.1:5060 (and a connected one on the port). */
function procNetUdp(rxQueueBytes: number, drops: number): string {
  const hex = (n: number) => n.toString(16).toUpperCase().padStart(8, '0');
  return [
    '   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops',
    ` 4962: 01002C7F:13C4 00000000:0000 07 00000000:${hex(rxQueueBytes)} 00:00000000 00000000     0        0 9408 2 000000002e586c75 ${drops}`,
    ` 4963: 02002C7F:B26E 01002C7F:13C4 01 00000000:00000000 00:00000000 00000000     0        0 9411 2 00000000ca033a09 5`,
    '',
  ].join('\n');
}

describe('LB socket: status step (controller/lb-socket.ts)', function () {
  it('a measured reading carries the queue, the counter, and no rate the first time', function () {
    const s = nextLbSocketStatus(null, SOCKET, figures(7680, 34), at(1000), HOST);
    expect(s).to.deep.include({
      state: 'measured',
      socket: '127.44.0.1:5060',
      rxQueueBytes: 7680,
      drops: 34,
      dropsPerS: null,
      sockets: 1,
    });
  });

  it('the drop rate is the counter growth over the time between two readings', function () {
    const first = nextLbSocketStatus(null, SOCKET, figures(0, 100), at(1000), HOST);
    const second = nextLbSocketStatus(first, SOCKET, figures(212_992, 400), at(3000), HOST);
    expect(second).to.deep.include({ state: 'measured', drops: 400, dropsPerS: 150, rxQueueBytes: 212_992 });
    const quiet = nextLbSocketStatus(second, SOCKET, figures(0, 400), at(4000), HOST);
    expect(quiet).to.deep.include({ dropsPerS: 0 });
  });

  it('a counter that went down is a new socket (the LB restarted): no rate, the new counter as is', function () {
    const before = nextLbSocketStatus(null, SOCKET, figures(0, 500), at(1000), HOST);
    const after = nextLbSocketStatus(before, SOCKET, figures(0, 3), at(2000), HOST);
    expect(after).to.deep.include({ drops: 3, dropsPerS: null });
    const next = nextLbSocketStatus(after, SOCKET, figures(0, 13), at(3000), HOST);
    expect(next).to.deep.include({ dropsPerS: 10 });
  });

  it('no rate across a gap in measurement (unmeasured in between)', function () {
    const a = nextLbSocketStatus(null, SOCKET, figures(0, 10), at(1000), HOST);
    const gap = nextLbSocketStatus(a, SOCKET, { figures: undefined }, at(2000), HOST);
    const b = nextLbSocketStatus(gap, SOCKET, figures(0, 20), at(3000), HOST);
    expect(b).to.deep.include({ state: 'measured', dropsPerS: null });
  });

  it('unmeasured says why: not this host, nothing bound, or the table unreadable', function () {
    const elsewhere = nextLbSocketStatus(
      null,
      { address: '192.0.2.7', port: 5060 },
      { figures: undefined },
      at(1),
      HOST,
    );
    expect(elsewhere.state).to.equal('unmeasured');
    expect((elsewhere as Extract<LbSocketStatus, { state: 'unmeasured' }>).reason).to.match(
      /192\.0\.2\.7 is not an address of this host.*runs on the LB host/,
    );
    const nothing = nextLbSocketStatus(null, SOCKET, { figures: undefined }, at(1), HOST);
    expect(nothing).to.deep.include({
      state: 'unmeasured',
      socket: '127.44.0.1:5060',
      reason: "no UDP socket bound to 127.44.0.1:5060 on this host (is the LB's Kamailio running?)",
    });
    // Another host's address that this host's wildcard socket on the same port would answer for.
    const wildcard = nextLbSocketStatus(
      null,
      { address: '192.0.2.7', port: 5060 },
      figures(0, 1),
      at(1),
      HOST,
    );
    expect(wildcard).to.deep.include({ state: 'unmeasured' });
    const broken = nextLbSocketStatus(null, SOCKET, { error: 'EACCES' }, at(1), HOST);
    expect(broken).to.deep.include({ state: 'unmeasured', reason: 'cannot read /proc/net/udp: EACCES' });
  });

  it('host addresses: an interface address, anything in a loopback network, nothing else', function () {
    expect(isHostAddress('10.1.2.3', HOST)).to.equal(true);
    expect(isHostAddress('127.44.0.1', HOST)).to.equal(true);
    // Another host on the LAN: same network, not ours.
    expect(isHostAddress('10.1.2.4', HOST)).to.equal(false);
    expect(isHostAddress('192.0.2.7', HOST)).to.equal(false);
    expect(isHostAddress('::1', HOST)).to.equal(false);
    expect(isHostAddress('not an address', HOST)).to.equal(false);
  });
});

describe('LB socket: events (told once per change, not once a second)', function () {
  const step = (
    prev: LbSocketStatus | null,
    reading: Parameters<typeof nextLbSocketStatus>[2],
    mono: number,
  ) => nextLbSocketStatus(prev, SOCKET, reading, at(mono), HOST);
  const types = (prev: LbSocketStatus | null, next: LbSocketStatus) =>
    lbSocketEvents('lb1', prev, next).map((e) => e.type);

  it('measured once when it starts or comes back; unmeasured once per reason', function () {
    const m = step(null, figures(0, 5), 0);
    expect(types(null, m)).to.deep.equal(['lb_socket_measured']);
    expect(types(m, step(m, figures(0, 5), 1000))).to.deep.equal([]);
    const gone = step(m, { figures: undefined }, 2000);
    expect(lbSocketEvents('lb1', m, gone)).to.deep.equal([
      {
        type: 'lb_socket_unmeasured',
        node: 'lb1',
        socket: '127.44.0.1:5060',
        reason: "no UDP socket bound to 127.44.0.1:5060 on this host (is the LB's Kamailio running?)",
      },
    ]);
    expect(types(gone, step(gone, { figures: undefined }, 3000))).to.deep.equal([]);
    expect(types(gone, step(gone, { error: 'EACCES' }, 3000))).to.deep.equal(['lb_socket_unmeasured']);
    expect(types(gone, step(gone, figures(0, 0), 4000))).to.deep.equal(['lb_socket_measured']);
  });

  it('a run of drops: dropping when it begins, nothing while it lasts, how many it lost when it ends', function () {
    const r0 = step(null, figures(0, 10), 0);
    const r1 = step(r0, figures(212_992, 1810), 1000);
    expect(lbSocketEvents('lb1', r0, r1)).to.deep.equal([
      {
        type: 'lb_socket_dropping',
        node: 'lb1',
        socket: '127.44.0.1:5060',
        drops_per_s: 1800,
        rx_queue_bytes: 212_992,
      },
    ]);
    const r2 = step(r1, figures(212_992, 2010), 2000);
    expect(types(r1, r2)).to.deep.equal([]);
    const r3 = step(r2, figures(0, 2010), 3000);
    expect(lbSocketEvents('lb1', r2, r3)).to.deep.equal([
      { type: 'lb_socket_drops_ended', node: 'lb1', socket: '127.44.0.1:5060', dropped: 2000 },
    ]);
    expect(types(r3, step(r3, figures(0, 2010), 4000))).to.deep.equal([]);
    // Old drops counted before the controller started are no run: the first reading has no rate.
    expect(types(null, step(null, figures(0, 99_999), 0))).to.deep.equal(['lb_socket_measured']);
  });

  it('the log warns of drops and of an unmeasured socket', function () {
    const dropping = logLineOf({
      type: 'lb_socket_dropping',
      node: 'lb1',
      socket: '127.44.0.1:5060',
      drops_per_s: 1800,
      rx_queue_bytes: 212_992,
    });
    expect(dropping?.level).to.equal('warn');
    expect(dropping?.msg).to.match(/kernel drops requests/);
    expect(
      logLineOf({ type: 'lb_socket_unmeasured', node: 'lb1', socket: 's', reason: 'r' })?.level,
    ).to.equal('warn');
  });
});

describe('LB socket: the watch over /proc/net/udp (controller/lb-socket-watch.ts)', function () {
  it('reads each node that names a socket, keeps its status, and skips the others', async function () {
    let drops = 34;
    const reads: string[] = [];
    const read = async (path: string) => {
      reads.push(path);
      if (path !== '/proc/net/udp') throw new Error(`ENOENT: ${path}`);
      return procNetUdp(0x1e00, drops);
    };
    const watch = new LbSocketWatch(
      [
        { name: 'lb1', sip_socket: SOCKET },
        { name: 'lb2' },
        { name: 'lb3', sip_socket: { address: '127.44.0.1', port: 5099 } },
      ],
      { read, interfaces: () => HOST },
    );
    await watch.sample();
    drops = 134;
    await watch.sample();
    const lb1 = watch.status().get('lb1');
    expect(lb1).to.deep.include({ state: 'measured', rxQueueBytes: 0x1e00, drops: 134, sockets: 1 });
    expect((lb1 as Extract<LbSocketStatus, { state: 'measured' }>).dropsPerS).to.be.greaterThan(0);
    expect(watch.status().has('lb2')).to.equal(false);
    // Nothing on 5099 in udp, and udp6 is absent: unmeasured, not an exception.
    expect(watch.status().get('lb3')).to.deep.include({ state: 'unmeasured' });
    expect(reads.filter((p) => p === '/proc/net/udp')).to.have.length(4);
  });

  it('start() with no socket named starts no timer; stop() ends the timer', async function () {
    const idle = new LbSocketWatch([{ name: 'lb1' }]).start();
    await idle.stop();
    expect(idle.status().size).to.equal(0);
    const read = async () => procNetUdp(0, 0);
    const busy = new LbSocketWatch([{ name: 'lb1', sip_socket: SOCKET }], {
      read,
      interfaces: () => HOST,
      intervalMs: 10,
    }).start();
    await new Promise((r) => setTimeout(r, 50));
    await busy.stop();
    expect(busy.status().get('lb1')).to.deep.include({ state: 'measured' });
  });
});

describe('LB socket: the API and /metrics', function () {
  const measured = nextLbSocketStatus(
    nextLbSocketStatus(null, SOCKET, figures(0, 10), at(1000), HOST),
    SOCKET,
    figures(4352, 40),
    at(4000),
    HOST,
  );
  const unmeasured = nextLbSocketStatus(
    null,
    { address: '192.0.2.7', port: 5060 },
    { figures: undefined },
    at(1),
    HOST,
  );

  it('the API shape holds to schemas/api/lb-nodes.schema.json, for both states and for none', function () {
    const node = (sip_socket: unknown) => ({
      name: 'lb1',
      target: 'x',
      blocked: null,
      synced: true,
      last_push: null,
      drift: null,
      pushes: { applied: 0, in_sync: 0, failed: 0 },
      errors: 0,
      drift_repairs: 0,
      consecutive_failures: 0,
      sip_socket,
    });
    const validate = apiValidator('lb-nodes');
    const split = [
      { node: 'lb1', own: true, demand_cps: 12.5, fraction: 0.6, read_errors: 0, last_error: null },
      {
        node: 'lb2',
        own: false,
        demand_cps: null,
        fraction: 0.4,
        read_errors: 3,
        last_error: 'ECONNREFUSED',
      },
    ];
    const bodies = [lbSocketJson(measured), lbSocketJson(unmeasured), null].map((s) => ({
      lb_nodes: [node(s)],
      admission_split: split,
    }));
    for (const body of bodies) expect(validate(body), JSON.stringify(validate.errors)).to.equal(true);
    expect(lbSocketJson(measured)).to.deep.include({ rx_queue_bytes: 4352, drops: 40, drops_per_s: 10 });
  });

  it('`sipweigh status` and the status file: one line per socket, and the status schema holds', function () {
    const node = (s: LbSocketStatus | null) => ({
      name: 'lb1',
      target: 'x',
      blocked: null,
      sync: null,
      sipSocket: s,
    });
    const built = buildStatus({
      now: { mono: 5000, wall: 1_764_000_000_000 },
      startedAt: 1_764_000_000_000,
      views: [],
      result: null,
      nodes: [node(measured), { ...node(unmeasured), name: 'lb2' }, { ...node(null), name: 'lb3' }],
      schedules: [],
    });
    const validate = apiValidator('status');
    expect(validate(built), JSON.stringify(validate.errors)).to.equal(true);
    expect(built.lb_nodes[2]).to.not.have.property('sip_socket');
    const text = formatStatus(built);
    expect(text).to.contain('    socket 127.44.0.1:5060: receive queue 4352 bytes, 40 dropped, 10/s now');
    expect(text).to.match(
      / {4}socket 192\.0\.2\.7:5060 NOT MEASURED: 192\.0\.2\.7 is not an address of this host/,
    );
    expect(lbSocketLine(lbSocketJson(nextLbSocketStatus(null, SOCKET, figures(0, 3), at(0), HOST)))).to.equal(
      'socket 127.44.0.1:5060: receive queue 0 bytes, 3 dropped',
    );
  });

  it('/metrics: queue and drops per measured node; measured 1/0 per node that names a socket', async function () {
    const r = new Registry();
    const nodes = [
      { name: 'lb1', sipSocket: measured },
      { name: 'lb2', sipSocket: unmeasured },
      { name: 'lb3', sipSocket: null },
    ];
    lbSocketSeries(r, () => ({ nodes }) as unknown as ControllerSnapshot);
    const text = await r.metrics();
    expect(text).to.contain('sipweigh_lb_rx_queue_bytes{node="lb1"} 4352');
    expect(text).to.contain('sipweigh_lb_rx_drops_total{node="lb1"} 40');
    expect(text).to.contain('sipweigh_lb_socket_measured{node="lb1"} 1');
    expect(text).to.contain('sipweigh_lb_socket_measured{node="lb2"} 0');
    expect(text).to.not.match(/node="lb3"/);
    expect(text).to.not.match(/sipweigh_lb_rx_queue_bytes\{node="lb2"\}/);
  });
});

describe('LB socket: the config field lb_nodes[].sip_socket', function () {
  const example = readFileSync(join(REPO_ROOT, 'examples', 'controller.yaml'), 'utf8');
  const dir = mkdtempSync(join(tmpdir(), 'sipweigh-lb-socket-'));
  const withSocket = (line: string) => {
    const text = example.replace('sip_socket: { address: 127.0.0.10, port: 5060 }', line);
    expect(text).to.not.equal(example);
    const f = join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(f, text);
    return f;
  };

  it('the example names the LB socket; leaving it out measures nothing', function () {
    expect(
      loadControllerConfig(withSocket('sip_socket: { address: 127.0.0.10, port: 5062 }')).lb_nodes[0]
        ?.sip_socket,
    ).to.deep.equal({
      address: '127.0.0.10',
      port: 5062,
    });
    expect(loadControllerConfig(withSocket('# none')).lb_nodes[0]).to.not.have.property('sip_socket');
  });

  it('a bad socket is refused naming the field', function () {
    const refused = (line: string) => {
      try {
        loadControllerConfig(withSocket(line));
      } catch (e) {
        expect(e).to.be.instanceOf(ConfigError);
        return (e as ConfigError).issues.map((i) => i.path);
      }
      throw new Error('accepted');
    };
    expect(refused('sip_socket: { address: lb1.example, port: 5060 }')).to.deep.equal([
      'lb_nodes[0].sip_socket.address',
    ]);
    expect(refused('sip_socket: { address: 127.0.0.10, port: 0 }')).to.deep.equal([
      'lb_nodes[0].sip_socket.port',
    ]);
    expect(refused('sip_socket: 127.0.0.10:5060')).to.deep.equal(['lb_nodes[0].sip_socket']);
  });
});
