/** The CLI's refusals of option combinations it would otherwise ignore or act on silently. */
import { expect } from 'chai';
import { labUpRefusal, type LabUpChoices } from '../../src/cli/commands/lab.js';
import { apiOptionsBesideFile } from '../../src/cli/commands/operator.js';

describe('CLI option combinations', () => {
  const lab = (c: Partial<LabUpChoices>): string | null =>
    labUpRefusal({
      capacity: false,
      workers: false,
      agents: true,
      controller: true,
      lbs: 1,
      lb: 'kamailio',
      ...c,
    });

  it('lab up: --workers only with --capacity (it sets the emulated backends)', () => {
    expect(lab({ workers: true })).to.match(/--workers.*--capacity/);
    expect(lab({ workers: true, capacity: true })).to.equal(null);
    expect(lab({ capacity: true })).to.equal(null);
    expect(lab({})).to.equal(null);
  });

  it('lab up: --no-agents only with --no-controller (a controller without reports sees every backend down)', () => {
    expect(lab({ agents: false })).to.match(/--no-agents.*--no-controller/);
    expect(lab({ agents: false, controller: false })).to.equal(null);
    expect(lab({ controller: false })).to.equal(null);
  });

  it("lab up: --lbs 1..4, and more than one only with Kamailio (DMQ is the Kamailio snippet's)", () => {
    expect(lab({ lbs: 2 })).to.equal(null);
    expect(lab({ lbs: 4 })).to.equal(null);
    expect(lab({ lbs: 0 })).to.match(/--lbs must be 1\.\.4, got 0/);
    expect(lab({ lbs: 5 })).to.match(/--lbs must be 1\.\.4, got 5/);
    expect(lab({ lb: 'opensips' })).to.equal(null);
    const both = lab({ lbs: 2, lb: 'opensips' });
    expect(both).to.match(/--lbs 2/);
    expect(both).to.match(/--lb opensips/);
  });

  it('status --file: names every API option given beside it', () => {
    expect(apiOptionsBesideFile({})).to.deep.equal([]);
    expect(apiOptionsBesideFile({ api: 'http://x' })).to.deep.equal(['--api']);
    expect(apiOptionsBesideFile({ api: 'u', tokenFile: 't', config: 'c' })).to.deep.equal([
      '--api',
      '--token-file',
      '--config',
    ]);
  });
});
