/**
 * The permanent rule: every field the config schemas accept is read by the daemons, or listed
 * below as documentation-only with the reason. A field that is validated and then ignored is a
 * promise the product does not keep (an operator sets it and nothing changes); this test fails
 * the day one appears. "Read" means its name occurs in the code under src/ outside src/config/
 * (comments stripped), or it is one of the fields the loader itself turns into something else.
 * A name without an underscore (port, name, enabled) occurs in code for a hundred other reasons, so
 * such a field must also be declared in READ_AT with the file that reads it (an address and port
 * are read with the endpoint that holds them, which is handed whole to a socket).
 */
import { expect } from 'chai';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SIGNAL_NAMES } from '../../src/scoring/types.js';
import { PACKAGE_ROOT } from '../../src/util/package-root.js';
import { allFields } from '../support/schema-fields.js';

/** Fields the loader (src/config/) consumes: secrets read from where they are, into what the code uses. */
const LOADER_READS: Readonly<Record<string, string>> = {
  'heartbeat.master_key': 'heartbeat.master_keys[0]',
  'heartbeat.master_key_file': 'heartbeat.master_keys[0]',
  'heartbeat.previous_master_key': 'heartbeat.master_keys[1]',
  'heartbeat.previous_master_key_file': 'heartbeat.master_keys[1]',
  'lb_nodes[].rpc.password_file': 'lb_nodes[].rpc.password',
  'admission.split.peers[].rpc.password_file': 'admission.split.peers[].rpc.password',
  key: 'the agent key (Buffer)',
  key_file: 'the agent key (Buffer)',
  previous_key_file: 'the agent previous key (Buffer)',
  'kamailio_rpc.password_file': 'kamailio_rpc.password',
  kind: 'which schema and config type apply',
  admission: 'scoring.params (config/scoring-params.ts)',
  'admission.enabled': 'scoring.params.admission_enabled',
  'admission.headroom': 'scoring.params.admission_headroom_ratio',
};

const READ_AT: Readonly<Record<string, string>> = {
  heartbeat: 'src/probe/options.ts',
  'heartbeat.listen': 'src/probe/options.ts',
  'lb_nodes[].name': 'src/push/node-link.ts',
  'lb_nodes[].rpc': 'src/push/node-link.ts',
  'lb_nodes[].rpc.url': 'src/kamailio/rpc.ts',
  'lb_nodes[].rpc.username': 'src/kamailio/rpc.ts',
  'lb_nodes[].rpc.password': 'src/kamailio/rpc.ts',
  'lb_nodes[].dispatcher_list.path': 'src/push/node-link.ts',
  'lb_nodes[].dispatcher_list.sftp': 'src/push/node-link.ts',
  'lb_nodes[].dispatcher_list.sftp.host': 'src/push/node-link.ts',
  'lb_nodes[].dispatcher_list.sftp.port': 'src/push/node-link.ts',
  'lb_nodes[].dispatcher_list.sftp.username': 'src/push/node-link.ts',
  'lb_nodes[].sip_socket': 'src/controller/lb-socket-watch.ts',
  'lb_nodes[].kind': 'src/push/node-link.ts',
  'lb_nodes[].opensips': 'src/push/node-link.ts',
  'sets[]': 'src/probe/options.ts',
  'sets[].id': 'src/discovery/merge.ts',
  'sets[].backends[]': 'src/discovery/merge.ts',
  'sets[].backends[].id': 'src/discovery/merge.ts',
  'sets[].backends[].capacity': 'src/discovery/merge.ts',
  'sets[].backends[].agent': 'src/discovery/merge.ts',
  'sets[].backends[].ssh': 'src/probe/agentless.ts',
  'sets[].backends[].ssh.host': 'src/metrics/ssh-config.ts',
  'sets[].backends[].ssh.port': 'src/metrics/ssh-config.ts',
  'sets[].backends[].ssh.username': 'src/metrics/ssh-config.ts',
  'sets[].backends[].ssh.kamcmd': 'src/metrics/ssh-config.ts',
  scoring: 'src/controller/reload-plan.ts',
  'scoring.signals': 'src/scoring/signals.ts',
  'scoring.capacity': 'src/scoring/scorer.ts',
  'scoring.capacity.learn': 'src/scoring/scorer.ts',
  'scoring.delay_split.enabled': 'src/scoring/delay-split.ts',
  'admission.split': 'src/controller/demand-watch.ts',
  'admission.split.by': 'src/controller/demand-watch.ts',
  'admission.split.floor': 'src/controller/demand-watch.ts',
  'admission.split.peers[]': 'src/controller/controller.ts',
  'admission.split.peers[].name': 'src/controller/demand-watch.ts',
  'admission.split.peers[].kind': 'src/push/admission-counters.ts',
  'admission.split.peers[].rpc': 'src/push/admission-counters.ts',
  'admission.split.peers[].rpc.url': 'src/push/admission-counters.ts',
  'admission.split.peers[].rpc.username': 'src/push/admission-counters.ts',
  'admission.split.peers[].rpc.password': 'src/push/admission-counters.ts',
  'admission.fairness': 'src/controller/fair-admission.ts',
  'admission.fairness.enabled': 'src/controller/fair-admission.ts',
  'admission.fairness.deadband': 'src/push/source-link.ts',
  'admission.fairness.groups[]': 'src/push/source-link.ts',
  'admission.fairness.groups[].name': 'src/controller/fair-admission.ts',
  'admission.fairness.groups[].networks[]': 'src/kamailio/address-file.ts',
  'admission.fairness.groups[].weight': 'src/push/source-link.ts',
  'admission.fairness.groups[].trusted': 'src/kamailio/address-file.ts',
  'scoring.signals.utilisation': 'src/scoring/signals.ts',
  'scoring.signals.load1': 'src/scoring/signals.ts',
  ...Object.fromEntries(SIGNAL_NAMES.map((n) => [`scoring.signals.${n}.knee`, 'src/scoring/signals.ts'])),
  schedules: 'src/controller/controller.ts',
  'schedules.reconcile': 'src/controller/schedules.ts',
  'schedules.timezone': 'src/controller/schedules.ts',
  'schedules.maintenance[]': 'src/controller/schedules.ts',
  'schedules.maintenance[].backend': 'src/controller/schedules.ts',
  'schedules.maintenance[].drain': 'src/controller/schedules.ts',
  'schedules.maintenance[].undrain': 'src/controller/schedules.ts',
  api: 'src/cli/commands/controller-daemon.ts',
  'api.listen': 'src/cli/commands/controller-daemon.ts',
  'api.port': 'src/cli/commands/controller-daemon.ts',
  lease: 'src/controller/lb-watch.ts',
  logging: 'src/cli/commands/daemons.ts',
  'logging.level': 'src/cli/commands/daemons.ts',
  // The agent's config (agent-config.schema.json).
  set: 'src/agent/agent.ts',
  listen: 'src/agent/agent.ts',
  controller: 'src/agent/agent.ts',
  capacity: 'src/agent/agent.ts',
  draining: 'src/agent/agent.ts',
  sip: 'src/agent/agent.ts',
  'kamailio_rpc.url': 'src/agent/collectors.ts',
  'kamailio_rpc.username': 'src/agent/collectors.ts',
  'kamailio_rpc.password': 'src/agent/collectors.ts',
};

/**
 * Accepted but not (yet) read by the daemons, each with the reason. An entry covers the field and
 * everything under it. Keep this short: the way off the list is to wire the field or refuse it.
 */
const DOCUMENTATION_ONLY: Readonly<Record<string, string>> = {};

function codeUnder(dir: string, skip: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (path !== skip) out.push(...codeUnder(path, skip));
    } else if (entry.name.endsWith('.ts')) {
      // Comments may name a field without reading it.
      out.push(stripComments(readFileSync(path, 'utf8')));
    }
  }
  return out;
}

const stripComments = (text: string) =>
  text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:])\/\/.*$/gm, '$1');
const src = join(PACKAGE_ROOT, 'src');
const daemonCode = codeUnder(src, join(src, 'config'));
const loaderCode = codeUnder(join(src, 'config'), '');
const occurs = (code: readonly string[], name: string) => {
  const word = new RegExp(`\\b${name}\\b`);
  return code.some((text) => word.test(text));
};

const covering = (path: string, entries: Readonly<Record<string, string>>) =>
  Object.keys(entries).find((k) => path === k || path.startsWith(`${k}.`));
const covered = (path: string, entries: Readonly<Record<string, string>>) =>
  covering(path, entries) !== undefined;

/** Read by the daemons: a distinctive name occurs in their code, a generic one in its declared reader. */
function readByDaemons(path: string, name: string): boolean {
  if (name.includes('_')) return occurs(daemonCode, name);
  const endpoint = /^(.*)\.(address|port)$/.exec(path)?.[1];
  const entry = path in READ_AT ? path : endpoint !== undefined && endpoint in READ_AT ? endpoint : undefined;
  if (entry === undefined) return false;
  const reader = stripComments(readFileSync(join(PACKAGE_ROOT, READ_AT[entry] ?? ''), 'utf8'));
  return occurs([reader], entry.replace(/\[\]$/, '').split('.').pop() ?? '');
}

describe('every config field is read by the daemons or listed as documentation-only', () => {
  for (const file of ['controller-config.schema.json', 'agent-config.schema.json']) {
    it(`${file}: no field is validated and then ignored`, () => {
      const unread = allFields(file)
        .filter((f) => !covered(f.path, DOCUMENTATION_ONLY))
        .filter((f) => !(f.path in LOADER_READS && occurs(loaderCode, f.name)))
        .filter((f) => !readByDaemons(f.path, f.name))
        .map((f) => f.path);
      expect(
        unread,
        'fields nobody reads: wire them, or refuse them by removing them from the schema',
      ).to.deep.equal([]);
    });
  }

  it('lists only fields that exist (a stale entry would hide a new field of the same name)', () => {
    const paths = new Set(
      ['controller-config.schema.json', 'agent-config.schema.json'].flatMap((f) =>
        allFields(f).map((x) => x.path),
      ),
    );
    for (const key of [
      ...Object.keys(LOADER_READS),
      ...Object.keys(DOCUMENTATION_ONLY),
      ...Object.keys(READ_AT),
    ]) {
      expect(paths.has(key), key).to.equal(true);
    }
  });

  it('the check itself sees a field nobody reads', () => {
    expect(occurs(daemonCode, 'probe_interval_ms')).to.equal(true);
    expect(occurs(daemonCode, 'no_such_field_anywhere')).to.equal(false);
    // An entry covers the field and everything under it.
    expect(covered('x.y.z', { 'x.y': 'reason' })).to.equal(true);
    expect(covered('x.yz', { 'x.y': 'reason' })).to.equal(false);
    // A generic name is not taken as read just because the word occurs somewhere.
    expect(readByDaemons('sets[].name', 'name')).to.equal(false);
  });
});
