import { expect } from 'chai';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, jsonPointerToPath, pathToJsonPointer } from '../../src/config/errors.js';
import { loadConfig, loadControllerConfig } from '../../src/config/load.js';
import {
  DEFAULT_HEALTH_PARAMS,
  HEARTBEAT_DEFAULTS,
  endpointOptionsFromConfig,
  timingOf,
} from '../../src/probe/options.js';
import { DEFAULT_TIMING } from '../../src/probe/probe-core.js';
import { DEFAULT_SCORING_PARAMS } from '../../src/config/scoring-params.js';

const dir = mkdtempSync(join(tmpdir(), 'sipweigh-config-'));
let n = 0;
function file(text: string, ext = 'yaml'): string {
  const f = join(dir, `c${n++}.${ext}`);
  writeFileSync(f, text);
  return f;
}

function refusal(f: string): ConfigError {
  try {
    loadConfig(f);
  } catch (e) {
    expect(e).to.be.instanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error(`${f} was accepted`);
}

const KEY = 'ab'.repeat(32);
const agent = (extra = '') => `kind: agent
backend_id: be1
set: 1
listen: { address: 127.0.0.11, port: 7951 }
controller: { address: 127.0.0.10, port: 7950 }
key: ${KEY}
capacity: 100
sip: { address: 127.0.0.11, port: 5060 }
${extra}`;

describe('config loading', () => {
  it('accepts the shipped examples and applies schema defaults', () => {
    const c = loadConfig('examples/controller.yaml');
    expect(c.kind).to.equal('controller');
    if (c.kind !== 'controller') return;
    expect(c.heartbeat.master_keys).to.have.length(1);
    expect(c.heartbeat.master_keys[0]).to.have.length(32);
    expect(c.sets[0]?.backends.map((b) => b.id)).to.deep.equal(['be1', 'be2']);
    const a = loadConfig('examples/agent.yaml');
    expect(a.kind).to.equal('agent');
    if (a.kind !== 'agent') return;
    expect(a.collect_interval_ms).to.equal(250);
    expect(a.key).to.have.length(32);
  });

  it("reads an agent's previous key (inline or from a file) for a key rotation, and checks it", () => {
    const previous = 'cd'.repeat(32);
    const inline = loadConfig(file(agent(`previous_key: ${previous}\n`)));
    expect(inline.kind === 'agent' && inline.previous_key?.toString('hex')).to.equal(previous);
    const keyFile = file(`${previous}\n`, 'key');
    const fromFile = loadConfig(file(agent(`previous_key_file: ${keyFile}\n`)));
    expect(fromFile.kind === 'agent' && fromFile.previous_key?.toString('hex')).to.equal(previous);
    const none = loadConfig(file(agent()));
    expect(none.kind === 'agent' && none.previous_key).to.equal(undefined);
    const bad = refusal(file(agent(`previous_key_file: ${file('abc\n', 'key')}\n`)));
    expect(bad.issues.map((i) => i.path)).to.deep.equal(['previous_key']);
    const both = refusal(file(agent(`previous_key: ${previous}\nprevious_key_file: ${keyFile}\n`)));
    expect(both.issues.map((i) => i.path)).to.deep.equal(['previous_key_file']);
  });

  it('fills in optional sections left out (logging, schedules) from the schema defaults', () => {
    const a = loadConfig(file(agent()));
    expect(a.logging.level).to.equal('info');
    expect(a.kind === 'agent' && a.draining).to.equal(false);
    const c = loadConfig(
      file(`kind: controller
heartbeat:
  listen: { address: 127.0.0.10, port: 7950 }
  master_key: ${KEY}
lb_nodes:
  - { name: lb1, rpc: { url: "http://127.0.0.10:5071/RPC" }, dispatcher_list: { path: /tmp/ds.list } }
sets:
  - id: 1
`),
    );
    expect(c.logging.level).to.equal('info');
    expect(c.kind === 'controller' && c.schedules.reconcile).to.be.a('string');
    expect(c.kind === 'controller' && c.sets[0]?.backends).to.deep.equal([]);
  });

  it('accepts the same config as JSON', () => {
    const f = file(
      JSON.stringify({
        kind: 'agent',
        backend_id: 'be1',
        set: 1,
        listen: { address: '127.0.0.11', port: 7951 },
        controller: { address: '127.0.0.10', port: 7950 },
        key: KEY,
        capacity: 100,
        sip: { address: '127.0.0.11', port: 5060 },
      }),
      'json',
    );
    const a = loadConfig(f);
    expect(a.kind).to.equal('agent');
  });

  it('refuses malformed YAML with its line', () => {
    const e = refusal(file('kind: agent\nbackend_id: [be1\nset: 1\n'));
    expect(e.issues[0]?.message).to.match(/malformed YAML/);
    expect(e.issues[0]?.line).to.be.a('number');
    expect(e.message).to.contain(e.file);
  });

  it('refuses malformed JSON', () => {
    const e = refusal(file('{"kind": "agent",', 'json'));
    expect(e.issues[0]?.message).to.match(/malformed JSON/);
  });

  it('names the field of a wrong type, with line and column', () => {
    const e = refusal(file(agent().replace('capacity: 100', 'capacity: lots')));
    const issue = e.issues.find((i) => i.path === 'capacity');
    expect(issue, e.message).to.exist;
    expect(issue?.message).to.match(/must be number/);
    expect(issue?.line).to.equal(7);
  });

  it('keeps numbers within what the heartbeat protocol can carry (set id, capacity)', () => {
    const paths = refusal(
      file(agent('').replace('capacity: 100', 'capacity: 2e9').replace('set: 1', 'set: 3000000000')),
    ).issues.map((i) => i.path);
    expect(paths).to.include.members(['capacity', 'set']);
  });

  it('names a missing required field', () => {
    const e = refusal(file(agent().replace('backend_id: be1\n', '')));
    expect(e.issues.map((i) => i.path)).to.include('backend_id');
    expect(e.message).to.match(/backend_id: required field is missing/);
  });

  it('refuses an agent without a capacity, naming it (it cannot know whether the controller learns)', () => {
    const e = refusal(file(agent().replace('capacity: 100\n', '')));
    expect(e.message).to.match(/capacity: required field is missing/);
  });

  it('names an unknown field with its full path', () => {
    const e = refusal(
      file(
        agent().replace(
          'sip: { address: 127.0.0.11, port: 5060 }',
          'sip: { address: 127.0.0.11, port: 5060, prot: 5 }',
        ),
      ),
    );
    expect(e.issues.map((i) => i.path)).to.deep.equal(['sip.prot']);
    expect(e.issues[0]?.message).to.match(/unknown field/);
  });

  it('names nested array paths in controller configs', () => {
    const text = `kind: controller
heartbeat:
  listen: { address: 127.0.0.10, port: 7950 }
  master_key: ${KEY}
lb_nodes:
  - name: lb1
    rpc: { url: "http://127.0.0.10:5071/RPC" }
    dispatcher_list: { path: /tmp/ds.list }
sets:
  - id: 1
    backends:
      - { id: be1, sip_uri: "sip:127.0.0.11", capacity: 10, agent: { address: 127.0.0.11, port: 7951 } }
      - { id: be2, sip_uri: "sip:127.0.0.12", capacity: -1, agent: { address: 127.0.0.12, port: 7951 } }
`;
    const e = refusal(file(text));
    expect(e.issues.map((i) => i.path)).to.deep.equal(['sets[0].backends[1].capacity']);
  });

  it('refuses sets[].name by name (it was accepted and then shown nowhere)', () => {
    const e = refusal(
      file(`kind: controller
heartbeat:
  listen: { address: 127.0.0.10, port: 7950 }
  master_key: ${KEY}
lb_nodes:
  - { name: lb1, rpc: { url: "http://127.0.0.10:5071/RPC" }, dispatcher_list: { path: /tmp/ds.list } }
sets:
  - id: 1
    name: edge
`),
    );
    expect(e.issues.map((i) => i.path)).to.deep.equal(['sets[0].name']);
    expect(e.issues[0]?.message).to.match(/unknown field/);
    expect(e.issues[0]?.line).to.equal(9);
  });

  it('the defaults the code falls back on are the ones the schema fills in', () => {
    const c = loadControllerConfig(
      file(`kind: controller
heartbeat:
  listen: { address: 127.0.0.10, port: 7950 }
  master_key: ${KEY}
lb_nodes:
  - { name: lb1, rpc: { url: "http://127.0.0.10:5071/RPC" }, dispatcher_list: { path: /tmp/ds.list } }
sets:
  - id: 1
`),
    );
    expect(c.scoring.params).to.deep.equal(DEFAULT_SCORING_PARAMS);
    expect(endpointOptionsFromConfig(c).timing).to.deep.equal(timingOf(HEARTBEAT_DEFAULTS));
    expect(endpointOptionsFromConfig(c).health).to.deep.equal(DEFAULT_HEALTH_PARAMS);
    expect(DEFAULT_TIMING.probeIntervalMs).to.equal(c.heartbeat.probe_interval_ms);
    // A partial override of one signal keeps that signal's other defaults.
    const tuned = loadControllerConfig(
      file(`kind: controller
heartbeat:
  listen: { address: 127.0.0.10, port: 7950 }
  master_key: ${KEY}
lb_nodes:
  - { name: lb1, rpc: { url: "http://127.0.0.10:5071/RPC" }, dispatcher_list: { path: /tmp/ds.list } }
sets:
  - id: 1
scoring:
  signals:
    options_rtt_ms: { knee: 80 }
`),
    );
    expect(tuned.scoring.params.signals.options_rtt_ms).to.deep.equal({
      ...DEFAULT_SCORING_PARAMS.signals.options_rtt_ms,
      knee: 80,
    });
  });

  describe('controller schedules, push target and admission', () => {
    const controller = (
      tail: string,
      lb = '    dispatcher_list: { path: /tmp/ds.list }\n',
    ) => `kind: controller
heartbeat:
  listen: { address: 127.0.0.10, port: 7950 }
  master_key: ${KEY}
lb_nodes:
  - name: lb1
    rpc: { url: "http://127.0.0.10:5071/RPC" }
${lb}sets:
  - id: 1
    backends:
      - { id: be1, sip_uri: "sip:127.0.0.11", capacity: 10, agent: { address: 127.0.0.11, port: 7951 } }
${tail}`;

    it('admission.split.peers: a peer that is one of lb_nodes, by name or by RPC endpoint, is refused by field', () => {
      const peers = (p: string) => controller(`admission:\n  split:\n    peers:\n${p}`);
      const same = refusal(
        file(peers('      - { name: lb1, rpc: { url: "http://127.0.0.20:5071/RPC" } }\n')),
      );
      expect(same.message).to.match(/admission\.split\.peers\[0\]\.name: lb1 is already an LB node/);
      const twice = refusal(
        file(peers('      - { name: lbx, rpc: { url: "http://127.0.0.10:5071/other" } }\n')),
      );
      expect(twice.message).to.match(
        /admission\.split\.peers\[0\]\.rpc\.url: http:\/\/127\.0\.0\.10:5071 is also lb_nodes\[0\]/,
      );
      const ok = loadControllerConfig(
        file(peers('      - { name: lb2, rpc: { url: "http://127.0.0.20:5071/RPC" } }\n')),
      );
      expect(ok.admission.split.peers.map((x) => [x.name, x.kind])).to.deep.equal([['lb2', 'kamailio']]);
    });

    it('refuses a backend without a capacity by name, and learning is a scoring field', () => {
      const e = refusal(file(controller('').replace('capacity: 10, ', '')));
      expect(e.message).to.match(/sets\[0\]\.backends\[0\]\.capacity: required field is missing/);
      const c = loadControllerConfig(file(controller('')));
      expect(c.scoring.params.capacity.learn).to.be.a('boolean');
      const on = loadControllerConfig(file(controller('scoring: { capacity: { learn: true } }\n')));
      expect(on.scoring.params.capacity.learn).to.equal(true);
      expect(on.scoring.params.capacity.queue_standing_bytes).to.equal(8192);
      expect(on.scoring.params.capacity.queue_surge_bytes).to.equal(24576);
      expect(on.scoring.params.capacity.standing_window_ms).to.equal(1500);
    });

    it('refuses a surge level under the standing level, naming both fields', () => {
      const e = refusal(file(controller('scoring: { capacity: { queue_standing_bytes: 32768 } }\n')));
      expect(e.message).to.match(
        /capacity\.queue_surge_bytes must be >= queue_standing_bytes \(raise it with queue_standing_bytes\)/,
      );
      const ok = loadControllerConfig(
        file(
          controller('scoring: { capacity: { queue_standing_bytes: 32768, queue_surge_bytes: 65536 } }\n'),
        ),
      );
      expect(ok.scoring.params.capacity.queue_surge_bytes).to.equal(65536);
    });

    it('applies defaults: admission on at 0.95, no maintenance', () => {
      const c = loadControllerConfig(file(controller('')));
      expect(c.admission).to.deep.equal({
        enabled: true,
        headroom: 0.92,
        split: { by: 'demand', floor: 0.05, window_ms: 2000, peers: [] },
        fairness: { enabled: true, top_n: 10, other_reserve: 0.05, deadband: 0.1, groups: [] },
      });
      expect(c.schedules.maintenance).to.deep.equal([]);
      expect(c.lb_nodes[0]?.dispatcher_list.path).to.equal('/tmp/ds.list');
    });

    it('needs the dispatcher list an LB node reads, as an absolute path', () => {
      expect(refusal(file(controller('', ''))).issues[0]?.path).to.equal('lb_nodes[0].dispatcher_list');
      const rel = refusal(file(controller('', '    dispatcher_list: { path: ds.list }\n')));
      expect(rel.issues.map((i) => i.path)).to.deep.equal(['lb_nodes[0].dispatcher_list.path']);
    });

    it('names a bad cron expression, an unknown backend and an unknown time zone', () => {
      const e = refusal(
        file(
          controller(`schedules:
  reconcile: "99 * * * * *"
  timezone: Mars/Olympus
  maintenance:
    - { backend: be1, drain: "0 0 3 * * *", undrain: "every night" }
    - { backend: be9, drain: "0 0 4 * * *" }
`),
        ),
      );
      expect(e.issues.map((i) => i.path)).to.deep.equal([
        'schedules.reconcile',
        'schedules.timezone',
        'schedules.maintenance[0].undrain',
        'schedules.maintenance[1].backend',
      ]);
      expect(e.issues[0]?.message).to.match(/cron/);
    });

    it('lease: defaults from the schema, bad values refused naming the field', () => {
      expect(loadControllerConfig(file(controller(''))).lease).to.deep.equal({
        duration_ms: 1500,
        refresh_ms: 250,
      });
      expect(refusal(file(controller('lease: { duration_ms: 100 }\n'))).issues[0]?.path).to.equal(
        'lease.duration_ms',
      );
      expect(refusal(file(controller('lease: { refresh_ms: 2000 }\n'))).issues[0]?.path).to.equal(
        'lease.refresh_ms',
      );
      const half = refusal(file(controller('lease: { duration_ms: 600, refresh_ms: 400 }\n')));
      expect(half.issues.map((i) => i.path)).to.deep.equal(['lease.refresh_ms']);
      expect(half.issues[0]?.message).to.match(/half of lease.duration_ms/);
    });

    it('refuses a maintenance entry with neither drain nor undrain', () => {
      const e = refusal(file(controller('schedules:\n  maintenance:\n    - { backend: be1 }\n')));
      expect(e.issues[0]?.path).to.equal('schedules.maintenance[0]');
    });
  });

  it('refuses a missing or unknown kind', () => {
    expect(refusal(file('backend_id: be1\n')).issues[0]?.path).to.equal('kind');
    expect(refusal(file('kind: lb\n')).issues[0]?.message).to.match(/controller.*agent/);
  });

  it('checks cross-field rules the schema cannot: duplicates, secrets, a way to measure', () => {
    const text = `kind: controller
heartbeat:
  listen: { address: 127.0.0.10, port: 7950 }
  master_key_file: /nonexistent/master.key
lb_nodes:
  - { name: lb1, rpc: { url: "http://127.0.0.10:5071/RPC", password: x }, dispatcher_list: { path: /x } }
sets:
  - id: 1
    backends:
      - { id: be1, sip_uri: "sip:127.0.0.11", capacity: 10 }
      - { id: be1, sip_uri: "sip:127.0.0.12", capacity: 10, agent: { address: 127.0.0.12, port: 7951 } }
`;
    const paths = refusal(file(text)).issues.map((i) => i.path);
    expect(paths).to.include.members([
      'heartbeat.master_key_file',
      'lb_nodes[0].rpc.username',
      'sets[0].backends[0]',
      'sets[0].backends[1].id',
    ]);
  });

  it('reads secrets from files relative to the config', () => {
    writeFileSync(join(dir, 'agent.key'), `${KEY}\n`);
    const a = loadConfig(file(agent().replace(`key: ${KEY}`, 'key_file: agent.key')));
    expect(a.kind === 'agent' && a.key.toString('hex')).to.equal(KEY);
  });

  it('formats JSON pointers as operator paths, and back', () => {
    expect(jsonPointerToPath('/sets/0/backends/12/ssh/host')).to.equal('sets[0].backends[12].ssh.host');
    expect(jsonPointerToPath('')).to.equal('');
    for (const p of ['/sets/0/backends/12/ssh/host', '', '/heartbeat/master_key_file', '/lb_nodes/3'])
      expect(pathToJsonPointer(jsonPointerToPath(p))).to.equal(p);
  });

  it('resolves an SFTP private_key_file against the config file, and names it with its line when unreadable', () => {
    writeFileSync(join(dir, 'id_sftp'), 'key\n');
    const text = (keyFile: string) => `kind: controller
heartbeat:
  listen: { address: 127.0.0.10, port: 7950 }
  master_key: ${KEY}
lb_nodes:
  - name: lb1
    rpc: { url: "http://127.0.0.10:5071/RPC" }
    dispatcher_list:
      path: /tmp/ds.list
      sftp: { host: 127.0.0.20, username: u, private_key_file: ${keyFile}, host_fingerprint: "SHA256:${'A'.repeat(43)}" }
sets:
  - id: 1
`;
    const c = loadControllerConfig(file(text('id_sftp')));
    expect(c.lb_nodes[0]?.dispatcher_list.sftp?.private_key_file).to.equal(join(dir, 'id_sftp'));
    const e = refusal(file(text('no_such_key')));
    expect(e.issues.map((i) => i.path)).to.deep.equal(['lb_nodes[0].dispatcher_list.sftp.private_key_file']);
    expect(e.issues[0]?.message).to.contain(`cannot read ${join(dir, 'no_such_key')}: ENOENT`);
    expect(e.issues[0]?.line).to.equal(10);
  });

  it("resolves an agentless backend's ssh.private_key_file against the config file, and names it when unreadable", () => {
    writeFileSync(join(dir, 'id_backend'), 'key\n');
    const text = (keyFile: string) => `kind: controller
heartbeat:
  listen: { address: 127.0.0.10, port: 7950 }
  master_key: ${KEY}
lb_nodes:
  - name: lb1
    rpc: { url: "http://127.0.0.10:5071/RPC" }
    dispatcher_list: { path: /tmp/ds.list }
sets:
  - id: 1
    backends:
      - id: be1
        sip_uri: "sip:127.0.0.11:5060"
        capacity: 100
        ssh: { host: 127.0.0.11, username: u, private_key_file: ${keyFile}, host_fingerprint: "SHA256:${'A'.repeat(43)}" }
`;
    const c = loadControllerConfig(file(text('id_backend')));
    expect(c.sets[0]?.backends[0]?.ssh?.private_key_file).to.equal(join(dir, 'id_backend'));
    const e = refusal(file(text('no_such_key')));
    expect(e.issues.map((i) => i.path)).to.deep.equal(['sets[0].backends[0].ssh.private_key_file']);
    expect(e.issues[0]?.message).to.contain(`cannot read ${join(dir, 'no_such_key')}: ENOENT`);
  });
});
