/**
 * The local host collectors read through a TextReader: here one that serves the /proc files captured
 * from this machine (test/fixtures/proc), so the glue from file to field is checked without the host.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../support/harness.js';
import {
  cpuCollector,
  loadCollector,
  memoryCollector,
  udpSocketCollector,
  type TextReader,
} from '../../src/metrics/host-collectors.js';

const fixture = (name: string) => readFileSync(join(REPO_ROOT, 'test', 'fixtures', 'proc', name), 'utf8');
const cadence = { intervalMs: 1000, timeoutMs: 1000 };
const signal = new AbortController().signal;

/** Serves each path from a list of fixture names, one per read, in order. */
function reader(files: Record<string, string[]>): TextReader & { reads: string[] } {
  const reads: string[] = [];
  const fn = async (path: string) => {
    reads.push(path);
    const next = files[path]?.shift();
    if (next === undefined) throw new Error(`ENOENT: ${path}`);
    return fixture(next);
  };
  return Object.assign(fn, { reads });
}

describe('metrics: local host collectors', function () {
  it('cpu: takes a second reading on the first sample, so the first report has a figure', async function () {
    const read = reader({ '/proc/stat': ['stat', 'stat.later'] });
    const sample = await cpuCollector(cadence, read).collect(signal);
    expect(read.reads).to.deep.equal(['/proc/stat', '/proc/stat']);
    expect(sample.values.cpu_util).to.be.closeTo(3 / 205, 1e-12);
  });

  it('memory and load from their files', async function () {
    const mem = await memoryCollector(cadence, reader({ '/proc/meminfo': ['meminfo'] })).collect(signal);
    expect(mem.values.mem_used_ratio).to.be.closeTo(1 - 24368848 / 24683620, 1e-12);
    const load = await loadCollector(cadence, reader({ '/proc/loadavg': ['loadavg'] })).collect(signal);
    expect(load.values).to.deep.equal({ load1: 0.35 });
  });

  it('udp socket: IPv4 from /proc/net/udp, IPv6 from /proc/net/udp6', async function () {
    const v4 = udpSocketCollector(
      { address: '127.0.4.1', port: 5060 },
      cadence,
      reader({ '/proc/net/udp': ['net-udp'] }),
    );
    expect((await v4.collect(signal)).values).to.deep.equal({ udp_rx_queue_bytes: 7680, udp_drops: 34 });
    const read6 = reader({ '/proc/net/udp6': ['net-udp6'] });
    const v6 = udpSocketCollector({ address: '::1', port: 5062 }, cadence, read6);
    expect((await v6.collect(signal)).values).to.deep.equal({ udp_rx_queue_bytes: 0xf00, udp_drops: 0 });
    expect(read6.reads).to.deep.equal(['/proc/net/udp6']);
  });

  it('udp socket: an IPv4 address served by an IPv6 socket (v4-mapped or dual-stack ::)', async function () {
    // net-udp6 holds a socket bound to ::ffff:127.0.4.3:5064; nothing on 5064 in net-udp.
    const read = reader({ '/proc/net/udp': ['net-udp'], '/proc/net/udp6': ['net-udp6'] });
    const c = udpSocketCollector({ address: '127.0.4.3', port: 5064 }, cadence, read);
    expect((await c.collect(signal)).values).to.deep.equal({ udp_rx_queue_bytes: 0, udp_drops: 0 });
    expect(read.reads).to.deep.equal(['/proc/net/udp', '/proc/net/udp6']);
  });

  it('udp socket: nothing bound there is a failure with the address named, not a zero queue', async function () {
    const c = udpSocketCollector(
      { address: '127.0.4.9', port: 5060 },
      cadence,
      reader({ '/proc/net/udp': ['net-udp'] }),
    );
    let err: Error | undefined;
    await c.collect(signal).catch((e: Error) => (err = e));
    expect(err?.message).to.include('no UDP socket bound to 127.0.4.9:5060');
  });

  it('a missing file rejects the sample (the sampler then nulls the fields)', async function () {
    let err: Error | undefined;
    await memoryCollector(cadence, reader({}))
      .collect(signal)
      .catch((e: Error) => (err = e));
    expect(err?.message).to.include('ENOENT');
  });
});
