/**
 * The event stream's contract, pure: one example of every controller event type (the map's type
 * makes the compiler demand all of them) validates against schemas/api/event.schema.json, and what
 * the schema refuses; the `?history=` query.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { HEALTH_KINDS } from '../../src/health/state-machine.js';
import { LineSplitter } from '../../src/api/event-client.js';
import { historyParam } from '../../src/api/event-stream.js';
import { apiValidator } from '../../src/api/schemas.js';
import type { ControllerEvent, ControllerEventType } from '../../src/controller/events.js';
import { REPO_ROOT } from '../support/harness.js';

const EXAMPLES: { readonly [K in ControllerEventType]: Extract<ControllerEvent, { type: K }> } = {
  controller_started: {
    type: 'controller_started',
    heartbeat: { address: '127.0.0.1', port: 5070 },
    lb_nodes: ['lb1: http://127.0.0.10:5071/RPC'],
    backends: 3,
    admission: true,
  },
  controller_stopped: { type: 'controller_stopped' },
  weights_changed: {
    type: 'weights_changed',
    set: 1,
    mode: 'scored',
    pool_cps: 350,
    backends: [{ id: 'be1', weight: 14, phase: 'normal', factor: 1, pressure: 0.41, dominant: 'cpu_util' }],
  },
  backend_health: { type: 'backend_health', backend: 'be1', set: 1, from: 'up', to: 'suspect' },
  backend_registered: { type: 'backend_registered', backend: 'be9', set: 1, uri: 'sip:10.0.0.9:5060' },
  backend_forgotten: { type: 'backend_forgotten', backend: 'be9' },
  backend_drained: { type: 'backend_drained', backend: 'be1', drained: true, reason: null },
  sample_rejected: { type: 'sample_rejected', backend: 'be1', reason: 'capacity' },
  set_waiting: { type: 'set_waiting', set: 1 },
  panic_started: { type: 'panic_started', set: 1, healthy: 0, counted: 3, threshold: 0.5 },
  panic_ended: { type: 'panic_ended', set: 1 },
  evidence_suspect: { type: 'evidence_suspect', backend: 'be1', set: 1, retransmissions: 4 },
  lb_backstop_on: { type: 'lb_backstop_on', node: 'lb1' },
  lb_backstop_off: { type: 'lb_backstop_off', node: 'lb1' },
  lease_refresh_failed: { type: 'lease_refresh_failed', node: 'lb1', error: 'htable.seti: ECONNREFUSED' },
  lease_refresh_recovered: { type: 'lease_refresh_recovered', node: 'lb1' },
  lease_withheld: { type: 'lease_withheld', node: 'lb1', reason: 'apply_failing' },
  lease_resumed: { type: 'lease_resumed', node: 'lb1' },
  lb_evidence_read_failed: { type: 'lb_evidence_read_failed', node: 'lb1', error: 'htable.dump: timeout' },
  lb_evidence_read_recovered: { type: 'lb_evidence_read_recovered', node: 'lb1' },
  lb_evidence_unsupported: { type: 'lb_evidence_unsupported', node: 'lb1', error: 'No such htable' },
  discovery: { type: 'discovery', added: ['10.0.0.5:5060'], removed: [] },
  discovery_problem: {
    type: 'discovery_problem',
    node: 'lb1',
    kind: 'bad_attr',
    detail: 'sip:x: sw_capacity',
  },
  lb_list_unreadable: { type: 'lb_list_unreadable', node: 'lb1', error: 'ECONNREFUSED' },
  node_blocked: {
    type: 'node_blocked',
    node: 'lb1',
    sets: [7],
    reason: 'its dispatcher list has sets not in this config',
  },
  node_unblocked: { type: 'node_unblocked', node: 'lb1' },
  node_push: {
    type: 'node_push',
    node: 'lb1',
    outcome: 'applied',
    changes: 2,
    ms: 4.2,
    drift_repaired: false,
    stage: null,
    error: null,
    failures: 0,
  },
  node_reachable: { type: 'node_reachable', node: 'lb1', again: true },
  node_unreachable: { type: 'node_unreachable', node: 'lb1', error: 'read: ECONNREFUSED' },
  admission_applied: { type: 'admission_applied', node: 'lb1', limits: [{ set: 1, limitCps: 175 }] },
  admission_cleared: { type: 'admission_cleared', node: 'lb1', sets: [1] },
  admission_missing: { type: 'admission_missing', node: 'lb1', sets: [1] },
  source_limited: {
    type: 'source_limited',
    node: 'lb1',
    set: 1,
    source: '10.0.0.66',
    offered_cps: 900,
    share_cps: 47.5,
  },
  source_released: { type: 'source_released', node: 'lb1', set: 1, source: '10.0.0.66' },
  source_groups_loaded: { type: 'source_groups_loaded', node: 'lb1', groups: 2, networks: 3 },
  node_demand_failed: { type: 'node_demand_failed', node: 'lb2', error: 'ECONNREFUSED' },
  node_demand_ok: { type: 'node_demand_ok', node: 'lb2' },
  admission_split: { type: 'admission_split', fractions: { lb1: 0.78, lb2: 0.22 } },
  source_shares_ok: { type: 'source_shares_ok', node: 'lb1' },
  source_shares_missing: { type: 'source_shares_missing', node: 'lb1' },
  source_shares_failed: { type: 'source_shares_failed', node: 'lb1', stage: 'read', error: 'ECONNREFUSED' },
  admission_failed: { type: 'admission_failed', node: 'lb1', error: 'timeout' },
  config_reloaded: {
    type: 'config_reloaded',
    trigger: 'SIGHUP',
    file: '/etc/sipweigh/controller.yaml',
    changes: {
      backends: { added: ['be4'], removed: [], changed: [] },
      scoring: [],
      admission: false,
      schedules: false,
      logging_level: null,
      status_file: false,
      api_auth: false,
      heartbeat_keys: false,
    },
    unchanged: false,
  },
  config_reload_refused: {
    type: 'config_reload_refused',
    trigger: 'api',
    file: '/etc/sipweigh/controller.yaml',
    error: 'controller.yaml:3:5: heartbeat.port: cannot change while the controller runs',
  },
  lb_socket_measured: { type: 'lb_socket_measured', node: 'lb1', socket: '127.0.0.10:5060' },
  lb_socket_unmeasured: {
    type: 'lb_socket_unmeasured',
    node: 'lb1',
    socket: '10.0.0.5:5060',
    reason: '10.0.0.5 is not an address of this host',
  },
  lb_socket_dropping: {
    type: 'lb_socket_dropping',
    node: 'lb1',
    socket: '127.0.0.10:5060',
    drops_per_s: 1800,
    rx_queue_bytes: 212992,
  },
  lb_socket_drops_ended: {
    type: 'lb_socket_drops_ended',
    node: 'lb1',
    socket: '127.0.0.10:5060',
    dropped: 3120,
  },
  cycle_failed: { type: 'cycle_failed', stage: 'scoring', error: 'bug' },
  status_file_error: { type: 'status_file_error', file: '/run/x.json', error: 'EACCES' },
  schedule_failed: { type: 'schedule_failed', job: 'reconcile', error: 'lb1: ECONNREFUSED' },
  api_error: {
    type: 'api_error',
    stage: 'handler',
    error: 'bug',
    method: 'GET',
    url: '/api/v1/backends',
  },
};

describe('API: the event stream contract', function () {
  const validate = apiValidator('event');

  for (const [type, example] of Object.entries(EXAMPLES)) {
    it(`${type}: as streamed, matches the schema`, function () {
      const line = JSON.parse(JSON.stringify({ ...example, time: 1_764_000_000_000 })) as unknown;
      expect(validate(line), JSON.stringify(validate.errors)).to.equal(true);
    });
  }

  it('backend_health states are the health kinds, in the schema as in the code', function () {
    const schema = JSON.parse(readFileSync(join(REPO_ROOT, 'schemas/api/event.schema.json'), 'utf8')) as {
      $defs: { health_kind: { enum: string[] } };
    };
    expect(schema.$defs.health_kind.enum).to.have.members([...HEALTH_KINDS]);
    expect(HEALTH_KINDS).to.have.length(5);
    const health = EXAMPLES.backend_health;
    expect(validate({ ...health, to: 'dead', time: 1 })).to.equal(false);
  });

  it('refuses a line without time, an unknown type, or a field out of shape', function () {
    expect(validate({ type: 'panic_ended', set: 1 })).to.equal(false);
    expect(validate({ type: 'no_such_event', time: 1 })).to.equal(false);
    expect(validate({ type: 'panic_ended', set: '1', time: 1 })).to.equal(false);
  });

  it('?history= is 0 or 1', function () {
    expect(historyParam('/api/v1/events')).to.deep.equal({ ok: true, history: false });
    expect(historyParam('/api/v1/events?history=1')).to.deep.equal({ ok: true, history: true });
    expect(historyParam('/api/v1/events?history=yes')).to.deep.equal({
      ok: false,
      error: 'history: must be 0 or 1',
    });
  });

  it('the reader splits NDJSON at newlines, whatever the chunks, keeping a partial line for later', function () {
    const lines = new LineSplitter();
    expect(lines.push('{"a":1}\n{"b"')).to.deep.equal(['{"a":1}']);
    expect(lines.push(':2}\n\n{"c":3}\n')).to.deep.equal(['{"b":2}', '{"c":3}']);
    expect(lines.push('')).to.deep.equal([]);
  });
});
