/**
 * The pure parsers behind every collector, on files captured from this machine
 * (test/fixtures/proc, test/fixtures/kamailio-replies) and on malformed input.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../support/harness.js';
import { cpuUtilisation, parseProcStat } from '../../src/metrics/proc-stat.js';
import { memUsedRatio, parseMeminfo } from '../../src/metrics/meminfo.js';
import { parseLoadavg } from '../../src/metrics/loadavg.js';
import {
  addressBytes,
  decodeProcAddress,
  findUdpSocket,
  parseProcNetUdp,
} from '../../src/metrics/proc-net-udp.js';
import { MetricsParseError } from '../../src/metrics/parse-error.js';
import { CpuTracker } from '../../src/metrics/cpu-tracker.js';
import { ratePerSecond } from '../../src/metrics/rates.js';

const proc = (name: string) => readFileSync(join(REPO_ROOT, 'test', 'fixtures', 'proc', name), 'utf8');

describe('metrics parsers: /proc/stat', function () {
  it('reads the aggregate cpu line of a real /proc/stat (busy excludes idle and iowait)', function () {
    // cpu  4443 0 3647 45514 366 0 178 0 0 0
    expect(parseProcStat(proc('stat'))).to.deep.equal({
      busy: 4443 + 3647 + 178,
      total: 4443 + 3647 + 45514 + 366 + 178,
    });
  });

  it('computes utilisation from two real readings one second apart', function () {
    const u = cpuUtilisation(parseProcStat(proc('stat')), parseProcStat(proc('stat.later')));
    // busy 8268 -> 8271, total 54148 -> 54353
    expect(u).to.be.closeTo(3 / 205, 1e-12);
  });

  it('does not count guest time twice (it is already in user and nice)', function () {
    const t = parseProcStat('cpu  100 0 0 100 0 0 0 0 50 50\n');
    expect(t).to.deep.equal({ busy: 100, total: 200 });
  });

  it('accepts old kernels with only four columns', function () {
    expect(parseProcStat('cpu 1 2 3 4\n')).to.deep.equal({ busy: 6, total: 10 });
  });

  it('gives no figure when time did not advance or counters went back', function () {
    const a = { busy: 10, total: 100 };
    expect(cpuUtilisation(a, a)).to.equal(null);
    expect(cpuUtilisation(a, { busy: 5, total: 200 })).to.equal(null);
    expect(cpuUtilisation(a, { busy: 20, total: 50 })).to.equal(null);
  });

  it('the tracker needs two readings, then follows deltas', function () {
    const t = new CpuTracker();
    expect(t.update({ busy: 0, total: 0 })).to.equal(null);
    expect(t.update({ busy: 50, total: 100 })).to.equal(0.5);
    expect(t.update({ busy: 50, total: 200 })).to.equal(0);
  });

  for (const [label, text] of [
    ['empty', ''],
    ['no aggregate line', 'cpu0 1 2 3 4\n'],
    ['too few columns', 'cpu  1 2 3\n'],
    ['non-numeric column', 'cpu  1 2 x 4 5\n'],
    ['negative value', 'cpu  1 -2 3 4\n'],
  ] as const) {
    it(`rejects malformed input: ${label}`, function () {
      expect(() => parseProcStat(text)).to.throw(MetricsParseError, '/proc/stat');
    });
  }
});

describe('metrics parsers: /proc/meminfo and /proc/loadavg', function () {
  it('reads MemTotal and MemAvailable from a real /proc/meminfo', function () {
    const m = parseMeminfo(proc('meminfo'));
    expect(m).to.deep.equal({ totalKb: 24683620, availableKb: 24368848 });
    expect(memUsedRatio(m)).to.be.closeTo(1 - 24368848 / 24683620, 1e-12);
  });

  it('rejects meminfo without MemAvailable, with a zero total, or with garbage values', function () {
    expect(() => parseMeminfo('MemTotal: 100 kB\nMemFree: 50 kB\n')).to.throw(
      MetricsParseError,
      'MemAvailable',
    );
    expect(() => parseMeminfo('MemAvailable: 100 kB\n')).to.throw(MetricsParseError, 'MemTotal');
    expect(() => parseMeminfo('MemTotal: 0 kB\nMemAvailable: 0 kB\n')).to.throw(MetricsParseError, 'is 0');
    expect(() => parseMeminfo('MemTotal: 1e3 kB\nMemAvailable: 5 kB\n')).to.throw(
      MetricsParseError,
      'bad value',
    );
  });

  it('reads a real /proc/loadavg', function () {
    expect(parseLoadavg(proc('loadavg'))).to.deep.equal({ load1: 0.35, load5: 0.24, load15: 0.11 });
  });

  it('rejects malformed loadavg', function () {
    for (const text of ['', '0.35 0.24\n', 'a b c 1/2 3\n', '0.35 0.24 0.11 1/85\n']) {
      expect(() => parseLoadavg(text), JSON.stringify(text)).to.throw(MetricsParseError, '/proc/loadavg');
    }
  });
});

describe('metrics parsers: /proc/net/udp and udp6', function () {
  // Captured with a socket on 127.0.4.1:5060 holding unread datagrams (SO_RCVBUF 4096, 40 x 500 bytes
  // sent: 34 dropped), a connected client socket, and IPv6 sockets on ::1 and ::ffff:127.0.4.3.
  it('decodes little-endian IPv4 and IPv6 addresses', function () {
    expect(decodeProcAddress('0104007F')).to.deep.equal(Buffer.from([127, 0, 4, 1]));
    expect(decodeProcAddress('00000000000000000000000001000000')).to.deep.equal(addressBytes('::1'));
    expect(decodeProcAddress('0000000000000000FFFF00000304007F')).to.deep.equal(
      addressBytes('::ffff:127.0.4.3'),
    );
    expect(decodeProcAddress('7F000401', 'BE')).to.deep.equal(Buffer.from([127, 0, 4, 1]));
    expect(decodeProcAddress('0104007')).to.equal(undefined);
    expect(decodeProcAddress('0104007G')).to.equal(undefined);
  });

  it('reads every row of a real /proc/net/udp: queue in hex, drops in decimal, port in host order', function () {
    const rows = parseProcNetUdp(proc('net-udp'));
    expect(rows).to.have.length(2);
    const server = rows[0]!;
    expect([...server.localAddress]).to.deep.equal([127, 0, 4, 1]);
    expect(server.localPort).to.equal(5060);
    expect(server.state).to.equal(7);
    expect(server.rxQueueBytes).to.equal(0x1e00);
    expect(server.drops).to.equal(34);
    const client = rows[1]!;
    expect(client.localPort).to.equal(0xb26e);
    expect(client.remotePort).to.equal(5060);
    expect(client.state).to.equal(1);
  });

  it('finds the SIP socket by address and port, ignoring connected sockets', function () {
    const rows = parseProcNetUdp(proc('net-udp'));
    expect(findUdpSocket(rows, '127.0.4.1', 5060)).to.deep.equal({
      rxQueueBytes: 7680,
      drops: 34,
      sockets: 1,
    });
    expect(findUdpSocket(rows, '127.0.4.2', 5060)).to.equal(undefined);
    expect(findUdpSocket(rows, '127.0.4.1', 5061)).to.equal(undefined);
    // The client socket 127.0.4.2:45678 is connected (state 01): never the SIP socket.
    expect(findUdpSocket(rows, '127.0.4.2', 45678)).to.equal(undefined);
  });

  it('reads a real /proc/net/udp6, including a v4-mapped address', function () {
    const rows = parseProcNetUdp(proc('net-udp6'), '/proc/net/udp6');
    expect(rows).to.have.length(3);
    expect(findUdpSocket(rows, '::1', 5062)).to.deep.equal({ rxQueueBytes: 0xf00, drops: 0, sockets: 1 });
    expect(findUdpSocket(rows, '0:0::1', 5062)?.rxQueueBytes).to.equal(0xf00);
    expect(findUdpSocket(rows, '::ffff:127.0.4.3', 5064)).to.deep.equal({
      rxQueueBytes: 0,
      drops: 0,
      sockets: 1,
    });
  });

  it('falls back to a wildcard binding and sums SO_REUSEPORT sockets', function () {
    const header =
      '   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n';
    const row = (addr: string, rx: string, drops: number) =>
      ` 1: ${addr}:13C4 00000000:0000 07 00000000:${rx} 00:00000000 00000000     0        0 1 2 0000000000000000 ${drops}\n`;
    const wildcard = parseProcNetUdp(header + row('00000000', '00000100', 3));
    expect(findUdpSocket(wildcard, '127.0.4.9', 5060)).to.deep.equal({
      rxQueueBytes: 256,
      drops: 3,
      sockets: 1,
    });
    const reuse = parseProcNetUdp(
      header +
        row('0904007F', '00000100', 1) +
        row('0904007F', '00000200', 2) +
        row('00000000', '00001000', 9),
    );
    expect(findUdpSocket(reuse, '127.0.4.9', 5060)).to.deep.equal({
      rxQueueBytes: 768,
      drops: 3,
      sockets: 2,
    });
  });

  it('refuses a configured address that is not an IP', function () {
    expect(() => findUdpSocket([], 'kamailio.local', 5060)).to.throw('not an IP address');
  });

  for (const [label, text] of [
    ['empty', ''],
    [
      'missing header',
      ' 4962: 0104007F:13C4 00000000:0000 07 00000000:00001E00 00:00000000 00000000 0 0 9408 2 0 34\n',
    ],
    ['short row', `${proc('net-udp').split('\n')[0]}\n 4962: 0104007F:13C4 00000000:0000 07\n`],
    [
      'bad address',
      `${proc('net-udp').split('\n')[0]}\n 1: 0104007Z:13C4 00000000:0000 07 00000000:00001E00 00:00000000 00000000 0 0 9408 2 0 34\n`,
    ],
    [
      'bad queue',
      `${proc('net-udp').split('\n')[0]}\n 1: 0104007F:13C4 00000000:0000 07 00000000-00001E00 00:00000000 00000000 0 0 9408 2 0 34\n`,
    ],
    [
      'bad drops',
      `${proc('net-udp').split('\n')[0]}\n 1: 0104007F:13C4 00000000:0000 07 00000000:00001E00 00:00000000 00000000 0 0 9408 2 0 x\n`,
    ],
  ] as const) {
    it(`rejects a malformed table rather than reading it as "queue empty": ${label}`, function () {
      expect(() => parseProcNetUdp(text)).to.throw(MetricsParseError);
    });
  }
});

describe('metrics: rates from counters', function () {
  it('divides the counter delta by the elapsed time', function () {
    expect(ratePerSecond({ atMs: 1000, value: 10 }, { atMs: 1500, value: 60 })).to.equal(100);
  });

  it('gives no rate when no time passed or the counter went back (Kamailio restarted)', function () {
    expect(ratePerSecond({ atMs: 1000, value: 10 }, { atMs: 1000, value: 20 })).to.equal(null);
    expect(ratePerSecond({ atMs: 1000, value: 10 }, { atMs: 2000, value: 5 })).to.equal(null);
  });
});
