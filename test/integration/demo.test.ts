import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from '../support/harness.js';

describe('npm run demo (scripts/demo.ts)', function () {
  this.timeout(180000);

  it('runs the lab end to end: every call completes, the LB sees no ACK/BYE, the heartbeat hears every agent', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'scripts/demo.ts')], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
      timeout: 150000,
    });
    expect(r.status, `${r.stdout}\n${r.stderr}`).to.equal(0);
    expect(r.stdout).to.match(/calls: (\d+) completed, 0 failed of \1;/);
    expect(r.stdout).to.match(/the LB saw 0 ACK and 0 BYE/);
    const hb = /heartbeat: (\d+) probes, (\d+) signed reports accepted/.exec(r.stdout);
    expect(hb, r.stdout).to.not.equal(null);
    expect(Number(hb![2])).to.be.greaterThan(10);
    expect(r.stdout.trimEnd().endsWith('lab down')).to.equal(true);
  });
});
