/**
 * The section types in src/config/types.ts against the config schemas, field by field.
 *
 * Each type has a key list below typed as Presence<T>: the compiler makes it name every key of T
 * and say truly whether T has it always ('required') or maybe ('optional'). This test then holds
 * each list against the schema: the same fields, and a field the schema requires or fills in
 * from a default is one the type always has. Type and schema can therefore only change together.
 * (Generating the types from the schemas would need a build step and a generator dependency, and
 * would lose the doc comments and the derived config types built on these sections.)
 */
import { expect } from 'chai';
import type {
  AdmissionSection,
  AdmissionSplitSection,
  PeerNodeSection,
  LeaseConfig,
  AgentSection,
  ApiSection,
  BackendConfig,
  ControllerSection,
  DispatcherListConfig,
  FairnessConfig,
  HeartbeatSection,
  KamailioRpcSection,
  LbNodeSection,
  LoggingSection,
  MaintenanceSchedule,
  SchedulesConfig,
  ScoringSection,
  SetConfig,
  SftpConfig,
  SourceGroupConfig,
  SshConfig,
} from '../../src/config/types.js';
import type { DelaySplitParams } from '../../src/scoring/delay-split.js';
import type { SignalParams } from '../../src/scoring/params.js';
import { SIGNAL_NAMES, type SignalName } from '../../src/scoring/types.js';
import { fieldsOf, objectInside, schemaNode, type SchemaNode } from '../support/schema-fields.js';
import type { UdpAddress } from '../../src/util/udp-address.js';

type Presence<T> = { readonly [K in keyof T]-?: object extends Pick<T, K> ? 'optional' : 'required' };

const udpEndpoint: Presence<UdpAddress> = { address: 'required', port: 'required' };
const logging: Presence<LoggingSection> = { level: 'required' };
const rpc: Presence<KamailioRpcSection> = {
  url: 'required',
  username: 'optional',
  password: 'optional',
  password_file: 'optional',
  timeout_ms: 'required',
};
const heartbeat: Presence<HeartbeatSection> = {
  listen: 'required',
  master_key: 'optional',
  master_key_file: 'optional',
  previous_master_key: 'optional',
  previous_master_key_file: 'optional',
  probe_interval_ms: 'required',
  probe_timeout_ms: 'required',
  probe_jitter: 'required',
  down_after_misses: 'required',
  return_after_oks: 'required',
  flap_half_life_ms: 'required',
  flap_base_hold_ms: 'required',
  flap_max_hold_ms: 'required',
  max_clock_skew_ms: 'required',
  max_message_age_ms: 'required',
  max_self_registered: 'required',
  max_probes_per_s: 'required',
};
const sftp: Presence<SftpConfig> = {
  host: 'required',
  port: 'required',
  username: 'required',
  private_key_file: 'required',
  host_fingerprint: 'required',
};
const dispatcherList: Presence<DispatcherListConfig> = { path: 'required', sftp: 'optional' };
const lbNode: Presence<LbNodeSection> = {
  name: 'required',
  rpc: 'required',
  dispatcher_list: 'required',
  address_file: 'optional',
  sip_socket: 'optional',
  kind: 'required',
  opensips: 'optional',
};
const ssh: Presence<SshConfig> = {
  host: 'required',
  port: 'required',
  username: 'required',
  private_key_file: 'required',
  host_fingerprint: 'required',
  interval_ms: 'required',
  kamcmd: 'required',
  sip_port: 'required',
  kamcmd_socket: 'optional',
  sip_address: 'optional',
};
const backend: Presence<BackendConfig> = {
  id: 'required',
  sip_uri: 'required',
  capacity: 'required',
  agent: 'optional',
  ssh: 'optional',
};
const set: Presence<SetConfig> = { id: 'required', self_registration: 'required', backends: 'required' };
const signal: Presence<SignalParams> = {
  knee: 'required',
  half_life_ms: 'required',
  standing_window_ms: 'required',
};
const signals: Presence<Record<SignalName, SignalParams>> = Object.fromEntries(
  SIGNAL_NAMES.map((n) => [n, 'required']),
) as Presence<Record<SignalName, SignalParams>>;
const scoring: Presence<ScoringSection> = {
  cycle_ms: 'required',
  signals: 'required',
  capacity: 'required',
  requests_per_call: 'required',
  report_stale_ms: 'required',
  factor_floor: 'required',
  decrease_above_pressure: 'required',
  recover_below_pressure: 'required',
  overload_confirm_ms: 'required',
  decrease_gain_per_s: 'required',
  max_decrease_ratio_per_s: 'required',
  served_floor_ratio: 'required',
  served_floor_hold_ms: 'required',
  recover_per_s: 'required',
  recover_delay_ms: 'required',
  max_cycle_gap_ms: 'required',
  slow_start_ms: 'required',
  slow_start_initial_ratio: 'required',
  weight_max: 'required',
  weight_min: 'required',
  weight_deadband_ratio: 'required',
  max_weight_step: 'required',
  panic_threshold_ratio: 'required',
  panic_heal_grace_ms: 'required',
  delay_split: 'required',
};
const delaySplit: Presence<DelaySplitParams> = {
  enabled: 'required',
  start_utilisation: 'required',
  full_utilisation: 'required',
  min_estimate_utilisation: 'required',
  idle_rtt_ms: 'required',
  min_queueing_ms: 'required',
  max_delay_ratio: 'required',
};
const lease: Presence<LeaseConfig> = { duration_ms: 'required', refresh_ms: 'required' };
const admission: Presence<AdmissionSection> = {
  enabled: 'required',
  headroom: 'required',
  split: 'required',
  fairness: 'required',
};
const split: Presence<AdmissionSplitSection> = {
  by: 'required',
  floor: 'required',
  window_ms: 'required',
  peers: 'required',
};
const peer: Presence<PeerNodeSection> = { name: 'required', kind: 'required', rpc: 'required' };
const fairness: Presence<FairnessConfig> = {
  enabled: 'required',
  top_n: 'required',
  other_reserve: 'required',
  deadband: 'required',
  groups: 'required',
};
const sourceGroup: Presence<SourceGroupConfig> = {
  name: 'required',
  networks: 'required',
  weight: 'required',
  guaranteed_cps: 'required',
  trusted: 'required',
};
const maintenance: Presence<MaintenanceSchedule> = {
  backend: 'required',
  drain: 'optional',
  undrain: 'optional',
};
const schedules: Presence<SchedulesConfig> = {
  reconcile: 'required',
  timezone: 'optional',
  maintenance: 'required',
};
const api: Presence<ApiSection> = {
  listen: 'required',
  port: 'required',
  token_file: 'optional',
  read_without_token: 'required',
};
const controller: Presence<ControllerSection> = {
  kind: 'required',
  heartbeat: 'required',
  lb_nodes: 'required',
  sets: 'required',
  scoring: 'required',
  admission: 'required',
  lease: 'required',
  schedules: 'required',
  status_file: 'optional',
  api: 'optional',
  logging: 'required',
};
const agent: Presence<AgentSection> = {
  kind: 'required',
  backend_id: 'required',
  set: 'required',
  listen: 'required',
  controller: 'required',
  key: 'optional',
  key_file: 'optional',
  previous_key: 'optional',
  previous_key_file: 'optional',
  capacity: 'required',
  draining: 'required',
  sip: 'required',
  kamailio_rpc: 'optional',
  collect_interval_ms: 'required',
  logging: 'required',
};

type Shape = { readonly [field: string]: 'required' | 'optional' };
/** Each object in the schemas, by its path in the file, and the type it loads into. */
const SHAPES: Readonly<Record<string, Shape>> = {
  '': controller,
  heartbeat,
  'heartbeat.listen': udpEndpoint,
  'lb_nodes[]': lbNode,
  'lb_nodes[].rpc': rpc,
  'lb_nodes[].dispatcher_list': dispatcherList,
  'lb_nodes[].opensips': { destinations_path: 'required' },
  'lb_nodes[].dispatcher_list.sftp': sftp,
  'lb_nodes[].sip_socket': udpEndpoint,
  'sets[]': set,
  'sets[].backends[]': backend,
  'sets[].backends[].agent': udpEndpoint,
  'sets[].backends[].ssh': ssh,
  scoring,
  'scoring.signals': signals,
  'scoring.capacity': {
    learn: 'required',
    queue_standing_bytes: 'required',
    queue_surge_bytes: 'required',
    standing_window_ms: 'required',
    track_half_life_ms: 'required',
    served_half_life_ms: 'required',
    retransmit_rtt_ms: 'required',
    retransmit_max_inflation: 'required',
    probe_above_ratio: 'required',
    quiet_queue_bytes: 'required',
    quiet_wait_ms: 'required',
    probe_per_s: 'required',
    probe_delay_ms: 'required',
    min_ratio: 'required',
    max_ratio: 'required',
  },
  'scoring.delay_split': delaySplit,
  ...Object.fromEntries(SIGNAL_NAMES.map((n) => [`scoring.signals.${n}`, signal])),
  admission,
  lease,
  'admission.split': split,
  'admission.split.peers[]': peer,
  'admission.split.peers[].rpc': rpc,
  'admission.fairness': fairness,
  'admission.fairness.groups[]': sourceGroup,
  schedules,
  'schedules.maintenance[]': maintenance,
  api,
  logging,
};
const AGENT_SHAPES: Readonly<Record<string, Shape>> = {
  '': agent,
  listen: udpEndpoint,
  controller: udpEndpoint,
  sip: udpEndpoint,
  kamailio_rpc: rpc,
  logging,
};

/** Every object node of a schema with its path (as in SHAPES) and its fields' presence. */
function objects(file: string): Map<string, Shape> {
  const out = new Map<string, Shape>();
  const walk = (n: SchemaNode, path: string) => {
    const fields = fieldsOf(n);
    out.set(path, Object.fromEntries(fields.map((f) => [f.name, f.presence])));
    for (const f of fields) {
      const inner = objectInside(f.node);
      const isArray = f.node.node.items !== undefined;
      if (inner) walk(inner, `${path ? `${path}.` : ''}${f.name}${isArray ? '[]' : ''}`);
    }
  };
  walk(schemaNode(file), '');
  return out;
}

describe('config schemas and their types (src/config/types.ts)', () => {
  for (const [file, shapes] of [
    ['controller-config.schema.json', SHAPES],
    ['agent-config.schema.json', AGENT_SHAPES],
  ] as const) {
    it(`${file}: every object has a type with the same fields, required or optional alike`, () => {
      const found = objects(file);
      expect([...found.keys()].sort(), 'objects in the schema').to.deep.equal(Object.keys(shapes).sort());
      for (const [path, shape] of found) {
        expect(shape, `${file} at "${path || '(top level)'}"`).to.deep.equal(shapes[path]);
      }
    });
  }
});
