/**
 * The benchmarks' shared command line and interrupt handling, as an operator meets them: main.ts as
 * a process refusing a bad option by name, and a bench interrupted by SIGINT stopping what it started.
 */
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { expect } from 'chai';
import { numberIn, benchCommand, parseBenchArgs } from '../../scripts/bench/common/options.js';
import { REPO_ROOT } from '../support/harness.js';

const tsx = (file: string, ...args: string[]) =>
  spawnSync(process.execPath, ['--import', 'tsx', join(REPO_ROOT, file), ...args], {
    encoding: 'utf8',
    cwd: REPO_ROOT,
    timeout: 60000,
  });

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('bench common: options and interrupts', function () {
  this.timeout(60000);

  it('parses --quick and typed values, and names the option a bad value belongs to', () => {
    const cmd = () => benchCommand('x', 'test').option('--rate <n>', 'rate', numberIn(1, 10, true), 5);
    expect(parseBenchArgs<{ rate: number }>(cmd(), [])).to.deep.equal({ quick: false, rate: 5 });
    expect(parseBenchArgs<{ rate: number }>(cmd(), ['--quick', '--rate', '7'])).to.deep.equal({
      quick: true,
      rate: 7,
    });
    expect(() => parseBenchArgs(cmd(), ['--rate', '11'])).to.throw(/--rate.*1\.\.10/);
    expect(() => parseBenchArgs(cmd(), ['--rate', '2.5'])).to.throw(/--rate.*integer/);
    expect(() => parseBenchArgs(cmd(), ['--qiuck'])).to.throw(/unknown option '--qiuck'/);
  });

  it('main.ts refuses an unknown bench option by name before starting anything', () => {
    for (const bench of ['dataplane', 'heartbeat', 'failover', 'quality']) {
      const r = tsx('scripts/bench/main.ts', bench, '--frobnicate');
      expect(r.status, `${bench}: ${r.stderr}`).to.equal(1);
      expect(r.stderr).to.match(new RegExp(`${bench}: unknown option '--frobnicate'`));
    }
    const unknown = tsx('scripts/bench/main.ts', 'nosuch');
    expect(unknown.status).to.equal(2);
    expect(unknown.stderr).to.match(/quality/);
  });

  /** Runs the fixture, SIGINTs it once it printed its PIDs; returns them, its exit code and stderr. */
  async function interrupt(
    ...args: string[]
  ): Promise<{ pids: number[]; code: number | null; stderr: string }> {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(REPO_ROOT, 'test/support/bench-interrupt-fixture.ts'), ...args],
      { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      const pids = await new Promise<number[]>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          const line = out.split('\n').find((l) => l.startsWith('started '));
          if (line) resolve(line.slice(8).split(',').map(Number));
        });
        child.once('exit', (code) => reject(new Error(`fixture exited ${code} before starting:\n${stderr}`)));
      });
      expect(pids).to.have.length(2);
      expect(pids.every(alive)).to.equal(true);
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      child.kill('SIGINT');
      return { pids, code: await exited, stderr };
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }

  it('SIGINT stops every process the bench registered, then exits 130', async () => {
    const { pids, code } = await interrupt();
    expect(code).to.equal(130);
    expect(pids.filter(alive)).to.deep.equal([]);
  });

  it("SIGINT during the first lab's start stops what the start has started so far", async () => {
    const { pids, code, stderr } = await interrupt('mid-start');
    expect(code).to.equal(130);
    // The start's own registration stopped them (the handler counts one), not an exit-time kill alone.
    expect(stderr).to.match(/SIGINT: stopping 1 lab/);
    expect(pids.filter(alive)).to.deep.equal([]);
  });
});
