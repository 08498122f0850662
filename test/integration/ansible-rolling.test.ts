/**
 * rolling-backends.yml run for real (--connection=local) against a running lab on 127.16.x.x: the
 * controller with its HTTP API, two backends with agents. The change is a tasks file that records,
 * while it runs, what the controller's API says of every backend; the role itself is not applied
 * (rolling_apply_role=false: its files are tested in ansible-deploy.test.ts). It proves the order:
 * one backend at a time, drained during its change, the other one up and in rotation; dialogs
 * counted over the backend's own JSON-RPC; both back up and undrained at the end.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { labApiUrl } from '../../src/lab/lab-configs.js';
import { startLab, type RunningLab } from '../../src/lab/lab.js';
import { eventually } from '../support/harness.js';
import { ANSIBLE_DIR, ansibleEnv } from '../support/ansible.js';

const RUN_TIMEOUT_MS = 300000;

interface BackendJson {
  readonly id: string;
  readonly state: string;
  readonly drained: boolean;
}

async function getJson(url: string): Promise<unknown> {
  const res = await fetch(url, { signal: AbortSignal.timeout(10000) });
  return res.json();
}

describe('rolling-backends.yml against a running lab (127.16.x.x)', function () {
  this.timeout(RUN_TIMEOUT_MS + 120000);
  const work = mkdtempSync(join(tmpdir(), 'sipweigh-rolling-'));
  let lab: RunningLab | undefined;
  let api = '';
  const backends = async () =>
    ((await getJson(`${api}/api/v1/backends`)) as { backends: BackendJson[] }).backends;

  before(async function () {
    lab = await startLab({ backends: 2, net: 16, controller: true, dir: join(work, 'lab') });
    api = labApiUrl(lab.state.plan);
    await eventually(
      async () => {
        const b = await backends().catch(() => []);
        return b.length === 2 && b.every((x) => x.state === 'up' && !x.drained);
      },
      'both backends up',
      60000,
    );
  });

  after(async function () {
    await lab?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('drains, changes and undrains one backend at a time, and leaves both up', async function () {
    const plan = lab!.state.plan;
    const token = readFileSync(lab!.state.configs.apiToken, 'utf8').trim();
    const { hostname, port } = new URL(api);
    const local = { ansible_connection: 'local', ansible_python_interpreter: '/usr/bin/python3' };
    const inventory = {
      all: {
        children: {
          sipweigh_controllers: {
            hosts: {
              ctl: {
                ...local,
                sipweigh_api_listen: hostname,
                sipweigh_api_port: Number(port),
                sipweigh_api_token: token,
              },
            },
          },
          sipweigh_backends: {
            hosts: Object.fromEntries(
              plan.backends.map((be) => [
                be.id,
                {
                  ...local,
                  sipweigh_backend_id: be.id,
                  sipweigh_kamailio_rpc_url: `http://${be.sip.address}:${be.rpcPort}/RPC`,
                },
              ]),
            ),
          },
        },
      },
    };
    const log = join(work, 'changes.log');
    // The operator's change: record every backend's state as the controller's API gives it now.
    const change = [
      {
        name: 'Read the backends as the controller sees them during the change',
        'ansible.builtin.uri': { url: `${api}/api/v1/backends`, return_content: true },
        register: 'seen',
      },
      {
        name: 'Record them',
        'ansible.builtin.lineinfile': {
          path: log,
          create: true,
          mode: '0644',
          line: "{{ inventory_hostname }}: {{ seen.json.backends | map(attribute='id') | zip(seen.json.backends | map(attribute='state'), seen.json.backends | map(attribute='drained')) | map('join', '/') | join(' ') }}",
        },
      },
    ];
    writeFileSync(join(work, 'inventory.json'), JSON.stringify(inventory));
    writeFileSync(join(work, 'change.yml'), JSON.stringify(change));
    const env = ansibleEnv(work);
    const extra = {
      ansible_become: false,
      rolling_apply_role: false,
      rolling_change_tasks: join(work, 'change.yml'),
      rolling_drain_poll_s: 1,
      rolling_up_timeout_s: 60,
    };
    const out = await new Promise<{ code: number; out: string }>((resolve) => {
      execFile(
        'ansible-playbook',
        ['-i', join(work, 'inventory.json'), 'rolling-backends.yml', '-e', JSON.stringify(extra)],
        { cwd: ANSIBLE_DIR, env, timeout: RUN_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 },
        (err, stdout, stderr) => {
          const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
          resolve({ code, out: `${stdout}${stderr}` });
        },
      );
    });
    expect(out.code, out.out.slice(-4000)).to.equal(0);
    // The dialog count was read from each backend's Kamailio (not the fixed pause).
    for (const be of plan.backends) {
      expect(out.out).to.match(
        new RegExp(`TASK \\[Wait until the backend's dialogs have ended\\] \\**\\nok: \\[${be.id}\\]`),
      );
    }
    expect(out.out).not.to.match(/TASK \[Wait a fixed time[^\n]*\n(ok|changed):/);
    // One at a time, in inventory order, each drained during its own change and only then.
    expect(readFileSync(log, 'utf8')).to.equal(
      'be1: be1/draining/True be2/up/False\n' + 'be2: be1/up/False be2/draining/True\n',
    );
    const end = await backends();
    expect(end.map((b) => `${b.id}/${b.state}/${b.drained}`)).to.deep.equal(['be1/up/false', 'be2/up/false']);
  });
});
