import { expect } from 'chai';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pidAlive, ProcessGroup, stopPid } from '../../src/lab/processes.js';
import { eventually } from '../support/harness.js';

/** PIDs of the children of `pid`, from /proc (the harness must stop a process and what it forked). */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

describe('process harness: everything stopped by PID', function () {
  this.timeout(30000);
  const group = new ProcessGroup(mkdtempSync(join(tmpdir(), 'sipweigh-proc-')));
  after(() => group.stopAll(500));

  it('stops a process that ignores SIGTERM, and the children it forked, with SIGKILL after the grace time', async () => {
    // A shell that ignores SIGTERM and has a child of its own, like a Kamailio main process and its workers.
    const p = group.spawn('stubborn', 'sh', ['-c', 'trap "" TERM; sleep 600 & echo started; wait']);
    await eventually(() => readFileSync(p.logFile, 'utf8').includes('started'), 'shell started');
    const kids = await eventually(
      () => (childrenOf(p.pid).length > 0 ? childrenOf(p.pid) : false),
      'child forked',
    );
    const exit = await p.stop(300);
    expect(exit.signal).to.equal('SIGKILL');
    expect(pidAlive(p.pid)).to.equal(false);
    await eventually(() => kids.every((k) => !pidAlive(k)), 'forked child gone');
  });

  it('stops a released (detached) process by its PID alone, as `lab down` does', async () => {
    const p = group.spawn('detached', 'sleep', ['600']);
    group.release(p);
    expect(pidAlive(p.pid)).to.equal(true);
    expect(await stopPid(p.pid, 1000)).to.equal(true);
    expect(pidAlive(p.pid)).to.equal(false);
  });

  it('keeps each process output in its own log file and reports its exit code', async () => {
    const p = group.spawn('echo', 'sh', ['-c', 'echo hello-from-child; exit 7']);
    const exit = await p.exited;
    expect(exit.code).to.equal(7);
    expect(p.tail()).to.contain('hello-from-child');
    expect(p.isRunning()).to.equal(false);
  });
});
