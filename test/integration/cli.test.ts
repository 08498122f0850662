import { expect } from 'chai';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sipweigh } from '../support/cli.js';
import { controllerWithFairness } from '../support/fairness-config.js';

describe('sipweigh CLI', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sipweigh-cli-'));
  const write = (name: string, text: string) => {
    const f = join(dir, name);
    writeFileSync(f, text);
    return f;
  };

  it('prints --help for every subcommand', () => {
    for (const cmd of [
      [],
      ['controller'],
      ['agent'],
      ['validate'],
      ['lab'],
      ['lab', 'up'],
      ['lab', 'status'],
      ['lab', 'down'],
      ['status'],
      ['drain'],
      ['undrain'],
      ['reload'],
    ]) {
      const r = sipweigh(...cmd, '--help');
      expect(r.code, `${cmd.join(' ')} --help: ${r.err}`).to.equal(0);
      expect(r.out).to.match(/^Usage: sipweigh/);
    }
  });

  it('validate: accepts the shipped examples', () => {
    for (const f of ['examples/controller.yaml', 'examples/agent.yaml']) {
      const r = sipweigh('validate', f);
      expect(r.code, r.err).to.equal(0);
      expect(r.out).to.contain(`${f}: ok`);
    }
  });

  const cases: [string, string, RegExp][] = [
    ['malformed YAML', 'kind: agent\nbackend_id: [be1\n', /malformed YAML/],
    ['a wrong type', 'kind: agent\nbackend_id: be1\nset: one\n', /:3:\d+: set: must be integer/],
    ['a missing required field', 'kind: agent\nbackend_id: be1\n', /capacity: required field is missing/],
    ['an unknown field', 'kind: agent\nbackend_id: be1\ncolour: blue\n', /colour: unknown field/],
  ];
  for (const [what, text, message] of cases) {
    it(`validate: refuses ${what}, naming the file and field, exit non-zero`, () => {
      const f = write(`${what.replace(/\W+/g, '-')}.yaml`, text);
      const r = sipweigh('validate', f);
      expect(r.code).to.equal(3);
      expect(r.err).to.contain(f);
      expect(r.err).to.match(message);
      expect(r.err).to.match(/nothing was started or changed/);
      expect(r.out).to.equal('');
    });
  }

  // Fair admission (issue 14) through the CLI: each refusal names its field (the rules themselves are
  // unit-tested in fairness-config.test.ts).
  const controllerWith = controllerWithFairness;
  const fairCases: [string, string, RegExp][] = [
    [
      'a group network with host bits set',
      controllerWith('    groups:\n      - { name: a, networks: [10.0.0.1/24] }\n'),
      /admission\.fairness\.groups\[0\]\.networks\[0\].*host bits set/,
    ],
    [
      'a group weight of 0',
      controllerWith('    groups:\n      - { name: a, networks: [10.0.0.0/8], weight: 0 }\n'),
      /admission\.fairness\.groups\[0\]\.weight/,
    ],
    [
      'groups without the LB address file',
      controllerWith('    groups:\n      - { name: a, networks: [10.0.0.0/8] }\n', false),
      /lb_nodes\[0\]\.address_file/,
    ],
    ['top_n 0', controllerWith('    top_n: 0\n'), /admission\.fairness\.top_n/],
  ];
  for (const [what, text, message] of fairCases) {
    it(`validate: refuses fair admission with ${what}, naming the field, exit non-zero`, () => {
      const f = write(`fair-${what.replace(/\W+/g, '-')}.yaml`, text);
      const r = sipweigh('validate', f);
      expect(r.code, r.err).to.equal(3);
      expect(r.err).to.contain(f);
      expect(r.err).to.match(message);
      expect(r.out).to.equal('');
    });
  }
  it('validate: accepts the same controller with good fairness groups (the cases above can pass)', () => {
    const f = write(
      'fair-ok.yaml',
      controllerWith(
        '    groups:\n      - { name: a, networks: [10.0.0.0/8], weight: 2, guaranteed_cps: 20 }\n',
      ),
    );
    const r = sipweigh('validate', f);
    expect(r.code, r.err).to.equal(0);
    expect(r.out).to.contain(`${f}: ok`);
  });

  it('agent and controller refuse a bad config before starting anything', () => {
    const f = write('bad-agent.yaml', 'kind: agent\nbackend_id: be1\n');
    const r = sipweigh('agent', '--config', f);
    expect(r.code).to.equal(3);
    expect(r.err).to.match(/required field is missing/);
    const c = sipweigh('controller', '--config', 'examples/agent.yaml');
    expect(c.code).to.equal(3);
    expect(c.err).to.match(/needs a controller config/);
  });

  it('validate and controller refuse an SFTP private_key_file that cannot be read: exit 3 naming the field, relative paths from the config file', () => {
    // The file sits next to the config; the CLI runs from the repository root, so only a path
    // resolved against the config's directory finds it.
    const sub = join(dir, 'sftp');
    mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, 'id_present'), 'not really a key, but readable\n');
    const config = (keyFile: string) => `kind: controller
heartbeat:
  listen: { address: 127.14.9.8, port: 7950 }
  master_key: ${'ab'.repeat(32)}
lb_nodes:
  - name: lb1
    rpc: { url: "http://127.14.9.8:5071/RPC" }
    dispatcher_list:
      path: /tmp/sipweigh-cli-sftp.list
      sftp:
        host: 127.14.9.8
        username: sipweigh
        private_key_file: ${keyFile}
        host_fingerprint: SHA256:${'A'.repeat(43)}
sets:
  - id: 1
`;
    const missing = join(sub, 'missing.yaml');
    writeFileSync(missing, config('id_absent'));
    const field = 'lb_nodes[0].dispatcher_list.sftp.private_key_file';
    const v = sipweigh('validate', missing);
    expect(v.code, v.err).to.equal(3);
    expect(v.err).to.contain(`${missing}:13:27: ${field}: cannot read ${join(sub, 'id_absent')}: ENOENT`);
    const c = sipweigh('controller', '--config', missing);
    expect(c.code, c.err).to.equal(3);
    expect(c.err).to.contain(field);
    expect(c.err).to.match(/nothing was started or changed/);

    const present = join(sub, 'present.yaml');
    writeFileSync(present, config('id_present'));
    const ok = sipweigh('validate', present);
    expect(ok.code, ok.err).to.equal(0);
  });

  it('status/drain/reload: one clear line and exit 5 when no controller answers; --file says clearly when the file is absent or not a status', () => {
    // Nothing listens there (127.14.x.x is this suite's block).
    for (const args of [['status'], ['drain', 'be1'], ['undrain', 'be1'], ['reload']]) {
      const none = sipweigh(...args, '--api', 'http://127.14.9.9:9061');
      expect(none.code, args.join(' ')).to.equal(5);
      expect(none.err).to.equal(
        'sipweigh: cannot reach the controller at http://127.14.9.9:9061: ECONNREFUSED\n',
      );
    }
    const noApi = sipweigh('status', '--config', 'examples/agent.yaml');
    expect(noApi.code).to.equal(5);
    expect(noApi.err).to.match(/has no api section/);
    const absent = sipweigh('status', '--file', join(dir, 'nope.json'));
    expect(absent.code).to.equal(4);
    expect(absent.err).to.match(/is the controller running with status_file set/);
    const junk = sipweigh('status', '--file', write('junk.json', '{"hello": 1}'));
    expect(junk.code).to.equal(1);
    expect(junk.err).to.match(/not a sipweigh status file/);
  });

  it('lab up refuses options it would ignore or that would turn off something else, naming them, starting nothing', () => {
    const labDir = join(dir, 'lab-refused');
    const workers = sipweigh('lab', 'up', '--workers', '2', '--dir', labDir);
    expect(workers.code, workers.err).to.equal(2);
    expect(workers.err).to.match(/--workers .*give --capacity too/);
    const agents = sipweigh('lab', 'up', '--no-agents', '--dir', labDir);
    expect(agents.code, agents.err).to.equal(2);
    expect(agents.err).to.match(/--no-agents .*add --no-controller/);
    // Nothing was started: no lab state in the directory.
    expect(sipweigh('lab', 'status', '--dir', labDir).code).to.equal(4);
  });

  it('status --file refuses the API options it would ignore, naming them', () => {
    const file = write('status-file.json', '{}');
    const r = sipweigh('status', '--file', file, '--api', 'http://127.14.9.9:9061', '--token-file', file);
    expect(r.code, r.err).to.equal(2);
    expect(r.err).to.match(/--file reads the status file, not the API: drop --api, --token-file/);
    const c = sipweigh('status', '--file', file, '-c', 'examples/controller.yaml');
    expect(c.code).to.equal(2);
    expect(c.err).to.match(/drop --config/);
  });

  it('reports an unknown subcommand as a usage error', () => {
    const r = sipweigh('bogus');
    expect(r.code).to.equal(2);
    expect(r.err).to.match(/unknown command/);
  });
});
