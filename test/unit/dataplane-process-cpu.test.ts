import { expect } from 'chai';
import { parsePidStat, parseSchedstat, treeCpu } from '../../src/lab/process-cpu.js';

describe('process CPU accounting for the data-plane benchmark', function () {
  it('parses /proc/<pid>/stat with spaces and parentheses in the command name', function () {
    const line =
      '4242 (kamailio (udp) x) S 4200 4242 4242 0 -1 4194560 1200 0 0 0 731 112 0 0 20 0 1 0 8000 1 2';
    expect(parsePidStat(line)).to.deep.equal({ pid: 4242, ppid: 4200, utime: 731, stime: 112 });
  });

  it('rejects a line that is not a stat line', function () {
    expect(() => parsePidStat('garbage')).to.throw(/not a \/proc/);
    expect(() => parsePidStat('1 (x) S a b c')).to.throw(/malformed/);
  });

  it('reads the run time from schedstat', function () {
    expect(parseSchedstat('3989185 9419205 2\n')).to.equal(3989185);
    expect(() => parseSchedstat('x y z')).to.throw(/malformed/);
  });

  it('sums a process and all its descendants, nothing else', function () {
    const all = [
      { pid: 10, ppid: 1, cpuNs: 100 },
      { pid: 11, ppid: 10, cpuNs: 20 },
      { pid: 12, ppid: 10, cpuNs: 30 },
      { pid: 13, ppid: 12, cpuNs: 4 },
      { pid: 20, ppid: 1, cpuNs: 999 },
    ];
    expect(treeCpu(10, all)).to.deep.equal({ cpuNs: 154, processes: 4 });
    expect(treeCpu(12, all)).to.deep.equal({ cpuNs: 34, processes: 2 });
    expect(treeCpu(99, all)).to.deep.equal({ cpuNs: 0, processes: 0 });
  });
});
