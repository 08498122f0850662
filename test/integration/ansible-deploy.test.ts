/**
 * The Ansible deployment (scripts/ansible), with the real ansible-core and ansible-lint that
 * scripts/setup.sh installs: both playbooks pass --syntax-check and ansible-lint's production profile;
 * the role, run with --connection=local into a temporary root (controller, then agent on the same
 * "host"), places every file with the intended owner, mode and content, and a second run changes
 * nothing. Nothing outside the temporary root is touched: no users, no systemctl, no /etc.
 * With sipweigh_lb_kind: opensips (a root of its own), the role places the OpenSIPS snippet instead:
 * included once before the operator's main route, only the missing modules loaded, the db_text
 * table and destinations route the controller then owns; `opensips -C` accepts the result and
 * OpenSIPS 3.6 started on it answers MI and reads the placed table.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { deriveBackendKey } from '../../src/heartbeat/keys.js';
import { ProcessGroup, type ManagedProcess } from '../../src/lab/processes.js';
import { eventually, REPO_ROOT } from '../support/harness.js';
import { ANSIBLE_DIR, ansibleEnv } from '../support/ansible.js';
import {
  openSipsCheck,
  opensipsAvailable,
  opensipsBinary,
  opensipsModulesDir,
  OPENSIPS_PREFIX,
} from '../../src/lab/opensips.js';
import { isBound } from '../../src/lab/sockets.js';
import { OpenSipsMiClient } from '../../src/opensips/mi.js';
import {
  formatDestinationsRoute,
  formatDispatcherTable,
  formatVersionTable,
} from '../../src/opensips/dispatcher-table.js';

const ROLE_DIR = join(ANSIBLE_DIR, 'roles/sipweigh');
const RUN_TIMEOUT_MS = 480000;

const MASTER_KEY = '5b1f0c3e9a7d2b4f6e8a0c1d3f5b7d9e1a2c4e6f8b0d2f4a6c8e0b1d3f5a7c9e';
const API_TOKEN = 'test-token-0123456789abcdef';
const LB_RPC_PASSWORD = 's3cret pass';
const NEW_MASTER_KEY = 'a1c3e5f7092b4d6f81a3c5e7f9021b3d5f7a9c1e3b5d7f9a0c2e4b6d8f0a1c3e';
const NEW_API_TOKEN = 'test-token-rotated-fedcba9876543210';

// Host configs as an operator might have them before sipweigh: loopback addresses of this test's block.
const LB_CFG = `#!KAMAILIO
# A minimal LB host config.
debug=2
log_stderror=yes
children=2
listen=udp:127.16.0.10:5060

loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"

request_route {
	sl_send_reply("404", "Not here");
}
`;
const BACKEND_CFG = `#!KAMAILIO
# A minimal backend host config.
debug=2
log_stderror=yes
children=2
listen=udp:127.16.0.11:5060

loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "rr.so"

request_route {
	if (has_totag()) { loose_route(); }
	t_relay();
}
`;

interface Run {
  readonly code: number | null;
  readonly out: string;
}

interface Recap {
  readonly ok: number;
  readonly changed: number;
  readonly unreachable: number;
  readonly failed: number;
}

/** Sums the PLAY RECAP lines (one per host). */
function recap(out: string): Recap {
  const lines = [...out.matchAll(/^\S+\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)/gm)];
  if (lines.length === 0) throw new Error(`no PLAY RECAP in the output:\n${out.slice(-3000)}`);
  const sum = (i: number) => lines.reduce((n, m) => n + Number(m[i]), 0);
  return { ok: sum(1), changed: sum(2), unreachable: sum(3), failed: sum(4) };
}

describe('Ansible deployment (scripts/ansible)', function () {
  this.timeout(RUN_TIMEOUT_MS + 60000);
  const work = mkdtempSync(join(tmpdir(), 'sipweigh-ansible-'));
  const root = join(work, 'root');
  const me = userInfo().username;
  const myGroup = spawnSync('id', ['-gn'], { encoding: 'utf8' }).stdout.trim();
  // Everything Ansible and ansible-lint keep for themselves stays in the work directory too.
  const env = ansibleEnv(work);
  // Paths a careless role would write on the real host: they must look the same after the runs.
  const outside = [
    '/etc/sipweigh',
    '/opt/sipweigh',
    '/usr/local/bin/sipweigh',
    '/etc/systemd/system/sipweigh-agent.service',
  ];
  const outsideBefore = outside.map((p) => existsSync(p));
  let tarball = '';

  const run = (cmd: string, args: string[], cwd = work): Run => {
    const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout: RUN_TIMEOUT_MS });
    if (r.error)
      throw new Error(`${cmd}: ${r.error.message} (scripts/setup.sh installs ansible-core and ansible-lint)`);
    return { code: r.status, out: `${r.stdout}${r.stderr}` };
  };

  const common = () => ({
    sipweigh_root: root,
    sipweigh_release_tarball: tarball,
    sipweigh_node_bin: process.execPath,
    sipweigh_manage_user: false,
    sipweigh_manage_services: false,
    sipweigh_user: me,
    sipweigh_group: myGroup,
    sipweigh_kamailio_group: myGroup,
    sipweigh_heartbeat_listen: { address: '127.16.0.10', port: 7950 },
  });
  const controllerPlay = (extra: Record<string, unknown> = {}) => ({
    name: 'Controller into a temporary root',
    hosts: 'localhost',
    gather_facts: false,
    become: false,
    roles: [
      {
        role: ROLE_DIR,
        vars: {
          ...common(),
          sipweigh_role: 'controller',
          sipweigh_backends_group: 'test_backends',
          sipweigh_master_key: MASTER_KEY,
          sipweigh_api_token: API_TOKEN,
          sipweigh_sets: [{ id: 1 }],
          sipweigh_lb_nodes: [
            {
              name: 'lb1',
              rpc_url: 'http://127.16.0.10:5071/RPC',
              rpc_username: 'sipweigh',
              rpc_password: LB_RPC_PASSWORD,
              dispatcher_list: '/var/lib/sipweigh/dispatcher.list',
            },
          ],
          sipweigh_lb_rpc_listen: { address: '127.16.0.10', port: 5071 },
          sipweigh_lb_rpc_password: LB_RPC_PASSWORD,
          ...extra,
        },
      },
    ],
  });
  const agentPlay = (extra: Record<string, unknown> = {}) => ({
    name: 'Agent into the same root',
    hosts: 'localhost',
    gather_facts: false,
    become: false,
    roles: [
      {
        role: ROLE_DIR,
        vars: {
          ...common(),
          sipweigh_role: 'agent',
          // The key is derived where master.key lives (the controller's files, in this root).
          sipweigh_key_host: 'localhost',
          sipweigh_backend_id: 'be1',
          sipweigh_capacity: 200,
          sipweigh_sip: { address: '127.16.0.11', port: 5060 },
          sipweigh_agent_listen: { address: '127.16.0.11', port: 7951 },
          sipweigh_kamailio_rpc_url: 'http://127.16.0.11:5072/RPC',
          sipweigh_kamailio_cfg: '/etc/kamailio/kamailio-backend.cfg',
          sipweigh_backend_lb_trusted: ['127.16.0.10/32'],
          ...extra,
        },
      },
    ],
  });

  /** Runs a playbook (JSON is YAML) on localhost, with a backend host in the inventory for its vars. */
  const playbook = (name: string, plays: unknown[]): Run => {
    const inventory = {
      all: {
        hosts: { localhost: { ansible_connection: 'local', ansible_python_interpreter: '/usr/bin/python3' } },
        children: {
          // Never targeted: the controller's template reads its backends from this group's hostvars.
          test_backends: {
            hosts: {
              'be1.test': {
                sipweigh_backend_id: 'be1',
                sipweigh_set: 1,
                sipweigh_capacity: 200,
                sipweigh_sip: { address: '127.16.0.11', port: 5060 },
                sipweigh_agent_listen: { address: '127.16.0.11', port: 7951 },
              },
            },
          },
        },
      },
    };
    writeFileSync(join(work, 'inventory.json'), JSON.stringify(inventory));
    writeFileSync(join(work, `${name}.yml`), JSON.stringify(plays));
    return run('ansible-playbook', ['-i', join(work, 'inventory.json'), join(work, `${name}.yml`)]);
  };

  const at = (p: string) => join(root, p);
  const text = (p: string) => readFileSync(at(p), 'utf8');
  const node = (...args: string[]): Run => {
    const r = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 60000 });
    return { code: r.status, out: `${r.stdout}${r.stderr}` };
  };

  before(() => {
    mkdirSync(join(work, 'home'), { recursive: true });
    mkdirSync(at('etc/kamailio'), { recursive: true });
    writeFileSync(at('etc/kamailio/kamailio.cfg'), LB_CFG);
    writeFileSync(at('etc/kamailio/kamailio-backend.cfg'), BACKEND_CFG);
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  it('ansible-playbook --syntax-check passes for site.yml and rolling-backends.yml, with either example inventory', () => {
    for (const inventory of ['inventory.example.yml', 'inventory.cluster.example.yml']) {
      for (const pb of ['site.yml', 'rolling-backends.yml']) {
        const r = run('ansible-playbook', ['--syntax-check', '-i', inventory, pb], ANSIBLE_DIR);
        expect(r.code, `${inventory}: ${r.out}`).to.equal(0);
        expect(r.out).to.contain(`playbook: ${pb}`);
      }
    }
  });

  it('ansible-lint passes the role and playbooks with the production profile, no rule skipped', () => {
    const cfg = readFileSync(join(ANSIBLE_DIR, '.ansible-lint'), 'utf8');
    expect(cfg).to.match(/^profile: production$/m);
    expect(cfg).not.to.match(/^\s*(skip_list|warn_list|mock_modules|mock_roles)\s*:/m);
    const r = run('ansible-lint', ['--nocolor'], ANSIBLE_DIR);
    expect(r.code, r.out).to.equal(0);
    expect(r.out).to.match(/Passed with production profile: 0 failure\(s\), 0 warning\(s\) on \d+ files/);
    // The role's files were among those linted.
    const files = Number(/on (\d+) files/.exec(r.out)?.[1]);
    expect(files).to.be.greaterThan(15);
  });

  it('build-release.sh makes a self-contained tarball', () => {
    const r = run('bash', [join(ANSIBLE_DIR, 'build-release.sh'), join(work, 'release')], REPO_ROOT);
    expect(r.code, r.out).to.equal(0);
    tarball = r.out.trim().split('\n').pop() ?? '';
    expect(tarball).to.match(/sipweigh-\d+\.\d+\.\d+\.tar\.gz$/);
    const list = spawnSync('tar', ['tzf', tarball], { encoding: 'utf8' }).stdout;
    for (const f of [
      'package.json',
      'dist/src/cli/main.js',
      'dist/schemas/heartbeat.schema.json',
      'schemas/controller-config.schema.json',
      'kamailio/sipweigh-lb.cfg',
      'opensips/sipweigh-lb.cfg',
      'scripts/systemd/sipweigh-agent.service',
      'node_modules/ajv/package.json',
    ]) {
      expect(list, f).to.match(new RegExp(`^sipweigh-[^/]+/${f.replace(/\./g, '\\.')}$`, 'm'));
    }
    // Production dependencies only.
    expect(list).not.to.match(/\/node_modules\/mocha\//);
  });

  it('the role installs the controller and an agent into a temporary root', () => {
    expect(tarball, 'the release tarball (previous test)').not.to.equal('');
    const r = playbook('site', [controllerPlay(), agentPlay()]);
    expect(r.code, r.out.slice(-4000)).to.equal(0);
    const sum = recap(r.out);
    expect(sum.failed).to.equal(0);
    expect(sum.changed).to.be.greaterThan(20);
  });

  it('places every file with its owner and mode', () => {
    const expected: [string, number][] = [
      ['opt/sipweigh', 0o755],
      ['usr/local/bin/sipweigh', 0o755],
      ['etc/sipweigh', 0o750],
      ['etc/sipweigh/controller.yaml', 0o640],
      ['etc/sipweigh/agent.yaml', 0o640],
      ['etc/sipweigh/master.key', 0o640],
      ['etc/sipweigh/lb1.rpc-password', 0o640],
      ['etc/sipweigh/api.token', 0o640],
      ['etc/sipweigh/agent.key', 0o640],
      ['var/lib/sipweigh', 0o755],
      ['var/lib/sipweigh/dispatcher.list', 0o644],
      ['etc/kamailio/sipweigh-lb.cfg', 0o644],
      ['etc/kamailio/sipweigh-backend.cfg', 0o644],
      ['etc/kamailio/sipweigh-lb-settings.cfg', 0o640],
      ['etc/kamailio/sipweigh-backend-settings.cfg', 0o640],
      ['etc/systemd/system/sipweigh-controller.service', 0o644],
      ['etc/systemd/system/sipweigh-agent.service', 0o644],
      ['etc/systemd/system/sipweigh-controller.service.d/paths.conf', 0o644],
      ['etc/systemd/system/sipweigh-agent.service.d/paths.conf', 0o644],
    ];
    for (const [p, mode] of expected) {
      const st = statSync(at(p));
      expect((st.mode & 0o7777).toString(8), p).to.equal(mode.toString(8));
      expect(st.uid, p).to.equal(process.getuid?.());
    }
    expect(readlinkSync(at('opt/sipweigh/current'))).to.match(/^releases\/[0-9a-f]{12}$/);
    expect(lstatSync(at('opt/sipweigh/current')).isSymbolicLink()).to.equal(true);
    expect(text('var/lib/sipweigh/dispatcher.list')).to.equal('');
  });

  it('writes configs that sipweigh validate accepts, with secrets in files', () => {
    for (const kind of ['controller', 'agent']) {
      const file = at(`etc/sipweigh/${kind}.yaml`);
      // The repository's CLI and the launcher the role installed (its release, its Node).
      const repo = node(join(REPO_ROOT, 'dist/src/cli/main.js'), 'validate', '--kind', kind, file);
      expect(repo.code, repo.out).to.equal(0);
      const installed = spawnSync(at('usr/local/bin/sipweigh'), ['validate', '--kind', kind, file], {
        encoding: 'utf8',
        timeout: 60000,
      });
      expect(installed.status, installed.stderr).to.equal(0);
      expect(installed.stdout).to.contain(': ok,');
    }
    const controller = text('etc/sipweigh/controller.yaml');
    expect(controller).to.contain(`master_key_file: "${at('etc/sipweigh/master.key')}"`);
    expect(controller).to.contain(`password_file: "${at('etc/sipweigh/lb1.rpc-password')}"`);
    expect(controller).to.contain(`token_file: "${at('etc/sipweigh/api.token')}"`);
    // The backend came from the inventory group's host vars.
    expect(controller).to.contain('"sip_uri": "sip:127.16.0.11:5060"');
    // No secret inline in a config.
    for (const secret of [MASTER_KEY, API_TOKEN, LB_RPC_PASSWORD]) expect(controller).not.to.contain(secret);
    expect(text('etc/sipweigh/master.key')).to.equal(`${MASTER_KEY}\n`);
    expect(text('etc/sipweigh/api.token')).to.equal(`${API_TOKEN}\n`);
    expect(text('etc/sipweigh/lb1.rpc-password')).to.equal(`${LB_RPC_PASSWORD}\n`);
    const agent = text('etc/sipweigh/agent.yaml');
    expect(agent).to.contain(`key_file: "${at('etc/sipweigh/agent.key')}"`);
    expect(agent).not.to.contain(MASTER_KEY);
  });

  it("derives the agent's key from the master key (sipweigh keys derive)", () => {
    const derived = node(
      join(REPO_ROOT, 'dist/src/cli/main.js'),
      'keys',
      'derive',
      '--master-file',
      at('etc/sipweigh/master.key'),
      '--backend',
      'be1',
    );
    expect(derived.code, derived.out).to.equal(0);
    expect(text('etc/sipweigh/agent.key')).to.equal(derived.out);
    expect(derived.out).to.match(/^[0-9a-f]{64}\n$/);
  });

  it('places the Kamailio snippets unchanged and includes them once; kamailio -c accepts the result', () => {
    for (const which of ['lb', 'backend']) {
      expect(text(`etc/kamailio/sipweigh-${which}.cfg`), which).to.equal(
        readFileSync(join(REPO_ROOT, `kamailio/sipweigh-${which}.cfg`), 'utf8'),
      );
    }
    const cases = [
      { cfg: 'etc/kamailio/kamailio.cfg', which: 'lb', route: 'SIPWEIGH_LB', before: LB_CFG },
      {
        cfg: 'etc/kamailio/kamailio-backend.cfg',
        which: 'backend',
        route: 'SIPWEIGH_BACKEND',
        before: BACKEND_CFG,
      },
    ];
    for (const { cfg, which, route, before } of cases) {
      const t = text(cfg);
      const count = (s: string) => t.split(s).length - 1;
      expect(count('# BEGIN sipweigh (managed by Ansible)'), cfg).to.equal(1);
      expect(count('# END sipweigh (managed by Ansible)'), cfg).to.equal(1);
      expect(count(`include_file "${at(`etc/kamailio/sipweigh-${which}.cfg`)}"`), cfg).to.equal(1);
      expect(count(`include_file "${at(`etc/kamailio/sipweigh-${which}-settings.cfg`)}"`), cfg).to.equal(1);
      expect(count(`route(${route});`), cfg).to.equal(1);
      // The include sits before request_route, the call is its first statement.
      expect(t).to.match(
        new RegExp(`# END sipweigh \\(managed by Ansible\\)\\nrequest_route \\{\\n\\troute\\(${route}\\);`),
      );
      // Nothing else of the operator's file changed.
      const stripped = t
        .replace(/# BEGIN sipweigh[\s\S]*?# END sipweigh \(managed by Ansible\)\n/, '')
        .replace(/\troute\(SIPWEIGH_\w+\);.*\n/, '');
      expect(stripped, cfg).to.equal(before);
      const check = spawnSync('kamailio', ['-c', '-f', at(cfg)], { encoding: 'utf8', timeout: 60000 });
      expect(check.status, `${cfg}: ${check.stderr}`).to.equal(0);
    }
    const lbSettings = text('etc/kamailio/sipweigh-lb-settings.cfg');
    expect(lbSettings).to.contain(`#!define SIPWEIGH_DS_LIST "${at('var/lib/sipweigh/dispatcher.list')}"`);
    expect(lbSettings).to.contain(`#!define SIPWEIGH_RPC_PASSWORD "${LB_RPC_PASSWORD}"`);
    expect(lbSettings).to.contain('listen=tcp:127.16.0.10:5071 name "sipweigh_rpc"');
    expect(text('etc/kamailio/sipweigh-backend-settings.cfg')).to.contain(
      '#!define SIPWEIGH_LB_TRUSTED "127.16.0.10/32"',
    );
  });

  it('installs the shipped units unchanged, with a drop-in for the host paths', () => {
    for (const role of ['controller', 'agent']) {
      const unit = `sipweigh-${role}.service`;
      expect(text(`etc/systemd/system/${unit}`)).to.equal(
        readFileSync(join(REPO_ROOT, 'scripts/systemd', unit), 'utf8'),
      );
      const dropIn = text(`etc/systemd/system/${unit}.d/paths.conf`);
      expect(dropIn).to.contain(
        `ExecStart=\nExecStart=/usr/local/bin/sipweigh ${role} --config /etc/sipweigh/${role}.yaml\n`,
      );
    }
    expect(text('etc/systemd/system/sipweigh-controller.service.d/paths.conf')).to.contain(
      'ReadWritePaths=/var/lib/sipweigh',
    );
  });

  it('a second run changes nothing', () => {
    const r = playbook('site', [controllerPlay(), agentPlay()]);
    expect(r.code, r.out.slice(-4000)).to.equal(0);
    const sum = recap(r.out);
    expect(sum.failed).to.equal(0);
    expect(sum.ok).to.be.greaterThan(40);
    const changedTasks = [...r.out.matchAll(/^TASK \[(.*)\][\s\S]*?^changed:/gm)].map((m) => m[1]);
    expect(sum.changed, `changed: ${changedTasks.join('; ')}`).to.equal(0);
  });

  it('systemd-analyze verify accepts the installed units with their drop-ins', () => {
    mkdirSync(at('usr/lib/systemd'), { recursive: true });
    cpSync('/usr/lib/systemd/system', at('usr/lib/systemd/system'), {
      recursive: true,
      verbatimSymlinks: true,
    });
    mkdirSync(at('bin'), { recursive: true });
    cpSync('/bin/kill', at('bin/kill'));
    const r = spawnSync(
      'systemd-analyze',
      ['verify', `--root=${root}`, 'sipweigh-controller.service', 'sipweigh-agent.service'],
      { encoding: 'utf8', timeout: 60000 },
    );
    expect(r.error, 'systemd-analyze (package systemd)').to.equal(undefined);
    expect(r.stderr + r.stdout).to.equal('');
    expect(r.status).to.equal(0);
  });

  it('refuses a config sipweigh validate rejects, and keeps the installed one', () => {
    const before = text('etc/sipweigh/agent.yaml');
    const r = playbook('bad-agent', [agentPlay({ sipweigh_capacity: -5 })]);
    expect(r.code).not.to.equal(0);
    expect(r.out).to.contain('failed to validate');
    expect(r.out).to.match(/capacity/);
    expect(text('etc/sipweigh/agent.yaml')).to.equal(before);
  });

  it('stops with a clear message when the host Node is too old', () => {
    const r = playbook('old-node', [agentPlay({ sipweigh_node_min_version: '99.0.0' })]);
    expect(r.code).not.to.equal(0);
    expect(r.out).to.contain('sipweigh needs Node >= 99.0.0');
    expect(recap(r.out).changed).to.equal(0);
  });

  const derived = (master: string) =>
    `${deriveBackendKey(Buffer.from(master, 'hex'), 'be1').toString('hex')}\n`;
  /** True when the play ran the role's handler `name` (the role is named by its path here). */
  const handlerRan = (out: string, name: string) =>
    out.split('\n').some((l) => l.startsWith('RUNNING HANDLER [') && l.includes(`sipweigh : ${name}]`));
  const validates = (kind: string) => {
    const r = spawnSync(
      at('usr/local/bin/sipweigh'),
      ['validate', '--kind', kind, at(`etc/sipweigh/${kind}.yaml`)],
      {
        encoding: 'utf8',
        timeout: 60000,
      },
    );
    expect(r.status, `${kind}: ${r.stderr}`).to.equal(0);
  };

  it('rotates the master key in the documented steps: both keys on the controller and the agent, then the new one alone; reloads, no restart', () => {
    // 1. The controller: new master current, old previous.
    const start = playbook('rotate-controller', [
      controllerPlay({ sipweigh_master_key: NEW_MASTER_KEY, sipweigh_previous_master_key: MASTER_KEY }),
    ]);
    expect(start.code, start.out.slice(-4000)).to.equal(0);
    expect(text('etc/sipweigh/master.key')).to.equal(`${NEW_MASTER_KEY}\n`);
    expect(text('etc/sipweigh/previous-master.key')).to.equal(`${MASTER_KEY}\n`);
    expect((statSync(at('etc/sipweigh/previous-master.key')).mode & 0o777).toString(8)).to.equal('640');
    expect(text('etc/sipweigh/controller.yaml')).to.contain(
      `previous_master_key_file: "${at('etc/sipweigh/previous-master.key')}"`,
    );
    expect(handlerRan(start.out, 'Reload sipweigh controller'), 'the controller is reloaded').to.equal(true);
    expect(handlerRan(start.out, 'Restart sipweigh'), 'and not restarted').to.equal(false);
    validates('controller');

    // 2. The agent: its key from the new master, the previous one from the old master, by reload.
    const agent = playbook('rotate-agent', [agentPlay()]);
    expect(agent.code, agent.out.slice(-4000)).to.equal(0);
    expect(text('etc/sipweigh/agent.key')).to.equal(derived(NEW_MASTER_KEY));
    expect(text('etc/sipweigh/agent.previous-key')).to.equal(derived(MASTER_KEY));
    expect(text('etc/sipweigh/agent.yaml')).to.contain(
      `previous_key_file: "${at('etc/sipweigh/agent.previous-key')}"`,
    );
    expect(agent.out).to.contain('sipweigh agent config applied by SIGHUP (keys only');
    expect(handlerRan(agent.out, 'Restart sipweigh'), 'the agent is not restarted').to.equal(false);
    validates('agent');
    for (const secret of [MASTER_KEY, NEW_MASTER_KEY]) {
      expect(text('etc/sipweigh/agent.yaml')).not.to.contain(secret);
      expect(text('etc/sipweigh/controller.yaml')).not.to.contain(secret);
    }

    // 3 and 4. The old master leaves the controller, then the agent's previous key goes.
    const end = playbook('rotate-end', [
      controllerPlay({ sipweigh_master_key: NEW_MASTER_KEY }),
      agentPlay(),
    ]);
    expect(end.code, end.out.slice(-4000)).to.equal(0);
    expect(existsSync(at('etc/sipweigh/previous-master.key'))).to.equal(false);
    expect(existsSync(at('etc/sipweigh/agent.previous-key'))).to.equal(false);
    expect(text('etc/sipweigh/controller.yaml')).not.to.contain('previous_master_key_file');
    expect(text('etc/sipweigh/agent.yaml')).not.to.contain('previous_key_file');
    expect(text('etc/sipweigh/agent.key')).to.equal(derived(NEW_MASTER_KEY));
    expect(end.out).to.contain('sipweigh agent config applied by SIGHUP (keys only');
    expect(handlerRan(end.out, 'Restart sipweigh')).to.equal(false);
    validates('controller');
    validates('agent');

    // Anything else in the agent's config still restarts it.
    const other = playbook('agent-capacity', [agentPlay({ sipweigh_capacity: 300 })]);
    expect(other.code, other.out.slice(-4000)).to.equal(0);
    expect(other.out).to.contain('sipweigh agent config applied by a restart');
  });

  describe('with a running controller (its API on 127.16.0.10:9061)', function () {
    const group = new ProcessGroup(join(work, 'processes'));
    let controller: ManagedProcess | undefined;
    const api = 'http://127.16.0.10:9061';
    const apiPlace = { sipweigh_api_listen: '127.16.0.10', sipweigh_api_port: 9061 };
    /** The role's controller tasks with services managed: its handlers reload the running controller. */
    const managedControllerPlay = (extra: Record<string, unknown>) => ({
      name: 'Controller config of a running controller',
      hosts: 'localhost',
      gather_facts: false,
      become: false,
      tasks: [
        {
          name: 'The controller tasks, services managed',
          'ansible.builtin.include_role': { name: ROLE_DIR, tasks_from: 'controller' },
          vars: {
            ...controllerPlay({ ...apiPlace, sipweigh_manage_services: true, ...extra }).roles[0]!.vars,
          },
        },
      ],
    });
    /** POST /api/v1/reload's status; a connection the server closed while idle (keep-alive) is retried. */
    const reloadWith = async (token: string): Promise<number> => {
      for (let attempt = 0; ; attempt++) {
        try {
          const res = await fetch(`${api}/api/v1/reload`, {
            method: 'POST',
            headers: { authorization: `Bearer ${token}` },
            signal: AbortSignal.timeout(15000),
          });
          await res.arrayBuffer();
          return res.status;
        } catch (e) {
          if (attempt >= 2) throw e;
        }
      }
    };

    before(async function () {
      if (tarball === '') this.skip();
      const r = playbook('api-place', [controllerPlay(apiPlace)]);
      expect(r.code, r.out.slice(-4000)).to.equal(0);
      controller = group.spawn('controller', at('usr/local/bin/sipweigh'), [
        'controller',
        '--config',
        at('etc/sipweigh/controller.yaml'),
      ]);
      await eventually(
        async () => {
          if (!controller!.isRunning()) throw new Error(`controller exited:\n${controller!.tail(20)}`);
          return (
            (await fetch(`${api}/healthz`, { signal: AbortSignal.timeout(2000) }).catch(() => null)) !== null
          );
        },
        'the controller API to answer',
        60000,
      );
    });
    after(async function () {
      await group.stopAll();
    });

    it('rotating the API token reloads it with the token it has; the new one is in force after', async function () {
      const r = playbook('api-token', [managedControllerPlay({ sipweigh_api_token: NEW_API_TOKEN })]);
      expect(r.code, r.out.slice(-4000)).to.equal(0);
      expect(handlerRan(r.out, 'Reload sipweigh controller')).to.equal(true);
      expect(recap(r.out).failed).to.equal(0);
      expect(await reloadWith(NEW_API_TOKEN)).to.equal(200);
      expect(await reloadWith(API_TOKEN)).to.equal(401);
      expect(existsSync(at('etc/sipweigh/api.token.in-force')), 'the replaced token is forgotten').to.equal(
        false,
      );
      expect(controller!.isRunning()).to.equal(true);
    });

    it('a master key rotation step is a live reload of the running controller, not a restart', async function () {
      const pid = controller!.pid;
      const r = playbook('api-master', [
        managedControllerPlay({
          sipweigh_api_token: NEW_API_TOKEN,
          sipweigh_master_key: MASTER_KEY,
          sipweigh_previous_master_key: NEW_MASTER_KEY,
        }),
      ]);
      expect(r.code, r.out.slice(-4000)).to.equal(0);
      expect(handlerRan(r.out, 'Reload sipweigh controller')).to.equal(true);
      expect(handlerRan(r.out, 'Restart sipweigh')).to.equal(false);
      expect(controller!.pid).to.equal(pid);
      expect(controller!.isRunning()).to.equal(true);
      const log = readFileSync(controller!.logFile, 'utf8');
      expect(log).to.match(/"heartbeat_keys":true/);
      for (const secret of [MASTER_KEY, NEW_MASTER_KEY, API_TOKEN, NEW_API_TOKEN])
        expect(log).not.to.contain(secret);
    });
  });

  describe('a controller on each LB host (sipweigh_lb_peers), into a root of its own', function () {
    const clRoot = join(work, 'clroot');
    const clAt = (p: string) => join(clRoot, p);
    const clText = (p: string) => readFileSync(clAt(p), 'utf8');
    const PEER_RPC_PASSWORD = 'peer s3cret';
    const peer = {
      name: 'lb2',
      rpc_url: 'http://127.16.0.20:5071/RPC',
      rpc_username: 'sipweigh',
      rpc_password: PEER_RPC_PASSWORD,
      rpc_timeout_ms: 1500,
    };
    /** lb1's controller: its own LB in sipweigh_lb_nodes, lb2 as a peer, admission settings of its own. */
    const clusterPlay = (extra: Record<string, unknown> = {}) => {
      const base = controllerPlay().roles[0]!.vars;
      return {
        name: 'Controller beside lb1, lb2 as a peer',
        hosts: 'localhost',
        gather_facts: false,
        become: false,
        roles: [
          {
            role: ROLE_DIR,
            vars: {
              ...base,
              sipweigh_root: clRoot,
              sipweigh_lb_peers: [peer],
              sipweigh_controller_extra: {
                admission: { enabled: true, headroom: 0.9, split: { by: 'demand', floor: 0.1 } },
              },
              ...extra,
            },
          },
        ],
      };
    };

    before(function () {
      if (tarball === '') this.skip();
      mkdirSync(clAt('etc/kamailio'), { recursive: true });
      writeFileSync(clAt('etc/kamailio/kamailio.cfg'), LB_CFG);
    });

    it('the role installs the controller with its LB peer', () => {
      const r = playbook('site-cluster', [clusterPlay()]);
      expect(r.code, r.out.slice(-4000)).to.equal(0);
      expect(recap(r.out).failed).to.equal(0);
    });

    it('renders the peer into admission.split.peers, merged into the admission of sipweigh_controller_extra', () => {
      const file = clAt('etc/sipweigh/controller.yaml');
      const t = clText('etc/sipweigh/controller.yaml');
      expect(t.match(/^admission:/gm), 'one admission key').to.have.length(1);
      const c = parse(t) as {
        lb_nodes: { name: string }[];
        admission: Record<string, unknown>;
      };
      expect(c.lb_nodes.map((n) => n.name)).to.deep.equal(['lb1']);
      expect(c.admission).to.deep.equal({
        enabled: true,
        headroom: 0.9,
        split: {
          by: 'demand',
          floor: 0.1,
          peers: [
            {
              name: 'lb2',
              rpc: {
                url: 'http://127.16.0.20:5071/RPC',
                username: 'sipweigh',
                password_file: clAt('etc/sipweigh/lb2.rpc-password'),
                timeout_ms: 1500,
              },
            },
          ],
        },
      });
      for (const secret of [MASTER_KEY, API_TOKEN, LB_RPC_PASSWORD, PEER_RPC_PASSWORD])
        expect(t).not.to.contain(secret);
      expect(clText('etc/sipweigh/lb2.rpc-password')).to.equal(`${PEER_RPC_PASSWORD}\n`);
      expect((statSync(clAt('etc/sipweigh/lb2.rpc-password')).mode & 0o7777).toString(8)).to.equal('640');
      expect(clText('etc/sipweigh/lb1.rpc-password')).to.equal(`${LB_RPC_PASSWORD}\n`);
      const v = node(join(REPO_ROOT, 'dist/src/cli/main.js'), 'validate', '--kind', 'controller', file);
      expect(v.code, v.out).to.equal(0);
    });

    it('a second run changes nothing', () => {
      const r = playbook('site-cluster-again', [clusterPlay()]);
      expect(r.code, r.out.slice(-4000)).to.equal(0);
      const changedTasks = [...r.out.matchAll(/^TASK \[(.*)\][\s\S]*?^changed:/gm)].map((m) => m[1]);
      expect(recap(r.out).changed, `changed: ${changedTasks.join('; ')}`).to.equal(0);
    });

    it('a change of the peers restarts the controller instead of reloading it (a reload refuses it)', () => {
      const r = playbook('cluster-peer-moved', [
        clusterPlay({ sipweigh_lb_peers: [{ ...peer, rpc_url: 'http://127.16.0.21:5071/RPC' }] }),
      ]);
      expect(r.code, r.out.slice(-4000)).to.equal(0);
      expect(r.out).to.contain('admission.split.peers changed: the controller is restarted');
      expect(handlerRan(r.out, 'Restart sipweigh')).to.equal(true);
      expect(clText('etc/sipweigh/controller.yaml')).to.contain('http://127.16.0.21:5071/RPC');
      // Anything else than the peers: a reload, as before.
      const other = playbook('cluster-headroom', [
        clusterPlay({
          sipweigh_lb_peers: [{ ...peer, rpc_url: 'http://127.16.0.21:5071/RPC' }],
          sipweigh_controller_extra: { admission: { enabled: true, headroom: 0.85 } },
        }),
      ]);
      expect(other.code, other.out.slice(-4000)).to.equal(0);
      expect(other.out).not.to.contain('admission.split.peers changed');
      expect(handlerRan(other.out, 'Reload sipweigh controller')).to.equal(true);
      expect(handlerRan(other.out, 'Restart sipweigh')).to.equal(false);
    });

    it('refuses a peer named like one of its LB nodes, or one without rpc_url, naming sipweigh_lb_peers', () => {
      const before = clText('etc/sipweigh/controller.yaml');
      const same = playbook('cluster-peer-is-lb', [
        clusterPlay({ sipweigh_lb_peers: [{ name: 'lb1', rpc_url: 'http://127.16.0.20:5071/RPC' }] }),
      ]);
      expect(same.code).not.to.equal(0);
      expect(same.out).to.contain(
        'sipweigh_lb_peers: the peer lb1 is named like one of sipweigh_lb_nodes (lb1) on this host',
      );
      expect(recap(same.out).changed).to.equal(0);
      const noUrl = playbook('cluster-peer-no-url', [clusterPlay({ sipweigh_lb_peers: [{ name: 'lb2' }] })]);
      expect(noUrl.code).not.to.equal(0);
      expect(noUrl.out).to.contain('sipweigh_lb_peers: the peer lb2 needs a name and an rpc_url');
      expect(recap(noUrl.out).changed).to.equal(0);
      const twice = playbook('cluster-peers-in-extra', [
        clusterPlay({
          sipweigh_controller_extra: {
            admission: { split: { peers: [{ name: 'lb3', rpc: { url: 'http://127.16.0.30:5071/RPC' } }] } },
          },
        }),
      ]);
      expect(twice.code).not.to.equal(0);
      expect(twice.out).to.contain('give the other LB nodes as sipweigh_lb_peers');
      expect(clText('etc/sipweigh/controller.yaml')).to.equal(before);
    });
  });

  describe('an OpenSIPS LB (sipweigh_lb_kind: opensips), into a root of its own', function () {
    const osRoot = join(work, 'osroot');
    const osAt = (p: string) => join(osRoot, p);
    const osText = (p: string) => readFileSync(osAt(p), 'utf8');
    const group = new ProcessGroup(join(work, 'os-processes'));
    const mi = new OpenSipsMiClient({ url: 'http://127.16.1.10:8888/mi' });
    // Host config as an operator might have it: sockets and proto modules, plus two of the modules
    // the snippet needs (the role must not load those again: OpenSIPS refuses a double load).
    const OSIPS_CFG = `# A minimal OpenSIPS LB host config.
log_level=2
stderror_enabled=yes
syslog_enabled=no
udp_workers=2
socket=udp:127.16.1.10:5060
socket=tcp:127.16.1.10:5060
mpath="${opensipsModulesDir()}/"
loadmodule "proto_udp.so"
loadmodule "proto_tcp.so"
loadmodule "sl.so"
loadmodule "tm.so"
modparam("tm", "fr_timeout", 30)

route {
	sl_send_reply(404, "Not here");
}
`;
    const osPlay = () => {
      const base = controllerPlay().roles[0]!.vars;
      return {
        name: 'Controller beside an OpenSIPS LB',
        hosts: 'localhost',
        gather_facts: false,
        become: false,
        roles: [
          {
            role: ROLE_DIR,
            vars: {
              ...base,
              sipweigh_root: osRoot,
              sipweigh_heartbeat_listen: { address: '127.16.1.10', port: 7950 },
              sipweigh_lb_kind: 'opensips',
              sipweigh_opensips_bin: opensipsBinary(),
              sipweigh_opensips_mi_listen: { address: '127.16.1.10', port: 8888 },
              sipweigh_lb_nodes: [
                {
                  name: 'lb1',
                  kind: 'opensips',
                  rpc_url: 'http://127.16.1.10:8888/mi',
                  dispatcher_list: '/var/lib/sipweigh/opensips/db/dispatcher',
                  opensips_destinations: '/var/lib/sipweigh/opensips/sipweigh-destinations.cfg',
                },
              ],
            },
          },
        ],
      };
    };

    before(function () {
      if (tarball === '') this.skip();
      if (!opensipsAvailable()) {
        console.log(`      (OpenSIPS not installed at ${OPENSIPS_PREFIX}: run scripts/third-party.sh)`);
        this.skip();
      }
      mkdirSync(osAt('etc/opensips'), { recursive: true });
      writeFileSync(osAt('etc/opensips/opensips.cfg'), OSIPS_CFG);
    });
    after(async () => {
      mi.close();
      await group.stopAll();
    });

    it('the role installs the controller and places the OpenSIPS snippet', () => {
      const r = playbook('site-opensips', [osPlay()]);
      expect(r.code, r.out.slice(-4000)).to.equal(0);
      expect(recap(r.out).failed).to.equal(0);
      // The role's own check ran on the result.
      expect(r.out).to.match(/TASK \[[^\]]*Check the resulting OpenSIPS config \(opensips -C\)\][^\n]*\nok:/);
      // No Kamailio snippet on an OpenSIPS LB.
      expect(existsSync(osAt('etc/kamailio/sipweigh-lb.cfg'))).to.equal(false);
    });

    it('places the snippet unchanged, includes it once before the main route; opensips -C accepts the result', () => {
      expect(osText('etc/opensips/sipweigh-lb.cfg')).to.equal(
        readFileSync(join(REPO_ROOT, 'opensips/sipweigh-lb.cfg'), 'utf8'),
      );
      const cfg = 'etc/opensips/opensips.cfg';
      const t = osText(cfg);
      const count = (s: string) => t.split(s).length - 1;
      expect(count('# BEGIN sipweigh (managed by Ansible)')).to.equal(1);
      expect(count('# END sipweigh (managed by Ansible)')).to.equal(1);
      for (const inc of [
        'etc/opensips/sipweigh-lb-settings.cfg',
        'etc/opensips/sipweigh-lb.cfg',
        'var/lib/sipweigh/opensips/sipweigh-destinations.cfg',
      ]) {
        expect(count(`include_file "${osAt(inc)}"`), inc).to.equal(1);
      }
      expect(count('route(SIPWEIGH_LB);')).to.equal(1);
      expect(t).to.match(/# END sipweigh \(managed by Ansible\)\nroute \{\n\troute\(SIPWEIGH_LB\);/);
      const stripped = t
        .replace(/# BEGIN sipweigh[\s\S]*?# END sipweigh \(managed by Ansible\)\n/, '')
        .replace(/\troute\(SIPWEIGH_LB\);.*\n/, '');
      expect(stripped).to.equal(OSIPS_CFG);
      const check = openSipsCheck(osAt(cfg));
      expect(check.ok, check.output).to.equal(true);
    });

    it("loads only the snippet's modules opensips.cfg does not, and points them at the role's paths", () => {
      const settings = osText('etc/opensips/sipweigh-lb-settings.cfg');
      const loaded = [...settings.matchAll(/^loadmodule "(\w+)\.so"$/gm)].map((m) => m[1]);
      expect(loaded).to.include.members(['dispatcher', 'db_text', 'cachedb_local', 'httpd', 'mi_http']);
      for (const own of ['sl', 'tm', 'proto_udp', 'proto_tcp']) expect(loaded, own).not.to.include(own);
      expect(settings).to.contain(
        `modparam("dispatcher", "db_url", "text://${osAt('var/lib/sipweigh/opensips/db')}")`,
      );
      expect(settings).to.contain('modparam("httpd", "ip", "127.16.1.10")');
      expect(settings).to.contain('modparam("httpd", "port", 8888)');
    });

    it('creates the db_text table and the destinations route as the controller writes them for no destination', () => {
      expect(osText('var/lib/sipweigh/opensips/db/version')).to.equal(formatVersionTable());
      expect(osText('var/lib/sipweigh/opensips/db/dispatcher')).to.equal(formatDispatcherTable([]));
      expect(osText('var/lib/sipweigh/opensips/sipweigh-destinations.cfg')).to.equal(
        formatDestinationsRoute([]),
      );
      for (const p of ['var/lib/sipweigh/opensips', 'var/lib/sipweigh/opensips/db']) {
        expect((statSync(osAt(p)).mode & 0o7777).toString(8), p).to.equal('755');
      }
      // The controller's config names the same files, kind opensips, and the release's validate took it.
      const controller = osText('etc/sipweigh/controller.yaml');
      expect(controller).to.contain('kind: "opensips"');
      expect(controller).to.contain(`path: "${osAt('var/lib/sipweigh/opensips/db/dispatcher')}"`);
      expect(controller).to.contain(
        `destinations_path: "${osAt('var/lib/sipweigh/opensips/sipweigh-destinations.cfg')}"`,
      );
      const v = node(
        join(REPO_ROOT, 'dist/src/cli/main.js'),
        'validate',
        '--kind',
        'controller',
        osAt('etc/sipweigh/controller.yaml'),
      );
      expect(v.code, v.out).to.equal(0);
    });

    it('OpenSIPS starts on the result; MI answers where the controller looks, and reads the placed table', async () => {
      const cfg = osAt('etc/opensips/opensips.cfg');
      const p = group.spawn('opensips-lb', opensipsBinary(), [
        '-F',
        '-f',
        cfg,
        '-P',
        join(work, 'os-processes', 'opensips.pid'),
        '-m',
        '64',
        '-M',
        '8',
      ]);
      await eventually(
        async () => {
          if (!p.isRunning()) throw new Error(`opensips exited:\n${p.tail(30)}`);
          return isBound({ transport: 'tcp', address: '127.16.1.10', port: 8888 });
        },
        'OpenSIPS MI over HTTP on 127.16.1.10:8888',
        30000,
      );
      const stats = (await mi.call('get_statistics', { statistics: ['sipweigh_send_dynamic'] })) as Record<
        string,
        unknown
      >;
      expect(stats, 'the snippet is loaded').to.have.property('script:sipweigh_send_dynamic');
      // What the controller's push does, by hand: one destination into the table, then the reloads.
      writeFileSync(
        osAt('var/lib/sipweigh/opensips/db/dispatcher'),
        formatDispatcherTable([
          { setId: 1, uri: 'sip:127.16.1.11:5060', state: 'active', rweight: 100, duid: 'be1' },
        ]),
      );
      await mi.call('dbt_reload');
      await mi.call('ds_reload');
      const list = JSON.stringify(await mi.call('ds_list'));
      expect(list).to.contain('sip:127.16.1.11:5060');
      await p.stop();
    });

    it('a second run changes nothing', () => {
      // The table the previous test wrote stays: the role never overwrites the controller's files.
      const table = osText('var/lib/sipweigh/opensips/db/dispatcher');
      const r = playbook('site-opensips-again', [osPlay()]);
      expect(r.code, r.out.slice(-4000)).to.equal(0);
      const changedTasks = [...r.out.matchAll(/^TASK \[(.*)\][\s\S]*?^changed:/gm)].map((m) => m[1]);
      expect(recap(r.out).changed, `changed: ${changedTasks.join('; ')}`).to.equal(0);
      expect(osText('var/lib/sipweigh/opensips/db/dispatcher')).to.equal(table);
      expect(existsSync('/etc/opensips/sipweigh-lb.cfg'), 'nothing outside the root').to.equal(false);
    });
  });

  it('touched nothing outside the temporary root', () => {
    expect(outside.map((p) => existsSync(p))).to.deep.equal(outsideBefore);
  });
});
