/**
 * An OpenSIPS LB node in the controller config (docs/opensips.md): kind defaults to kamailio, an
 * opensips node needs its destinations path, and what OpenSIPS 3.6 cannot take is refused by name.
 */
import { expect } from 'chai';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../../src/config/errors.js';
import { loadControllerConfig } from '../../src/config/load.js';

const dir = mkdtempSync(join(tmpdir(), 'sipweigh-osips-config-'));
let n = 0;
const KEY = 'ab'.repeat(32);
const DEFAULT_SETS = `sets:
  - id: 1
    backends:
      - { id: be1, sip_uri: "sip:127.0.0.11:5060", capacity: 10, agent: { address: 127.0.0.11, port: 7951 } }
`;
const OSIPS_NODE =
  '    kind: opensips\n    rpc: { url: "http://127.0.0.10:8888/mi" }\n    dispatcher_list: { path: /t/dispatcher }\n    opensips: { destinations_path: /t/d.cfg }\n';

function load(lb: string, sets = DEFAULT_SETS) {
  const f = join(dir, `c${n++}.yaml`);
  writeFileSync(
    f,
    `kind: controller
heartbeat:
  listen: { address: 127.0.0.10, port: 7950 }
  master_key: ${KEY}
lb_nodes:
  - name: lb1
${lb}${sets}`,
  );
  return loadControllerConfig(f);
}

function issues(lb: string, sets = DEFAULT_SETS): string[] {
  try {
    load(lb, sets);
  } catch (e) {
    expect(e).to.be.instanceOf(ConfigError);
    return (e as ConfigError).issues.map((i) => `${i.path}: ${i.message}`);
  }
  throw new Error('accepted');
}

describe('controller config: an OpenSIPS LB node', function () {
  it('kind defaults to kamailio', function () {
    const c = load(
      '    rpc: { url: "http://127.0.0.10:5071/RPC" }\n    dispatcher_list: { path: /tmp/ds.list }\n',
    );
    expect(c.lb_nodes[0]?.kind).to.equal('kamailio');
  });

  it('accepts kind opensips with its MI URL, table and destinations path', function () {
    const c = load(
      '    kind: opensips\n    rpc: { url: "http://127.0.0.10:8888/mi" }\n    dispatcher_list: { path: /var/lib/sw/db/dispatcher }\n    opensips: { destinations_path: /var/lib/sw/dest.cfg }\n',
    );
    expect(c.lb_nodes[0]?.kind).to.equal('opensips');
    expect(c.lb_nodes[0]?.opensips?.destinations_path).to.equal('/var/lib/sw/dest.cfg');
  });

  it('refuses an opensips node without destinations path, with credentials or a source groups file', function () {
    const found = issues(
      '    kind: opensips\n    rpc: { url: "http://127.0.0.10:8888/mi", username: u, password: p }\n    dispatcher_list: { path: /t/dispatcher }\n    address_file: /t/groups\n',
    );
    expect(found.map((i) => i.split(':')[0])).to.have.members([
      'lb_nodes[0].opensips.destinations_path',
      'lb_nodes[0].rpc.username',
      'lb_nodes[0].rpc.password',
      'lb_nodes[0].address_file',
    ]);
  });

  it('refuses an opensips section on a kamailio node (it would be ignored)', function () {
    const found = issues(
      '    rpc: { url: "http://127.0.0.10:5071/RPC" }\n    dispatcher_list: { path: /t/ds.list }\n    opensips: { destinations_path: /t/d.cfg }\n',
    );
    expect(found[0]).to.match(/^lb_nodes\[0\]\.opensips: only for kind opensips/);
  });

  it('refuses what the OpenSIPS LB would load but never dispatch: a set other than 1, a URI without a port, https MI', function () {
    const sets = `sets:
  - id: 2
    backends:
      - { id: be1, sip_uri: "sip:127.0.0.11", capacity: 10, agent: { address: 127.0.0.11, port: 7951 } }
      - { id: be2, sip_uri: "sip:127.0.0.12:5060;transport=tcp", capacity: 10, agent: { address: 127.0.0.12, port: 7951 } }
`;
    const found = issues(OSIPS_NODE.replace('http://', 'https://'), sets);
    expect(found.map((i) => i.split(':')[0])).to.have.members([
      'lb_nodes[0].rpc.url',
      'sets[0].id',
      'sets[0].backends[0].sip_uri',
      'sets[0].backends[1].sip_uri',
    ]);
    // The same sets are fine behind a Kamailio LB.
    expect(() =>
      load(
        '    rpc: { url: "http://127.0.0.10:5071/RPC" }\n    dispatcher_list: { path: /t/ds.list }\n',
        sets,
      ),
    ).not.to.throw();
  });
});
