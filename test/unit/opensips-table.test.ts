/**
 * The OpenSIPS adapter's pure parts: the db_text dispatcher table, the generated destinations
 * route, the ds_list parser, the lab config rendering and the config cross-checks of an OpenSIPS node.
 */
import { expect } from 'chai';
import type { Destination } from '../../src/kamailio/dispatcher-list.js';
import {
  destinationUris,
  escapeDbText,
  formatDestinationsRoute,
  formatDispatcherTable,
  formatVersionTable,
  sendTarget,
} from '../../src/opensips/dispatcher-table.js';
import { parseDsList, stateLetter } from '../../src/opensips/ds-list.js';
import { asOpenSips } from '../../src/opensips/pusher.js';
import { diffDispatcher } from '../../src/push/diff.js';
import { renderOpenSipsLbCfg } from '../../src/lab/opensips.js';
import { admissionVariables, asHtableDump } from '../../src/opensips/admission.js';
import { parseLimiterDump } from '../../src/kamailio/admission.js';

const d = (
  uri: string,
  rweight: number,
  duid: string,
  state: Destination['state'] = 'active',
): Destination => ({
  setId: 1,
  uri,
  state,
  rweight,
  duid,
});

describe('OpenSIPS dispatcher table (db_text)', function () {
  it('writes the version-9 header and one escaped row per destination', function () {
    const text = formatDispatcherTable([
      d('sip:127.0.0.11:5060', 70, 'be1'),
      d('sip:127.0.0.12:5060', 30, 'be2'),
    ]);
    const lines = text.trimEnd().split('\n');
    expect(lines[0]).to.match(
      /^id\(int,auto\) setid\(int\) destination\(string\) socket\(string,null\) state\(int\)/,
    );
    expect(lines[1]).to.equal('1:1:sip\\:127.0.0.11\\:5060::0:0:70:0:duid=be1;rweight=70:be1');
    expect(lines[2]).to.equal('2:1:sip\\:127.0.0.12\\:5060::0:0:30:0:duid=be2;rweight=30:be2');
    expect(formatVersionTable()).to.equal('table_name(string) table_version(int)\ndispatcher:9\n');
  });

  it('escapes the separator and backslashes', function () {
    expect(escapeDbText('a:b\\c')).to.equal('a\\:b\\\\c');
  });

  it('refuses a destination send() could not name, or a weight outside 1..100', function () {
    expect(() => formatDispatcherTable([d('sip:127.0.0.11', 50, 'x')])).to.throw(/sip:<host>:<port>/);
    expect(() => formatDispatcherTable([d('sip:127.0.0.11:5060;transport=tcp', 50, 'x')])).to.throw();
    expect(() => formatDispatcherTable([d('sip:127.0.0.11:5060', 0, 'x')])).to.throw(/1\.\.100/);
    expect(sendTarget('sip:10.0.0.5:5070')).to.deep.equal({ host: '10.0.0.5', port: 5070 });
    expect(sendTarget('sip:10.0.0.5:0')).to.equal(null);
  });
});

describe('OpenSIPS destinations route', function () {
  it('has one literal send() per distinct destination and returns -1 otherwise', function () {
    const uris = destinationUris([
      d('sip:127.0.0.11:5060', 50, 'a'),
      d('sip:127.0.0.11:5060', 50, 'b'),
      d('sip:127.0.0.12:5060', 50, 'c'),
    ]);
    expect(uris).to.deep.equal(['sip:127.0.0.11:5060', 'sip:127.0.0.12:5060']);
    const route = formatDestinationsRoute(uris);
    expect(route).to.include('route[SIPWEIGH_SEND_TO] {');
    expect(route).to.include(
      '\tcase "sip:127.0.0.11:5060":\n\t\tsend("udp:127.0.0.11:5060", "$var(sipweigh_stamp)");\n\t\treturn(1);',
    );
    expect(route.match(/\tsend\(/g)).to.have.length(2);
    expect(route).to.match(/return\(-1\);\n}\n$/);
    expect(formatDestinationsRoute([])).to.not.include('switch');
  });
});

describe('OpenSIPS ds_list reply', function () {
  const reply = {
    PARTITIONS: [
      {
        name: 'default',
        SETS: [
          {
            id: 1,
            Destinations: [
              {
                URI: 'sip:127.0.0.11:5060',
                state: 'Active',
                first_hit_counter: 3,
                weight: 70,
                priority: 0,
                description: 'be1',
                attr: 'duid=be1;rweight=70',
              },
              {
                URI: 'sip:127.0.0.12:5060',
                state: 'Inactive',
                weight: 30,
                priority: 0,
                description: 'be2',
                attr: 'duid=be2;rweight=30;sw_drained=1',
              },
            ],
          },
        ],
      },
    ],
  };

  it('reads states, weights and attrs into the controller targets; the diff sees them in sync', function () {
    const r = parseDsList(reply);
    expect(r.ok).to.equal(true);
    if (!r.ok) return;
    expect(r.targets.map((t) => [t.uri, t.state, t.rweight, t.duid])).to.deep.equal([
      ['sip:127.0.0.11:5060', 'active', 70, 'be1'],
      ['sip:127.0.0.12:5060', 'disabled', 30, 'be2'],
    ]);
    const desired = asOpenSips([
      d('sip:127.0.0.11:5060', 70, 'be1'),
      d('sip:127.0.0.12:5060', 30, 'be2', 'disabled'),
    ]);
    expect(diffDispatcher(desired, r.targets).inSync).to.equal(true);
    expect(stateLetter('disabled')).to.equal('i');
  });

  it('an empty dispatcher is an empty list; a malformed reply is an error', function () {
    expect(parseDsList({})).to.deep.equal({ ok: true, targets: [] });
    expect(
      parseDsList({
        PARTITIONS: [{ name: 'default', SETS: [{ id: 1, Destinations: [{ URI: 'x', state: 'Weird' }] }] }],
      }).ok,
    ).to.equal(false);
    expect(parseDsList('nope').ok).to.equal(false);
  });
});

describe('OpenSIPS lab config rendering', function () {
  it('replaces every placeholder and refuses a missing one or a quote', function () {
    expect(renderOpenSipsLbCfg('socket=udp:@A@:@B@', { A: '127.0.0.1', B: 5060 })).to.equal(
      'socket=udp:127.0.0.1:5060',
    );
    expect(() => renderOpenSipsLbCfg('@A@ @C@', { A: 'x' })).to.throw(/@C@/);
    expect(() => renderOpenSipsLbCfg('@A@', { A: 'x"y' })).to.throw(/quotes/);
  });
});

describe('OpenSIPS admission limiter (shared variables read as the htable dump)', function () {
  it('turns shv_get into the dump the shared admission code parses', function () {
    const vars = admissionVariables([
      [
        { name: 'sipweigh_adm_T_1', type: 'integer', value: 5000 },
        { name: 'sipweigh_adm_tat_1', type: 'integer', value: -1 },
        { name: 'sipweigh_adm_tau_1', type: 'integer', value: 100000 },
        { name: 'sipweigh_invite_ttl', type: 'integer', value: 240 },
      ],
    ]);
    expect([...vars.keys()].sort()).to.deep.equal(['T_1', 'tat_1', 'tau_1']);
    const states = parseLimiterDump(asHtableDump(vars));
    expect(states).to.have.length(1);
    expect(states[0]?.setId).to.equal(1);
    expect(states[0]?.params).to.deep.equal({ emissionUs: 5000, toleranceUs: 100000 });
    expect(states[0]?.limitCps).to.equal(200);
  });
});
