/**
 * The Ansible role's OpenSIPS placement (scripts/ansible/roles/sipweigh/tasks/opensips.yml) against
 * the sources it restates, read as files (no Ansible needed): the modules it makes sure are loaded
 * are the snippet's own (its header) without the sockets' proto modules, in the lab config's load
 * order; the files it creates for an empty LB are byte for byte what the controller's OpenSIPS
 * adapter writes for no destination. The role run itself: test/integration/ansible-deploy.test.ts.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import {
  DISPATCHER_TABLE_HEADER,
  formatDestinationsRoute,
  formatVersionTable,
} from '../../src/opensips/dispatcher-table.js';
import { REPO_ROOT } from '../support/harness.js';

const ROLE = join(REPO_ROOT, 'scripts/ansible/roles/sipweigh');
const read = (p: string) => readFileSync(join(REPO_ROOT, p), 'utf8');

interface Task {
  readonly name: string;
  readonly [module: string]: unknown;
}

describe('Ansible role: the OpenSIPS snippet placement restates the sources', () => {
  const defaults = parse(readFileSync(join(ROLE, 'defaults/main.yml'), 'utf8')) as Record<string, unknown>;
  const tasks = parse(readFileSync(join(ROLE, 'tasks/opensips.yml'), 'utf8')) as Task[];
  const copyOf = (name: string) =>
    tasks.find((t) => t.name === name)?.['ansible.builtin.copy'] as Record<string, string> | undefined;

  it("loads the snippet's modules (its header) except proto_*, in the lab config's order", () => {
    const header = /# Modules it uses: ([\s\S]*?)\n\n/.exec(read('opensips/sipweigh-lb.cfg'))?.[1];
    expect(header, 'the "Modules it uses" paragraph of the snippet').to.be.a('string');
    const named = header!
      .replace(/^#\s*/gm, '')
      .replace(/\(and ([^)]*) for the controller\)/, '$1')
      .split(/[\s+.]+/)
      .filter((w) => /^[a-z_]+$/.test(w));
    const expected = named.filter((m) => !m.startsWith('proto_'));
    const role = defaults.sipweigh_opensips_modules as string[];
    expect([...role].sort()).to.deep.equal([...new Set(expected)].sort());
    // OpenSIPS checks module dependencies in load order: the lab's working config is the reference.
    const labOrder = [...read('opensips/lab-lb.cfg').matchAll(/^loadmodule "(\w+)\.so"$/gm)].map((m) => m[1]);
    expect(role).to.deep.equal(labOrder.filter((m) => role.includes(m!)));
  });

  it('creates the db_text version file and an empty table as the OpenSIPS adapter formats them', () => {
    expect(copyOf('Write the db_text version file (dispatcher table version 9)')?.content).to.equal(
      formatVersionTable(),
    );
    expect(copyOf('Create an empty dispatcher table if there is none')?.content).to.equal(
      `${DISPATCHER_TABLE_HEADER}\n`,
    );
  });

  it("creates the destinations route as the controller writes it for no destination, and never overwrites the controller's", () => {
    const route = copyOf('Create an empty destinations route if there is none');
    expect(route?.src).to.equal('sipweigh-destinations-empty.cfg');
    expect(readFileSync(join(ROLE, 'files/sipweigh-destinations-empty.cfg'), 'utf8')).to.equal(
      formatDestinationsRoute([]),
    );
    for (const name of [
      'Create an empty destinations route if there is none',
      'Create an empty dispatcher table if there is none',
    ]) {
      expect(copyOf(name)?.force, name).to.equal(false);
    }
  });
});
