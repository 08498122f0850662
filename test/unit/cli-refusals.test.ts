/** The CLI's refusals of option combinations it would otherwise ignore or act on silently. */
import { expect } from 'chai';
import { labUpRefusal, type LabUpChoices } from '../../src/cli/commands/lab.js';
import { apiOptionsBesideFile } from '../../src/cli/commands/operator.js';

describe('CLI option combinations', () => {
  const lab = (c: Partial<LabUpChoices>): string | null =>
    labUpRefusal({ capacity: false, workers: false, agents: true, controller: true, ...c });

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
